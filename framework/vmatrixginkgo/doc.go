// Package vmatrixginkgo runs Ginkgo v2 specs against virtual clusters of
// several Kubernetes versions.
//
// NewSuite, called once at the top level of a suite, registers a
// SynchronizedBeforeSuite in which process 1 creates one cluster per version
// in parallel and hands their kubeconfigs to every `ginkgo -p` process, and a
// SynchronizedAfterSuite in which process 1 tears them down. Describe then
// generates one container per version, so the same specs run against each:
//
//	var suite = vmatrixginkgo.NewSuite([]string{"1.35", "1.36", "1.37"})
//
//	var _ = suite.Describe("rollout", func(k *vmatrixginkgo.Kubernetes) {
//		It("scales", func(ctx SpecContext) { vc := k.Cluster(); ... })
//		It("uses a 1.36 API", ComponentSemVerConstraint("kubernetes", ">= 1.36"), func(ctx SpecContext) { ... })
//	})
//
// A spec (or container) decorated with ComponentSemVerConstraint("kubernetes",
// ...) runs only in the containers whose version satisfies it and is reported
// as skipped in the others. A failed spec writes its cluster's logs and
// objects to an artifacts folder named after the spec.
//
// Ginkgo handles SIGINT and SIGTERM itself (it interrupts the running spec
// and runs the after-suite nodes), so the Environment's own signal handling
// is off here.
package vmatrixginkgo
