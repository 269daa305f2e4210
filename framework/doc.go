// Package framework is the Go API for tests that need Kubernetes clusters of
// several versions: an Environment owns one host cluster and the virtual
// clusters started on it, and hands out a VirtualCluster handle for each, with
// clients ready to use.
//
// The lifecycle is the point of the package. CreateMany starts one virtual
// cluster per version concurrently and, if any of them fails, cancels and
// removes the others. Destroy is the single teardown path, used by every
// adapter and on SIGINT/SIGTERM: it stops each cluster's components in a fixed
// order within a bounded time, is idempotent, and then verifies that no
// process, listening port, state folder or host object of a cluster is left,
// failing loudly if one is. On failure, Finish writes the logs of every
// component and a dump of the virtual and host objects to an artifacts
// folder, and with WithKeepOnFailure keeps the clusters up for inspection.
//
// Three adapters build on it: vmatrixtest for plain go test, vmatrixginkgo
// for Ginkgo v2 suites and support/vmatrix, a cluster provider for
// sigs.k8s.io/e2e-framework.
//
// Clusters made by `vmatrix create` can be reused across test runs: with
// VMATRIX_REUSE=1 (or WithReuse) an Environment attaches to a running cluster
// of the same name and version instead of creating one, deleting only the
// namespaces earlier test runs made, so a rerun starts in well under a second.
package framework
