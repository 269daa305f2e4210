// Package ginkgo is the vmatrix example for Ginkgo v2: the scenario (deploy,
// expose, scale, read status) as an Ordered container generated for
// Kubernetes 1.35, 1.36 and 1.37, whose clusters process 1 creates in
// parallel and shares with every `ginkgo -p` process. It also runs under
// plain go test.
package ginkgo

import (
	"strings"
	"testing"

	. "github.com/onsi/ginkgo/v2"
	"github.com/onsi/ginkgo/v2/types"
	. "github.com/onsi/gomega"

	"github.com/vmatrix/vmatrix/framework/vmatrixginkgo"
)

var suite = vmatrixginkgo.NewSuite([]string{"1.35", "1.36", "1.37"})

func TestScenario(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "vmatrix Ginkgo example")
}

// The suite checks its own promise: the spec constrained to >= 1.36 was
// skipped on 1.35 and passed on 1.36 and 1.37.
var _ = ReportAfterSuite("version constraints", func(r Report) {
	if !r.SuiteSucceeded {
		return
	}
	for _, spec := range r.SpecReports {
		if !strings.Contains(spec.LeafNodeText, "1.36 and newer") {
			continue
		}
		want := types.SpecStatePassed
		if strings.Contains(spec.FullText(), "[Kubernetes 1.35]") {
			want = types.SpecStateSkipped
		}
		Expect(spec.State).To(Equal(want), spec.FullText())
	}
})
