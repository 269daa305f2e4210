package main

// The figures are what users choose a test harness for: time to a ready
// cluster, how a matrix of versions scales, teardown, memory per cluster and
// density, each against the floor of a bare kube-apiserver measured in the
// same run.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vmatrix/vmatrix/internal/controlplane"
	"github.com/vmatrix/vmatrix/internal/host"
	"github.com/vmatrix/vmatrix/internal/k8sdist"
	"github.com/vmatrix/vmatrix/internal/proc"
	"github.com/vmatrix/vmatrix/internal/state"
	"github.com/vmatrix/vmatrix/internal/virtual"
)

// Config says what to measure and how often.
type Config struct {
	Runs           int           // iterations of each timed figure (at least 1)
	Version        string        // virtual version of the single-cluster figures
	MatrixVersions []string      // the versions created in parallel
	Idle           time.Duration // how long a cluster idles before its memory is read
	DensityMax     int           // clusters to try in the density figure; 0 skips it
	SyncReplicas   int           // replicas of the sync figure's Deployment; 0 skips it
	SyncLarge      int           // replicas of the large sync figure's Deployment; 0 skips it
	Rerun          bool          // measure a cold create against a reuse attach
	Inspect        int           // samples of the logs and exec figure; 0 skips it
	VMatrix        string        // the vmatrix binary: the memory figure measures clusters made by vmatrix create
	Dir            string        // scratch space
	Log            io.Writer
}

// Stat is one figure over its runs.
type Stat struct {
	Unit   string    `json:"unit"`
	Median float64   `json:"median"`
	Min    float64   `json:"min"`
	Max    float64   `json:"max"`
	Runs   []float64 `json:"runs"`
	// RatioToFloor is Median over the floor's median, where that compares.
	RatioToFloor float64 `json:"ratio_to_floor,omitempty"`
}

func newStat(unit string, runs []float64) Stat {
	s := Stat{Unit: unit, Runs: runs}
	sorted := slices.Clone(runs)
	slices.Sort(sorted)
	if n := len(sorted); n > 0 {
		s.Min, s.Max = sorted[0], sorted[n-1]
		s.Median = sorted[n/2]
		if n%2 == 0 {
			s.Median = (sorted[n/2-1] + sorted[n/2]) / 2
		}
	}
	return s
}

// ratio is a/b, or 0 (not measured) when b is: a figure that failed must not
// make the others +Inf, which JSON cannot hold.
func ratio(a, b float64) float64 {
	if b <= 0 {
		return 0
	}
	return a / b
}

// Results is what `make bench` writes to bench/results.json.
type Results struct {
	Time    time.Time `json:"time"`
	Machine struct {
		Cores       int    `json:"cores"`
		MemoryBytes uint64 `json:"memory_bytes"`
		Go          string `json:"go"`
	} `json:"machine"`
	Versions struct {
		Host    string   `json:"host"`
		Virtual string   `json:"virtual"`
		Matrix  []string `json:"matrix"`
	} `json:"versions"`
	Floor  Stat `json:"floor_seconds"`
	Create Stat `json:"create_seconds"`
	Matrix struct {
		Wall Stat `json:"wall_seconds"`
		// RatioToCreate is the matrix's median over one create's median.
		RatioToCreate float64 `json:"ratio_to_create"`
	} `json:"matrix"`
	TeardownOne   Stat `json:"teardown_one_seconds"`
	TeardownThree Stat `json:"teardown_three_seconds"`
	Memory        struct {
		Idle    string `json:"idle"`
		TotalMB Stat   `json:"total_mb"`
		// ControlPlane is the apiserver and the controller manager, run
		// as the Processes named.
		ControlPlane Stat   `json:"control_plane_mb"`
		Processes    string `json:"control_plane_processes"`
		Supervisor   Stat   `json:"supervisor_mb"`
	} `json:"memory"`
	Density *Density `json:"density,omitempty"`
	Sync    *Sync    `json:"sync,omitempty"`
	// SyncLarge is the same rollout with SyncLarge replicas.
	SyncLarge *Sync    `json:"sync_large,omitempty"`
	Rerun     *Rerun   `json:"rerun,omitempty"`
	Inspect   *Inspect `json:"inspect,omitempty"`
	// Failed lists the figures that could not be measured in this run.
	Failed []Failure `json:"failed,omitempty"`
}

// Density is how many idle clusters fit before create-to-ready doubles, over
// the runs.
type Density struct {
	Clusters Stat `json:"clusters"`
	// AddedMB is the memory each idle cluster took from the machine.
	AddedMB Stat         `json:"added_mb"`
	Runs    []DensityRun `json:"runs"`
}

// DensityRun is one run of the density figure.
type DensityRun struct {
	Clusters       int       `json:"clusters"`
	StoppedBecause string    `json:"stopped_because"`
	Limited        bool      `json:"limited"` // it stopped at -density, create time not doubled
	CreateSeconds  []float64 `json:"create_seconds"`
	// AddedMB is the fall of the machine's MemAvailable, from before the
	// first cluster to -idle after the last, per cluster: the memory the
	// clusters hold that the kernel cannot reclaim. The binaries' pages,
	// which the memory figure's RSS counts in every process, are page cache
	// the kernel can drop (and holds once per machine): they are not in it.
	// The clusters are made as the framework makes them, kine and the
	// syncer in this process.
	AddedMB float64 `json:"added_mb"`
}

type env struct {
	cfg  Config
	host *host.Embedded
	src  k8sdist.Source
	n    int // names clusters uniquely
}

func (e *env) logf(format string, args ...any) {
	if e.cfg.Log != nil {
		fmt.Fprintf(e.cfg.Log, format+"\n", args...)
	}
}

// Run measures everything and returns the results.
func Run(ctx context.Context, cfg Config) (res *Results, err error) {
	if cfg.Runs < 1 {
		cfg.Runs = 1
	}
	e := &env{cfg: cfg, src: k8sdist.Source{Log: cfg.Log}}
	res = &Results{Time: time.Now().UTC()}
	res.Machine.Cores, res.Machine.MemoryBytes, res.Machine.Go = runtime.NumCPU(), meminfo("MemTotal"), runtime.Version()

	hostVersion, err := k8sdist.Newest(ctx)
	if err != nil {
		return nil, err
	}
	v, err := k8sdist.Resolve(ctx, cfg.Version)
	if err != nil {
		return nil, err
	}
	res.Versions.Host, res.Versions.Virtual = hostVersion.String(), v.String()
	var matrix []k8sdist.Version
	for _, s := range cfg.MatrixVersions {
		mv, err := k8sdist.Resolve(ctx, s)
		if err != nil {
			return nil, err
		}
		matrix = append(matrix, mv)
		res.Versions.Matrix = append(res.Versions.Matrix, mv.String())
	}
	for _, mv := range append(matrix, v) {
		if _, err := e.src.Kubernetes(ctx, mv); err != nil {
			return nil, err
		}
	}
	// The default 3 simulated nodes, each with room for a third of the
	// largest Deployment if a kubelet's default of 110 pods is too few: the
	// other figures run on the same host, and every virtual cluster mirrors
	// its nodes.
	pods := max(110, (max(cfg.SyncReplicas, cfg.SyncLarge)+2)/3)
	e.logf("starting the embedded host (%s, 3 nodes of %d pods)", hostVersion, pods)
	if e.host, err = host.StartNewest(ctx, e.src, host.EmbeddedConfig{Dir: e.dir("host"), NodePods: pods}); err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, e.host.Stop()) }()

	// Each figure is measured on its own: one that fails (a create on a busy
	// machine, say) is reported with its reason, and the others still are.
	figures := []struct {
		name string
		run  func() error
		on   bool
	}{
		{"floor", func() (err error) { res.Floor, err = e.floor(ctx, v); return err }, true},
		{"create", func() error { return e.createAndTeardown(ctx, v, res) }, true},
		{"matrix", func() error { return e.matrix(ctx, matrix, res) }, len(matrix) > 0},
		{"memory", func() error { return e.memory(ctx, v, res) }, true},
		{"sync", func() (err error) { res.Sync, err = e.sync(ctx, v, cfg.SyncReplicas); return err }, cfg.SyncReplicas > 0},
		{"sync-large", func() (err error) { res.SyncLarge, err = e.sync(ctx, v, cfg.SyncLarge); return err }, cfg.SyncLarge > 0},
		{"rerun", func() (err error) { res.Rerun, err = e.rerun(ctx, cfg.Version); return err }, cfg.Rerun},
		{"density", func() (err error) { res.Density, err = e.density(ctx, v); return err }, cfg.DensityMax > 0},
		{"inspect", func() (err error) { res.Inspect, err = e.inspect(ctx, v, cfg.Inspect); return err }, cfg.Inspect > 0},
	}
	for _, f := range figures {
		if !f.on {
			continue
		}
		if err := f.run(); err != nil {
			if ctx.Err() != nil {
				return res, fmt.Errorf("%s: %w", f.name, err)
			}
			e.logf("%s failed: %v", f.name, err)
			res.Failed = append(res.Failed, Failure{Figure: f.name, Reason: err.Error()})
		}
	}
	return res, nil
}

// Failure is a figure that could not be measured, and why.
type Failure struct {
	Figure string `json:"figure"`
	Reason string `json:"reason"`
}

func (e *env) dir(name string) string { return filepath.Join(e.cfg.Dir, name) }

// floor is a bare kube-apiserver on kine/SQLite to /readyz.
func (e *env) floor(ctx context.Context, v k8sdist.Version) (Stat, error) {
	bins, err := e.src.Kubernetes(ctx, v)
	if err != nil {
		return Stat{}, err
	}
	var runs []float64
	for i := 0; i < e.cfg.Runs; i++ {
		e.n++
		dir := e.dir(fmt.Sprintf("floor-%d", e.n))
		start := time.Now()
		cp, err := controlplane.Start(ctx, controlplane.Config{Name: "floor", Dir: dir, Version: v, Binaries: bins, APIServerOnly: true})
		if err != nil {
			return Stat{}, err
		}
		runs = append(runs, time.Since(start).Seconds())
		if err := errors.Join(cp.Stop(), os.RemoveAll(dir)); err != nil {
			return Stat{}, err
		}
		e.logf("floor: %.2fs", runs[len(runs)-1])
	}
	return newStat("s", runs), nil
}

// start starts one virtual cluster and returns it with its time to ready.
func (e *env) start(ctx context.Context, v k8sdist.Version) (*virtual.Cluster, float64, error) {
	bins, err := e.src.Kubernetes(ctx, v)
	if err != nil {
		return nil, 0, err
	}
	e.n++
	name := fmt.Sprintf("bench-%d", e.n)
	start := time.Now()
	vc, err := virtual.Start(ctx, virtual.Config{Name: name, Dir: e.dir(name), Version: v, Binaries: bins, Host: e.host})
	return vc, time.Since(start).Seconds(), err
}

// teardown stops a cluster and verifies that none of its processes, its port
// or its folder is left.
func teardown(vc *virtual.Cluster, dir string) error {
	pids, port := vc.PIDs(), vc.Port()
	if err := vc.Delete(); err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	for name, pid := range pids {
		if proc.Alive(pid) {
			return fmt.Errorf("%s (pid %d) still runs after teardown", name, pid)
		}
	}
	if proc.PortOpen(port) {
		return fmt.Errorf("port %d still open after teardown", port)
	}
	return nil
}

func (e *env) createAndTeardown(ctx context.Context, v k8sdist.Version, res *Results) error {
	var creates, teardowns []float64
	for i := 0; i < e.cfg.Runs; i++ {
		vc, d, err := e.start(ctx, v)
		if err != nil {
			return fmt.Errorf("create: %w", err)
		}
		creates = append(creates, d)
		start := time.Now()
		if err := teardown(vc, e.dir(vc.Name())); err != nil {
			return fmt.Errorf("teardown: %w", err)
		}
		teardowns = append(teardowns, time.Since(start).Seconds())
		e.logf("create: %.2fs, teardown: %.3fs", d, teardowns[len(teardowns)-1])
	}
	res.Create = newStat("s", creates)
	res.Create.RatioToFloor = ratio(res.Create.Median, res.Floor.Median)
	res.TeardownOne = newStat("s", teardowns)
	return nil
}

// matrix creates the matrix versions in parallel, then tears them down in parallel.
func (e *env) matrix(ctx context.Context, versions []k8sdist.Version, res *Results) error {
	var walls, teardowns []float64
	for i := 0; i < e.cfg.Runs; i++ {
		vcs := make([]*virtual.Cluster, len(versions))
		errs := make([]error, len(versions))
		var wg sync.WaitGroup
		var mu sync.Mutex // e.n
		start := time.Now()
		for j, v := range versions {
			wg.Add(1)
			go func() {
				defer wg.Done()
				mu.Lock()
				e.n++
				name := fmt.Sprintf("bench-%d", e.n)
				mu.Unlock()
				bins, err := e.src.Kubernetes(ctx, v)
				if err == nil {
					vcs[j], err = virtual.Start(ctx, virtual.Config{Name: name, Dir: e.dir(name), Version: v, Binaries: bins, Host: e.host})
				}
				errs[j] = err
			}()
		}
		wg.Wait()
		walls = append(walls, time.Since(start).Seconds())
		start = time.Now()
		for j, vc := range vcs {
			if vc == nil {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[j] = errors.Join(errs[j], teardown(vc, e.dir(vc.Name())))
			}()
		}
		wg.Wait()
		teardowns = append(teardowns, time.Since(start).Seconds())
		if err := errors.Join(errs...); err != nil {
			return fmt.Errorf("matrix: %w", err)
		}
		e.logf("matrix of %d: %.2fs, teardown %.3fs", len(versions), walls[len(walls)-1], teardowns[len(teardowns)-1])
	}
	res.Matrix.Wall = newStat("s", walls)
	res.Matrix.Wall.RatioToFloor = ratio(res.Matrix.Wall.Median, res.Floor.Median)
	res.Matrix.RatioToCreate = ratio(res.Matrix.Wall.Median, res.Create.Median)
	res.TeardownThree = newStat("s", teardowns)
	return nil
}

// memory reads the resident memory of an idle cluster as a user has one:
// made by vmatrix create (on the benchmark's host), every process of it
// summed: kube-apiserver, kube-controller-manager and the supervisor that
// holds its store and syncer.
func (e *env) memory(ctx context.Context, v k8sdist.Version, res *Results) error {
	root := e.dir("memory-state")
	defer os.RemoveAll(root)
	run := func(ctx context.Context, args ...string) error {
		cmd := exec.CommandContext(ctx, e.cfg.VMatrix, append([]string{"--state-dir", root}, args...)...)
		// Stopped as a user's Ctrl-C stops it: it removes what it started.
		cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
		cmd.WaitDelay = time.Minute
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("vmatrix %s: %w\n%s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	vmatrix := func(args ...string) error { return run(ctx, args...) }
	// vmatrixAfter runs even once ctx has ended, to remove what is left.
	vmatrixAfter := func(args ...string) error {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		return run(ctx, args...)
	}
	var total, cp, sup []float64
	for i := 0; i < e.cfg.Runs; i++ {
		name := fmt.Sprintf("memory-%d", i)
		if err := vmatrix("create", name, "--version", v.String(), "--host", e.host.KubeconfigPath()); err != nil {
			// A create cut short leaves what it started: cleanup finds it
			// while the state folder is still there.
			return errors.Join(err, vmatrixAfter("cleanup"))
		}
		select {
		case <-time.After(e.cfg.Idle):
		case <-ctx.Done():
			return errors.Join(ctx.Err(), vmatrixAfter("delete", name))
		}
		rec, err := state.Read(state.Root(root).ClusterDir(name))
		if err != nil {
			return errors.Join(err, vmatrixAfter("delete", name))
		}
		s := rssMB(rec.Supervisor)
		sum, c, gone := s, 0.0, s == 0
		var names []string
		for _, name := range slices.Sorted(maps.Keys(rec.PIDs)) {
			mb := rssMB(rec.PIDs[name])
			sum += mb // a storage server of its own too, if it has one
			gone = gone || mb == 0
			if controlPlaneProcesses[name] {
				c += mb
				names = append(names, name)
			}
		}
		cp, sup, total = append(cp, c), append(sup, s), append(total, sum)
		res.Memory.Processes = strings.Join(names, ", ")
		e.logf("memory: %.0f MB: %s %.0f MB, supervisor %.0f MB", sum, res.Memory.Processes, c, s)
		if err := vmatrixAfter("delete", name); err != nil {
			return err
		}
		if gone || len(names) == 0 {
			return fmt.Errorf("memory: a process of %s was gone before it was measured (%v, supervisor %d)", name, rec.PIDs, rec.Supervisor)
		}
	}
	res.Memory.Idle = e.cfg.Idle.String()
	res.Memory.TotalMB, res.Memory.ControlPlane = newStat("MB", total), newStat("MB", cp)
	res.Memory.Supervisor = newStat("MB", sup)
	return nil
}

// controlPlaneProcesses run a cluster's apiserver and controller manager:
// one process where the version was built here, two where downloaded.
var controlPlaneProcesses = map[string]bool{k8sdist.ControlPlaneProgram: true, "kube-apiserver": true, "kube-controller-manager": true}

// density adds idle clusters one at a time until a create takes twice as long
// as the first, or DensityMax is reached, then tears them all down; Runs
// times.
func (e *env) density(ctx context.Context, v k8sdist.Version) (*Density, error) {
	d := &Density{}
	var counts, added []float64
	for i := 0; i < e.cfg.Runs; i++ {
		run, err := e.densityRun(ctx, v)
		if err != nil {
			return nil, err
		}
		e.logf("density: %d idle clusters (%s), %.0f MB each", run.Clusters, run.StoppedBecause, run.AddedMB)
		d.Runs, counts = append(d.Runs, run), append(counts, float64(run.Clusters))
		if run.Clusters > 0 {
			added = append(added, run.AddedMB)
		}
	}
	d.Clusters = newStat("clusters", counts)
	d.AddedMB = newStat("MB", added)
	return d, nil
}

func (e *env) densityRun(ctx context.Context, v k8sdist.Version) (d DensityRun, err error) {
	d = DensityRun{StoppedBecause: fmt.Sprintf("reached the limit of %d", e.cfg.DensityMax), Limited: true}
	var vcs []*virtual.Cluster
	defer func() {
		for _, vc := range vcs {
			err = errors.Join(err, teardown(vc, e.dir(vc.Name())))
		}
	}()
	available := meminfo("MemAvailable")
	for len(vcs) < e.cfg.DensityMax {
		vc, secs, err := e.start(ctx, v)
		if err != nil {
			d.StoppedBecause, d.Limited = "a create failed: "+err.Error(), false
			break
		}
		vcs = append(vcs, vc)
		d.CreateSeconds = append(d.CreateSeconds, secs)
		e.logf("density: cluster %d ready in %.2fs", len(vcs), secs)
		if secs > 2*d.CreateSeconds[0] {
			d.StoppedBecause, d.Limited = fmt.Sprintf("create-to-ready doubled (%.2fs against %.2fs)", secs, d.CreateSeconds[0]), false
			break
		}
	}
	d.Clusters = len(vcs)
	if d.Clusters > 0 {
		select {
		case <-ctx.Done():
			return d, ctx.Err()
		case <-time.After(e.cfg.Idle):
		}
		d.AddedMB = (float64(available) - float64(meminfo("MemAvailable"))) / float64(d.Clusters) / (1 << 20)
	}
	return d, nil
}

// rssMB reads a process's resident set size.
func rssMB(pid int) float64 {
	return float64(procBytes(fmt.Sprintf("/proc/%d/status", pid), "VmRSS")) / (1 << 20)
}

// meminfo reads a field of /proc/meminfo in bytes.
func meminfo(field string) uint64 { return procBytes("/proc/meminfo", field) }

// procBytes reads a "Field: N kB" line of a /proc file in bytes; 0 if the
// file or the field is missing.
func procBytes(path, field string) uint64 {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == field+":" {
			kb, _ := strconv.ParseUint(f[1], 10, 64)
			return kb * 1024
		}
	}
	return 0
}
