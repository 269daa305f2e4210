package framework

import (
	"os"

	"github.com/vmatrix/vmatrix/internal/k8sdist"
)

// Under `vmatrix run` each run of a suite is given one cluster: the run sets
// KUBECONFIG, VMATRIX_KUBERNETES_VERSION and VMATRIX_CLUSTER. An Environment
// with WithRunClusters (the adapters') asked for that version gets that
// cluster instead of a new one.

// runCluster returns the cluster `vmatrix run` gave this process, if any.
func runCluster() (name, kubeconfig string, v k8sdist.Version, ok bool) {
	name, kubeconfig = os.Getenv("VMATRIX_CLUSTER"), os.Getenv("KUBECONFIG")
	v, _, err := k8sdist.ParseVersion(os.Getenv("VMATRIX_KUBERNETES_VERSION"))
	return name, kubeconfig, v, name != "" && kubeconfig != "" && err == nil
}

// matchesRun reports whether a requested version ("1.36", "v1.36.3") is the
// version of the cluster `vmatrix run` gave this process.
func matchesRun(requested string) bool {
	_, _, have, ok := runCluster()
	if !ok {
		return false
	}
	want, exact, err := k8sdist.ParseVersion(requested)
	return err == nil && want.Major == have.Major && want.Minor == have.Minor && (!exact || want.Patch == have.Patch)
}

// Versions returns the versions of requested that this process tests: under
// `vmatrix run`, only the one of the run's cluster (none if the suite does not
// ask for it); otherwise all of them. The adapters call it, so a suite written
// for three versions runs once per version under `vmatrix run`.
func Versions(requested ...string) []string {
	if _, _, _, ok := runCluster(); !ok {
		return requested
	}
	var out []string
	for _, v := range requested {
		if matchesRun(v) {
			out = append(out, v)
		}
	}
	return out
}
