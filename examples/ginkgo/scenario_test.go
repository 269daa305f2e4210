package ginkgo

import (
	"context"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/vmatrix/vmatrix/fixtures"
	"github.com/vmatrix/vmatrix/framework"
	"github.com/vmatrix/vmatrix/framework/vmatrixginkgo"
)

var _ = suite.Describe("web app", func(k *vmatrixginkgo.Kubernetes) {
	var (
		vc *framework.VirtualCluster
		ns string
	)
	BeforeAll(func(ctx SpecContext) {
		vc = k.Cluster()
		var err error
		ns, err = vc.NewNamespace(ctx, "ginkgo")
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func(ctx SpecContext) {
			if !CurrentSpecReport().Failed() {
				Expect(vc.DeleteNamespace(ctx, ns)).To(Succeed())
			}
		})
	})

	// rolledOut waits until the Deployment's n replicas run.
	rolledOut := func(ctx context.Context, n int32) {
		_, err := fixtures.WaitFor(ctx, vc, fixtures.Deployment(ns, "web"), fixtures.DeploymentAvailable())
		Expect(err).NotTo(HaveOccurred())
	}

	It("deploys", func(ctx SpecContext) {
		Expect(fixtures.Apply(ctx, vc, ns, fixtures.DeploymentWithService)).To(Succeed())
		rolledOut(ctx, 2)
	}, SpecTimeout(2*time.Minute))

	It("exposes", func(ctx SpecContext) {
		svc, err := fixtures.WaitFor(ctx, vc, fixtures.Service(ns, "web"), fixtures.ServiceHasClusterIP())
		Expect(err).NotTo(HaveOccurred())
		ip, _, _ := unstructured.NestedString(svc.Object, "spec", "clusterIP")
		Expect(ip).NotTo(BeEmpty())
	}, SpecTimeout(time.Minute))

	It("scales", func(ctx SpecContext) {
		_, err := vc.Client().AppsV1().Deployments(ns).UpdateScale(ctx, "web", &autoscalingv1.Scale{
			ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
			Spec:       autoscalingv1.ScaleSpec{Replicas: 3},
		}, metav1.UpdateOptions{})
		Expect(err).NotTo(HaveOccurred())
		rolledOut(ctx, 3)
	}, SpecTimeout(2*time.Minute))

	It("reads status", func(ctx SpecContext) {
		d, err := vc.Client().AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(d.Status.Replicas).To(BeEquivalentTo(3))
		GinkgoWriter.Printf("%s: replicas=%d available=%d\n", vc.Version(), d.Status.Replicas, d.Status.AvailableReplicas)
	})

	It("runs only on 1.36 and newer", ComponentSemVerConstraint(vmatrixginkgo.Component, ">= 1.36"), func(ctx SpecContext) {
		info, err := vc.Client().Discovery().ServerVersion()
		Expect(err).NotTo(HaveOccurred())
		Expect(info.Minor).To(BeElementOf("36", "37"))
	})
}, Ordered)
