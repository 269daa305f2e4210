package host_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/vmatrix/vmatrix/internal/testkit/testhost"
	"github.com/vmatrix/vmatrix/syncer"
)

// TestDeletedNamespaceFinished: a virtual cluster's host namespace, once
// deleted, goes at once with everything in it, well before the 5 s the
// namespace controller waits, so that a cluster made again under the same
// name does not wait for it. Nothing of it shows up in a namespace of the
// same name made again, and an object a finalizer holds holds the namespace.
func TestDeletedNamespaceFinished(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the embedded host (not under -short)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	h, _, stop, err := testhost.Start(ctx, "vmatrix-host-test-", 1)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	c, err := kubernetes.NewForConfig(h.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	makeNamespace := func(name string) {
		t.Helper()
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{syncer.LabelManagedBy: name}}}
		if _, err := c.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	gone := func(name string, within time.Duration) error {
		return wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, within, true, func(ctx context.Context) (bool, error) {
			_, err := c.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
			return apierrors.IsNotFound(err), nil
		})
	}

	makeNamespace("fin-a")
	if _, err := c.CoreV1().ConfigMaps("fin-a").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "left"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	event := &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "left"}, InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: "fin-a", Name: "p"}, Reason: "Left", Type: corev1.EventTypeNormal}
	if _, err := c.CoreV1().Events("fin-a").Create(ctx, event, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// What the host's controllers add to a new namespace is there too.
	old := map[types.UID]string{}
	err = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		uids, err := contents(ctx, c, "fin-a")
		old = uids
		return err == nil && len(uids) >= 4, nil // left, its Event, kube-root-ca.crt, default
	})
	if err != nil {
		t.Fatalf("the new namespace's ServiceAccount and CA ConfigMap never came: %v", old)
	}
	start := time.Now()
	if err := c.CoreV1().Namespaces().Delete(ctx, "fin-a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := gone("fin-a", 4*time.Second); err != nil {
		t.Fatalf("the deleted namespace is still there after %s, as if left to the namespace controller: %v", time.Since(start).Round(time.Millisecond), err)
	}
	t.Logf("the deleted namespace went in %s", time.Since(start).Round(time.Millisecond))
	makeNamespace("fin-a")
	defer c.CoreV1().Namespaces().Delete(context.Background(), "fin-a", metav1.DeleteOptions{})
	again, err := contents(ctx, c, "fin-a")
	if err != nil {
		t.Fatal(err)
	}
	for uid, what := range again {
		if _, ok := old[uid]; ok {
			t.Errorf("%s of the deleted namespace is in the new one", what)
		}
	}

	// A namespace that is no virtual cluster's is the namespace controller's.
	if _, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "plain"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := c.CoreV1().Namespaces().Delete(ctx, "plain", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := gone("plain", 2*time.Second); err == nil {
		t.Error("a namespace without the virtual cluster label went before the namespace controller's grace period")
	}

	makeNamespace("fin-b")
	held := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "held", Finalizers: []string{"vmatrix.io/test"}}}
	if _, err := c.CoreV1().ConfigMaps("fin-b").Create(ctx, held, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := c.CoreV1().Namespaces().Delete(ctx, "fin-b", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	err = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		cm, err := c.CoreV1().ConfigMaps("fin-b").Get(ctx, "held", metav1.GetOptions{})
		return err == nil && cm.DeletionTimestamp != nil, nil
	})
	if err != nil {
		t.Fatalf("the held ConfigMap was never deleted: %v", err)
	}
	if _, err := c.CoreV1().Namespaces().Get(ctx, "fin-b", metav1.GetOptions{}); err != nil {
		t.Fatalf("the namespace went while a finalizer held an object in it: %v", err)
	}
	patch := []byte(`{"metadata":{"finalizers":null}}`)
	if _, err := c.CoreV1().ConfigMaps("fin-b").Patch(ctx, "held", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := gone("fin-b", 30*time.Second); err != nil {
		t.Fatal(fmt.Errorf("the namespace stays once the finalizer let go: %w", err))
	}
}

// contents are the ConfigMaps, ServiceAccounts and Events in namespace, by
// UID.
func contents(ctx context.Context, c kubernetes.Interface, namespace string) (map[types.UID]string, error) {
	uids := map[types.UID]string{}
	cms, err := c.CoreV1().ConfigMaps(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	for _, o := range cms.Items {
		uids[o.UID] = "ConfigMap " + o.Name
	}
	sas, err := c.CoreV1().ServiceAccounts(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	for _, o := range sas.Items {
		uids[o.UID] = "ServiceAccount " + o.Name
	}
	events, err := c.CoreV1().Events(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	for _, o := range events.Items {
		uids[o.UID] = "Event " + o.Name
	}
	return uids, nil
}
