package framework

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/vmatrix/vmatrix/internal/host"
	"github.com/vmatrix/vmatrix/internal/k8sdist"
	"github.com/vmatrix/vmatrix/internal/proc"
	"github.com/vmatrix/vmatrix/internal/state"
	"github.com/vmatrix/vmatrix/internal/virtual"
	"github.com/vmatrix/vmatrix/syncer"
)

// Environment is a host cluster and the virtual clusters it owns. Its methods
// are safe for concurrent use.
type Environment struct {
	opts options
	// root holds one folder per cluster ("clusters/NAME") and the embedded
	// host's ("host").
	root    string
	ownRoot bool // root is a temporary directory of ours, removed by Destroy
	source  k8sdist.Source

	// ctx ends when Destroy starts, so that creates still running give up.
	ctx    context.Context
	cancel context.CancelFunc
	// creating counts creates in flight; Destroy waits for them.
	creating sync.WaitGroup

	// hostMu serialises starting the host, which takes seconds; mu guards
	// the fields below and is never held for long.
	hostMu    sync.Mutex
	mu        sync.Mutex
	host      host.Host
	hostDir   string // set for an embedded host
	hostPIDs  map[string]int
	hostPort  int
	clusters  map[string]*VirtualCluster
	webhooks  *WebhookServer
	destroyed bool
	// destroyOnce makes the first Destroy do the work; later calls wait for
	// it and return its result.
	destroyOnce sync.Once
	destroyErr  error
}

// New returns an Environment. Nothing starts yet: the host comes up with the
// first virtual cluster that needs it. Call Destroy (or Finish) when done.
func New(opts ...Option) (*Environment, error) {
	if err := proc.Supported(); err != nil {
		return nil, err
	}
	o := defaultOptions()
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	env := &Environment{opts: o, clusters: map[string]*VirtualCluster{}, source: k8sdist.Source{Log: o.log}}
	if o.stateDir != "" {
		abs, err := filepath.Abs(o.stateDir)
		if err != nil {
			return nil, err
		}
		if err := os.MkdirAll(abs, 0o700); err != nil {
			return nil, fmt.Errorf("state dir: %w", err)
		}
		env.root = abs
	} else {
		dir, err := os.MkdirTemp("", state.TestRootPattern)
		if err != nil {
			return nil, fmt.Errorf("creating the state dir: %w", err)
		}
		env.root, env.ownRoot = dir, true
		// A test process killed before its teardown leaves this folder;
		// `vmatrix cleanup` finds it by its owner.
		if err := state.MarkOwner(dir); err != nil {
			return nil, err
		}
	}
	env.ctx, env.cancel = context.WithCancel(context.Background())
	if o.signals {
		register(env)
	}
	return env, nil
}

// hostKubeconfigPath is the host cluster's kubeconfig, "" before the host is
// up.
func (e *Environment) hostKubeconfigPath() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.host == nil {
		return ""
	}
	return e.host.KubeconfigPath()
}

// Clusters lists the Environment's virtual clusters by name.
func (e *Environment) Clusters() []*VirtualCluster {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []*VirtualCluster
	for _, vc := range e.clusters {
		if vc.ready() {
			out = append(out, vc)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

func (e *Environment) logf(format string, args ...any) {
	fmt.Fprintf(e.opts.log, "vmatrix: "+format+"\n", args...)
}

// Version is a Kubernetes release, as VirtualCluster.Version gives it:
// String() is "v1.36.3", MinorString() "1.36", SemVer() "1.36.3", and Less
// orders releases.
type Version = k8sdist.Version

// StepError is the error of a failed create: which cluster, which version and
// which of its steps (attach, reuse, resolve, binaries, host, start) failed.
type StepError struct {
	Name, Version, Step string
	Err                 error
}

// Error names the cluster, the version and the step.
func (e *StepError) Error() string {
	return fmt.Sprintf("virtual cluster %s (Kubernetes %s): %s: %v", e.Name, e.Version, e.Step, e.Err)
}

// Unwrap returns the step's error.
func (e *StepError) Unwrap() error { return e.Err }

// Create starts one virtual cluster of version ("1.36", "1.36.3" or
// "v1.36.3") and returns once it is ready. On failure nothing of it is left.
func (e *Environment) Create(ctx context.Context, version string, opts ...CreateOption) (*VirtualCluster, error) {
	co := createOptions{name: virtual.DefaultName(version)}
	for _, opt := range opts {
		opt(&co)
	}
	if err := co.flags.Validate(); err != nil {
		return nil, fmt.Errorf("virtual cluster %s: %w", co.name, err)
	}
	vc, err := e.reserve(co.name, version)
	if err != nil {
		return nil, err
	}
	defer e.creating.Done()

	// The create gives up when the caller's context or the Environment ends.
	ctx, cancel := context.WithTimeout(ctx, e.opts.createTimeout)
	defer cancel()
	stop := context.AfterFunc(e.ctx, cancel)
	defer stop()

	c := &creation{e: e, vc: vc, co: co, version: version, start: time.Now()}
	for _, step := range createSteps {
		done, err := step.run(c, ctx)
		if err != nil {
			serr := &StepError{Name: co.name, Version: version, Step: step.name, Err: err}
			// Whatever the failed create left goes now; a failure of that
			// is part of the error too.
			if derr := e.destroyCluster(vc); derr != nil {
				return nil, errors.Join(serr, derr)
			}
			return nil, serr
		}
		if done {
			vc.setReady()
			return vc, nil
		}
	}
	return nil, fmt.Errorf("virtual cluster %s: the create ended without its last step", co.name) // cannot happen: start ends it
}

// createStep is one named action of Create, as kind's list of actions: a
// failure is reported with the step's name (StepError).
type createStep struct {
	name string
	// run does the step; done ends the create there, the cluster ready.
	run func(c *creation, ctx context.Context) (done bool, err error)
}

// createSteps are Create's steps, in order.
var createSteps = []createStep{
	{"attach", (*creation).attachRun},
	{"reuse", (*creation).reuse},
	{"resolve", (*creation).resolve},
	{"binaries", (*creation).binaries},
	{"host", (*creation).host},
	{"start", (*creation).startControlPlane},
}

// creation is what the steps of one Create share.
type creation struct {
	e       *Environment
	vc      *VirtualCluster
	co      createOptions
	version string // as asked for
	start   time.Time
	v       k8sdist.Version
	bins    k8sdist.Binaries
	h       host.Host
}

// attachRun uses the cluster `vmatrix run` gave this process, with
// WithRunClusters and when asked for its version.
func (c *creation) attachRun(ctx context.Context) (bool, error) {
	if !c.e.opts.runClusters || !matchesRun(c.version) {
		return false, nil
	}
	name, kubeconfig, v, _ := runCluster()
	// The run's clusters keep their kubeconfig in their state folder.
	c.vc.dir, c.vc.version, c.vc.attached = filepath.Dir(kubeconfig), v, true
	if err := c.vc.connect(kubeconfig); err != nil {
		return false, err
	}
	c.e.logf("%s (%s): using the cluster %s of vmatrix run", c.vc.name, c.vc.version, name)
	return true, nil
}

// reuse attaches to a cluster an earlier run left, with WithReuse.
func (c *creation) reuse(ctx context.Context) (bool, error) {
	if !c.e.opts.reuse {
		return false, nil
	}
	ok, err := c.e.attach(ctx, c.vc)
	if ok && err == nil {
		c.e.logf("%s (%s): reusing the running cluster of %s", c.vc.name, c.vc.version, c.vc.dir)
	}
	return ok, err
}

func (c *creation) resolve(ctx context.Context) (bool, error) {
	var err error
	c.v, err = k8sdist.Resolve(ctx, c.version)
	c.vc.version = c.v
	return false, err
}

func (c *creation) binaries(ctx context.Context) (bool, error) {
	var err error
	c.bins, err = c.e.source.Kubernetes(ctx, c.v)
	return false, err
}

func (c *creation) host(ctx context.Context) (bool, error) {
	var err error
	if c.h, err = c.e.ensureHost(ctx); err != nil {
		return false, err
	}
	return false, hostNamespaceFree(ctx, c.h, c.vc.name)
}

func (c *creation) startControlPlane(ctx context.Context) (bool, error) {
	e, vc := c.e, c.vc
	if err := os.MkdirAll(vc.dir, 0o700); err != nil {
		return false, err
	}
	inner, err := startCluster(ctx, virtual.Config{
		Name: vc.name, Dir: vc.dir, Version: c.v, Binaries: c.bins, Host: c.h, Backend: e.opts.storage, Flags: e.opts.flagsFor(c.v).Merge(c.co.flags),
		Syncer: func(o *syncer.Options) {
			o.AllowPrivileged, o.TokenSecrets, o.Sync = e.opts.syncer.AllowPrivileged, e.opts.syncer.TokenSecrets, e.opts.syncer.Sync
			if e.opts.syncer.Resync > 0 {
				o.Resync = e.opts.syncer.Resync
			}
		},
	})
	if err != nil {
		return false, err
	}
	// A Destroy that gave up waiting for this create has torn the cluster
	// down already, before it ran: what started since must not outlive it.
	vc.mu.Lock()
	torn := vc.destroyed
	if !torn {
		vc.inner = inner
	}
	vc.mu.Unlock()
	if torn {
		return false, errors.Join(errors.New("the environment was destroyed while the cluster was being created"), inner.Delete())
	}
	if err := vc.connect(inner.KubeconfigPath()); err != nil {
		return false, err
	}
	e.logf("%s (%s) ready in %s", vc.name, c.v, time.Since(c.start).Round(10*time.Millisecond))
	return true, nil
}

// startCluster is virtual.Start, held in a variable so that a test can make
// a start outlast a Destroy that gave up waiting for it.
var startCluster = virtual.Start

// reserve claims a name for a cluster being created, so that Destroy knows of
// it from the first moment (a create cut short still has a folder to remove).
func (e *Environment) reserve(name, version string) (*VirtualCluster, error) {
	if err := syncer.ValidateName(name); err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.destroyed {
		return nil, fmt.Errorf("virtual cluster %s: the environment is destroyed", name)
	}
	if _, ok := e.clusters[name]; ok {
		return nil, fmt.Errorf("virtual cluster %s: the name is taken in this environment", name)
	}
	vc := &VirtualCluster{env: e, name: name, requested: version, dir: state.Root(e.root).ClusterDir(name)}
	e.clusters[name] = vc
	e.creating.Add(1)
	return vc, nil
}

// CreateMany starts one virtual cluster per version concurrently (at most
// one per CPU this process may use at a time: a control plane's start-up is
// CPU-bound), named after their version ("v1-36" for "1.36"), and returns
// them in the order of versions. If one fails, the others are cancelled and
// destroyed, and the error names the version and the step of every failure.
func (e *Environment) CreateMany(ctx context.Context, versions ...string) ([]*VirtualCluster, error) {
	seen := map[string]bool{}
	for _, v := range versions {
		if seen[virtual.DefaultName(v)] {
			return nil, fmt.Errorf("CreateMany: version %s given twice", v)
		}
		seen[virtual.DefaultName(v)] = true
	}
	out := make([]*VirtualCluster, len(versions))
	errs := make([]error, len(versions))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(e.opts.concurrency)
	start := time.Now()
	for i, v := range versions {
		g.Go(func() error {
			vc, err := e.Create(gctx, v)
			out[i], errs[i] = vc, err
			return err
		})
	}
	if g.Wait() != nil {
		// Only the failures that caused the cancellation are news; the
		// cancelled ones would repeat "context canceled".
		var report []error
		for _, err := range errs {
			if err != nil && (!errors.Is(err, context.Canceled) || ctx.Err() != nil) {
				report = append(report, err)
			}
		}
		for _, vc := range out {
			if vc != nil {
				report = append(report, vc.Destroy(context.Background()))
			}
		}
		return nil, errors.Join(report...)
	}
	e.logf("%d virtual clusters ready in %s", len(versions), time.Since(start).Round(10*time.Millisecond))
	return out, nil
}

// ensureHost starts or connects the host once; concurrent creates wait for it.
func (e *Environment) ensureHost(ctx context.Context) (host.Host, error) {
	e.hostMu.Lock()
	defer e.hostMu.Unlock()
	e.mu.Lock()
	h, destroyed := e.host, e.destroyed
	e.mu.Unlock()
	if h != nil {
		return h, nil
	}
	if destroyed {
		return nil, errors.New("the environment is destroyed")
	}
	if e.opts.hostKubeconfig != "" {
		h, err := host.Connect(ctx, e.opts.hostKubeconfig, e.opts.hostContext)
		if err != nil {
			return nil, err
		}
		e.mu.Lock()
		e.host = h
		e.mu.Unlock()
		return h, nil
	}
	start := time.Now()
	dir := state.Root(e.root).HostDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	e.mu.Lock()
	e.hostDir = dir
	e.mu.Unlock()
	emb, err := host.StartNewest(ctx, e.source, host.EmbeddedConfig{Dir: dir, Nodes: e.opts.nodes})
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	e.host, e.hostPIDs, e.hostPort = emb, emb.PIDs(), emb.ControlPlane().Port()
	e.mu.Unlock()
	e.logf("embedded host (%s) ready in %s", emb.ControlPlane().Version(), time.Since(start).Round(10*time.Millisecond))
	return emb, nil
}
