package syncer

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/cache"
)

// hostKind is a kind the syncer writes into the host namespace. hostKinds is
// the one list of them: teardown, the listings of what is left and of what
// is not the syncer's, and the resync after the namespace is made again all
// read it. How each kind is copied is its own sync's business (pods.go,
// services.go, ...).
type hostKind struct {
	resource string // the API's plural name, as listings print it
	list     func(core typedcorev1.CoreV1Interface, ns string) listFunc
	// deleteAll deletes the syncer's objects of the kind in the host
	// namespace: those sel selects.
	deleteAll func(ctx context.Context, s *Syncer, sel metav1.ListOptions) error
	// hostMade reports whether an object of the kind that is not labelled as
	// the syncer's is one the host makes itself, which does not make the
	// namespace anyone else's.
	hostMade func(name string) bool
	// virtual is the kind's informer in the virtual cluster and the
	// controller its keys go to.
	virtual func(s *Syncer) (cache.SharedIndexInformer, *controller)
}

type listFunc func(context.Context, metav1.ListOptions) (runtime.Object, error)

// lister makes a typed List method a listFunc.
func lister[L runtime.Object](list func(context.Context, metav1.ListOptions) (L, error)) listFunc {
	return func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) { return list(ctx, opts) }
}

var hostKinds = []hostKind{
	{
		resource: "pods",
		list:     func(c typedcorev1.CoreV1Interface, ns string) listFunc { return lister(c.Pods(ns).List) },
		// At once: the virtual cluster that would wait for them is going.
		deleteAll: func(ctx context.Context, s *Syncer, sel metav1.ListOptions) error {
			return s.host.CoreV1().Pods(s.opts.HostNamespace).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: new(int64)}, sel)
		},
		virtual: func(s *Syncer) (cache.SharedIndexInformer, *controller) {
			return s.vInf.Core().V1().Pods().Informer(), s.pods
		},
	},
	{
		resource:  "services",
		list:      func(c typedcorev1.CoreV1Interface, ns string) listFunc { return lister(c.Services(ns).List) },
		deleteAll: deleteServices,
		virtual: func(s *Syncer) (cache.SharedIndexInformer, *controller) {
			return s.vInf.Core().V1().Services().Informer(), s.services
		},
	},
	{
		resource: "endpoints",
		list:     func(c typedcorev1.CoreV1Interface, ns string) listFunc { return lister(c.Endpoints(ns).List) },
		deleteAll: func(ctx context.Context, s *Syncer, sel metav1.ListOptions) error {
			return s.host.CoreV1().Endpoints(s.opts.HostNamespace).DeleteCollection(ctx, metav1.DeleteOptions{}, sel)
		},
		// The host's endpoints controller makes them for every Service.
		hostMade: func(string) bool { return true },
		virtual: func(s *Syncer) (cache.SharedIndexInformer, *controller) {
			return s.vInf.Core().V1().Endpoints().Informer(), s.endpoints
		},
	},
	{
		resource: "configmaps",
		list:     func(c typedcorev1.CoreV1Interface, ns string) listFunc { return lister(c.ConfigMaps(ns).List) },
		deleteAll: func(ctx context.Context, s *Syncer, sel metav1.ListOptions) error {
			return s.host.CoreV1().ConfigMaps(s.opts.HostNamespace).DeleteCollection(ctx, metav1.DeleteOptions{}, sel)
		},
		hostMade: func(name string) bool { return name == "kube-root-ca.crt" },
		virtual: func(s *Syncer) (cache.SharedIndexInformer, *controller) {
			return s.vInf.Core().V1().ConfigMaps().Informer(), s.configMaps
		},
	},
	{
		resource: "secrets",
		list:     func(c typedcorev1.CoreV1Interface, ns string) listFunc { return lister(c.Secrets(ns).List) },
		deleteAll: func(ctx context.Context, s *Syncer, sel metav1.ListOptions) error {
			return s.host.CoreV1().Secrets(s.opts.HostNamespace).DeleteCollection(ctx, metav1.DeleteOptions{}, sel)
		},
		virtual: func(s *Syncer) (cache.SharedIndexInformer, *controller) {
			return s.vInf.Core().V1().Secrets().Informer(), s.secrets
		},
	},
	{
		resource: "persistentvolumeclaims",
		list: func(c typedcorev1.CoreV1Interface, ns string) listFunc {
			return lister(c.PersistentVolumeClaims(ns).List)
		},
		deleteAll: func(ctx context.Context, s *Syncer, sel metav1.ListOptions) error {
			return s.host.CoreV1().PersistentVolumeClaims(s.opts.HostNamespace).DeleteCollection(ctx, metav1.DeleteOptions{}, sel)
		},
		virtual: func(s *Syncer) (cache.SharedIndexInformer, *controller) {
			return s.vInf.Core().V1().PersistentVolumeClaims().Informer(), s.pvcs
		},
	},
}

// names lists the names of the objects of k in a host namespace.
func (k hostKind) names(ctx context.Context, host kubernetes.Interface, ns string, opts metav1.ListOptions) ([]string, error) {
	list, err := k.list(host.CoreV1(), ns)(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("listing host %s: %w", k.resource, err)
	}
	items, err := meta.ExtractList(list)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(items))
	for _, o := range items {
		m, err := meta.Accessor(o)
		if err != nil {
			return nil, err
		}
		names = append(names, m.GetName())
	}
	return names, nil
}

// deleteServices deletes the Services one by one: there is no
// DeleteCollection for Services.
func deleteServices(ctx context.Context, s *Syncer, sel metav1.ListOptions) error {
	api := s.host.CoreV1().Services(s.opts.HostNamespace)
	l, err := api.List(ctx, sel)
	if err != nil {
		return err
	}
	var errs []error
	for _, svc := range l.Items {
		if err := deleteHost(ctx, s, hostAPI[*corev1.Service](api), &svc, metav1.DeleteOptions{}); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
