// Package ginkgosuite is a Ginkgo suite for `vmatrix run` tests, written with
// vmatrixginkgo: under plain `go test` it is one Go test, and vmatrix run
// still reports each spec. It fails on 1.35 on purpose.
package ginkgosuite

import (
	"context"
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vmatrix/vmatrix/framework/vmatrixginkgo"
)

var suite = vmatrixginkgo.NewSuite([]string{"1.35", "1.37"})

func TestSpecs(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "ginkgosuite")
}

var _ = suite.Describe("Namespaces", func(k *vmatrixginkgo.Kubernetes) {
	It("are listed", func(ctx context.Context) {
		_, err := k.Cluster().Client().CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
	})
	It("do not work on 1.35", func() {
		Expect(k.Cluster().Version().MinorString() == "1.35").To(BeFalse(), "this suite does not work on 1.35")
	})
	It("need 1.37", Label("new"), ComponentSemVerConstraint(vmatrixginkgo.Component, ">= 1.37"), func() {})
})
