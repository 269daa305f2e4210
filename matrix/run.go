package matrix

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/vmatrix/vmatrix/internal/controlplane"
	"github.com/vmatrix/vmatrix/internal/deprecated"
	"github.com/vmatrix/vmatrix/internal/k8sdist"
	"github.com/vmatrix/vmatrix/internal/proc"
)

// Version is a Kubernetes release (the same type as framework.Version), so
// that a program of its own can implement Clusters.
type Version = k8sdist.Version

// Cluster is a virtual cluster the runner runs a command against.
type Cluster struct {
	Name       string
	Version    Version
	Kubeconfig string
}

// Clusters provides one cluster per version and takes it back afterwards.
type Clusters interface {
	Acquire(ctx context.Context, v Version) (Cluster, error)
	Release(ctx context.Context, c Cluster) error
}

// Attacher is Clusters that may hand out a running cluster instead of
// making one (`vmatrix run` uses those of `vmatrix up`): the runner then says
// so rather than "creating".
type Attacher interface {
	Running(v Version) (name string, ok bool)
}

// acquiring says what Acquire is about to do for v.
func acquiring(clusters Clusters, v Version) string {
	if a, ok := clusters.(Attacher); ok {
		if name, ok := a.Running(v); ok {
			return "using the running cluster " + name
		}
	}
	return "creating"
}

// Upgrader is what Clusters also does for a run along an upgrade path:
// upgrade a cluster it provided, in place, to the next version.
type Upgrader interface {
	Upgrade(ctx context.Context, c Cluster, v Version) (Cluster, error)
}

// DeprecatedAPI is a deprecated API the command called.
type DeprecatedAPI = deprecated.API

// Exporter is Clusters that can write what a cluster holds (component
// logs, object dumps, container logs) into a folder, for a failed version.
type Exporter interface {
	Export(ctx context.Context, c Cluster, dir string) error
}

// RunOptions says what to run and how.
type RunOptions struct {
	Versions []Version
	// Command runs once per version, with KUBECONFIG, VMATRIX_KUBERNETES_VERSION
	// and VMATRIX_CLUSTER set. `go test` gets -json added, so each Go test is
	// reported; its output is still shown as go test prints it.
	Command []string
	// Parallel bounds how many versions are created and run at once (default: all).
	Parallel int
	// FailFast stops the other versions when one fails.
	FailFast bool
	// Retries reruns a failed version up to this many times.
	Retries int
	// Timeout bounds each run of the command (0: none).
	Timeout time.Duration
	// LogDir receives one log per version (the command's output).
	LogDir string
	// Out receives progress lines and the command's output, each line prefixed
	// with its version.
	Out io.Writer
	// JUnit names a JUnit XML file the command writes, read for its tests
	// when nothing else reports them; $VMATRIX_KUBERNETES_VERSION in it is
	// the version's (versions run at once: one file each).
	JUnit string
	// ExportDir receives, for each version that failed, what `vmatrix
	// export logs` writes (in a folder named after the version), when the
	// Clusters can export.
	ExportDir string
	// Status, if set, hears where each version stands instead of Out: a
	// phase ("creating", "running (attempt 1)", "passed in 3s"...), and
	// once the version is over, its outcome (StatusPassed...; "" before).
	Status func(version, phase, outcome string)
	// NoEnvtest leaves out USE_EXISTING_CLUSTER=true, which otherwise makes a
	// controller-runtime envtest suite use the run's cluster instead of
	// starting a bare apiserver of its own.
	NoEnvtest bool
	// Upgrade runs the versions as one upgrade path instead of side by
	// side: one cluster at the first version runs the command, is upgraded
	// in place to the next version, runs it again, and so on.
	Upgrade bool
	// FailOnDeprecated fails a version whose run called a deprecated API.
	FailOnDeprecated bool
}

// Run runs the matrix. The error is about the run itself (a cluster that could
// not be made is a failed version, not an error); Report.Passed says whether
// every version passed.
func Run(ctx context.Context, clusters Clusters, opts RunOptions) (*Report, error) {
	if len(opts.Versions) == 0 || len(opts.Command) == 0 {
		return nil, errors.New("nothing to run: no versions or no command")
	}
	if opts.LogDir == "" {
		return nil, errors.New("no log directory")
	}
	if err := os.MkdirAll(opts.LogDir, 0o755); err != nil {
		return nil, err
	}
	out := &lockedWriter{w: opts.Out}
	if opts.Out == nil {
		out.w = io.Discard
	}
	report := &Report{Started: time.Now(), Command: strings.Join(opts.Command, " ")}
	report.Versions = make([]*VersionResult, len(opts.Versions))

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	if opts.Upgrade {
		for i, v := range opts.Versions {
			report.Versions[i] = &VersionResult{Version: v.String(), LogPath: filepath.Join(opts.LogDir, v.String()+".log")}
		}
		if err := CheckUpgradePath(opts.Versions); err != nil {
			return nil, err
		}
		runUpgradePath(runCtx, clusters, opts, report.Versions, out)
		return report.finish(), nil
	}
	g := new(errgroup.Group)
	if opts.Parallel > 0 {
		g.SetLimit(opts.Parallel)
	}
	for i, v := range opts.Versions {
		res := &VersionResult{Version: v.String(), LogPath: filepath.Join(opts.LogDir, v.String()+".log")}
		report.Versions[i] = res
		g.Go(func() error {
			runVersion(runCtx, clusters, v, opts, res, out)
			if !res.Passed && opts.FailFast {
				stop()
			}
			return nil
		})
	}
	_ = g.Wait()
	return report.finish(), nil
}

// finish totals a report whose versions have all run.
func (r *Report) finish() *Report {
	r.Duration = time.Since(r.Started)
	r.Passed = true
	for _, v := range r.Versions {
		r.Passed = r.Passed && v.Passed
	}
	return r
}

// CheckUpgradePath says whether versions, in order, can be one cluster's
// in-place upgrades, one minor at a time.
func CheckUpgradePath(versions []Version) error {
	for i := 1; i < len(versions); i++ {
		if err := k8sdist.CheckUpgrade(versions[i-1], versions[i]); err != nil {
			return fmt.Errorf("upgrade path: %w", err)
		}
	}
	return nil
}

// runUpgradePath runs the command on one cluster along the versions,
// upgrading it in place between runs. A failed upgrade ends the path.
func runUpgradePath(ctx context.Context, clusters Clusters, opts RunOptions, results []*VersionResult, out io.Writer) {
	first := opts.Versions[0]
	sayFor := func(v Version) func(string, ...any) {
		return func(format string, args ...any) { fmt.Fprintf(out, "[%s] %s\n", v, fmt.Sprintf(format, args...)) }
	}
	cancelRest := func(from int, why string) {
		for _, r := range results[from:] {
			r.Status, r.Error = StatusCancelled, why
		}
	}
	upgrader, ok := clusters.(Upgrader)
	if !ok {
		results[0].Status, results[0].Error = StatusFailed, "these clusters cannot be upgraded in place"
		cancelRest(1, "no upgrade path")
		return
	}
	start := time.Now()
	sayFor(first)("%s", acquiring(clusters, first))
	cluster, err := clusters.Acquire(ctx, first)
	if err != nil {
		results[0].Status, results[0].Error, results[0].Duration = StatusFailed, "creating the cluster: "+err.Error(), time.Since(start)
		cancelRest(1, "the first cluster was not created")
		return
	}
	defer func() {
		if err := clusters.Release(context.WithoutCancel(ctx), cluster); err != nil {
			last := results[len(results)-1]
			last.Passed, last.Status, last.Error = false, StatusFailed, "teardown: "+err.Error()
		}
	}()
	for i, v := range opts.Versions {
		res, say := results[i], sayFor(v)
		if i > 0 {
			start = time.Now()
			res.UpgradedFrom = opts.Versions[i-1].String()
			if ctx.Err() != nil {
				cancelRest(i, "cancelled before it started")
				return
			}
			say("upgrading from %s", res.UpgradedFrom)
			if cluster, err = upgrader.Upgrade(ctx, cluster, v); err != nil {
				res.Status, res.Error, res.Duration = StatusFailed, "upgrading the cluster: "+err.Error(), time.Since(start)
				say("failed: %s", res.Error)
				cancelRest(i+1, "the upgrade before it failed")
				return
			}
		}
		res.Cluster = cluster.Name
		runAttempts(ctx, cluster, opts, res, say, start, out)
		export(ctx, clusters, cluster, opts, res, say)
		res.Duration = time.Since(start)
		if !res.Passed && opts.FailFast {
			cancelRest(i+1, "cancelled: an earlier step failed (--fail-fast)")
			return
		}
	}
}

func runVersion(ctx context.Context, clusters Clusters, v Version, opts RunOptions, res *VersionResult, out io.Writer) {
	start := time.Now()
	defer func() { res.Duration = time.Since(start) }()
	last := ""
	say := func(format string, args ...any) {
		last = fmt.Sprintf(format, args...)
		if opts.Status != nil {
			opts.Status(v.String(), last, "")
			return
		}
		fmt.Fprintf(out, "[%s] %s\n", v, last)
	}
	if opts.Status != nil {
		// Once torn down (deferred calls run last to first).
		defer func() { opts.Status(v.String(), last, res.Status) }()
	}
	if ctx.Err() != nil {
		res.Status, res.Error = StatusCancelled, "cancelled before it started"
		say("cancelled")
		return
	}
	say("%s", acquiring(clusters, v))
	cluster, err := clusters.Acquire(ctx, v)
	if err != nil {
		res.Status, res.Error = StatusFailed, "creating the cluster: "+err.Error()
		if ctx.Err() != nil {
			// Stopped by another version's failure (--fail-fast) or a signal.
			res.Status = StatusCancelled
			say("cancelled")
			return
		}
		say("failed: %s", res.Error)
		return
	}
	res.Cluster = cluster.Name
	defer func() {
		if opts.Status != nil {
			opts.Status(v.String(), last+", tearing down", "")
		}
		// Released even when the run was cancelled: teardown must not be skipped.
		if err := clusters.Release(context.WithoutCancel(ctx), cluster); err != nil {
			say("teardown failed: %v", err)
			res.Passed, res.Status, res.Error = false, StatusFailed, "teardown: "+err.Error()
		}
	}()
	runAttempts(ctx, cluster, opts, res, say, start, out)
	export(ctx, clusters, cluster, opts, res, say)
}

// runAttempts runs the command against cluster, again on failure as
// opts.Retries allows, and records the deprecated APIs it called.
func runAttempts(ctx context.Context, cluster Cluster, opts RunOptions, res *VersionResult, say func(string, ...any), start time.Time, out io.Writer) {
	defer func() {
		apis, err := deprecated.FromAuditLog(controlplane.AuditLogPath(filepath.Dir(cluster.Kubeconfig)), start)
		if err != nil {
			say("reading the deprecated APIs called: %v", err)
		}
		res.DeprecatedAPIs = apis
		for _, a := range apis {
			say("called deprecated API %s, by %s", a, strings.Join(a.Clients, ", "))
		}
		if opts.FailOnDeprecated && len(apis) > 0 && res.Passed {
			res.Passed, res.Status, res.Error = false, StatusFailed, fmt.Sprintf("called %d deprecated API(s) (--fail-on-deprecated)", len(apis))
			say("failed: %s", res.Error)
		}
	}()
	for attempt := 1; attempt <= 1+opts.Retries; attempt++ {
		res.Attempts = attempt
		say("running (attempt %d)", attempt)
		tests, err := runCommand(ctx, cluster, opts, res.LogPath, attempt, out)
		res.Tests = tests
		if err == nil {
			res.Passed, res.Status, res.Error = true, StatusPassed, ""
			say("passed in %s", time.Since(start).Round(time.Millisecond))
			return
		}
		res.Status, res.Error = StatusFailed, err.Error()
		if ctx.Err() != nil {
			res.Status = StatusCancelled
			say("cancelled")
			return
		}
		say("failed: %v", err)
	}
}

// export writes what a failed version's cluster holds into opts.ExportDir,
// when the Clusters can.
func export(ctx context.Context, clusters Clusters, cluster Cluster, opts RunOptions, res *VersionResult, say func(string, ...any)) {
	exp, ok := clusters.(Exporter)
	if !ok || opts.ExportDir == "" || res.Status != StatusFailed {
		return
	}
	dir := filepath.Join(opts.ExportDir, res.Version)
	if err := exp.Export(ctx, cluster, dir); err != nil {
		say("export of the cluster failed: %v", err)
		return
	}
	res.Export = dir
	say("cluster's logs and objects in %s", dir)
}

// runCommand runs the command once against cluster; its output goes to the
// version's log and, prefixed, to out.
func runCommand(ctx context.Context, cluster Cluster, opts RunOptions, logPath string, attempt int, out io.Writer) ([]TestResult, error) {
	if opts.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, opts.Timeout)
		defer cancel()
	}
	tmp, err := os.MkdirTemp("", "vmatrix-report-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	env := []string{
		"KUBECONFIG=" + cluster.Kubeconfig,
		"VMATRIX_KUBERNETES_VERSION=" + cluster.Version.String(),
		"VMATRIX_CLUSTER=" + cluster.Name,
		GinkgoReportDirEnv + "=" + tmp,
	}
	junit := ""
	if opts.JUnit != "" {
		// Versions run at once: a file per version is named after it.
		junit = os.Expand(opts.JUnit, func(name string) string {
			for _, e := range env {
				if v, ok := strings.CutPrefix(e, name+"="); ok {
					return v
				}
			}
			return os.Getenv(name)
		})
	}
	args, source := prepare(opts.Command, junit, tmp)
	// A JUnit file counts if written after this: by the file's own time
	// before the run, not the clock's, which runs ahead of the coarse time
	// the kernel stamps files with (a file written within milliseconds of
	// the start would look older than it).
	var junitSince time.Time
	if fi, err := os.Stat(source.junit); source.junit != "" && err == nil {
		junitSince = fi.ModTime()
	}
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	fmt.Fprintf(logFile, "# attempt %d: %s\n", attempt, strings.Join(opts.Command, " "))

	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Env = append(os.Environ(), env...)
	if !opts.NoEnvtest {
		cmd.Env = append(cmd.Env, "USE_EXISTING_CLUSTER=true")
	}
	// Its own process group, so a cancelled run stops the command's children
	// too (go test's test binaries); and it dies with a run that is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	cmd.Stdout, cmd.Stderr = w, w
	waited, err := proc.Started(cmd)
	w.Close() // the command holds its own copy: EOF comes when it (and its children) exit
	if err != nil {
		return nil, fmt.Errorf("starting %s: %w", args[0], err)
	}
	var tests *goTestEvents
	if source.goTest {
		tests = newGoTestEvents()
	}
	prefix := "[" + cluster.Version.String() + "] "
	read := make(chan struct{})
	go func() {
		defer close(read)
		scanner := bufio.NewScanner(r)
		scanner.Buffer(make([]byte, 1024*1024), 16*1024*1024)
		for scanner.Scan() {
			line := scanner.Text()
			if tests != nil {
				text, ok := tests.add(line)
				if !ok {
					continue
				}
				line = strings.TrimSuffix(text, "\n")
			}
			fmt.Fprintln(logFile, line)
			fmt.Fprintln(out, prefix+line)
		}
	}()
	err = <-waited
	// A background process the command left behind may hold the pipe open.
	select {
	case <-read:
	case <-time.After(cmd.WaitDelay):
		r.Close()
		<-read
	}
	var results []TestResult
	if tests != nil {
		results = tests.results()
	}
	results = source.results(results, junitSince)
	if ctx.Err() == context.DeadlineExceeded {
		return results, fmt.Errorf("timed out after %s", opts.Timeout)
	}
	if err != nil {
		return results, fmt.Errorf("%s: %w", args[0], err)
	}
	return results, nil
}

// withGoTestJSON adds -json to a `go test` command.
func withGoTestJSON(command []string) ([]string, bool) {
	if len(command) < 2 || filepath.Base(command[0]) != "go" || command[1] != "test" {
		return command, false
	}
	for _, a := range command[2:] {
		if a == "-json" || a == "--json" {
			return command, true
		}
	}
	return append([]string{command[0], "test", "-json"}, command[2:]...), true
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
