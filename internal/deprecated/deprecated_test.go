package deprecated

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestFromAuditLog(t *testing.T) {
	dir := t.TempDir()
	log := `{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","stage":"ResponseComplete","stageTimestamp":"2026-11-26T20:00:01.000000Z","verb":"list","userAgent":"kubectl/v1.37.2 (linux/amd64) kubernetes/abc","objectRef":{"resource":"componentstatuses","apiVersion":"v1"},"annotations":{"k8s.io/deprecated":"true"}}
{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","stage":"ResponseComplete","stageTimestamp":"2026-11-26T20:00:01.000000Z","verb":"update","userAgent":"kube-controller-manager/v1.37.2 (linux/amd64) kubernetes/abc/endpoint-controller","objectRef":{"resource":"endpoints","apiVersion":"v1"},"annotations":{"k8s.io/deprecated":"true"}}
{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","stage":"ResponseComplete","stageTimestamp":"2026-11-26T20:00:01.000000Z","verb":"get","userAgent":"vmatrix-syncer/a","objectRef":{"resource":"endpoints","apiVersion":"v1"},"annotations":{"k8s.io/deprecated":"true"}}
{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","stage":"ResponseComplete","stageTimestamp":"2026-11-26T20:00:01.000000Z","verb":"get","userAgent":"operator.test/v0.0.0","objectRef":{"resource":"pods","apiVersion":"v1"}}
{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","stage":"ResponseComplete","stageTimestamp":"2026-11-26T20:00:01.000000Z","verb":"get","userAgent":"operator.test/v0.0.0","objectRef":{"resource":"flowschemas","apiGroup":"flowcontrol.apiserver.k8s.io","apiVersion":"v1beta3"},"annotations":{"k8s.io/deprecated":"true","k8s.io/removed-release":"1.32"}}
{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","stage":"ResponseComplete","stageTimestamp":"2026-11-26T20:00:01.000000Z","verb":"get","userAgent":"operator.test/v0.0.0","objectRef":{"resource":"componentstatuses","apiVersion":"v1"},"annotations":{"k8s.io/deprecated":"true"}}
`
	if err := os.WriteFile(filepath.Join(dir, "audit.log"), []byte(log), 0o600); err != nil {
		t.Fatal(err)
	}
	rotated := `{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","stage":"ResponseComplete","stageTimestamp":"2026-11-26T20:00:01.000000Z","verb":"watch","userAgent":"old-client/1","objectRef":{"resource":"endpoints","apiVersion":"v1"},"annotations":{"k8s.io/deprecated":"true"}}
`
	if err := os.WriteFile(filepath.Join(dir, "audit-2026-11-26T20-00-00.000.log"), []byte(rotated), 0o600); err != nil {
		t.Fatal(err)
	}
	apis, err := FromAuditLog(filepath.Join(dir, "audit.log"), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range apis {
		got = append(got, a.String()+" by "+strings.Join(a.Clients, ","))
	}
	want := []string{
		"v1 componentstatuses (no removal planned) by kubectl/v1.37.2,operator.test/v0.0.0",
		"v1 endpoints (no removal planned) by old-client/1",
		"flowcontrol.apiserver.k8s.io/v1beta3 flowschemas (removed in 1.32) by operator.test/v0.0.0",
	}
	if !slices.Equal(got, want) {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	if apis, err := FromAuditLog(filepath.Join(dir, "audit.log"), time.Date(2026, 11, 26, 20, 0, 2, 0, time.UTC)); err != nil || len(apis) != 0 {
		t.Errorf("since after every event: %v, %v", apis, err)
	}
	if apis, err := FromAuditLog(filepath.Join(t.TempDir(), "audit.log"), time.Time{}); err != nil || len(apis) != 0 {
		t.Errorf("no log: %v, %v", apis, err)
	}
}
