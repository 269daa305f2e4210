package framework

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/vmatrix/vmatrix/internal/controlplane"
	"github.com/vmatrix/vmatrix/internal/k8sdist"
	"github.com/vmatrix/vmatrix/internal/storage"
	"github.com/vmatrix/vmatrix/syncer"
)

// Option configures an Environment. Options are applied in the order given;
// a later one overrides an earlier one.
type Option func(*options) error

// SyncerOptions tunes the syncer that carries a virtual cluster's workloads to
// the host. The zero value is the default.
type SyncerOptions struct {
	// AllowPrivileged lets pods that are privileged or use hostPath,
	// hostNetwork, hostPID or hostIPC through to the host.
	AllowPrivileged bool
	// TokenSecrets keeps each pod's virtual service account tokens in a host
	// Secret of its own rather than in an annotation of its host pod (the
	// default, as in vCluster): one host write more per pod, and the tokens
	// are no longer readable by whoever may read the host namespace's pods.
	TokenSecrets bool
	// Resync is how often every synced object is compared again without a
	// change (default 10 minutes).
	Resync time.Duration
	// Sync names optional kinds to sync to the host as well: "ingresses"
	// (for the host's ingress controller; status comes back) and
	// "networkpolicies" (for the host's network plugin).
	Sync []string
}

type options struct {
	hostKubeconfig string
	hostContext    string
	nodes          int
	storage        storage.Backend
	syncer         SyncerOptions
	createTimeout  time.Duration
	destroyTimeout time.Duration
	stateDir       string
	artifactsDir   string
	keepOnFailure  bool
	keepFor        time.Duration
	concurrency    int
	reuse          bool
	runClusters    bool
	reuseRoot      string
	signals        bool
	log            io.Writer
	perVersion     []versionOptions
}

func defaultOptions() options {
	return options{
		createTimeout:  5 * time.Minute,
		destroyTimeout: time.Minute,
		artifactsDir:   os.Getenv("VMATRIX_ARTIFACTS_DIR"),
		concurrency:    runtime.GOMAXPROCS(0), // the CPUs this process may use, a container's CPU limit included
		reuse:          os.Getenv("VMATRIX_REUSE") == "1" || os.Getenv("VMATRIX_REUSE") == "true",
		signals:        true,
		log:            os.Stderr,
	}
}

// WithHostKubeconfig runs the virtual clusters on an existing cluster (kind,
// k3d, a shared CI cluster). context "" selects the kubeconfig's current one.
// Without it the Environment starts an embedded host with its first cluster
// and stops it in Destroy: a local control plane of the newest version whose
// simulated nodes (KWOK) run pods without a container runtime.
func WithHostKubeconfig(path, context string) Option {
	return func(o *options) error {
		if path == "" {
			return fmt.Errorf("WithHostKubeconfig: empty path")
		}
		o.hostKubeconfig, o.hostContext = path, context
		return nil
	}
}

// WithNodes sets the number of simulated nodes of the embedded host (default 3).
func WithNodes(n int) Option {
	return func(o *options) error {
		if n < 1 {
			return fmt.Errorf("WithNodes(%d): want at least one node", n)
		}
		o.nodes = n
		return nil
	}
}

// WithStorage selects the storage backend of the virtual clusters, by the
// names the CLI's --storage takes, and how to reach its server:
//   - "sqlite", the default: kine on an SQLite file per cluster, nothing to
//     install and a fresh store in about a second (dsn "");
//   - "postgres": kine on a PostgreSQL server (dsn a URL);
//   - "mysql": kine on a MySQL or MariaDB server (dsn a DSN);
//   - "etcd": etcd at the endpoints dsn names (one key prefix per cluster),
//     or one vmatrix starts per cluster (dsn "").
//
// vmatrix creates a database per cluster unless the DSN names one, and drops
// what it created.
func WithStorage(backend, dsn string) Option {
	return func(o *options) error {
		b, err := storage.ParseBackend(backend, dsn)
		if err != nil {
			return fmt.Errorf("WithStorage: %w", err)
		}
		o.storage = b
		return nil
	}
}

// WithSyncer sets the syncer options of every virtual cluster.
func WithSyncer(s SyncerOptions) Option {
	return func(o *options) error {
		for _, kind := range s.Sync {
			if !slices.Contains(syncer.OptionalKinds(), kind) {
				return fmt.Errorf("WithSyncer: cannot sync %q: the optional kinds are %s", kind, strings.Join(syncer.OptionalKinds(), ", "))
			}
		}
		o.syncer = s
		return nil
	}
}

// WithTimeouts bounds the creation of one virtual cluster (default 5m,
// binaries already cached) and the teardown of one cluster (default 1m).
// Zero keeps a default.
func WithTimeouts(create, destroy time.Duration) Option {
	return func(o *options) error {
		if create > 0 {
			o.createTimeout = create
		}
		if destroy > 0 {
			o.destroyTimeout = destroy
		}
		return nil
	}
}

// WithStateDir puts the clusters' folders (PKI, data, kubeconfig, component
// logs) under dir instead of a new temporary directory. Destroy removes the
// folders it created there, never dir itself.
func WithStateDir(dir string) Option {
	return func(o *options) error {
		o.stateDir = dir
		return nil
	}
}

// WithArtifactsDir sets where Finish writes logs and object dumps of a failed
// run (default $VMATRIX_ARTIFACTS_DIR, else a new temporary directory).
func WithArtifactsDir(dir string) Option {
	return func(o *options) error {
		o.artifactsDir = dir
		return nil
	}
}

// WithKeepOnFailure makes Finish of a failed run keep the clusters up for d
// (0: until the process gets SIGINT or SIGTERM) and print a kubectl command
// for each, before tearing them down. The clusters' processes die with the
// test process, so this is the window to inspect them.
func WithKeepOnFailure(d time.Duration) Option {
	return func(o *options) error {
		o.keepOnFailure, o.keepFor = true, d
		return nil
	}
}

// WithReuse makes the Environment attach to clusters left running by the
// vmatrix CLI in the state directory root ("" for the CLI's default) when
// their name and version match, instead of creating them; VMATRIX_REUSE=1
// turns it on too. Attached clusters are reset (the namespaces of earlier
// test runs deleted, nothing else touched) and left running by Destroy.
func WithReuse(root string) Option {
	return func(o *options) error {
		o.reuse, o.reuseRoot = true, root
		return nil
	}
}

// WithRunClusters makes Create, under `vmatrix run`, use the cluster the
// run gave this process when asked for its version, instead of starting
// one (VirtualCluster.Attached then says so). The adapters (vmatrixtest,
// vmatrixginkgo, the e2e-framework provider) set it; without it Create
// always creates.
func WithRunClusters() Option {
	return func(o *options) error {
		o.runClusters = true
		return nil
	}
}

// WithSignalHandling turns off (or on) the teardown on SIGINT and SIGTERM.
// It is on by default; turn it off when a test runner handles interrupts
// itself and calls Destroy (Ginkgo does).
func WithSignalHandling(on bool) Option {
	return func(o *options) error {
		o.signals = on
		return nil
	}
}

// WithLog sends progress lines (cluster ready, teardown, artifacts) to w
// (default os.Stderr; nil discards them).
func WithLog(w io.Writer) Option {
	return func(o *options) error {
		if w == nil {
			w = io.Discard
		}
		o.log = w
		return nil
	}
}

// CreateOption configures one virtual cluster.
type CreateOption func(*createOptions)

type createOptions struct {
	name  string
	flags controlplane.Flags
}

// WithName names the virtual cluster (a DNS label); the default is derived
// from the version asked for: "v1-36" for "1.36".
func WithName(name string) CreateOption {
	return func(c *createOptions) { c.name = name }
}

// WithAPIServerArgs adds kube-apiserver flags ("--audit-log-maxage=1"); they
// override vmatrix's own. A flag the version does not know fails the create
// with the apiserver's own words.
func WithAPIServerArgs(args ...string) CreateOption {
	return func(c *createOptions) { c.flags.APIServer = append(c.flags.APIServer, args...) }
}

// WithControllerManagerArgs adds kube-controller-manager flags.
func WithControllerManagerArgs(args ...string) CreateOption {
	return func(c *createOptions) { c.flags.ControllerManager = append(c.flags.ControllerManager, args...) }
}

// WithFeatureGates sets --feature-gates ("SomeGate=true,Other=false") on the
// apiserver and the controller manager.
func WithFeatureGates(gates string) CreateOption {
	return func(c *createOptions) { c.flags = c.flags.Add(gates, "") }
}

// ForVersion applies create options to every cluster of version that the
// Environment creates, CreateMany's included: a minor ("1.36") matches each
// of its patches, "" every version. A test matrix sets a feature gate for
// one version this way.
func ForVersion(version string, opts ...CreateOption) Option {
	return func(o *options) error {
		o.perVersion = append(o.perVersion, versionOptions{strings.TrimPrefix(version, "v"), opts})
		return nil
	}
}

type versionOptions struct {
	version string
	opts    []CreateOption
}

// flagsFor gathers the component flags that ForVersion gives release v.
func (o *options) flagsFor(v k8sdist.Version) controlplane.Flags {
	var f controlplane.Flags
	for _, vo := range o.perVersion {
		if vo.matches(v.String()) {
			var c createOptions
			for _, opt := range vo.opts {
				opt(&c)
			}
			f = f.Merge(c.flags)
		}
	}
	return f
}

// matches reports whether the options given for v apply to version.
func (vo versionOptions) matches(version string) bool {
	version = strings.TrimPrefix(version, "v")
	return vo.version == "" || vo.version == version || strings.HasPrefix(version, vo.version+".")
}
