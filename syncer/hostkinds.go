package syncer

import (
	"context"
	"errors"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// hostKind is a kind the syncer writes into the host namespace. hostKinds is
// the one list of them: teardown, the listings of what is left and of what
// is not the syncer's, and the resync after the namespace is made again all
// read it. Each kind's file (pods.go, ingresses.go, ...) holds its entry and
// how it is copied: adding a kind is one file and one line here.
type hostKind struct {
	resource string // the API's plural name, as listings print it
	// optional kinds are synced only when Options.Sync names them.
	optional bool
	// setup makes the kind's controller and registers its informer handlers.
	setup func(s *Syncer) (*controller, error)
	// informer is the kind's informer in the virtual cluster: the resync
	// after the host namespace is made again queues all its keys.
	informer func(s *Syncer) cache.SharedIndexInformer
	list     func(c kubernetes.Interface, ns string) listFunc
	// deleteAll deletes the syncer's objects of the kind in the host
	// namespace: those sel selects.
	deleteAll func(ctx context.Context, s *Syncer, sel metav1.ListOptions) error
	// hostMade reports whether an object of the kind that is not labelled as
	// the syncer's is one the host makes itself, which does not make the
	// namespace anyone else's.
	hostMade func(name string) bool
}

type listFunc func(context.Context, metav1.ListOptions) (runtime.Object, error)

// lister makes a typed List method a listFunc.
func lister[L runtime.Object](list func(context.Context, metav1.ListOptions) (L, error)) listFunc {
	return func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) { return list(ctx, opts) }
}

var hostKinds = []hostKind{
	podKind, serviceKind, endpointsKind, configMapKind, secretKind, pvcKind,
	ingressKind, networkPolicyKind,
}

// syncedKinds are the kinds this syncer syncs: all but the optional ones
// its options do not name.
func (s *Syncer) syncedKinds() []hostKind {
	var kinds []hostKind
	for _, k := range hostKinds {
		if !k.optional || slices.Contains(s.opts.Sync, k.resource) {
			kinds = append(kinds, k)
		}
	}
	return kinds
}

// OptionalKinds names the kinds Options.Sync may name.
func OptionalKinds() []string {
	var names []string
	for _, k := range hostKinds {
		if k.optional {
			names = append(names, k.resource)
		}
	}
	return names
}

// names lists the names of the objects of k in a host namespace.
func (k hostKind) names(ctx context.Context, host kubernetes.Interface, ns string, opts metav1.ListOptions) ([]string, error) {
	list, err := k.list(host, ns)(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("listing host %s: %w", k.resource, err) // still IsForbidden
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
