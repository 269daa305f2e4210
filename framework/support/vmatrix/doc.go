// Package vmatrix is a cluster provider for sigs.k8s.io/e2e-framework, in the
// manner of its support/kind and support/kwok: each cluster is a vmatrix
// virtual cluster of the version asked for, on one embedded host shared by
// every cluster of the process.
//
//	testenv.Setup(envfuncs.CreateClusterWithOpts(vmatrix.NewProvider(), "c1", vmatrix.WithKubernetesVersion("1.36")))
//	testenv.Finish(envfuncs.DestroyCluster("c1"))
//
// CreateVersions is an EnvFunc that creates one cluster per version in
// parallel; ClusterFromContext finds them in a feature's steps.
package vmatrix
