package gotest

import (
	"context"
	"testing"
	"time"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/vmatrix/vmatrix/fixtures"
	"github.com/vmatrix/vmatrix/framework"
	"github.com/vmatrix/vmatrix/framework/vmatrixtest"
)

func TestDeployExposeScale(t *testing.T) {
	vmatrixtest.ForEachVersion(t, versions, func(t *testing.T, vc *framework.VirtualCluster) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		ns := vmatrixtest.Namespace(t, vc)

		// Deploy and expose: Deployment "web" (2 replicas) and Service "web".
		if err := fixtures.Apply(ctx, vc, ns, fixtures.DeploymentWithService); err != nil {
			t.Fatal(err)
		}
		if _, err := fixtures.WaitFor(ctx, vc, fixtures.Deployment(ns, "web"), fixtures.DeploymentAvailable()); err != nil {
			t.Fatal(err)
		}
		svc, err := fixtures.WaitFor(ctx, vc, fixtures.Service(ns, "web"), fixtures.ServiceHasClusterIP())
		if err != nil {
			t.Fatal(err)
		}

		// Scale through the scale subresource, as kubectl scale does.
		_, err = vc.Client().AppsV1().Deployments(ns).UpdateScale(ctx, "web", &autoscalingv1.Scale{
			ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
			Spec:       autoscalingv1.ScaleSpec{Replicas: 3},
		}, metav1.UpdateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fixtures.WaitFor(ctx, vc, fixtures.Deployment(ns, "web"), fixtures.DeploymentAvailable()); err != nil {
			t.Fatal(err)
		}

		// Read the status back.
		d, err := vc.Client().AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if d.Status.Replicas != 3 {
			t.Errorf("status.replicas = %d, want 3", d.Status.Replicas)
		}
		ip, _, _ := unstructured.NestedString(svc.Object, "spec", "clusterIP")
		t.Logf("%s: deployment web replicas=%d updated=%d available=%d; service web at %s",
			vc.Version(), d.Status.Replicas, d.Status.UpdatedReplicas, d.Status.AvailableReplicas, ip)
	})
}
