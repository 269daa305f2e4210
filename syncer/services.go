package syncer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

const kindService = "Service"

func (s *Syncer) setupServices() (*controller, error) {
	s.services = s.newController("services", 2, s.syncService)
	if _, err := s.vInf.Core().V1().Services().Informer().AddEventHandler(handler(func(obj metav1.Object) {
		s.services.byKey(obj)
		s.endpoints.byKey(obj) // a Service that gains or loses its selector changes who owns its Endpoints
	})); err != nil {
		return nil, err
	}
	_, err := s.hInf.Core().V1().Services().Informer().AddEventHandler(handler(s.services.byVirtualKey(kindService)))
	return s.services, err
}

// syncService keeps the host Service of a virtual Service: same cluster IP,
// ports, type and a selector that picks the host copies of the virtual
// namespace's pods. The host's allocations (node ports, and the cluster IP if
// the virtual one is taken on the host) are copied back up.
func (s *Syncer) syncService(ctx context.Context, key string) error {
	if key == metav1.NamespaceDefault+"/kubernetes" {
		return nil // the virtual apiserver's own
	}
	_, v, h, err := readBoth[corev1.Service](s, key, s.vInf.Core().V1().Services().Lister().Services, s.hInf.Core().V1().Services().Lister().Services)
	if err != nil {
		return err
	}
	api := s.host.CoreV1().Services(s.opts.HostNamespace)
	if _, pending := s.recreating.Load(key); v == nil && pending {
		return s.recreate(ctx, key)
	}
	if v == nil || v.DeletionTimestamp != nil {
		return deleteHost(ctx, s, api, h, metav1.DeleteOptions{})
	}
	desired := s.translateService(v)
	if h == nil {
		h, err = ensureHost(ctx, s, api, kindService, nil, desired, mergeService)
		if isAllocated(err) {
			// The virtual cluster's IP or node ports are the host's already (another
			// virtual cluster's allocator chose them too): the host picks new ones,
			// and the virtual Service follows below.
			desired.Spec.ClusterIP, desired.Spec.ClusterIPs = "", nil
			for i := range desired.Spec.Ports {
				desired.Spec.Ports[i].NodePort = 0
			}
			h, err = ensureHost(ctx, s, api, kindService, nil, desired, mergeService)
		}
	} else {
		h, err = ensureHost(ctx, s, api, kindService, h, desired, mergeService)
	}
	if err != nil {
		return s.reportClash(err, v)
	}
	return s.followHostService(ctx, v, h)
}

// recreate makes a virtual Service again that followHostService deleted to
// give it the host's cluster IP; a failure is retried by the queue.
func (s *Syncer) recreate(ctx context.Context, key string) error {
	re, ok := s.recreating.Load(key)
	if !ok {
		return nil
	}
	svc := re.(*corev1.Service)
	_, err := s.virtual.CoreV1().Services(svc.Namespace).Create(ctx, svc.DeepCopy(), metav1.CreateOptions{})
	if err == nil || apierrors.IsAlreadyExists(err) {
		s.recreating.Delete(key)
		return nil
	}
	return fmt.Errorf("making virtual Service %s again with the host's cluster IP: %w", key, err)
}

// isAllocated reports whether the host refused a Service for its cluster
// IPs or node ports, by the structured causes of its error: the host then
// picks its own. (The one reason in practice is that they are taken; one out
// of the host's range is handled the same way.)
func isAllocated(err error) bool {
	var status apierrors.APIStatus
	if !apierrors.IsInvalid(err) || !errors.As(err, &status) || status.Status().Details == nil {
		return false
	}
	for _, c := range status.Status().Details.Causes {
		f := c.Field
		if c.Type == metav1.CauseTypeFieldValueInvalid &&
			(f == "spec.clusterIP" || f == "spec.clusterIPs" || strings.HasPrefix(f, "spec.clusterIPs[") ||
				strings.HasPrefix(f, "spec.ports[") && strings.HasSuffix(f, "].nodePort")) {
			return true
		}
	}
	return false
}

func (s *Syncer) translateService(v *corev1.Service) *corev1.Service {
	h := &corev1.Service{ObjectMeta: s.hostMeta(kindService, v, v.Labels, nil)}
	h.Spec = *v.Spec.DeepCopy()
	if len(v.Spec.Selector) > 0 {
		h.Spec.Selector = s.hostSelector(v.Spec.Selector, v.Namespace)
	}
	// Addresses the host allocates or that name virtual objects stay the host's.
	h.Spec.HealthCheckNodePort = 0
	h.Spec.LoadBalancerClass = v.Spec.LoadBalancerClass
	return h
}

// mergeService carries over the fields that may change in a Service.
func mergeService(cur, desired *corev1.Service) bool {
	ports := desired.Spec.Ports
	// A port whose node port the virtual side does not pin keeps the host's.
	for i := range ports {
		if ports[i].NodePort == 0 {
			for _, p := range cur.Spec.Ports {
				if p.Name == ports[i].Name && p.Port == ports[i].Port {
					ports[i].NodePort = p.NodePort
				}
			}
		}
	}
	changed := []bool{
		takeField(&cur.Spec.Ports, ports),
		takeField(&cur.Spec.Type, desired.Spec.Type),
		takeField(&cur.Spec.Selector, desired.Spec.Selector),
		takeField(&cur.Spec.ExternalName, desired.Spec.ExternalName),
		takeField(&cur.Spec.PublishNotReadyAddresses, desired.Spec.PublishNotReadyAddresses),
	}
	return slices.Contains(changed, true)
}

// followHostService makes the virtual Service carry what the host allocated:
// the cluster IP (immutable, so the virtual Service is created again with the
// host's IP) and the node ports; and the load balancer status.
func (s *Syncer) followHostService(ctx context.Context, v, h *corev1.Service) error {
	api := s.virtual.CoreV1().Services(v.Namespace)
	if h.Spec.ClusterIP != "" && v.Spec.ClusterIP != h.Spec.ClusterIP && v.Spec.Type != corev1.ServiceTypeExternalName {
		// The whole object again (labels, annotations, owners, finalizers),
		// as a new object with the host's IPs.
		re := v.DeepCopy()
		re.ObjectMeta = metav1.ObjectMeta{Name: v.Name, Namespace: v.Namespace, Labels: v.Labels, Annotations: v.Annotations,
			OwnerReferences: v.OwnerReferences, Finalizers: v.Finalizers}
		re.Status = corev1.ServiceStatus{}
		re.Spec.ClusterIP, re.Spec.ClusterIPs = h.Spec.ClusterIP, h.Spec.ClusterIPs
		key := v.Namespace + "/" + v.Name
		// Until it exists again, a sync that finds it missing makes it
		// rather than deleting the host copy.
		s.recreating.Store(key, re)
		uid := v.UID
		if len(v.Finalizers) > 0 {
			// They would hold the old object, and its IP, for ever: the new
			// object carries them on.
			cp := v.DeepCopy()
			cp.Finalizers = nil
			if _, err := api.Update(ctx, cp, metav1.UpdateOptions{}); err != nil {
				s.recreating.Delete(key)
				return ignoreGone(err)
			}
		}
		if err := api.Delete(ctx, v.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}}); err != nil {
			s.recreating.Delete(key)
			return ignoreGone(err)
		}
		return s.recreate(ctx, key)
	}
	cp := v.DeepCopy()
	changed := false
	for i := range cp.Spec.Ports {
		for _, hp := range h.Spec.Ports {
			if hp.Name == cp.Spec.Ports[i].Name && hp.Port == cp.Spec.Ports[i].Port && hp.NodePort != cp.Spec.Ports[i].NodePort && hp.NodePort != 0 {
				cp.Spec.Ports[i].NodePort, changed = hp.NodePort, true
			}
		}
	}
	if changed {
		if _, err := api.Update(ctx, cp, metav1.UpdateOptions{}); err != nil {
			return err
		}
		return nil // the update requeues the Service for its status
	}
	if !equality.Semantic.DeepEqual(v.Status.LoadBalancer, h.Status.LoadBalancer) {
		cp.Status.LoadBalancer = h.Status.LoadBalancer
		_, err := api.UpdateStatus(ctx, cp, metav1.UpdateOptions{})
		return ignoreGone(err)
	}
	return nil
}

var serviceKind = hostKind{
	resource:  "services",
	list:      func(c kubernetes.Interface, ns string) listFunc { return lister(c.CoreV1().Services(ns).List) },
	deleteAll: deleteServices,
	setup:     (*Syncer).setupServices,
	informer:  func(s *Syncer) cache.SharedIndexInformer { return s.vInf.Core().V1().Services().Informer() },
}
