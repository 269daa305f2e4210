// Package vmatrixtest runs plain go tests against virtual clusters of several
// Kubernetes versions.
//
// ForEachVersion runs a test body once per version, as parallel subtests named
// by version. The clusters come from the package's shared Environment when
// TestMain uses Main, and otherwise from an Environment of the test's own,
// torn down through t.Cleanup:
//
//	func TestMain(m *testing.M) {
//		os.Exit(vmatrixtest.Main(m, []string{"1.35", "1.36", "1.37"}))
//	}
//
//	func TestRollout(t *testing.T) {
//		vmatrixtest.ForEachVersion(t, []string{"1.35", "1.36", "1.37"}, func(t *testing.T, vc *framework.VirtualCluster) {
//			ns := vmatrixtest.Namespace(t, vc)
//			...
//		})
//	}
//
// A failed subtest writes its cluster's logs and objects to the
// Environment's artifacts folder; a failed package keeps its clusters up when
// the Environment was made WithKeepOnFailure.
package vmatrixtest
