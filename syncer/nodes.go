package syncer

import (
	"context"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/tools/cache"
)

// Taints the node lifecycle controller of a real cluster manages. A virtual
// cluster runs without that controller, so nothing would ever remove them
// from a virtual Node: the syncer does not copy them and takes away the
// not-ready taint the apiserver puts on every new Node.
var lifecycleTaints = map[string]bool{
	corev1.TaintNodeNotReady:           true,
	corev1.TaintNodeUnreachable:        true,
	corev1.TaintNodeUnschedulable:      true,
	corev1.TaintNodeNetworkUnavailable: true,
	corev1.TaintNodeDiskPressure:       true,
	corev1.TaintNodeMemoryPressure:     true,
	corev1.TaintNodePIDPressure:        true,
}

func (s *Syncer) setupNodes() error {
	s.nodes = s.newController("nodes", 2, s.syncNode)
	if _, err := s.hNod.Core().V1().Nodes().Informer().AddEventHandler(handler(s.nodes.byKey)); err != nil {
		return err
	}
	if _, err := s.vInf.Core().V1().Nodes().Informer().AddEventHandler(handler(s.nodes.byKey)); err != nil {
		return err
	}
	if !s.opts.MirrorAllNodes {
		return nil // pods are placed by the virtual Nodes only when all are mirrored
	}
	// A pod waiting for a node may go elsewhere once a virtual Node comes,
	// goes or changes what decides placement (see place).
	_, err := s.vInf.Core().V1().Nodes().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { s.requeueUnscheduledPods() },
		DeleteFunc: func(any) { s.requeueUnscheduledPods() },
		UpdateFunc: func(old, cur any) {
			o, n := old.(*corev1.Node), cur.(*corev1.Node)
			if !equality.Semantic.DeepEqual(o.Labels, n.Labels) || !equality.Semantic.DeepEqual(o.Spec.Taints, n.Spec.Taints) || o.Spec.Unschedulable != n.Spec.Unschedulable {
				s.requeueUnscheduledPods()
			}
		},
	})
	return err
}

// requeueUnscheduledPods queues the virtual pods that have no node yet.
func (s *Syncer) requeueUnscheduledPods() {
	pods, _ := s.vInf.Core().V1().Pods().Lister().List(labels.Everything())
	for _, p := range pods {
		if p.Spec.NodeName == "" {
			s.pods.byKey(p)
		}
	}
}

// SimulatedNodeAnnotation, with the value "fake", marks a host node that
// KWOK simulates, such as the embedded host's.
const SimulatedNodeAnnotation = "kwok.x-k8s.io/node"

// virtualVersion is the virtual apiserver's version, e.g. "v1.36.3"; "" if
// it cannot be read (asked at the first node sync and after an upgrade).
func (s *Syncer) virtualVersion() string {
	s.versionMu.Lock()
	version := s.version
	s.versionMu.Unlock()
	if version != "" {
		return version
	}
	v, err := s.virtual.Discovery().ServerVersion()
	if err != nil {
		return "" // the node is synced again with its next heartbeat
	}
	s.versionMu.Lock()
	defer s.versionMu.Unlock()
	s.version = v.GitVersion
	return s.version
}

// Upgraded tells the syncer that the virtual apiserver runs another version
// now, which the virtual Nodes of simulated host nodes show.
func (s *Syncer) Upgraded() {
	s.versionMu.Lock()
	s.version = ""
	s.versionMu.Unlock()
	if s.nodes == nil {
		return // not started
	}
	nodes, _ := s.hNod.Core().V1().Nodes().Lister().List(labels.Everything())
	for _, n := range nodes {
		s.nodes.byKey(n)
	}
}

// syncNode makes virtual Node name mirror the host node of that name while it
// is wanted: always for a Ready, schedulable host node with MirrorAllNodes,
// else while a synced pod is on it (a virtual pod bound to a missing Node
// would be garbage-collected).
func (s *Syncer) syncNode(ctx context.Context, name string) error {
	h, err := notFound(s.hNod.Core().V1().Nodes().Lister().Get(name))
	if err != nil {
		return err
	}
	v, err := notFound(s.vInf.Core().V1().Nodes().Lister().Get(name))
	if err != nil {
		return err
	}
	api := s.virtual.CoreV1().Nodes()
	if v != nil && v.Labels[LabelManagedBy] != s.opts.Name {
		return nil // a Node someone else made in the virtual cluster
	}
	if h == nil || !(s.opts.MirrorAllNodes && nodeReady(h) && !h.Spec.Unschedulable || s.nodeInUse(name)) {
		if v == nil {
			return nil
		}
		uid := v.UID
		err := api.Delete(ctx, name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
		if apierrors.IsConflict(err) {
			return nil
		}
		return ignoreGone(err)
	}
	desired := virtualNode(h, s.opts.Name, s.virtualVersion())
	if s.kubelet != nil {
		// The virtual apiserver reaches the node's kubelet API at the syncer.
		addr, port := s.kubelet.endpoint()
		desired.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: addr}, {Type: corev1.NodeHostName, Address: h.Name}}
		desired.Status.DaemonEndpoints = corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: port}}
	}
	if v == nil {
		if v, err = api.Create(ctx, desired, metav1.CreateOptions{}); err != nil {
			return err
		}
	}
	desired.Labels, desired.Spec.Taints = nodeLabels(v, h, s.opts.Name), nodeTaints(v, h)
	desired.Spec.Unschedulable, desired.Annotations[annotationHostCordon] = nodeUnschedulable(v, h)
	notes := []string{annotationHostLabels, annotationHostTaints, annotationHostCordon}
	if !equality.Semantic.DeepEqual(v.Spec.Taints, desired.Spec.Taints) || v.Spec.Unschedulable != desired.Spec.Unschedulable ||
		!equality.Semantic.DeepEqual(v.Labels, desired.Labels) ||
		slices.ContainsFunc(notes, func(k string) bool { return v.Annotations[k] != desired.Annotations[k] }) {
		cp := v.DeepCopy()
		cp.Labels, cp.Spec.Taints, cp.Spec.Unschedulable = desired.Labels, desired.Spec.Taints, desired.Spec.Unschedulable
		if cp.Annotations == nil {
			cp.Annotations = map[string]string{}
		}
		for _, k := range notes {
			if desired.Annotations[k] == "" {
				delete(cp.Annotations, k)
			} else {
				cp.Annotations[k] = desired.Annotations[k]
			}
		}
		if v, err = api.Update(ctx, cp, metav1.UpdateOptions{}); err != nil {
			return err
		}
	}
	if !equality.Semantic.DeepEqual(nodeStatusSummary(&v.Status), nodeStatusSummary(&desired.Status)) {
		cp := v.DeepCopy()
		cp.Status = desired.Status
		_, err = api.UpdateStatus(ctx, cp, metav1.UpdateOptions{})
		return err
	}
	return nil
}

// nodeInUse reports whether a synced pod runs on the node, on either side.
func (s *Syncer) nodeInUse(name string) bool {
	h, _ := s.hInf.Core().V1().Pods().Informer().GetIndexer().ByIndex(indexNode, name)
	if len(h) > 0 {
		return true
	}
	v, _ := s.vInf.Core().V1().Pods().Informer().GetIndexer().ByIndex(indexNode, name)
	return len(v) > 0
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// A virtual Node's labels and taints: the host node's, which the host owns,
// and those the virtual cluster set on other keys, which stay. A test may
// label or taint a virtual Node to steer its pods; the syncer places them by
// the virtual Nodes (see place), and the virtual controller manager evicts
// them for a NoExecute taint. These annotations list the keys the host node
// had when last synced, so that one the host drops goes too.
const (
	annotationHostLabels = "vmatrix.io/host-labels"
	annotationHostTaints = "vmatrix.io/host-taints"
	annotationHostCordon = "vmatrix.io/host-cordon"
)

// nodeUnschedulable is whether virtual Node v is cordoned: while its host
// node is, or while it was cordoned in the virtual cluster (kubectl cordon
// or drain), which the syncer keeps, as a label set there. The annotation's
// value ("true" or "") marks a cordon that is the host's alone, which ends
// with the host's.
func nodeUnschedulable(v, h *corev1.Node) (bool, string) {
	virtual := v.Spec.Unschedulable && v.Annotations[annotationHostCordon] == ""
	if h.Spec.Unschedulable && !virtual {
		return true, "true"
	}
	return virtual || h.Spec.Unschedulable, ""
}

// nodeLabels are the labels virtual Node v is to have.
func nodeLabels(v, h *corev1.Node, vcluster string) map[string]string {
	owned := hostOwned(v, annotationHostLabels, slices.Collect(maps.Keys(h.Labels)))
	out := map[string]string{}
	for k, val := range v.Labels {
		if !owned[k] {
			out[k] = val
		}
	}
	for k, val := range h.Labels {
		out[k] = val
	}
	out[LabelManagedBy] = vcluster
	return out
}

// nodeTaints are the taints virtual Node v is to have, but for the
// lifecycle ones.
func nodeTaints(v, h *corev1.Node) []corev1.Taint {
	out := hostTaints(h)
	owned := hostOwned(v, annotationHostTaints, taintKeys(out))
	for _, t := range v.Spec.Taints {
		if !owned[taintKey(t)] && !lifecycleTaints[t.Key] {
			out = append(out, t)
		}
	}
	return out
}

// hostOwned is the set of keys the host owns on virtual Node v: those its
// host node has now and those it had when last synced (in annotation).
func hostOwned(v *corev1.Node, annotation string, now []string) map[string]bool {
	owned := map[string]bool{}
	for _, k := range append(now, strings.Split(v.Annotations[annotation], ",")...) {
		owned[k] = true
	}
	return owned
}

func taintKey(t corev1.Taint) string { return t.Key + ":" + string(t.Effect) }

func taintKeys(taints []corev1.Taint) []string {
	var keys []string
	for _, t := range taints {
		keys = append(keys, taintKey(t))
	}
	return keys
}

// hostTaints are a host node's taints but for the lifecycle ones.
func hostTaints(h *corev1.Node) []corev1.Taint {
	var taints []corev1.Taint
	for _, t := range h.Spec.Taints {
		if !lifecycleTaints[t.Key] {
			taints = append(taints, t)
		}
	}
	return taints
}

func joinSorted(keys []string) string { return strings.Join(slices.Sorted(slices.Values(keys)), ",") }

// virtualNode is the virtual copy of a host node: its labels, schedulable
// taints, capacity, addresses and conditions.
func virtualNode(h *corev1.Node, vcluster, version string) *corev1.Node {
	labels := map[string]string{}
	for k, v := range h.Labels {
		labels[k] = v
	}
	labels[LabelManagedBy] = vcluster
	taints := hostTaints(h)
	st := corev1.NodeStatus{
		Capacity: h.Status.Capacity, Allocatable: h.Status.Allocatable,
		Addresses: h.Status.Addresses, NodeInfo: h.Status.NodeInfo, DaemonEndpoints: h.Status.DaemonEndpoints,
		Phase: h.Status.Phase,
	}
	if h.Annotations[SimulatedNodeAnnotation] == "fake" && version != "" {
		// A simulated kubelet is of no version of its own: it shows the
		// virtual cluster's, as a node of a kind cluster of that version.
		st.NodeInfo.KubeletVersion, st.NodeInfo.KubeProxyVersion = version, version
	}
	for _, c := range h.Status.Conditions {
		st.Conditions = append(st.Conditions, *c.DeepCopy())
	}
	annotations := map[string]string{
		annotationHostLabels: joinSorted(slices.Collect(maps.Keys(h.Labels))), annotationHostTaints: joinSorted(taintKeys(taints)),
	}
	if h.Spec.Unschedulable {
		annotations[annotationHostCordon] = "true"
	}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: h.Name, Labels: labels, Annotations: annotations},
		Spec:       corev1.NodeSpec{Taints: taints, Unschedulable: h.Spec.Unschedulable},
		Status:     st,
	}
}

type nodeStatusView struct {
	Capacity, Allocatable corev1.ResourceList
	Addresses             []corev1.NodeAddress
	KubeletPort           int32
	Conditions            []conditionView
	KubeletVersion, OS    string
}

// nodeStatusSummary leaves out heartbeat times: the host renews them every
// few seconds, and copying each renewal would only load the virtual cluster.
func nodeStatusSummary(st *corev1.NodeStatus) nodeStatusView {
	// Of the node info only what every version keeps: newer fields would be
	// dropped by an older virtual apiserver and never compare equal.
	v := nodeStatusView{Capacity: st.Capacity, Allocatable: st.Allocatable, Addresses: st.Addresses,
		KubeletPort:    st.DaemonEndpoints.KubeletEndpoint.Port,
		KubeletVersion: st.NodeInfo.KubeletVersion, OS: st.NodeInfo.OperatingSystem}
	for _, c := range st.Conditions {
		v.Conditions = append(v.Conditions, conditionView{string(c.Type), string(c.Status), c.Reason, c.Message})
	}
	return v
}
