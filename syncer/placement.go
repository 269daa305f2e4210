package syncer

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
	"k8s.io/klog/v2"
)

// noVirtualNode is a node label no node has: a host pod that requires it
// waits, as the virtual pod would with no virtual Node matching its rules.
const noVirtualNode = "vmatrix.io/no-virtual-node-matches"

// place makes the host scheduler choose among the nodes that the virtual
// cluster's own rules allow. The host scheduler reads the host's node labels
// and taints; where a virtual Node's differ from its host node's (a test
// labelled or tainted the node in the virtual cluster, as the DaemonSet
// conformance test does) or the virtual pod names its node, the pod's node
// selector and required node affinity give way to the names of the virtual
// Nodes it may go to. Everything else, preferences and pod affinity
// included, is left to the host.
func (s *Syncer) place(v *corev1.Pod, spec *corev1.PodSpec) {
	var names []string
	switch {
	case v.Spec.NodeName != "":
		names = []string{v.Spec.NodeName}
	case s.opts.MirrorAllNodes && s.vInf != nil:
		// Only when every host node is mirrored is the list of virtual
		// Nodes the whole choice.
		nodes, _ := s.vInf.Core().V1().Nodes().Lister().List(labels.Everything())
		hostNode := func(name string) *corev1.Node {
			h, _ := s.hNod.Core().V1().Nodes().Lister().Get(name)
			return h
		}
		var differ bool
		if names, differ = virtualChoice(v, nodes, hostNode, s.opts.Name); !differ {
			return
		}
	default:
		return
	}
	pinToNodes(spec, names)
}

// virtualChoice is the names of the virtual Nodes (of this virtual cluster)
// that p may go to, by their labels and taints, and whether that choice
// differs from what the same rules pick among their host nodes.
func virtualChoice(p *corev1.Pod, nodes []*corev1.Node, hostNode func(string) *corev1.Node, vcluster string) (names []string, differ bool) {
	rules := nodeaffinity.GetRequiredNodeAffinity(p)
	fits := func(n *corev1.Node) bool {
		if n == nil {
			return false
		}
		// The scheduler's NodeUnschedulable: a cordoned node takes only
		// pods that tolerate this taint (a DaemonSet's do).
		cordoned := n.Spec.Unschedulable && !corev1helpers.TolerationsTolerateTaint(klog.Background(), p.Spec.Tolerations,
			&corev1.Taint{Key: corev1.TaintNodeUnschedulable, Effect: corev1.TaintEffectNoSchedule}, false)
		match, _ := rules.Match(n)
		_, untolerated := corev1helpers.FindMatchingUntoleratedTaint(klog.Background(), n.Spec.Taints, p.Spec.Tolerations, keepsPodsOff, false)
		return match && !untolerated && !cordoned
	}
	for _, n := range nodes {
		if n.Labels[LabelManagedBy] != vcluster {
			continue
		}
		inVirtual, inHost := fits(n), fits(hostNode(n.Name))
		if inVirtual {
			names = append(names, n.Name)
		}
		differ = differ || inVirtual != inHost
	}
	slices.Sort(names)
	return names, differ
}

// keepsPodsOff: the taints the scheduler heeds, but for the node lifecycle
// ones, which a virtual Node never has: the host's scheduler heeds those
// itself, and they come and go with a node's health.
func keepsPodsOff(t *corev1.Taint) bool {
	return (t.Effect == corev1.TaintEffectNoSchedule || t.Effect == corev1.TaintEffectNoExecute) && !lifecycleTaints[t.Key]
}

// pinToNodes replaces a pod spec's node selector and required node affinity
// with "one of these nodes", by name.
func pinToNodes(spec *corev1.PodSpec, names []string) {
	var terms []corev1.NodeSelectorTerm
	for _, n := range names {
		// A field requirement on metadata.name takes exactly one value:
		// terms are ORed, one per node.
		terms = append(terms, corev1.NodeSelectorTerm{MatchFields: []corev1.NodeSelectorRequirement{
			{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{n}},
		}})
	}
	if len(terms) == 0 {
		terms = []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{
			{Key: noVirtualNode, Operator: corev1.NodeSelectorOpExists},
		}}}
	}
	spec.NodeSelector = nil
	if spec.Affinity == nil {
		spec.Affinity = &corev1.Affinity{}
	}
	if spec.Affinity.NodeAffinity == nil {
		spec.Affinity.NodeAffinity = &corev1.NodeAffinity{}
	}
	spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution = &corev1.NodeSelector{NodeSelectorTerms: terms}
}

// annotationPlacement on a host pod is a digest of the node rules the
// syncer gave it. The syncer compares digests, not the rules themselves, so
// that a host that adds rules of its own (an admission plugin, a webhook)
// never looks like a change of the virtual cluster's.
const annotationPlacement = "vmatrix.io/placement"

// notePlacement writes the digest of a host pod's node rules on it.
func notePlacement(h *corev1.Pod) {
	var affinity *corev1.NodeAffinity
	if h.Spec.Affinity != nil {
		affinity = h.Spec.Affinity.NodeAffinity
	}
	data, _ := json.Marshal([]any{h.Spec.NodeSelector, affinity})
	sum := sha256.Sum256(data)
	if h.Annotations == nil {
		h.Annotations = map[string]string{}
	}
	h.Annotations[annotationPlacement] = hex.EncodeToString(sum[:8])
}

// placementChanged reports whether a host pod was given other node rules
// than the virtual cluster wants now. Only a pod the host has not scheduled
// yet is placed again: its rules are immutable, so the syncer makes it anew.
func placementChanged(cur, desired *corev1.Pod) bool {
	return cur.Spec.NodeName == "" && cur.Annotations[annotationPlacement] != desired.Annotations[annotationPlacement]
}
