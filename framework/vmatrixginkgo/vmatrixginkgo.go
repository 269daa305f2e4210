package vmatrixginkgo

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/Masterminds/semver/v3"
	"github.com/onsi/ginkgo/v2"
	"github.com/onsi/ginkgo/v2/reporters"

	"github.com/vmatrix/vmatrix/framework"
	"github.com/vmatrix/vmatrix/internal/kubeconfig"
	"github.com/vmatrix/vmatrix/matrix"
)

// Component is the component name of Kubernetes version constraints:
// ComponentSemVerConstraint(vmatrixginkgo.Component, ">= 1.36").
const Component = "kubernetes"

// Suite is the set of versions a Ginkgo suite runs against.
type Suite struct {
	versions []string
	opts     []framework.Option
	// env is set on process 1 only.
	env      *framework.Environment
	clusters map[string]*framework.VirtualCluster // by version as given
}

// NewSuite registers the suite-level nodes that create and destroy one
// virtual cluster per version; opts configure the Environment of process 1.
// Call it once, at the top level of the suite (var suite = NewSuite(...)).
func NewSuite(versions []string, opts ...framework.Option) *Suite {
	s := &Suite{versions: framework.Versions(versions...), opts: append([]framework.Option{framework.WithSignalHandling(false), framework.WithRunClusters()}, opts...)}
	ginkgo.SynchronizedBeforeSuite(s.create, s.connect)
	ginkgo.SynchronizedAfterSuite(func() {}, s.destroy)
	ginkgo.ReportAfterSuite("vmatrix run report", reportToRun)
	return s
}

// reportToRun gives `vmatrix run` the suite's Ginkgo report, so its report
// has a row per spec even under plain go test.
func reportToRun(r ginkgo.Report) {
	dir := os.Getenv(matrix.GinkgoReportDirEnv)
	if dir == "" {
		return
	}
	path := filepath.Join(dir, fmt.Sprintf("ginkgo-%d.json", os.Getpid()))
	if err := reporters.GenerateJSONReport(r, path); err != nil {
		ginkgo.GinkgoWriter.Printf("vmatrix: report for vmatrix run: %v\n", err)
	}
}

// create runs on process 1: it starts the clusters and returns their
// descriptions for every process.
func (s *Suite) create(ctx ginkgo.SpecContext) []byte {
	env, err := framework.New(s.opts...)
	if err != nil {
		ginkgo.Fail(err.Error())
	}
	s.env = env
	ginkgo.DeferCleanup(func(ctx ginkgo.SpecContext) {
		// Only when the create failed: the after-suite node does it otherwise.
		if ginkgo.CurrentSpecReport().Failed() {
			s.env.Destroy(ctx)
		}
	})
	clusters, err := env.CreateMany(ctx, s.versions...)
	if err != nil {
		ginkgo.Fail(err.Error())
	}
	infos := map[string]framework.ClusterInfo{}
	for i, vc := range clusters {
		infos[s.versions[i]] = vc.Info()
	}
	data, err := json.Marshal(infos)
	if err != nil {
		ginkgo.Fail(err.Error())
	}
	return data
}

// connect runs on every process with what process 1 returned.
func (s *Suite) connect(ctx ginkgo.SpecContext, data []byte) {
	var infos map[string]framework.ClusterInfo
	if err := json.Unmarshal(data, &infos); err != nil {
		ginkgo.Fail(err.Error())
	}
	s.clusters = map[string]*framework.VirtualCluster{}
	for v, info := range infos {
		if vc := s.own(info.Name); vc != nil {
			s.clusters[v] = vc
			continue
		}
		vc, err := framework.Connect(ctx, info)
		if err != nil {
			ginkgo.Fail(err.Error())
		}
		s.clusters[v] = vc
	}
}

// destroy runs on process 1 after every process finished.
func (s *Suite) destroy(ctx ginkgo.SpecContext) {
	if s.env == nil {
		return
	}
	start := time.Now()
	if err := s.env.Destroy(ctx); err != nil {
		ginkgo.Fail(err.Error())
	}
	ginkgo.GinkgoWriter.Printf("vmatrix: teardown in %s\n", time.Since(start).Round(10*time.Millisecond))
}

// Kubernetes is one version's container: its specs reach the cluster with
// Cluster.
type Kubernetes struct {
	// Version is the version as given to NewSuite, e.g. "1.36".
	Version string
	suite   *Suite
}

// Cluster is the container's virtual cluster. Call it in spec and setup
// bodies, not in the container body: the cluster exists only once the suite
// runs.
func (k *Kubernetes) Cluster() *framework.VirtualCluster {
	vc := k.suite.clusters[k.Version]
	if vc == nil {
		ginkgo.Fail(fmt.Sprintf("no cluster of Kubernetes %s: Cluster called outside a spec, or the suite's create failed", k.Version))
	}
	return vc
}

// Describe generates one container per version, "text [Kubernetes 1.36]",
// each running body's specs against that version's cluster. args are
// decorators for every container (Ordered, Label, ...).
func (s *Suite) Describe(text string, body func(k *Kubernetes), args ...any) bool {
	for _, v := range s.versions {
		k := &Kubernetes{Version: v, suite: s}
		containerArgs := append(append([]any{}, args...), func() {
			ginkgo.BeforeEach(func() { skipUnlessMatches(k.Cluster()) })
			ginkgo.JustAfterEach(func(ctx ginkgo.SpecContext) { exportOnFailure(ctx, k.Cluster()) })
			body(k)
		})
		ginkgo.Describe(fmt.Sprintf("%s [Kubernetes %s]", text, v), containerArgs...)
	}
	return true
}

// skipUnlessMatches skips the current spec when the cluster's version does
// not satisfy the spec's Kubernetes constraints.
func skipUnlessMatches(vc *framework.VirtualCluster) {
	constraints := ginkgo.CurrentSpecReport().ComponentSemVerConstraints()[Component]
	if len(constraints) == 0 {
		return
	}
	have, err := semver.NewVersion(vc.Version().SemVer())
	if err != nil {
		ginkgo.Fail(err.Error())
	}
	for _, c := range constraints {
		cons, err := semver.NewConstraint(c)
		if err != nil {
			ginkgo.Fail(fmt.Sprintf("ComponentSemVerConstraint(%q, %q): %v", Component, c, err))
		}
		if !cons.Check(have) {
			ginkgo.Skip(fmt.Sprintf("needs Kubernetes %s; this cluster runs %s", c, vc.Version()))
		}
	}
}

// own is the cluster of that name if this process created it.
func (s *Suite) own(name string) *framework.VirtualCluster {
	if s.env == nil {
		return nil
	}
	for _, vc := range s.env.Clusters() {
		if vc.Name() == name {
			return vc
		}
	}
	return nil
}

func exportOnFailure(ctx context.Context, vc *framework.VirtualCluster) {
	report := ginkgo.CurrentSpecReport()
	if !report.Failed() {
		return
	}
	dir, err := vc.ExportForTest(ctx, report.FullText())
	if err != nil {
		ginkgo.GinkgoWriter.Printf("vmatrix: artifacts: %v\n", err)
	}
	if dir != "" {
		ginkgo.AddReportEntry("vmatrix artifacts", dir)
		ginkgo.GinkgoWriter.Printf("vmatrix: artifacts of %s: %s\nreach it with: %s\n", vc, dir, kubeconfig.KubectlCommand(vc.KubeconfigPath()))
	}
}
