package syncer_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
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

// testNodeLabels labels virtual Nodes, as the DaemonSet conformance test
// does, and checks that the labels stay and that pods go where they say,
// though the host's nodes have no such label.
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
	// The label set in the virtual cluster outlives the syncer's node updates.
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
