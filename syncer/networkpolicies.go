package syncer

import (
	"context"
	"slices"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

const kindNetworkPolicy = "NetworkPolicy"

// NetworkPolicies, when Options.Sync names them, are copied down with their
// selectors translated: all host copies live in one host namespace, so a
// selector of pods in virtual namespaces becomes a selector of the host
// copies labelled with those namespaces. The host's network plugin enforces
// them.
var networkPolicyKind = hostKind{
	resource: "networkpolicies",
	optional: true,
	list: func(c kubernetes.Interface, ns string) listFunc {
		return lister(c.NetworkingV1().NetworkPolicies(ns).List)
	},
	deleteAll: func(ctx context.Context, s *Syncer, sel metav1.ListOptions) error {
		return s.host.NetworkingV1().NetworkPolicies(s.opts.HostNamespace).DeleteCollection(ctx, metav1.DeleteOptions{}, sel)
	},
	setup: (*Syncer).setupNetworkPolicies,
	informer: func(s *Syncer) cache.SharedIndexInformer {
		return s.vInf.Networking().V1().NetworkPolicies().Informer()
	},
}

func (s *Syncer) setupNetworkPolicies() (*controller, error) {
	c := s.newController("networkpolicies", 2, s.syncNetworkPolicy)
	vPol := s.vInf.Networking().V1().NetworkPolicies().Informer()
	if _, err := vPol.AddEventHandler(handler(c.byKey)); err != nil {
		return nil, err
	}
	// A namespace's labels decide which namespaces a namespaceSelector picks.
	if _, err := s.vInf.Core().V1().Namespaces().Informer().AddEventHandler(handler(func(metav1.Object) {
		for _, key := range vPol.GetStore().ListKeys() {
			c.add(key)
		}
	})); err != nil {
		return nil, err
	}
	_, err := s.hInf.Networking().V1().NetworkPolicies().Informer().AddEventHandler(handler(c.byVirtualKey(kindNetworkPolicy)))
	return c, err
}

func (s *Syncer) syncNetworkPolicy(ctx context.Context, key string) error {
	_, v, h, err := readBoth[networkingv1.NetworkPolicy](s, key, s.vInf.Networking().V1().NetworkPolicies().Lister().NetworkPolicies, s.hInf.Networking().V1().NetworkPolicies().Lister().NetworkPolicies)
	if err != nil {
		return err
	}
	api := s.host.NetworkingV1().NetworkPolicies(s.opts.HostNamespace)
	if v == nil || v.DeletionTimestamp != nil {
		return deleteHost(ctx, s, api, h, metav1.DeleteOptions{})
	}
	desired, err := s.translateNetworkPolicy(v)
	if err != nil {
		return err
	}
	_, err = ensureHost(ctx, s, api, kindNetworkPolicy, h, desired, func(cur, d *networkingv1.NetworkPolicy) bool { return takeField(&cur.Spec, d.Spec) })
	return s.reportClash(err, v)
}

// translateNetworkPolicy is the host NetworkPolicy of a virtual one. Its pod
// selector and every peer's pod and namespace selectors become selectors of
// host copies; IP blocks and ports stay as they are.
func (s *Syncer) translateNetworkPolicy(v *networkingv1.NetworkPolicy) (*networkingv1.NetworkPolicy, error) {
	h := &networkingv1.NetworkPolicy{ObjectMeta: s.hostMeta(kindNetworkPolicy, v, v.Labels, v.Annotations)}
	h.Spec = *v.Spec.DeepCopy()
	h.Spec.PodSelector = s.hostPodSelector(v.Spec.PodSelector, []string{v.Namespace})
	translate := func(peers []networkingv1.NetworkPolicyPeer) error {
		for i := range peers {
			p := &peers[i]
			if p.PodSelector == nil && p.NamespaceSelector == nil {
				continue // an IP block
			}
			namespaces := []string{v.Namespace}
			if p.NamespaceSelector != nil {
				var err error
				if namespaces, err = s.virtualNamespaces(p.NamespaceSelector); err != nil {
					return err
				}
			}
			var pods metav1.LabelSelector
			if p.PodSelector != nil {
				pods = *p.PodSelector
			}
			sel := s.hostPodSelector(pods, namespaces)
			p.PodSelector, p.NamespaceSelector = &sel, nil
		}
		return nil
	}
	for i := range h.Spec.Ingress {
		if err := translate(h.Spec.Ingress[i].From); err != nil {
			return nil, err
		}
	}
	for i := range h.Spec.Egress {
		if err := translate(h.Spec.Egress[i].To); err != nil {
			return nil, err
		}
	}
	return h, nil
}

// hostPodSelector selects the host copies of the pods that sel selects in
// the virtual namespaces given; none at all for no namespace.
func (s *Syncer) hostPodSelector(sel metav1.LabelSelector, namespaces []string) metav1.LabelSelector {
	out := *sel.DeepCopy()
	if out.MatchLabels == nil {
		out.MatchLabels = map[string]string{}
	}
	out.MatchLabels[LabelManagedBy] = s.opts.Name
	switch len(namespaces) {
	case 0:
		// With the label required above, a selector no pod matches.
		out.MatchExpressions = append(out.MatchExpressions, metav1.LabelSelectorRequirement{Key: LabelManagedBy, Operator: metav1.LabelSelectorOpDoesNotExist})
	case 1:
		out.MatchLabels[LabelNamespace] = namespaces[0]
	default:
		out.MatchExpressions = append(out.MatchExpressions, metav1.LabelSelectorRequirement{Key: LabelNamespace, Operator: metav1.LabelSelectorOpIn, Values: namespaces})
	}
	return out
}

// virtualNamespaces lists, sorted, the virtual namespaces sel selects.
func (s *Syncer) virtualNamespaces(sel *metav1.LabelSelector) ([]string, error) {
	selector, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return nil, err
	}
	list, err := s.vInf.Core().V1().Namespaces().Lister().List(selector)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(list))
	for _, ns := range list {
		names = append(names, ns.Name)
	}
	slices.Sort(names)
	return names, nil
}
