package syncer_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const colorDaemon = `apiVersion: apps/v1
kind: DaemonSet
metadata: {name: blue, namespace: paint}
spec:
  selector:
    matchLabels: {app: blue}
  template:
    metadata:
      labels: {app: blue}
    spec:
      nodeSelector: {vmatrix.io/test-color: blue}
      containers:
      - {name: c, image: nginx:1.27}
---
apiVersion: v1
kind: Pod
metadata: {name: green, namespace: paint}
spec:
  nodeSelector: {vmatrix.io/test-color: green}
  containers:
  - {name: c, image: nginx:1.27}
`

// testNodeLabels labels and taints virtual Nodes, as the DaemonSet and
// taint conformance tests do, and checks that the labels and taints stay,
// that pods go where they say though the host's nodes have no such label,
// and that a NoExecute taint evicts.
func (e *virtualEnv) testNodeLabels(t *testing.T) {
	e.namespace(t, "paint")
	e.kubectl(t, "", "label", "node", "vmatrix-node-1", "vmatrix.io/test-color=blue")
	t.Cleanup(func() {
		e.kubectl(t, "", "label", "node", "vmatrix-node-1", "vmatrix-node-2", "vmatrix.io/test-color-")
		e.kubectl(t, "", "delete", "namespace", "paint", "--wait=false")
	})
	e.kubectl(t, colorDaemon, "apply", "-f", "-")
	e.waitOnNode(t, "app=blue", "vmatrix-node-1")
	// The pod that no node matches waits on the host, unscheduled, and
	// unbound in the virtual cluster.
	eventually(t, 30*time.Second, "host copy of pod green, unscheduled", func(ctx context.Context) (bool, string) {
		h, err := hostClient.CoreV1().Pods(e.ns).Get(ctx, "green-x-paint-x-"+e.name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return h.Spec.NodeName == "", "on node " + h.Spec.NodeName
	})
	if p, err := e.v.CoreV1().Pods("paint").Get(context.Background(), "green", metav1.GetOptions{}); err != nil || p.Spec.NodeName != "" {
		t.Fatalf("pod green bound to %q (%v) with no node labelled green", p.Spec.NodeName, err)
	}
	e.kubectl(t, "", "label", "node", "vmatrix-node-2", "vmatrix.io/test-color=green")
	e.waitOnNode(t, "app!=blue", "vmatrix-node-2")
	// A NoExecute taint set in the virtual cluster evicts the pod that does
	// not tolerate it, on both sides.
	e.kubectl(t, "", "taint", "node", "vmatrix-node-2", "vmatrix.io/test=evict:NoExecute")
	t.Cleanup(func() { e.kubectl(t, "", "taint", "node", "vmatrix-node-2", "vmatrix.io/test-") })
	eventually(t, 60*time.Second, "pod green evicted", func(ctx context.Context) (bool, string) {
		_, err := e.v.CoreV1().Pods("paint").Get(ctx, "green", metav1.GetOptions{})
		_, herr := hostClient.CoreV1().Pods(e.ns).Get(ctx, "green-x-paint-x-"+e.name, metav1.GetOptions{})
		return apierrors.IsNotFound(err) && apierrors.IsNotFound(herr), fmt.Sprintf("virtual: %v, host: %v", err, herr)
	})
	// The label and taint set in the virtual cluster outlive the syncer's
	// node updates.
	if out := e.kubectl(t, "", "get", "node", "vmatrix-node-2", "-o", "jsonpath={.spec.taints[*].key}"); out != "vmatrix.io/test" {
		t.Errorf("vmatrix-node-2's taints are %q", out)
	}
	out := e.kubectl(t, "", "get", "node", "vmatrix-node-1", "-o", "jsonpath={.metadata.labels.vmatrix\\.io/test-color}")
	if out != "blue" {
		t.Errorf("vmatrix-node-1's label is %q, want blue", out)
	}
}

// waitOnNode waits for the virtual pods of namespace paint that selector
// picks to run on node, as their host copies do.
func (e *virtualEnv) waitOnNode(t *testing.T, selector, node string) {
	t.Helper()
	eventually(t, 60*time.Second, "pods "+selector+" running on "+node, func(ctx context.Context) (bool, string) {
		pods, err := e.v.CoreV1().Pods("paint").List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil || len(pods.Items) == 0 {
			return false, fmt.Sprint("no pods: ", err)
		}
		for _, p := range pods.Items {
			if p.Status.Phase != corev1.PodRunning || p.Spec.NodeName != node {
				return false, fmt.Sprintf("%s %s on %q", p.Name, p.Status.Phase, p.Spec.NodeName)
			}
		}
		return true, ""
	})
}

// testDrain drains a virtual Node as `kubectl drain` does before a node's
// maintenance: the node stays cordoned though the syncer updates it from the
// host, the evicted pods come back on the other nodes, on both sides, and
// `kubectl uncordon` ends it.
func (e *virtualEnv) testDrain(t *testing.T) {
	e.namespace(t, "drain")
	t.Cleanup(func() {
		e.kubectl(t, "", "uncordon", "vmatrix-node-0")
		e.kubectl(t, "", "delete", "namespace", "drain", "--wait=false")
	})
	e.kubectl(t, "", "create", "deployment", "web", "-n", "drain", "--image=nginx:1.27", "--replicas=4")
	e.kubectl(t, "", "rollout", "status", "-n", "drain", "deployment/web", "--timeout=60s")
	e.kubectl(t, "", "drain", "vmatrix-node-0", "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=60s")
	eventually(t, 60*time.Second, "4 pods of web running, none on the drained node", func(ctx context.Context) (bool, string) {
		pods, err := e.v.CoreV1().Pods("drain").List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil {
			return false, err.Error()
		}
		running := 0
		for _, p := range pods.Items {
			h, err := hostClient.CoreV1().Pods(e.ns).Get(ctx, p.Name+"-x-drain-x-"+e.name, metav1.GetOptions{})
			if err != nil {
				return false, err.Error()
			}
			if p.Spec.NodeName == "vmatrix-node-0" || h.Spec.NodeName == "vmatrix-node-0" {
				return false, p.Name + " is on vmatrix-node-0"
			}
			if p.Status.Phase == corev1.PodRunning {
				running++
			}
		}
		return running == 4 && len(pods.Items) == 4, fmt.Sprintf("%d pods, %d running", len(pods.Items), running)
	})
	if out := e.kubectl(t, "", "get", "node", "vmatrix-node-0"); !strings.Contains(out, "Ready,SchedulingDisabled") {
		t.Errorf("the drained node is not listed as cordoned:\n%s", out)
	}
	e.kubectl(t, "", "uncordon", "vmatrix-node-0")
	eventually(t, 30*time.Second, "vmatrix-node-0 schedulable again", func(ctx context.Context) (bool, string) {
		n, err := e.v.CoreV1().Nodes().Get(ctx, "vmatrix-node-0", metav1.GetOptions{})
		return err == nil && !n.Spec.Unschedulable, fmt.Sprint(err)
	})
}
