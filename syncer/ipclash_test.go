package syncer_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// testServiceIPTaken: a virtual Service whose cluster IP the host has given
// to another Service gets the host's choice instead. The syncer makes the
// virtual Service again, whole (labels, annotations, owners, finalizers),
// and while that is refused it retries and keeps the host copy.
func (e *virtualEnv) testServiceIPTaken(t *testing.T) {
	ctx := context.Background()
	// Another tenant's Service on the host holds the IP first.
	taker := "ip-taker-" + e.name
	if _, err := hostClient.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: taker}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	defer hostClient.CoreV1().Namespaces().Delete(ctx, taker, metav1.DeleteOptions{})
	held, err := hostClient.CoreV1().Services(taker).Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "holder"},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	taken := held.Spec.ClusterIP

	e.namespace(t, "held")
	owner, err := e.v.CoreV1().ConfigMaps("held").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "owner"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Until the test lifts it, the virtual apiserver refuses the Service
	// with any IP but the taken one: the syncer's re-create fails.
	e.kubectl(t, fmt.Sprintf(`apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: hold-ip}
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules: [{apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [services]}]
  validations:
  - {expression: "object.metadata.name != 'taken' || object.spec.clusterIP == '%s'", message: held by the test}
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: hold-ip}
spec: {policyName: hold-ip, validationActions: [Deny]}
`, taken), "apply", "-f", "-")
	defer e.kubectl(t, "", "delete", "validatingadmissionpolicy/hold-ip", "validatingadmissionpolicybinding/hold-ip", "--ignore-not-found")
	probe := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "taken"}, Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}}}
	eventually(t, 30*time.Second, "the policy in force", func(ctx context.Context) (bool, string) {
		_, err := e.v.CoreV1().Services("held").Create(ctx, probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return apierrors.IsInvalid(err) || apierrors.IsForbidden(err), fmt.Sprint(err)
	})

	want := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "taken", Namespace: "held",
			Labels:          map[string]string{"app": "taken", "tier": "front"},
			Annotations:     map[string]string{"example.com/note": "kept"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "ConfigMap", Name: owner.Name, UID: owner.UID}},
			Finalizers:      []string{"example.com/keep"}},
		Spec: corev1.ServiceSpec{ClusterIP: taken, Selector: map[string]string{"app": "taken"}, Ports: []corev1.ServicePort{{Name: "http", Port: 80}}},
	}
	if _, err := e.v.CoreV1().Services("held").Create(ctx, want, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	hostName := "taken-x-held-x-" + e.name
	var hsvc *corev1.Service
	eventually(t, 30*time.Second, "the host copy with an IP of the host's choosing", func(ctx context.Context) (bool, string) {
		hsvc, err = hostClient.CoreV1().Services(e.ns).Get(ctx, hostName, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return hsvc.Spec.ClusterIP != taken, "host IP " + hsvc.Spec.ClusterIP
	})
	eventually(t, 30*time.Second, "the virtual Service gone while its re-create is refused", func(ctx context.Context) (bool, string) {
		_, err := e.v.CoreV1().Services("held").Get(ctx, "taken", metav1.GetOptions{})
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
	for range 6 { // retried, and the host copy kept meanwhile
		time.Sleep(500 * time.Millisecond)
		now, err := hostClient.CoreV1().Services(e.ns).Get(ctx, hostName, metav1.GetOptions{})
		if err != nil || now.UID != hsvc.UID {
			t.Fatalf("the host copy went while the virtual Service was being made again: %v", err)
		}
	}
	e.kubectl(t, "", "delete", "validatingadmissionpolicybinding/hold-ip")
	var vsvc *corev1.Service
	eventually(t, 60*time.Second, "the virtual Service made again with the host's IP", func(ctx context.Context) (bool, string) {
		vsvc, err = e.v.CoreV1().Services("held").Get(ctx, "taken", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return vsvc.Spec.ClusterIP == hsvc.Spec.ClusterIP, fmt.Sprintf("virtual %s, host %s", vsvc.Spec.ClusterIP, hsvc.Spec.ClusterIP)
	})
	var lost []string
	if !maps.Equal(vsvc.Labels, want.Labels) {
		lost = append(lost, fmt.Sprint("labels ", vsvc.Labels))
	}
	if !maps.Equal(vsvc.Annotations, want.Annotations) {
		lost = append(lost, fmt.Sprint("annotations ", vsvc.Annotations))
	}
	if len(vsvc.OwnerReferences) != 1 || vsvc.OwnerReferences[0].UID != owner.UID {
		lost = append(lost, fmt.Sprint("owners ", vsvc.OwnerReferences))
	}
	if !slices.Equal(vsvc.Finalizers, want.Finalizers) {
		lost = append(lost, fmt.Sprint("finalizers ", vsvc.Finalizers))
	}
	if len(lost) > 0 {
		t.Errorf("the Service made again lost: %s", strings.Join(lost, "; "))
	}
	if now, err := hostClient.CoreV1().Services(e.ns).Get(ctx, hostName, metav1.GetOptions{}); err != nil || now.UID != hsvc.UID {
		t.Errorf("the host copy was replaced: %v", err)
	}
	e.kubectl(t, "", "-n", "held", "patch", "service", "taken", "--type=merge", "-p", `{"metadata":{"finalizers":null}}`)
	e.kubectl(t, "", "-n", "held", "delete", "service", "taken", "--wait=true", "--timeout=30s")
	eventually(t, 30*time.Second, "the host copy deleted with the virtual Service", func(ctx context.Context) (bool, string) {
		_, err := hostClient.CoreV1().Services(e.ns).Get(ctx, hostName, metav1.GetOptions{})
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
}
