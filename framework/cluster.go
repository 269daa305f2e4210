package framework

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/vmatrix/vmatrix/internal/controlplane"
	"github.com/vmatrix/vmatrix/internal/deprecated"
	"github.com/vmatrix/vmatrix/internal/k8sdist"
	"github.com/vmatrix/vmatrix/internal/kubeconfig"
	"github.com/vmatrix/vmatrix/internal/virtual"
)

// testNamespaceLabel marks the namespaces that NewNamespace makes. Resetting a
// reused cluster deletes exactly these.
const testNamespaceLabel = "vmatrix.io/test-namespace"

// VirtualCluster is one virtual cluster of an Environment.
type VirtualCluster struct {
	env       *Environment
	name      string
	requested string // the version as the caller wrote it
	dir       string

	mu         sync.Mutex
	isReady    bool
	version    k8sdist.Version
	inner      *virtual.Cluster // nil for a cluster attached by reuse
	attached   bool
	kubeconfig string
	config     *rest.Config
	client     kubernetes.Interface
	dynamic    dynamic.Interface
	applier    *applier
	destroyed  bool

	teardown   sync.Once
	destroyErr error
}

// Name is the cluster's name in its Environment.
func (vc *VirtualCluster) Name() string { return vc.name }

// Version is the Kubernetes release the cluster runs: String() "v1.36.3",
// MinorString() "1.36" (the form test names and version matrices use),
// SemVer() "1.36.3" (for semantic-version libraries).
func (vc *VirtualCluster) Version() Version { return vc.release() }

// release is the version, which Upgrade changes.
func (vc *VirtualCluster) release() k8sdist.Version {
	vc.mu.Lock()
	defer vc.mu.Unlock()
	return vc.version
}

// DeprecatedAPI is one deprecated API a client called: group, version,
// resource, the release that removes it, and the user agents that asked.
type DeprecatedAPI = deprecated.API

// DeprecatedAPIs lists the deprecated APIs that clients other than the
// cluster's own components (the suite, its operator, kubectl) have called
// since the cluster was made, as the apiserver marked them in its audit log.
func (vc *VirtualCluster) DeprecatedAPIs(ctx context.Context) ([]DeprecatedAPI, error) {
	return deprecated.FromAuditLog(controlplane.AuditLogPath(filepath.Dir(vc.KubeconfigPath())), time.Time{})
}

// Upgrade upgrades the cluster in place to version ("1.36" for its newest
// patch, or "1.36.3"): one minor at a time, or a newer patch, as kubeadm
// allows. The apiserver and controller manager of the new version start on
// the same storage and certificates, so every object keeps its UID; the
// syncer runs on, so the pods on the host are not made again. A downgrade, a
// skipped minor or an unknown version is refused before anything stops.
func (vc *VirtualCluster) Upgrade(ctx context.Context, version string) error {
	vc.mu.Lock()
	inner, from := vc.inner, vc.version
	vc.mu.Unlock()
	if inner == nil {
		return fmt.Errorf("%s: only a cluster this Environment created can be upgraded", vc)
	}
	v, err := k8sdist.Resolve(ctx, version)
	if err != nil {
		return fmt.Errorf("%s: %w", vc, err)
	}
	if err := k8sdist.CheckUpgrade(from, v); err != nil {
		return fmt.Errorf("%s: %w", vc, err)
	}
	bins, err := vc.env.source.Kubernetes(ctx, v)
	if err != nil {
		return fmt.Errorf("%s: %w", vc, err)
	}
	start := time.Now()
	if err := inner.Upgrade(ctx, v, bins); err != nil {
		return fmt.Errorf("%s: %w", vc, err)
	}
	vc.mu.Lock()
	vc.version = v
	vc.mu.Unlock()
	vc.env.logf("%s upgraded from %s in %s", vc, from, time.Since(start).Round(10*time.Millisecond))
	return nil
}

// KubeconfigPath is a self-contained admin kubeconfig of the cluster.
func (vc *VirtualCluster) KubeconfigPath() string {
	if vc.kubeconfig == "" {
		return filepath.Join(vc.dir, "kubeconfig")
	}
	return vc.kubeconfig
}

// RESTConfig is an admin client config (a copy; change it freely).
func (vc *VirtualCluster) RESTConfig() *rest.Config { return rest.CopyConfig(vc.config) }

// Client is a client-go clientset of the cluster.
func (vc *VirtualCluster) Client() kubernetes.Interface { return vc.client }

// Resource is the cluster's dynamic client for resource, custom resources
// included: a VirtualCluster is a dynamic.Interface, which is what
// fixtures and other dynamic helpers take.
func (vc *VirtualCluster) Resource(resource schema.GroupVersionResource) dynamic.NamespaceableResourceInterface {
	return vc.dynamic.Resource(resource)
}

var _ dynamic.Interface = (*VirtualCluster)(nil)

// Attached reports whether the cluster was not created by this Environment
// but attached: the cluster `vmatrix run` gave the process
// (WithRunClusters), one left by an earlier run (WithReuse), or one reached
// by Connect. Destroy leaves it running.
func (vc *VirtualCluster) Attached() bool { return vc.attached }

// String names the cluster and its version, e.g. "v1-36 (v1.36.3)".
func (vc *VirtualCluster) String() string { return fmt.Sprintf("%s (%s)", vc.name, vc.release()) }

// NewNamespace creates a namespace named prefix-XXXXX, labelled as a test
// namespace so that resetting a reused cluster removes it, and returns its
// name.
func (vc *VirtualCluster) NewNamespace(ctx context.Context, prefix string) (string, error) {
	ns, err := vc.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		GenerateName: prefix + "-",
		Labels:       map[string]string{testNamespaceLabel: "true"},
	}}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("%s: creating a test namespace: %w", vc, err)
	}
	return ns.Name, nil
}

// DeleteNamespace deletes a namespace without waiting for its contents to go.
func (vc *VirtualCluster) DeleteNamespace(ctx context.Context, name string) error {
	err := vc.client.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{})
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("%s: deleting namespace %s: %w", vc, name, err)
	}
	return nil
}

// Destroy tears this cluster down as Environment.Destroy would (a reused one
// is left running) and verifies that nothing of it is left.
func (vc *VirtualCluster) Destroy(ctx context.Context) error {
	return vc.env.destroyCluster(vc)
}

func (vc *VirtualCluster) ready() bool {
	vc.mu.Lock()
	defer vc.mu.Unlock()
	return vc.isReady && !vc.destroyed
}

func (vc *VirtualCluster) setReady() {
	vc.mu.Lock()
	vc.isReady = true
	vc.mu.Unlock()
}

// connect makes the clients from the cluster's kubeconfig.
func (vc *VirtualCluster) connect(path string) error {
	cfg, err := kubeconfig.Load(path, "")
	if err != nil {
		return err
	}
	// Tests create objects in bursts; client-side rate limits would make them
	// wait on nothing.
	cfg.QPS, cfg.Burst = 200, 400
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	vc.kubeconfig, vc.config, vc.client, vc.dynamic = path, cfg, client, dyn
	vc.applier = newApplier(client.Discovery(), dyn)
	return nil
}

// Err is nil while the cluster's components are up or being started again
// after an exit; once one of them could not be kept up it says which, with
// its last log lines. A cluster this process did not create reports nil.
func (vc *VirtualCluster) Err() error {
	if inner := vc.own(); inner != nil {
		return inner.Health().Err
	}
	return nil
}

// Restarts counts, per component, how often it was started again after it
// exited while the cluster ran.
func (vc *VirtualCluster) Restarts() map[string]int {
	if inner := vc.own(); inner != nil {
		return inner.Health().Restarts
	}
	return map[string]int{}
}

// pids lists the cluster's component processes by name (none for a cluster
// this process did not create).
func (vc *VirtualCluster) pids() map[string]int {
	if inner := vc.own(); inner != nil {
		return inner.PIDs()
	}
	return map[string]int{}
}

// own is the running cluster, if this process created it.
func (vc *VirtualCluster) own() *virtual.Cluster {
	vc.mu.Lock()
	defer vc.mu.Unlock()
	return vc.inner
}
