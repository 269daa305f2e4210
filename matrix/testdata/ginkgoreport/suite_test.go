// Package ginkgoreport is a Ginkgo suite whose reports the tests of package
// matrix read as recorded: go test -json ./matrix/testdata/ginkgoreport
// -ginkgo.json-report=report.json -ginkgo.junit-report=junit.xml
// (it fails on purpose; RECORDING=1 makes it run).
package ginkgoreport

import (
	"os"
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

func TestSuite(t *testing.T) {
	if os.Getenv("RECORDING") == "" {
		t.Skip("fails on purpose; only for recording reports")
	}
	RegisterFailHandler(Fail)
	RunSpecs(t, "recorded suite")
}

var _ = Describe("Deployments [Kubernetes 1.37]", func() {
	It("roll out", func() {
		GinkgoWriter.Println("rolled out")
	})
	It("scale to zero", func() {
		Expect(1).To(Equal(0), "replicas")
	})
	It("use a new API", func() {
		Skip("needs Kubernetes >= 1.38")
	})
	PIt("are pending")
	Context("with a Service", func() {
		It("get endpoints", func() {})
	})
})
