// Package incluster runs virtual clusters inside their host, as vCluster does:
// the Helm chart charts/vmatrix deploys one as a StatefulSet whose pod runs
// `vmatrix controlplane` (Run here: the control plane and the syncer of the
// local mode, configured from the pod's files). Install, Uninstall and Render
// drive the chart, embedded in the binary, through the Helm SDK.
package incluster

import (
	"fmt"
	"io/fs"

	"strings"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"

	"github.com/vmatrix/vmatrix/charts"
)

// chartDir is the chart's folder in charts.FS.
const chartDir = "vmatrix"

// Chart loads the embedded chart.
func Chart() (*chart.Chart, error) {
	var files []*loader.BufferedFile
	err := fs.WalkDir(charts.FS, chartDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(charts.FS, p)
		if err != nil {
			return err
		}
		files = append(files, &loader.BufferedFile{Name: strings.TrimPrefix(p, chartDir+"/"), Data: data})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading the embedded chart: %w", err)
	}
	c, err := loader.LoadFiles(files)
	if err != nil {
		return nil, fmt.Errorf("loading the embedded chart: %w", err)
	}
	return c, nil
}

// Release says which virtual cluster the chart deploys: its name (the
// release's, and the virtual cluster's), the host namespace it lives in and
// syncs into, and values over the chart's values.yaml.
type Release struct {
	Name      string
	Namespace string
	Values    map[string]any
}

// Render returns the manifests the chart makes for r, as `helm template`
// prints them: for `kubectl apply` or a Helm of the user's own.
func Render(r Release) (string, error) {
	c, err := Chart()
	if err != nil {
		return "", err
	}
	inst := action.NewInstall(&action.Configuration{})
	inst.ReleaseName, inst.Namespace = r.Name, r.Namespace
	inst.DryRun, inst.ClientOnly, inst.Replace = true, true, true
	// Fixed, so the output depends on the release only and not on which
	// client-go this binary was built with.
	inst.KubeVersion = &chartutil.KubeVersion{Version: "v1.37.0", Major: "1", Minor: "37"}
	rel, err := inst.Run(c, r.Values)
	if err != nil {
		return "", fmt.Errorf("rendering the chart for %s/%s: %w", r.Namespace, r.Name, err)
	}
	var b strings.Builder
	b.WriteString(strings.TrimSpace(rel.Manifest))
	b.WriteString("\n")
	return b.String(), nil
}

// Lint runs Helm's linter on the chart folder dir (the source of the
// embedded chart) with the given values, and returns its messages.
func Lint(dir string, values map[string]any) []string {
	res := action.NewLint().Run([]string{dir}, values)
	var msgs []string
	for _, m := range res.Messages {
		msgs = append(msgs, m.Error())
	}
	for _, e := range res.Errors {
		if !strings.Contains(strings.Join(msgs, "\n"), e.Error()) {
			msgs = append(msgs, e.Error())
		}
	}
	return msgs
}

// KubeconfigSecret is the name of the Secret that holds the admin kubeconfig
// of release name, under the key "config".
func KubeconfigSecret(name string) string { return "vc-" + name }
