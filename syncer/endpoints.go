package syncer

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

const kindEndpoints = "Endpoints"

func (s *Syncer) setupEndpoints() (*controller, error) {
	s.endpoints = s.newController("endpoints", 2, s.syncEndpoints)
	if _, err := s.vInf.Core().V1().Endpoints().Informer().AddEventHandler(handler(s.endpoints.byKey)); err != nil {
		return nil, err
	}
	_, err := s.hInf.Core().V1().Endpoints().Informer().AddEventHandler(handler(s.endpoints.byVirtualKey(kindEndpoints)))
	return s.endpoints, err
}

// syncEndpoints copies the Endpoints of a selector-less virtual Service down:
// nothing on the host could compute them. A Service with a selector gets its
// host Endpoints (and EndpointSlices) from the host's own controllers, and a
// host copy of a selector-less Service's Endpoints becomes EndpointSlices
// through the host's mirroring controller.
func (s *Syncer) syncEndpoints(ctx context.Context, key string) error {
	ns, name := splitKey(key)
	if ns == metav1.NamespaceDefault && name == "kubernetes" {
		return nil
	}
	svc, err := notFound(s.vInf.Core().V1().Services().Lister().Services(ns).Get(name))
	if err != nil {
		return err
	}
	_, v, h, err := readBoth[corev1.Endpoints](s, key, s.vInf.Core().V1().Endpoints().Lister().Endpoints, s.hInf.Core().V1().Endpoints().Lister().Endpoints)
	if err != nil {
		return err
	}
	api := s.host.CoreV1().Endpoints(s.opts.HostNamespace)
	if v == nil || svc == nil || len(svc.Spec.Selector) > 0 {
		return deleteHost(ctx, s, api, h, metav1.DeleteOptions{})
	}
	desired := &corev1.Endpoints{ObjectMeta: s.hostMeta(kindEndpoints, v, v.Labels, nil)}
	for _, sub := range v.Subsets {
		sub = *sub.DeepCopy()
		for _, addrs := range [][]corev1.EndpointAddress{sub.Addresses, sub.NotReadyAddresses} {
			for i := range addrs {
				if ref := addrs[i].TargetRef; ref != nil && ref.Kind == "Pod" {
					addrs[i].TargetRef = &corev1.ObjectReference{Kind: "Pod", Namespace: s.opts.HostNamespace, Name: s.hostName(ns, ref.Name)}
				} else {
					addrs[i].TargetRef = nil
				}
				addrs[i].NodeName = nil
			}
		}
		desired.Subsets = append(desired.Subsets, sub)
	}
	_, err = ensureHost(ctx, s, api, kindEndpoints, h, desired, func(cur, d *corev1.Endpoints) bool { return takeField(&cur.Subsets, d.Subsets) })
	return s.reportClash(err, v)
}

var endpointsKind = hostKind{
	resource: "endpoints",
	list:     func(c kubernetes.Interface, ns string) listFunc { return lister(c.CoreV1().Endpoints(ns).List) },
	deleteAll: func(ctx context.Context, s *Syncer, sel metav1.ListOptions) error {
		return s.host.CoreV1().Endpoints(s.opts.HostNamespace).DeleteCollection(ctx, metav1.DeleteOptions{}, sel)
	},
	// The host's endpoints controller makes them for every Service.
	hostMade: func(string) bool { return true },
	setup:    (*Syncer).setupEndpoints,
	informer: func(s *Syncer) cache.SharedIndexInformer { return s.vInf.Core().V1().Endpoints().Informer() },
}
