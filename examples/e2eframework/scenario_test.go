package e2eframework

import (
	"context"
	"testing"
	"time"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/e2e-framework/pkg/envconf"
	"sigs.k8s.io/e2e-framework/pkg/features"
	"sigs.k8s.io/e2e-framework/support"

	"github.com/vmatrix/vmatrix/fixtures"
	"github.com/vmatrix/vmatrix/framework"
	"github.com/vmatrix/vmatrix/framework/support/vmatrix"
)

type nsKey struct{}

// scenario is the example's feature for one version.
func scenario(version string) features.Feature {
	cluster := func(t *testing.T, ctx context.Context) *framework.VirtualCluster {
		vc := vmatrix.ClusterFromContext(ctx, version)
		if vc == nil {
			t.Fatalf("no cluster of %s in the context", version)
		}
		return vc
	}
	rolledOut := func(t *testing.T, ctx context.Context, vc *framework.VirtualCluster, ns string, n int32) {
		cond := fixtures.DeploymentAvailable()
		ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		if _, err := fixtures.WaitFor(ctx, vc, fixtures.Deployment(ns, "web"), cond); err != nil {
			t.Fatal(err)
		}
	}
	return features.New("web app on "+version).
		WithLabel("kubernetes", version).
		Setup(func(ctx context.Context, t *testing.T, _ *envconf.Config) context.Context {
			ns, err := cluster(t, ctx).NewNamespace(ctx, "e2e")
			if err != nil {
				t.Fatal(err)
			}
			return context.WithValue(ctx, nsKey{}, ns)
		}).
		Assess("deploys", func(ctx context.Context, t *testing.T, _ *envconf.Config) context.Context {
			vc, ns := cluster(t, ctx), ctx.Value(nsKey{}).(string)
			if err := fixtures.Apply(ctx, vc, ns, fixtures.DeploymentWithService); err != nil {
				t.Fatal(err)
			}
			rolledOut(t, ctx, vc, ns, 2)
			return ctx
		}).
		Assess("exposes", func(ctx context.Context, t *testing.T, _ *envconf.Config) context.Context {
			vc, ns := cluster(t, ctx), ctx.Value(nsKey{}).(string)
			if _, err := fixtures.WaitFor(ctx, vc, fixtures.Service(ns, "web"), fixtures.ServiceHasClusterIP()); err != nil {
				t.Fatal(err)
			}
			return ctx
		}).
		Assess("scales", func(ctx context.Context, t *testing.T, _ *envconf.Config) context.Context {
			vc, ns := cluster(t, ctx), ctx.Value(nsKey{}).(string)
			_, err := vc.Client().AppsV1().Deployments(ns).UpdateScale(ctx, "web", &autoscalingv1.Scale{
				ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
				Spec:       autoscalingv1.ScaleSpec{Replicas: 3},
			}, metav1.UpdateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			rolledOut(t, ctx, vc, ns, 3)
			return ctx
		}).
		Assess("reads status", func(ctx context.Context, t *testing.T, _ *envconf.Config) context.Context {
			vc, ns := cluster(t, ctx), ctx.Value(nsKey{}).(string)
			d, err := vc.Client().AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if d.Status.Replicas != 3 {
				t.Errorf("status.replicas = %d, want 3", d.Status.Replicas)
			}
			t.Logf("%s: replicas=%d available=%d", vc.Version(), d.Status.Replicas, d.Status.AvailableReplicas)
			return ctx
		}).
		Teardown(func(ctx context.Context, t *testing.T, _ *envconf.Config) context.Context {
			if !t.Failed() {
				cluster(t, ctx).DeleteNamespace(ctx, ctx.Value(nsKey{}).(string))
			}
			return ctx
		}).
		Feature()
}

func TestScenario(t *testing.T) {
	var feats []features.Feature
	// Under vmatrix run, only the run's version.
	for _, v := range framework.Versions(versions...) {
		feats = append(feats, scenario(v))
	}
	testenv.TestInParallel(t, feats...)
}

// TestProvider uses the cluster of envfuncs.CreateClusterWithOpts through
// the e2e-framework's own client, which the create pointed at its kubeconfig.
func TestProvider(t *testing.T) {
	f := features.New("provider cluster").
		Assess("is Kubernetes 1.36 and serves the e2e-framework client", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			var nss corev1.NamespaceList
			if err := cfg.Client().Resources().List(ctx, &nss); err != nil {
				t.Fatal(err)
			}
			if len(nss.Items) == 0 {
				t.Error("no namespaces")
			}
			c, ok := ctx.Value(vmatrixClusterKey(provided)).(*vmatrix.Cluster)
			if !ok {
				t.Fatal("no provider cluster in the context")
			}
			if got := c.VirtualCluster().Version().MinorString(); got != "1.36" {
				t.Errorf("provider cluster runs %s, want 1.36", got)
			}
			return ctx
		}).Feature()
	testenv.Test(t, f)
}

func vmatrixClusterKey(name string) any { return support.ClusterNameContextKey(name) }
