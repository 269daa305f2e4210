package vmatrix

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/e2e-framework/klient"
	"sigs.k8s.io/e2e-framework/pkg/envconf"
	"sigs.k8s.io/e2e-framework/pkg/types"

	"github.com/vmatrix/vmatrix/framework"
	"github.com/vmatrix/vmatrix/internal/virtual"
)

// DefaultVersion is the version of a cluster made without WithKubernetesVersion.
const DefaultVersion = "1.37"

// The process's Environment: its embedded host serves every cluster of this
// provider and stops with the last one.
var shared struct {
	mu    sync.Mutex
	env   *framework.Environment
	users int
	opts  []framework.Option
}

// SetEnvironmentOptions sets the options of the Environment that the
// provider's clusters share (host, timeouts, artifacts, ...). It applies
// when the first cluster is created.
func SetEnvironmentOptions(opts ...framework.Option) {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	shared.opts = opts
}

func acquire() (*framework.Environment, error) {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.env == nil {
		env, err := framework.New(append([]framework.Option{framework.WithRunClusters()}, shared.opts...)...)
		if err != nil {
			return nil, err
		}
		shared.env = env
	}
	shared.users++
	return shared.env, nil
}

// release tears the shared Environment down with its last user.
func release(ctx context.Context) error {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	shared.users--
	if shared.users > 0 || shared.env == nil {
		return nil
	}
	env := shared.env
	shared.env = nil
	return env.Destroy(ctx)
}

// Cluster is one vmatrix virtual cluster as an e2e-framework cluster provider.
type Cluster struct {
	name    string
	version string
	vc      *framework.VirtualCluster
}

var _ types.E2EClusterProvider = &Cluster{}

// NewProvider returns a provider for envfuncs.CreateClusterWithOpts.
func NewProvider() types.E2EClusterProvider { return &Cluster{} }

// WithKubernetesVersion selects the cluster's version ("1.36", "1.36.3").
func WithKubernetesVersion(version string) types.ClusterOpts {
	return func(c types.E2EClusterProvider) {
		if vc, ok := c.(*Cluster); ok {
			vc.version = version
		}
	}
}

// WithName names the cluster; envfuncs.CreateClusterWithOpts does it for you.
func (c *Cluster) WithName(name string) types.E2EClusterProvider { c.name = name; return c }

// WithVersion selects the Kubernetes version, like WithKubernetesVersion.
func (c *Cluster) WithVersion(version string) types.E2EClusterProvider {
	c.version = version
	return c
}

// WithPath does nothing: vmatrix finds its binaries itself (see k8sdist's
// VMATRIX_KUBE_* variables to override them).
func (c *Cluster) WithPath(string) types.E2EClusterProvider { return c }

// WithOpts applies ClusterOpts such as WithKubernetesVersion.
func (c *Cluster) WithOpts(opts ...types.ClusterOpts) types.E2EClusterProvider {
	for _, o := range opts {
		o(c)
	}
	return c
}

// SetDefaults sets the default version.
func (c *Cluster) SetDefaults() types.E2EClusterProvider {
	if c.version == "" {
		c.version = DefaultVersion
	}
	return c
}

// Create starts the virtual cluster and returns its kubeconfig path. args
// are not used.
func (c *Cluster) Create(ctx context.Context, args ...string) (string, error) {
	if c.vc != nil {
		return c.vc.KubeconfigPath(), nil
	}
	c.SetDefaults()
	if c.name == "" {
		c.name = virtual.DefaultName(c.version)
	}
	env, err := acquire()
	if err != nil {
		return "", err
	}
	vc, err := env.Create(ctx, c.version, framework.WithName(c.name))
	if err != nil {
		return "", errors.Join(err, release(ctx))
	}
	c.vc = vc
	return vc.KubeconfigPath(), nil
}

// CreateWithConfig is not supported: a vmatrix cluster has no config file.
func (c *Cluster) CreateWithConfig(ctx context.Context, configFile string) (string, error) {
	return "", fmt.Errorf("vmatrix: CreateWithConfig(%q): config files are not supported; use WithKubernetesVersion", configFile)
}

// GetKubeconfig is the kubeconfig path ("" before Create).
func (c *Cluster) GetKubeconfig() string {
	if c.vc == nil {
		return ""
	}
	return c.vc.KubeconfigPath()
}

// GenerateKubeconfig returns the kubeconfig path; vmatrix writes it once.
func (c *Cluster) GenerateKubeconfig(...string) (string, error) {
	if c.vc == nil {
		return "", fmt.Errorf("vmatrix: cluster %q is not created", c.name)
	}
	return c.vc.KubeconfigPath(), nil
}

// GetKubectlContext is the kubeconfig's context: the cluster's name.
func (c *Cluster) GetKubectlContext() string { return c.name }

// ExportLogs writes the cluster's component logs and object dumps to dest.
func (c *Cluster) ExportLogs(ctx context.Context, dest string) error {
	if c.vc == nil {
		return fmt.Errorf("vmatrix: cluster %q is not created", c.name)
	}
	return c.vc.ExportArtifacts(ctx, dest)
}

// Destroy tears the cluster down (and the shared host with the last
// cluster), verifying that nothing of it is left.
func (c *Cluster) Destroy(ctx context.Context) error {
	if c.vc == nil {
		return nil
	}
	vc := c.vc
	c.vc = nil
	return errors.Join(vc.Destroy(ctx), release(ctx))
}

// WaitForControlPlane returns at once: Create returns only once the control
// plane is ready.
func (c *Cluster) WaitForControlPlane(context.Context, klient.Client) error { return nil }

// KubernetesRestConfig is an admin client config of the cluster.
func (c *Cluster) KubernetesRestConfig() *rest.Config {
	if c.vc == nil {
		return nil
	}
	return c.vc.RESTConfig()
}

// VirtualCluster is the framework handle of the cluster (nil before Create).
func (c *Cluster) VirtualCluster() *framework.VirtualCluster { return c.vc }

// versionsKey keeps the clusters of CreateVersions in a context.
type versionsKey struct{}

// CreateVersions is an EnvFunc that creates one cluster per version, in
// parallel, on the shared host. Each is stored in the context like
// envfuncs.CreateCluster stores one, under the version's default cluster
// name, "v" and the version with dots as dashes ("v1-36" for "1.36"), so
// envfuncs.DestroyCluster and ExportClusterLogs work with that name,
// and ClusterFromContext finds it by version. Under `vmatrix run` only the
// run's version is created (framework.Versions), as the other adapters do:
// a suite builds its features for framework.Versions(versions...) too.
func CreateVersions(versions ...string) types.EnvFunc {
	versions = framework.Versions(versions...)
	return func(ctx context.Context, cfg *envconf.Config) (context.Context, error) {
		env, err := acquire()
		if err != nil {
			return ctx, err
		}
		vcs, err := env.CreateMany(ctx, versions...)
		if err != nil {
			return ctx, errors.Join(err, release(ctx))
		}
		set := map[string]*Cluster{}
		for i, vc := range vcs {
			c := &Cluster{name: vc.Name(), version: versions[i], vc: vc}
			if i > 0 {
				// One reference per cluster, so each Destroy releases one.
				if _, err := acquire(); err != nil {
					return ctx, err
				}
			}
			set[versions[i]] = c
			ctx = context.WithValue(ctx, types.ClusterNameContextKey(vc.Name()), types.E2EClusterProvider(c))
		}
		if len(vcs) == 0 {
			release(ctx)
		}
		return context.WithValue(ctx, versionsKey{}, set), nil
	}
}

// DestroyVersions is an EnvFunc that destroys the clusters of CreateVersions.
func DestroyVersions() types.EnvFunc {
	return func(ctx context.Context, cfg *envconf.Config) (context.Context, error) {
		set, _ := ctx.Value(versionsKey{}).(map[string]*Cluster)
		var errs []error
		for _, c := range set {
			errs = append(errs, c.Destroy(ctx))
		}
		return ctx, errors.Join(errs...)
	}
}

// ClusterFromContext returns the cluster of version that CreateVersions
// made, or nil.
func ClusterFromContext(ctx context.Context, version string) *framework.VirtualCluster {
	set, _ := ctx.Value(versionsKey{}).(map[string]*Cluster)
	if c := set[version]; c != nil {
		return c.vc
	}
	return nil
}
