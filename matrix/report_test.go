package matrix

import (
	"strings"
	"testing"
	"time"

	"github.com/vmatrix/vmatrix/internal/k8sdist"
)

// A run along an upgrade path that called a deprecated API: report.md has a
// row per step and the API with the release that removes it; junit.xml has
// them as properties.
func TestReportOfAnUpgradePathWithDeprecatedAPIs(t *testing.T) {
	r := &Report{Command: "go test ./...", Started: time.Now(), Duration: time.Minute, Versions: []*VersionResult{
		{Version: "v1.35.4", Cluster: "run-1-1-35", Passed: true, Status: StatusPassed},
		{Version: "v1.36.3", Cluster: "run-1-1-35", Passed: true, Status: StatusPassed, UpgradedFrom: "v1.35.4",
			DeprecatedAPIs: []DeprecatedAPI{{Group: "flowcontrol.apiserver.k8s.io", Version: "v1beta3", Resource: "flowschemas", RemovedRelease: "1.32", Clients: []string{"operator/v1"}}}},
		{Version: "v1.37.2", Cluster: "run-1-1-35", Status: StatusFailed, UpgradedFrom: "v1.36.3",
			DeprecatedAPIs: []DeprecatedAPI{{Version: "v1", Resource: "componentstatuses", Clients: []string{"kubectl/v1.37.2"}}}},
	}}
	md := r.Markdown()
	for _, want := range []string{
		"### Upgrade path",
		"| 1 | v1.35.4 | (created) | run-1-1-35 |",
		"| 2 | v1.36.3 | v1.35.4 | run-1-1-35 |",
		"| 3 | v1.37.2 | v1.36.3 | run-1-1-35 |",
		"### Deprecated APIs used",
		"| v1.36.3 | flowcontrol.apiserver.k8s.io/v1beta3 flowschemas | 1.32 | operator/v1 |",
		"| v1.37.2 | v1 componentstatuses | not planned | kubectl/v1.37.2 |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report.md lacks %q:\n%s", want, md)
		}
	}
	x, err := r.JUnit()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`<property name="upgraded-from" value="v1.35.4"></property>`,
		`<property name="deprecated-api" value="flowcontrol.apiserver.k8s.io/v1beta3 flowschemas (removed in 1.32)"></property>`,
	} {
		if !strings.Contains(string(x), want) {
			t.Errorf("junit.xml lacks %q:\n%s", want, x)
		}
	}
	// Side by side, no upgrade section.
	r.Versions[1].UpgradedFrom, r.Versions[2].UpgradedFrom = "", ""
	if md := r.Markdown(); strings.Contains(md, "Upgrade path") {
		t.Errorf("a side-by-side run has an upgrade section:\n%s", md)
	}
}

func TestCheckUpgradePath(t *testing.T) {
	v := func(minor, patch int) k8sdist.Version { return k8sdist.Version{Major: 1, Minor: minor, Patch: patch} }
	if err := CheckUpgradePath([]k8sdist.Version{v(35, 4), v(36, 3), v(37, 2)}); err != nil {
		t.Error(err)
	}
	if err := CheckUpgradePath([]k8sdist.Version{v(35, 4), v(37, 2)}); err == nil || !strings.Contains(err.Error(), "skips a minor") {
		t.Errorf("a skip: %v", err)
	}
	if err := CheckUpgradePath([]k8sdist.Version{v(36, 3), v(35, 4)}); err == nil || !strings.Contains(err.Error(), "not downgraded") {
		t.Errorf("a downgrade: %v", err)
	}
}
