package syncer

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

// controller is the skeleton every kind shares: informer handlers put keys on
// a rate-limited queue, workers take them off and call sync, which reads the
// current state of both sides from the informers and makes the target match.
// sync is idempotent, so a key may be queued any number of times: a resync, a
// restart or a duplicate event only costs a comparison.
type controller struct {
	name    string
	workers int
	queue   workqueue.TypedRateLimitingInterface[string]
	sync    func(ctx context.Context, key string) error
	s       *Syncer
}

func (s *Syncer) newController(name string, workers int, sync func(context.Context, string) error) *controller {
	c := &controller{
		name: name, workers: workers, sync: sync, s: s,
		// Per-key exponential back-off only: the clients' QPS bounds the total.
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[string](20*time.Millisecond, 30*time.Second),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: s.opts.Name + "-" + name, Clock: s.opts.Clock},
		),
	}
	s.controllers = append(s.controllers, c)
	return c
}

func (c *controller) add(key string) { c.queue.Add(key) }

func (c *controller) run(ctx context.Context, wg *sync.WaitGroup) {
	for i := 0; i < c.workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c.next(ctx) {
			}
		}()
	}
}

func (c *controller) next(ctx context.Context) bool {
	key, quit := c.queue.Get()
	if quit {
		return false
	}
	defer c.queue.Done(key)
	err := c.sync(ctx, key)
	if err == nil {
		c.queue.Forget(key)
		return true
	}
	if ctx.Err() != nil {
		return true
	}
	// Conflicts and stale caches are normal in a controller and settle on the
	// retry; only what persists is worth a log line.
	if !apierrors.IsConflict(err) && !apierrors.IsAlreadyExists(err) && c.queue.NumRequeues(key) >= 3 {
		c.s.log.Warn("sync failed", "kind", c.name, "key", key, "err", err)
	}
	c.queue.AddRateLimited(key)
	return true
}

// handler turns informer notifications into calls of fn with each object
// involved (both sides of an update; the last known state of a deleted one).
func handler(fn func(obj metav1.Object)) cache.ResourceEventHandler {
	call := func(obj any) {
		if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = t.Obj
		}
		if m, ok := obj.(metav1.Object); ok {
			fn(m)
		}
	}
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    call,
		UpdateFunc: func(old, cur any) { call(old); call(cur) },
		DeleteFunc: call,
	}
}

// byKey queues the object's own namespace/name (or name) key.
func (c *controller) byKey(obj metav1.Object) {
	if obj.GetNamespace() == "" {
		c.add(obj.GetName())
		return
	}
	c.add(obj.GetNamespace() + "/" + obj.GetName())
}

// byVirtualKey queues the key of the virtual object that a host object of
// kind copies.
func (c *controller) byVirtualKey(kind string) func(metav1.Object) {
	return func(obj metav1.Object) {
		if obj.GetAnnotations()[AnnotationKind] != kind {
			return
		}
		if key, ok := c.s.virtualKey(obj); ok {
			c.add(key)
		}
	}
}

func splitKey(key string) (namespace, name string) {
	if i := strings.IndexByte(key, '/'); i >= 0 {
		return key[:i], key[i+1:]
	}
	return "", key
}

// object is what the generic helpers need of a typed API object.
type object interface {
	metav1.Object
	runtime.Object
}

// hostAPI is the part of a typed client-go client the generic helpers use.
type hostAPI[T object] interface {
	Create(context.Context, T, metav1.CreateOptions) (T, error)
	Update(context.Context, T, metav1.UpdateOptions) (T, error)
	Get(context.Context, string, metav1.GetOptions) (T, error)
	Delete(context.Context, string, metav1.DeleteOptions) error
}

// clashError says that a host object of the wanted name exists and is not the
// syncer's copy of the virtual object: it stays as it is.
type clashError struct{ kind, namespace, name string }

func (e *clashError) Error() string {
	return fmt.Sprintf("host %s %s/%s exists and is not managed by this virtual cluster; it is left untouched", e.kind, e.namespace, e.name)
}

// takeField sets *cur to desired, as a merge function of ensureHost does
// for each field the syncer owns, and reports whether that changed it.
func takeField[F any](cur *F, desired F) bool {
	if equality.Semantic.DeepEqual(*cur, desired) {
		return false
	}
	*cur = desired
	return true
}

// ensureHost makes the host object match desired: it creates it when the
// informer knows none (current is nil), else merge brings a copy of current
// up to date and reports whether it changed anything. A create that finds the
// name taken reads the object: a copy of ours that the informer has not seen
// yet is merged, anything else is a clash.
func ensureHost[T object](ctx context.Context, s *Syncer, api hostAPI[T], kind string, current T, desired T, merge func(cur, desired T) bool) (T, error) {
	var zero T
	recordWritten(desired)
	if isNil(current) {
		created, err := api.Create(ctx, desired, metav1.CreateOptions{})
		if err == nil || !apierrors.IsAlreadyExists(err) {
			return created, err
		}
		if current, err = api.Get(ctx, desired.GetName(), metav1.GetOptions{}); err != nil {
			return zero, err
		}
	}
	if !s.ownedKind(current, kind) {
		return zero, &clashError{kind, current.GetNamespace(), current.GetName()}
	}
	cur := current.DeepCopyObject().(T)
	changed := mergeMeta(cur, desired)
	if merge != nil && merge(cur, desired) {
		changed = true
	}
	if !changed {
		return current, nil
	}
	return api.Update(ctx, cur, metav1.UpdateOptions{})
}

// Annotations on a host object that list the label and annotation keys the
// syncer wrote last time, so that a key removed from the virtual object is
// removed from the host copy too, while keys the host side added stay: a
// three-way merge of what the virtual side wants, what the host has and
// what the syncer wrote.
const (
	annotationWrittenLabels      = "vmatrix.io/written-labels"
	annotationWrittenAnnotations = "vmatrix.io/written-annotations"
)

// recordWritten notes desired's own label and annotation keys on it.
func recordWritten(desired metav1.Object) {
	a := desired.GetAnnotations()
	if a == nil {
		a = map[string]string{}
	}
	delete(a, annotationWrittenLabels)
	delete(a, annotationWrittenAnnotations)
	a[annotationWrittenLabels] = strings.Join(slices.Sorted(maps.Keys(desired.GetLabels())), ",")
	a[annotationWrittenAnnotations] = strings.Join(slices.Sorted(maps.Keys(a)), ",")
	desired.SetAnnotations(a)
}

// mergeMeta makes cur's labels and annotations what desired says: keys the
// syncer wrote before and desired no longer has are removed, desired's are
// set, and keys the host side added itself stay (removing them would make
// the two sides fight). desired carries recordWritten's notes.
func mergeMeta(cur, desired metav1.Object) bool {
	changed := false
	merge := func(have, want map[string]string, written string) map[string]string {
		if have == nil {
			have = map[string]string{}
		}
		for _, k := range strings.Split(written, ",") {
			if _, keep := want[k]; !keep && k != "" {
				if _, ok := have[k]; ok {
					delete(have, k)
					changed = true
				}
			}
		}
		for k, v := range want {
			if old, ok := have[k]; !ok || old != v {
				have[k] = v
				changed = true
			}
		}
		return have
	}
	before := cur.GetAnnotations()
	cur.SetLabels(merge(cur.GetLabels(), desired.GetLabels(), before[annotationWrittenLabels]))
	cur.SetAnnotations(merge(cur.GetAnnotations(), desired.GetAnnotations(), before[annotationWrittenAnnotations]))
	return changed
}

// deleteHost deletes a host object if it is the syncer's; the UID
// precondition makes sure it is the object that was read.
func deleteHost[T object](ctx context.Context, s *Syncer, api hostAPI[T], current T, opts metav1.DeleteOptions) error {
	if isNil(current) || !s.owns(current) || current.GetDeletionTimestamp() != nil && opts.GracePeriodSeconds == nil {
		return nil
	}
	uid := current.GetUID()
	if opts.Preconditions == nil {
		opts.Preconditions = &metav1.Preconditions{}
	}
	opts.Preconditions.UID = &uid // a resource version, if given, stays
	err := api.Delete(ctx, current.GetName(), opts)
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	return err
}

func isNil[T object](o T) bool {
	return any(o) == any(*new(T))
}

// namespaceGetter is a typed lister of one namespace.
type namespaceGetter[T any] interface {
	Get(name string) (*T, error)
}

// readBoth reads the virtual object of key and its host copy from the
// informers (virtual and host are a kind's listers per namespace of each
// side); a missing one is nil.
func readBoth[T any, L namespaceGetter[T]](s *Syncer, key string, virtual, host func(namespace string) L) (ns string, v, h *T, err error) {
	ns, name := splitKey(key)
	if v, err = notFound(virtual(ns).Get(name)); err != nil {
		return ns, nil, nil, err
	}
	h, err = notFound(host(s.opts.HostNamespace).Get(s.hostName(ns, name)))
	return ns, v, h, err
}

// notFound turns a lister's NotFound into a nil object.
func notFound[T any](obj *T, err error) (*T, error) {
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	return obj, err
}

// reportClash turns a clash into a Warning Event on the virtual object and
// succeeds: retrying cannot help until someone removes the host object, and
// the periodic resync looks again.
func (s *Syncer) reportClash(err error, virtual runtime.Object) error {
	var clash *clashError
	if errors.As(err, &clash) {
		s.recorder.Event(virtual, "Warning", "SyncNameClash", clash.Error())
		return nil
	}
	return err
}

// ignoreGone treats an object that is gone as done with.
func ignoreGone(err error) error {
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}
