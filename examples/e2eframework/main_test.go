// Package e2eframework is the vmatrix example for sigs.k8s.io/e2e-framework:
// the scenario (deploy, expose, scale, read status) as one feature per
// version, against Kubernetes 1.35, 1.36 and 1.37 created in parallel by the
// vmatrix.CreateVersions EnvFunc, plus one cluster made the e2e-framework way
// with envfuncs.CreateClusterWithOpts and the vmatrix provider.
package e2eframework

import (
	"os"
	"testing"

	"sigs.k8s.io/e2e-framework/pkg/env"
	"sigs.k8s.io/e2e-framework/pkg/envconf"
	"sigs.k8s.io/e2e-framework/pkg/envfuncs"

	"github.com/vmatrix/vmatrix/framework/support/vmatrix"
)

var (
	testenv  env.Environment
	versions = []string{"1.35", "1.36", "1.37"}
)

// provided is the cluster made through the provider interface.
const provided = "provided"

func TestMain(m *testing.M) {
	testenv = env.NewWithConfig(envconf.New())
	testenv.Setup(
		vmatrix.CreateVersions(versions...),
		envfuncs.CreateClusterWithOpts(vmatrix.NewProvider(), provided, vmatrix.WithKubernetesVersion("1.36")),
	)
	testenv.Finish(
		envfuncs.DestroyCluster(provided),
		vmatrix.DestroyVersions(),
	)
	os.Exit(testenv.Run(m))
}
