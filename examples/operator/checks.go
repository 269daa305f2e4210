package operator

import (
	"context"
	"fmt"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Check is what both example suites prove on a cluster where the operator
// runs: in a new namespace, the mutating webhook defaults a WebApp, the
// validating one refuses too many replicas, the conversion webhook serves
// either version of the same object, the reconciler's Deployment becomes
// Available and the WebApp says so; and deleting the namespace with all of
// it completes. It returns the first thing that does not hold.
func Check(ctx context.Context, c client.Client) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "webapp-"}}
	if err := c.Create(ctx, ns); err != nil {
		return err
	}
	namespace := ns.Name

	app := &WebApp{ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: namespace}, Spec: WebAppSpec{Replicas: 2}}
	if err := c.Create(ctx, app); err != nil {
		return fmt.Errorf("creating WebApp shop: %w", err)
	}
	if app.Spec.Image != DefaultImage || app.Labels[ManagedLabel] != "true" {
		return fmt.Errorf("the mutating webhook did not default WebApp shop: image %q, labels %v", app.Spec.Image, app.Labels)
	}
	tooBig := &WebApp{ObjectMeta: metav1.ObjectMeta{Name: "huge", Namespace: namespace}, Spec: WebAppSpec{Replicas: 50}}
	if err := c.Create(ctx, tooBig); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("0 to %d replicas", MaxReplicas)) {
		return fmt.Errorf("the validating webhook let 50 replicas through, or refused them for another reason: %v", err)
	}

	// One object, two versions: stored as v2, read as v1 through the
	// conversion webhook, and the other way round.
	var asV1 WebAppV1
	if err := c.Get(ctx, types.NamespacedName{Namespace: namespace, Name: "shop"}, &asV1); err != nil {
		return fmt.Errorf("reading WebApp shop as v1: %w", err)
	}
	if asV1.Spec.Size != 2 {
		return fmt.Errorf("WebApp shop as v1: size %d, want 2", asV1.Spec.Size)
	}
	old := &WebAppV1{ObjectMeta: metav1.ObjectMeta{Name: "legacy", Namespace: namespace}, Spec: WebAppV1Spec{Size: 1, Image: "registry.example/legacy:1"}}
	if err := c.Create(ctx, old); err != nil {
		return fmt.Errorf("creating WebApp legacy as v1: %w", err)
	}
	var asV2 WebApp
	if err := c.Get(ctx, types.NamespacedName{Namespace: namespace, Name: "legacy"}, &asV2); err != nil {
		return fmt.Errorf("reading WebApp legacy as v2: %w", err)
	}
	if asV2.Spec.Replicas != 1 {
		return fmt.Errorf("WebApp legacy as v2: replicas %d, want 1", asV2.Spec.Replicas)
	}

	// The reconciler's work, as a user sees it.
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		var dep appsv1.Deployment
		if err := c.Get(ctx, types.NamespacedName{Namespace: namespace, Name: "shop"}, &dep); err != nil {
			return false, nil
		}
		var w WebApp
		if err := c.Get(ctx, types.NamespacedName{Namespace: namespace, Name: "shop"}, &w); err != nil {
			return false, err
		}
		return dep.Status.AvailableReplicas == 2 && w.Status.AvailableReplicas == 2 && meta.IsStatusConditionTrue(w.Status.Conditions, "Available"), nil
	})
	if err != nil {
		return fmt.Errorf("waiting for WebApp shop to be Available with 2 replicas: %w", err)
	}
	var svc corev1.Service
	if err := c.Get(ctx, types.NamespacedName{Namespace: namespace, Name: "shop"}, &svc); err != nil || svc.Spec.ClusterIP == "" {
		return fmt.Errorf("Service shop: %v (cluster IP %q)", err, svc.Spec.ClusterIP)
	}

	// A namespace with all of that in it finishes deleting: the namespace
	// controller and the garbage collector run, unlike in a bare apiserver.
	if err := c.Delete(ctx, ns); err != nil {
		return err
	}
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		err := c.Get(ctx, types.NamespacedName{Name: namespace}, &corev1.Namespace{})
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		return fmt.Errorf("waiting for namespace %s to finish deleting: %w", namespace, err)
	}
	return nil
}
