package host

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/vmatrix/vmatrix/syncer"
)

// namespaceFinisher empties and removes, at once, the host namespaces that
// virtual clusters' syncers delete. The host's namespace controller starts on
// a deleted namespace only 5 s later (upstream's namespaceDeletionGracePeriod,
// for the other apiservers and etcd members of a real cluster to see the
// deletion first); an embedded host has one apiserver on one store. Without
// this, a cluster made again under the name of one just deleted waits for its
// host namespace to go: 4.9 s to Ready instead of 2.1 s.
//
// It works only within finishWithin of the deletion, so that it never acts
// beside the namespace controller (which could remove the namespace midway,
// and the finisher then empty a new namespace of the same name); what a
// finalizer holds longer is the controller's.
type namespaceFinisher struct {
	client   kubernetes.Interface
	meta     metadata.Interface
	factory  informers.SharedInformerFactory
	queue    workqueue.TypedRateLimitingInterface[string]
	workers  sync.WaitGroup
	ctx      context.Context
	cancel   context.CancelFunc
	stopOnce sync.Once
}

const (
	// finishWithin is how long after its deletion the finisher works on a
	// namespace: under the controller's 5 s, less the second the deletion
	// timestamp is rounded to.
	finishWithin = 3 * time.Second
	// settle is how long a namespace found empty must stay empty before it
	// goes: a create admitted just before the deletion may still be on its
	// way to the store.
	settle = 300 * time.Millisecond
)

func startNamespaceFinisher(ctx context.Context, config *rest.Config) (*namespaceFinisher, error) {
	// About two requests per resource type a namespace may hold: client-go's
	// default limits (5 a second) would make that seconds.
	config = rest.CopyConfig(config)
	config.QPS, config.Burst = 300, 600
	// Listing every resource type draws the apiserver's deprecation
	// warnings (v1 Endpoints), which would fill a test's output.
	config.WarningHandler = rest.NoWarnings{}
	client, err := kubernetes.NewForConfig(config)
	if err != nil {
		return nil, err
	}
	meta, err := metadata.NewForConfig(config)
	if err != nil {
		return nil, err
	}
	f := &namespaceFinisher{
		client: client, meta: meta,
		queue: workqueue.NewTypedRateLimitingQueue(workqueue.NewTypedItemExponentialFailureRateLimiter[string](50*time.Millisecond, time.Second)),
		factory: informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.LabelSelector = syncer.LabelManagedBy
		})),
	}
	f.ctx, f.cancel = context.WithCancel(context.Background())
	enqueue := func(obj any) {
		if ns, ok := obj.(*corev1.Namespace); ok && ns.DeletionTimestamp != nil {
			f.queue.Add(ns.Name)
		}
	}
	_, err = f.factory.Core().V1().Namespaces().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: enqueue, UpdateFunc: func(_, obj any) { enqueue(obj) },
	})
	if err != nil {
		return nil, err
	}
	f.factory.Start(f.ctx.Done())
	f.factory.WaitForCacheSync(ctx.Done())
	f.workers.Add(1)
	go func() {
		defer f.workers.Done()
		for f.next() {
		}
	}()
	return f, nil
}

func (f *namespaceFinisher) next() bool {
	name, quit := f.queue.Get()
	if quit {
		return false
	}
	defer f.queue.Done(name)
	if done, err := f.finish(f.ctx, name); err != nil || !done {
		f.queue.AddRateLimited(name)
		return true
	}
	f.queue.Forget(name)
	return true
}

// finish removes the deleted namespace name once everything in it is
// deleted and has stayed so for settle. It says whether there is nothing
// more to do.
func (f *namespaceFinisher) finish(ctx context.Context, name string) (bool, error) {
	ns, err := f.client.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	if ns.DeletionTimestamp == nil || !slices.Contains(ns.Spec.Finalizers, corev1.FinalizerKubernetes) ||
		time.Since(ns.DeletionTimestamp.Time) > finishWithin {
		return true, nil
	}
	// Partial discovery (an aggregated API down) is an error: the namespace
	// controller, which waits for it, has the namespace then.
	lists, err := f.client.Discovery().ServerPreferredNamespacedResources()
	if err != nil {
		return false, err
	}
	for pass := 0; pass < 2; pass++ {
		if pass > 0 {
			select {
			case <-ctx.Done():
				return true, nil
			case <-time.After(settle):
			}
		}
		if empty, err := f.empty(ctx, name, lists); err != nil || !empty {
			return false, err
		}
	}
	ns.Spec.Finalizers = slices.DeleteFunc(ns.Spec.Finalizers, func(s corev1.FinalizerName) bool { return s == corev1.FinalizerKubernetes })
	if _, err := f.client.CoreV1().Namespaces().Finalize(ctx, ns, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return false, err
	}
	return true, nil
}

// empty deletes every object in namespace name, of every resource type of
// lists, and says whether none is left.
func (f *namespaceFinisher) empty(ctx context.Context, name string, lists []*metav1.APIResourceList) (bool, error) {
	left := 0
	for _, list := range lists {
		gv, err := schema.ParseGroupVersion(list.GroupVersion)
		if err != nil {
			return false, err
		}
		for _, r := range list.APIResources {
			if strings.Contains(r.Name, "/") || !slices.Contains(r.Verbs, "list") {
				continue
			}
			objects := f.meta.Resource(gv.WithResource(r.Name)).Namespace(name)
			if slices.Contains(r.Verbs, "deletecollection") {
				// In the background, as the namespace controller does: what an
				// object owns goes too (a Job's pods).
				background := metav1.DeletePropagationBackground
				err := objects.DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: new(int64), PropagationPolicy: &background}, metav1.ListOptions{})
				if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsMethodNotSupported(err) {
					return false, err
				}
			}
			found, err := objects.List(ctx, metav1.ListOptions{Limit: 1})
			if err != nil && !apierrors.IsNotFound(err) {
				return false, err
			}
			if found != nil {
				left += len(found.Items)
			}
		}
	}
	return left == 0, nil
}

// Stop stops the finisher and waits for it. It is idempotent.
func (f *namespaceFinisher) Stop() {
	f.stopOnce.Do(func() {
		f.cancel()
		f.queue.ShutDown()
		f.factory.Shutdown()
		f.workers.Wait()
	})
}
