package syncer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/clock"

	"github.com/vmatrix/vmatrix/internal/kubeconfig"
)

// Options configure a Syncer.
type Options struct {
	// Name is the virtual cluster's name; it ends every host name and labels
	// every host object.
	Name string
	// Virtual and Host are client configs of the two clusters.
	Virtual, Host *rest.Config
	// HostNamespace is where all host objects go; "" means
	// DefaultHostNamespace(Name).
	// The syncer creates it if missing, and deletes it on Delete if it did.
	HostNamespace string
	// MirrorAllNodes shows every Ready, schedulable host node as a virtual Node
	// from the start; otherwise a virtual Node exists only while synced pods
	// run on its host node.
	MirrorAllNodes bool
	// AllowPrivileged lets pods that are privileged or use hostPath,
	// hostNetwork, hostPID or hostIPC through to the host.
	AllowPrivileged bool
	// TokenSecrets keeps each pod's virtual service account tokens in a host
	// Secret of its own rather than in an annotation of its host pod: one
	// host write more per pod, and whoever may read the host namespace's
	// pods but not its Secrets no longer reads the tokens.
	TokenSecrets bool
	// Resync is the informers' resync period (default 10 minutes): how often
	// every object is compared again even without a change.
	Resync time.Duration
	// Kubelet, when set, makes the syncer serve the virtual Nodes' kubelet API
	// (logs, exec, attach, port-forward of virtual pods); without it the
	// virtual Nodes advertise the host nodes' endpoints, which the virtual
	// apiserver cannot use.
	Kubelet *KubeletOptions
	// Sync names optional kinds to sync as well: "ingresses" (copied down
	// with their backends pointed at the host Services, status up) and
	// "networkpolicies" (selectors translated to the host copies).
	Sync []string
	// Log receives warnings; nil discards them.
	Log *slog.Logger
	// Clock times the queues' delayed work (back-offs, token renewals); nil
	// is the real clock. A test steps a fake one to bring a renewal due.
	Clock clock.WithTicker
}

// Syncer keeps the workloads of one virtual cluster running on the host: it
// copies pods, services and what they need down into one host namespace, and
// copies status, nodes and events back up.
type Syncer struct {
	opts          Options
	log           *slog.Logger
	virtual, host kubernetes.Interface
	caData        []byte // the virtual cluster's CA, for service account volumes
	versionMu     sync.Mutex
	version       string // the virtual apiserver's (virtualVersion)

	vInf informers.SharedInformerFactory // virtual cluster, everything
	hInf informers.SharedInformerFactory // host namespace, this syncer's objects
	hEvt informers.SharedInformerFactory // host namespace, all events
	hNod informers.SharedInformerFactory // host nodes
	hNs  informers.SharedInformerFactory // the host namespace, when the syncer made it

	ownsNamespace bool     // the host namespace is the syncer's own (it made it)
	recreating    sync.Map // virtual Services being made again with the host's IP, by key
	replacing     sync.Map // virtual pods whose host pod is deleted to be placed again, by key
	// refusedEphemeral: the ephemeral containers refused and told of, by
	// "<virtual pod UID>/<name>".
	refusedEphemeral sync.Map
	// tokensWritten holds the token Secrets (Options.TokenSecrets) written a
	// moment ago that the host informer has not shown yet: a recentWrite, by
	// name.
	tokensWritten sync.Map
	// podsCreated holds the host pods created a moment ago that the host
	// informer has not shown yet: a recentWrite, by virtual key.
	podsCreated sync.Map
	// dropsObservedGeneration: the virtual apiserver does not keep a pod's
	// status.observedGeneration (a version before the field).
	dropsObservedGeneration atomic.Bool

	broadcaster record.EventBroadcaster
	recorder    record.EventRecorder
	kubelet     *kubeletServer

	controllers []*controller
	kinds       map[string]*controller // the controllers of syncedKinds, by resource
	// The controllers other kinds' handlers queue keys on.
	pods, nodes, services, endpoints, configMaps, secrets, events *controller
	storageClasses                                                *controller // nil: the host's are not mirrored

	mu      sync.Mutex
	cancel  context.CancelFunc
	workers sync.WaitGroup
	stopped bool
}

// New checks the options and prepares a Syncer; Start starts it.
func New(opts Options) (*Syncer, error) {
	if errs := validation.IsDNS1123Label(opts.Name); len(errs) > 0 {
		return nil, fmt.Errorf("syncer: virtual cluster name %q: %v", opts.Name, errs)
	}
	if opts.Virtual == nil || opts.Host == nil {
		return nil, errors.New("syncer: both a virtual and a host client config are needed")
	}
	if opts.HostNamespace == "" {
		opts.HostNamespace = DefaultHostNamespace(opts.Name)
	}
	for _, kind := range opts.Sync {
		if !slices.Contains(OptionalKinds(), kind) {
			return nil, fmt.Errorf("syncer: cannot sync %q: the optional kinds are %s", kind, strings.Join(OptionalKinds(), ", "))
		}
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	if opts.Resync <= 0 {
		opts.Resync = 10 * time.Minute
	}
	s := &Syncer{opts: opts, log: opts.Log}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	var err error
	if s.virtual, err = kubernetes.NewForConfig(clientConfig(opts.Virtual, opts.Name)); err != nil {
		return nil, err
	}
	if s.host, err = kubernetes.NewForConfig(clientConfig(opts.Host, opts.Name)); err != nil {
		return nil, err
	}
	s.caData = opts.Virtual.CAData
	if len(s.caData) == 0 && opts.Virtual.CAFile != "" {
		if s.caData, err = os.ReadFile(opts.Virtual.CAFile); err != nil {
			return nil, fmt.Errorf("syncer: virtual cluster CA: %w", err)
		}
	}
	return s, nil
}

// clientConfig is a copy of cfg for the syncer: its own user agent, client
// rate limits that do not throttle a rollout, and no deprecation warnings
// (the syncer reads v1 Endpoints on purpose).
func clientConfig(cfg *rest.Config, name string) *rest.Config {
	c := rest.CopyConfig(cfg)
	c.UserAgent = "vmatrix-syncer/" + name
	c.QPS, c.Burst = 300, 600
	c.WarningHandler = rest.NoWarnings{}
	kubeconfig.Protobuf(c)
	return c
}

// maxNameLength keeps the host namespace "vmatrix-<name>" a valid DNS label.
const maxNameLength = 52

// ValidateName checks a virtual cluster name: a DNS label short enough that
// its default host namespace is one too.
func ValidateName(name string) error {
	if errs := validation.IsDNS1123Label(name); len(errs) > 0 {
		return fmt.Errorf("invalid name %q: %s", name, strings.Join(errs, "; "))
	}
	if len(name) > maxNameLength {
		return fmt.Errorf("invalid name %q: at most %d characters", name, maxNameLength)
	}
	return nil
}

// DefaultHostNamespace is the host namespace of the virtual cluster name
// unless Options say otherwise: vmatrix-<name>.
func DefaultHostNamespace(name string) string { return "vmatrix-" + name }

// HostNamespace is the host namespace this syncer writes to.
func (s *Syncer) HostNamespace() string { return s.opts.HostNamespace }

// Start creates the host namespace if needed, fills the informer caches and
// starts the controllers; it returns once they run. ctx bounds the start
// only: the syncer runs until Stop or Delete.
func (s *Syncer) Start(ctx context.Context) (err error) {
	if err := s.ensureNamespace(ctx); err != nil {
		return err
	}
	// A start that fails half-way leaves nothing running: no listener, no
	// event broadcaster, no informer.
	defer func() {
		if err != nil {
			s.Stop()
		}
	}()
	if s.opts.Kubelet != nil {
		if err := s.startKubelet(); err != nil {
			return err
		}
	}
	s.broadcaster = record.NewBroadcaster()
	s.broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: s.virtual.CoreV1().Events("")})
	s.recorder = s.broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "vmatrix-syncer"})

	s.vInf = informers.NewSharedInformerFactory(s.virtual, s.opts.Resync)
	s.hInf = informers.NewSharedInformerFactoryWithOptions(s.host, s.opts.Resync,
		informers.WithNamespace(s.opts.HostNamespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = s.ownedSelector() }))
	s.hEvt = informers.NewSharedInformerFactoryWithOptions(s.host, s.opts.Resync, informers.WithNamespace(s.opts.HostNamespace))
	s.hNod = informers.NewSharedInformerFactory(s.host, s.opts.Resync)
	factories := []informers.SharedInformerFactory{s.vInf, s.hInf, s.hEvt, s.hNod}
	if s.ownsNamespace {
		// Deleted under the cluster (a colleague's cleanup, a reaper in a
		// shared CI cluster), the namespace is made again and everything is
		// synced into it anew.
		s.hNs = informers.NewSharedInformerFactoryWithOptions(s.host, s.opts.Resync,
			informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.FieldSelector = "metadata.name=" + s.opts.HostNamespace }))
		if _, err := s.hNs.Core().V1().Namespaces().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
			DeleteFunc: func(any) { s.namespaceGone() },
		}); err != nil {
			return err
		}
		factories = append(factories, s.hNs)
	}

	for _, setup := range []func() error{s.setupNodes, s.setupEvents, func() error { return s.setupStorageClasses(ctx) }} {
		if err := setup(); err != nil {
			return err
		}
	}
	s.kinds = map[string]*controller{}
	for _, k := range s.syncedKinds() {
		if s.kinds[k.resource], err = k.setup(s); err != nil {
			return err
		}
	}
	runCtx, cancel := context.WithCancel(context.Background())
	s.mu.Lock()
	s.cancel = cancel
	s.mu.Unlock()
	for _, f := range factories {
		f.Start(runCtx.Done())
	}
	for _, f := range factories {
		for typ, ok := range f.WaitForCacheSync(ctx.Done()) {
			if !ok {
				return fmt.Errorf("syncer %s: filling the cache of %v: %w", s.opts.Name, typ, context.Cause(ctx))
			}
		}
	}
	s.mirrorDefaultClasses(ctx)
	for _, c := range s.controllers {
		c.run(runCtx, &s.workers)
	}
	return nil
}

// ensureNamespace creates the host namespace, labelled as this syncer's so
// that Delete knows it may delete it.
func (s *Syncer) ensureNamespace(ctx context.Context) error {
	api := s.host.CoreV1().Namespaces()
	// A namespace left Terminating by the teardown of an earlier cluster of
	// the same name must be gone before it can be made again.
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		// Read first: a syncer whose host rights end at its namespace (a Role,
		// as in the Helm chart) may read that namespace but not create namespaces.
		ns, err := api.Get(ctx, s.opts.HostNamespace, metav1.GetOptions{})
		if err == nil {
			s.ownsNamespace = ns.Labels[LabelManagedBy] == s.opts.Name
			return ns.DeletionTimestamp == nil, nil
		}
		_, err = api.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
			Name: s.opts.HostNamespace, Labels: map[string]string{LabelManagedBy: s.opts.Name},
		}}, metav1.CreateOptions{})
		if err == nil || apierrors.IsAlreadyExists(err) {
			return false, nil // read it back on the next round
		}
		return false, err
	})
	if err != nil {
		return fmt.Errorf("syncer %s: creating host namespace %s: %w", s.opts.Name, s.opts.HostNamespace, err)
	}
	return nil
}

// namespaceGone makes the host namespace again once it is gone, and queues
// every virtual object, so that its host copy is made again.
func (s *Syncer) namespaceGone() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return
	}
	s.log.Warn("the host namespace was deleted: making it again", "namespace", s.opts.HostNamespace)
	s.workers.Add(1) // under mu: Stop waits for it, or it does not start
	go func() {
		defer s.workers.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		if err := s.ensureNamespace(ctx); err != nil {
			s.log.Warn("making the host namespace again", "err", err)
			return
		}
		for _, k := range s.syncedKinds() {
			for _, key := range k.informer(s).GetStore().ListKeys() {
				s.kinds[k.resource].add(key)
			}
		}
	}()
}

// Stop stops the controllers and informers and waits for them. Host objects
// stay: a Syncer started later over the same clusters takes them over. It is
// idempotent.
func (s *Syncer) Stop() {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return
	}
	s.stopped = true
	cancel := s.cancel
	s.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	for _, c := range s.controllers {
		c.queue.ShutDown()
	}
	s.workers.Wait()
	for _, f := range []informers.SharedInformerFactory{s.vInf, s.hInf, s.hEvt, s.hNod, s.hNs} {
		if f != nil {
			f.Shutdown()
		}
	}
	if s.broadcaster != nil {
		s.broadcaster.Shutdown()
	}
	if s.kubelet != nil {
		s.kubelet.stop()
	}
}

// hostGoneAfter is how long a teardown goes on while the host refuses
// every connection.
const hostGoneAfter = 3 * time.Second

// Delete stops the syncer, deletes every host object labelled for this
// virtual cluster and waits until they are gone; then it deletes the host
// namespace if the syncer created it. It returns nil only when no object of
// the virtual cluster is left on the host.
func (s *Syncer) Delete(ctx context.Context) error {
	s.Stop()
	ns, sel := s.opts.HostNamespace, metav1.ListOptions{LabelSelector: s.ownedSelector()}
	var errs []error
	// Every kind, synced or not: an earlier syncer of this cluster may have
	// synced an optional kind this one does not (one this syncer may not
	// even touch: then it could not have written any either).
	for _, k := range hostKinds {
		err := k.deleteAll(ctx, s, sel)
		if err != nil && !apierrors.IsNotFound(err) && !(k.optional && apierrors.IsForbidden(err)) {
			errs = append(errs, fmt.Errorf("deleting host %s: %w", k.resource, err))
		}
	}
	var left []string
	var refusedSince time.Time
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		var err error
		left, err = HostObjects(ctx, s.host, ns, s.opts.Name)
		// A host that refuses every connection is not running: there is
		// nothing to wait for, and a teardown should not hang on it.
		switch {
		case err == nil || !utilnet.IsConnectionRefused(err):
			refusedSince = time.Time{}
		case refusedSince.IsZero():
			refusedSince = time.Now()
		case time.Since(refusedSince) > hostGoneAfter:
			return false, fmt.Errorf("the host is not running: %w", err)
		}
		return err == nil && len(left) == 0, nil
	})
	switch {
	case err != nil && !refusedSince.IsZero():
		// Nothing more can be done on a host that is not running.
		return fmt.Errorf("syncer %s: teardown: %w", s.opts.Name, errors.Join(append(errs, err)...))
	case err != nil:
		errs = append(errs, fmt.Errorf("waiting for the host objects to go (%s left): %w", strings.Join(left, ", "), err))
	}
	if err := s.deleteNamespace(ctx); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("syncer %s: teardown: %w", s.opts.Name, err)
	}
	return nil
}

// HostObjects lists the objects in the host namespace that belong to the
// virtual cluster name ("3 pods", ...): what its teardown must remove, and
// what a check after teardown must not find.
func HostObjects(ctx context.Context, host kubernetes.Interface, namespace, name string) ([]string, error) {
	sel := metav1.ListOptions{LabelSelector: labels.SelectorFromSet(labels.Set{LabelManagedBy: name}).String()}
	var left []string
	for _, k := range hostKinds {
		names, err := k.names(ctx, host, namespace, sel)
		if k.optional && apierrors.IsForbidden(err) {
			continue // a syncer with these rights could not have written any
		}
		if err != nil {
			return nil, err
		}
		if len(names) > 0 {
			left = append(left, fmt.Sprintf("%d %s", len(names), k.resource))
		}
	}
	return left, nil
}

// deleteNamespace deletes the host namespace if this syncer created it (its
// label says so).
func (s *Syncer) deleteNamespace(ctx context.Context) error {
	api := s.host.CoreV1().Namespaces()
	ns, err := api.Get(ctx, s.opts.HostNamespace, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading host namespace: %w", err)
	}
	if ns.Labels[LabelManagedBy] != s.opts.Name {
		return nil
	}
	// Objects someone else put into the namespace are not the syncer's to
	// delete, and deleting the namespace would take them along.
	if foreign, err := s.foreignObjects(ctx); err != nil || foreign != "" {
		if foreign != "" {
			s.log.Warn("host namespace kept: it holds objects the syncer does not own", "namespace", ns.Name, "objects", foreign)
		}
		return err
	}
	// Not waited for: what was in it is gone already, and the namespace
	// controller's seconds of finalizing would double a teardown. A syncer of
	// the same name that starts meanwhile waits for it in ensureNamespace.
	uid := ns.UID
	if err := api.Delete(ctx, ns.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting host namespace: %w", err)
	}
	return nil
}

// foreignObjects names a workload object in the host namespace that is not
// the syncer's ("" if there is none). What the host itself puts in every
// namespace (its root CA ConfigMap, the default ServiceAccount) does not count.
func (s *Syncer) foreignObjects(ctx context.Context) (string, error) {
	notOurs := metav1.ListOptions{LabelSelector: "!" + LabelManagedBy}
	for _, k := range hostKinds {
		names, err := k.names(ctx, s.host, s.opts.HostNamespace, notOurs)
		if k.optional && apierrors.IsForbidden(err) {
			continue
		}
		if err != nil {
			return "", err
		}
		for _, n := range names {
			if k.hostMade == nil || !k.hostMade(n) {
				return k.resource + "/" + n, nil
			}
		}
	}
	return "", nil
}

// lister helpers, for the kinds several controllers read.
func (s *Syncer) hostPod(name string) (*corev1.Pod, error) {
	return notFound(s.hInf.Core().V1().Pods().Lister().Pods(s.opts.HostNamespace).Get(name))
}

func (s *Syncer) virtualPod(namespace, name string) (*corev1.Pod, error) {
	return notFound(s.vInf.Core().V1().Pods().Lister().Pods(namespace).Get(name))
}

// indexer adds an index to an informer that is not yet started.
func addIndex(inf cache.SharedIndexInformer, name string, fn cache.IndexFunc) error {
	return inf.AddIndexers(cache.Indexers{name: fn})
}

// DeleteHostNamespace deletes the default host namespace of the virtual
// cluster name, and with it what the syncer made there, for a cluster whose
// syncer could not tear down (its process died, its create failed half-way).
// A namespace whose label does not say it is that cluster's is left alone.
// It does not wait: HostObjects tells when the objects are gone.
func DeleteHostNamespace(ctx context.Context, host kubernetes.Interface, name string) error {
	api := host.CoreV1().Namespaces()
	ns, err := api.Get(ctx, DefaultHostNamespace(name), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading host namespace: %w", err)
	}
	if ns.Labels[LabelManagedBy] != name || ns.DeletionTimestamp != nil {
		return nil
	}
	uid := ns.UID
	if err := api.Delete(ctx, ns.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting host namespace %s: %w", ns.Name, err)
	}
	return nil
}
