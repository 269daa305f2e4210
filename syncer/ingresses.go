package syncer

import (
	"context"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

const (
	kindIngress = "Ingress"
	// indexIngressSecrets: virtual Ingresses by the "namespace/name" of
	// their TLS Secrets, which are copied down with them.
	indexIngressSecrets = "ingress-secrets"
)

// Ingresses, when Options.Sync names them, are copied down with their
// backends and TLS Secrets pointed at the host copies; the host's ingress
// controller serves them and its status is copied back up.
var ingressKind = hostKind{
	resource: "ingresses",
	optional: true,
	list: func(c kubernetes.Interface, ns string) listFunc {
		return lister(c.NetworkingV1().Ingresses(ns).List)
	},
	deleteAll: func(ctx context.Context, s *Syncer, sel metav1.ListOptions) error {
		return s.host.NetworkingV1().Ingresses(s.opts.HostNamespace).DeleteCollection(ctx, metav1.DeleteOptions{}, sel)
	},
	setup: (*Syncer).setupIngresses,
	informer: func(s *Syncer) cache.SharedIndexInformer {
		return s.vInf.Networking().V1().Ingresses().Informer()
	},
}

func (s *Syncer) setupIngresses() (*controller, error) {
	c := s.newController("ingresses", 2, s.syncIngress)
	vIng := s.vInf.Networking().V1().Ingresses().Informer()
	if err := addIndex(vIng, indexIngressSecrets, func(obj any) ([]string, error) { return ingressSecrets(obj.(*networkingv1.Ingress)), nil }); err != nil {
		return nil, err
	}
	if _, err := vIng.AddEventHandler(handler(func(obj metav1.Object) {
		c.byKey(obj)
		for _, k := range ingressSecrets(obj.(*networkingv1.Ingress)) {
			s.secrets.add(k)
		}
	})); err != nil {
		return nil, err
	}
	_, err := s.hInf.Networking().V1().Ingresses().Informer().AddEventHandler(handler(c.byVirtualKey(kindIngress)))
	return c, err
}

// ingressSecrets lists the "namespace/name" keys of an Ingress's TLS Secrets.
func ingressSecrets(ing *networkingv1.Ingress) []string {
	var keys []string
	for _, tls := range ing.Spec.TLS {
		if tls.SecretName != "" {
			keys = append(keys, ing.Namespace+"/"+tls.SecretName)
		}
	}
	return keys
}

func (s *Syncer) syncIngress(ctx context.Context, key string) error {
	ns, v, h, err := readBoth[networkingv1.Ingress](s, key, s.vInf.Networking().V1().Ingresses().Lister().Ingresses, s.hInf.Networking().V1().Ingresses().Lister().Ingresses)
	if err != nil {
		return err
	}
	api := s.host.NetworkingV1().Ingresses(s.opts.HostNamespace)
	if v == nil || v.DeletionTimestamp != nil {
		return deleteHost(ctx, s, api, h, metav1.DeleteOptions{})
	}
	if key := s.snippet(v); key != "" {
		s.recorder.Eventf(v, corev1.EventTypeWarning, "SyncRefused",
			"not copied to the host: annotation %s would put configuration of its own into the host's ingress controller, which this virtual cluster does not allow", key)
		return deleteHost(ctx, s, api, h, metav1.DeleteOptions{})
	}
	h, err = ensureHost(ctx, s, api, kindIngress, h, s.translateIngress(v), func(cur, d *networkingv1.Ingress) bool { return takeField(&cur.Spec, d.Spec) })
	if err != nil {
		return s.reportClash(err, v)
	}
	if equality.Semantic.DeepEqual(v.Status, h.Status) {
		return nil
	}
	cp := v.DeepCopy()
	cp.Status = h.Status
	_, err = s.virtual.NetworkingV1().Ingresses(ns).UpdateStatus(ctx, cp, metav1.UpdateOptions{})
	return ignoreGone(err)
}

// snippet names an annotation of v that carries raw configuration for an
// ingress controller (ingress-nginx's *-snippet, which it turns off by
// default itself), "" if none does or AllowPrivileged lets it through. The
// other annotations are copied as they are: they are how an Ingress talks to
// its controller (rewrite-target, ...).
func (s *Syncer) snippet(v *networkingv1.Ingress) string {
	if s.opts.AllowPrivileged {
		return ""
	}
	for key := range v.Annotations {
		if strings.HasSuffix(key, "snippet") {
			return key
		}
	}
	return ""
}

// translateIngress is the host Ingress of a virtual one: every backend names
// the host copy of its Service (or resource), every TLS entry the host copy
// of its Secret. The class stays: it names the host's ingress controller.
func (s *Syncer) translateIngress(v *networkingv1.Ingress) *networkingv1.Ingress {
	h := &networkingv1.Ingress{ObjectMeta: s.hostMeta(kindIngress, v, v.Labels, v.Annotations)}
	h.Spec = *v.Spec.DeepCopy()
	backend := func(b *networkingv1.IngressBackend) {
		if b == nil {
			return
		}
		if b.Service != nil {
			b.Service.Name = s.hostName(v.Namespace, b.Service.Name)
		}
		if b.Resource != nil {
			b.Resource.Name = s.hostName(v.Namespace, b.Resource.Name)
		}
	}
	backend(h.Spec.DefaultBackend)
	for i := range h.Spec.Rules {
		if http := h.Spec.Rules[i].HTTP; http != nil {
			for j := range http.Paths {
				backend(&http.Paths[j].Backend)
			}
		}
	}
	for i := range h.Spec.TLS {
		if h.Spec.TLS[i].SecretName != "" {
			h.Spec.TLS[i].SecretName = s.hostName(v.Namespace, h.Spec.TLS[i].SecretName)
		}
	}
	return h
}

// ingressRefers reports whether a virtual Ingress names the Secret key for
// TLS (false when Ingresses are not synced).
func (s *Syncer) ingressRefers(key string) bool {
	if s.kinds[ingressKind.resource] == nil {
		return false
	}
	ings, _ := ingressKind.informer(s).GetIndexer().ByIndex(indexIngressSecrets, key)
	return len(ings) > 0
}
