package syncer_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/vmatrix/vmatrix/syncer"
)

const ingressManifest = `apiVersion: v1
kind: Service
metadata: {name: web, namespace: edge}
spec:
  selector: {app: web}
  ports: [{port: 80}]
---
apiVersion: v1
kind: Secret
metadata: {name: web-tls, namespace: edge}
type: Opaque
data: {tls.crt: Y2VydA==, tls.key: a2V5}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web, namespace: edge}
spec:
  ingressClassName: nginx
  tls: [{hosts: [web.example.com], secretName: web-tls}]
  rules:
  - host: web.example.com
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
`

// testIngress: an Ingress goes down with its backend and TLS Secret pointed
// at the host copies, the host's status comes up, and a delete removes both
// host objects.
func (e *virtualEnv) testIngress(t *testing.T) {
	e.namespace(t, "edge")
	e.kubectl(t, ingressManifest, "apply", "-f", "-")
	host := func(name string) string { return syncer.HostName(name, "edge", e.name) }
	hostIngresses := hostClient.NetworkingV1().Ingresses(e.ns)
	var h *networkingv1.Ingress
	eventually(t, 30*time.Second, "the host Ingress", func(ctx context.Context) (bool, string) {
		var err error
		h, err = hostIngresses.Get(ctx, host("web"), metav1.GetOptions{})
		return err == nil, fmt.Sprint(err)
	})
	if got := h.Spec.Rules[0].HTTP.Paths[0].Backend.Service.Name; got != host("web") {
		t.Errorf("backend service %q, want %q", got, host("web"))
	}
	if got := h.Spec.TLS[0].SecretName; got != host("web-tls") {
		t.Errorf("TLS secret %q, want %q", got, host("web-tls"))
	}
	if h.Spec.IngressClassName == nil || *h.Spec.IngressClassName != "nginx" {
		t.Errorf("class %v, want nginx", h.Spec.IngressClassName)
	}
	eventually(t, 30*time.Second, "the host copy of the TLS Secret", func(ctx context.Context) (bool, string) {
		s, err := hostClient.CoreV1().Secrets(e.ns).Get(ctx, host("web-tls"), metav1.GetOptions{})
		return err == nil && string(s.Data["tls.crt"]) == "cert", fmt.Sprint(err)
	})
	// What the host's ingress controller reports comes up.
	h.Status.LoadBalancer.Ingress = []networkingv1.IngressLoadBalancerIngress{{IP: "192.0.2.7"}}
	if _, err := hostIngresses.UpdateStatus(context.Background(), h, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the host's load balancer status in the virtual Ingress", func(ctx context.Context) (bool, string) {
		v, err := e.v.NetworkingV1().Ingresses("edge").Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return len(v.Status.LoadBalancer.Ingress) == 1 && v.Status.LoadBalancer.Ingress[0].IP == "192.0.2.7", fmt.Sprint(v.Status)
	})
	e.kubectl(t, "", "-n", "edge", "delete", "ingress", "web")
	eventually(t, 30*time.Second, "the host Ingress and TLS Secret gone", func(ctx context.Context) (bool, string) {
		_, errIng := hostIngresses.Get(ctx, host("web"), metav1.GetOptions{})
		_, errSec := hostClient.CoreV1().Secrets(e.ns).Get(ctx, host("web-tls"), metav1.GetOptions{})
		return apierrors.IsNotFound(errIng) && apierrors.IsNotFound(errSec), fmt.Sprint(errIng, errSec)
	})
}

const networkPolicyManifest = `apiVersion: v1
kind: Namespace
metadata: {name: fence, labels: {team: a}}
---
apiVersion: v1
kind: Namespace
metadata: {name: fence-peer, labels: {team: a}}
---
apiVersion: v1
kind: Namespace
metadata: {name: fence-other, labels: {team: b}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web, namespace: fence}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Ingress]
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {team: a}}
      podSelector: {matchLabels: {role: client}}
    - podSelector: {matchLabels: {role: db}}
    - ipBlock: {cidr: 10.0.0.0/8}
    ports: [{port: 80}]
`

// testNetworkPolicy: a NetworkPolicy goes down with selectors that pick the
// host copies of the pods it picks in the virtual cluster, and follows the
// labels of the virtual namespaces.
func (e *virtualEnv) testNetworkPolicy(t *testing.T) {
	e.kubectl(t, networkPolicyManifest, "apply", "-f", "-")
	e.namespace(t, "fence")
	name := syncer.HostName("web", "fence", e.name)
	var h *networkingv1.NetworkPolicy
	eventually(t, 30*time.Second, "the host NetworkPolicy", func(ctx context.Context) (bool, string) {
		var err error
		h, err = hostClient.NetworkingV1().NetworkPolicies(e.ns).Get(ctx, name, metav1.GetOptions{})
		return err == nil, fmt.Sprint(err)
	})
	from := h.Spec.Ingress[0].From
	if len(from) != 3 || from[0].NamespaceSelector != nil || from[1].NamespaceSelector != nil {
		t.Fatalf("peers %+v: want three, none with a namespace selector", from)
	}
	if from[2].IPBlock == nil || from[2].IPBlock.CIDR != "10.0.0.0/8" || from[2].PodSelector != nil {
		t.Errorf("IP block peer %+v", from[2])
	}
	// The selectors pick the host copies of the pods the virtual ones pick.
	e.kubectl(t, `apiVersion: v1
kind: Pod
metadata: {name: web, namespace: fence, labels: {app: web, role: db}}
spec: {containers: [{name: c, image: registry.k8s.io/pause:3.10}]}
`, "apply", "-f", "-")
	var pod *corev1.Pod
	eventually(t, 30*time.Second, "the host copy of the pod", func(ctx context.Context) (bool, string) {
		var err error
		pod, err = hostClient.CoreV1().Pods(e.ns).Get(ctx, syncer.HostName("web", "fence", e.name), metav1.GetOptions{})
		return err == nil, fmt.Sprint(err)
	})
	matches := func(sel *metav1.LabelSelector) bool {
		s, err := metav1.LabelSelectorAsSelector(sel)
		if err != nil {
			t.Fatal(err)
		}
		return s.Matches(labels.Set(pod.Labels))
	}
	if !matches(&h.Spec.PodSelector) || !matches(from[1].PodSelector) {
		t.Errorf("the host policy's selectors %v and %v miss the host copy of the pod (labels %v)", h.Spec.PodSelector, from[1].PodSelector, pod.Labels)
	}
	if matches(from[0].PodSelector) {
		t.Errorf("the role=client peer %v picks a role=db pod", from[0].PodSelector)
	}
	namespacesOf := func(p networkingv1.NetworkPolicyPeer) []string {
		for _, r := range p.PodSelector.MatchExpressions {
			if r.Key == syncer.LabelNamespace {
				return r.Values
			}
		}
		return nil
	}
	if got := namespacesOf(from[0]); !slices.Equal(got, []string{"fence", "fence-peer"}) {
		t.Errorf("the namespace selector became namespaces %v, want fence and fence-peer", got)
	}
	// A namespace that gains the label is picked too.
	e.kubectl(t, "", "label", "namespace", "fence-other", "team=a", "--overwrite")
	eventually(t, 30*time.Second, "fence-other in the peer's namespaces", func(ctx context.Context) (bool, string) {
		h, err := hostClient.NetworkingV1().NetworkPolicies(e.ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		got := namespacesOf(h.Spec.Ingress[0].From[0])
		return slices.Equal(got, []string{"fence", "fence-other", "fence-peer"}), fmt.Sprint(got)
	})
	e.kubectl(t, "", "-n", "fence", "delete", "networkpolicy", "web")
	eventually(t, 30*time.Second, "the host NetworkPolicy gone", func(ctx context.Context) (bool, string) {
		_, err := hostClient.NetworkingV1().NetworkPolicies(e.ns).Get(ctx, name, metav1.GetOptions{})
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
}
