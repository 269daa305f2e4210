package conformance

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/onsi/ginkgo/v2/types"
)

// A Ginkgo JSON report as e2e.test writes it, made with Ginkgo's own types:
// the results, the failures with their first line, the skips on purpose
// and by the suite, per SIG, in Markdown.
func TestReadReportAndMarkdown(t *testing.T) {
	spec := func(container, leaf string, state types.SpecState, msg string) types.SpecReport {
		return types.SpecReport{LeafNodeType: types.NodeTypeIt, ContainerHierarchyTexts: []string{container}, LeafNodeText: leaf,
			State: state, RunTime: 2 * time.Second, Failure: types.Failure{Message: msg}}
	}
	report := []types.Report{{RunTime: 90 * time.Second, SpecReports: types.SpecReports{
		{LeafNodeType: types.NodeTypeSynchronizedBeforeSuite, State: types.SpecStatePassed},
		spec("[sig-apps] Deployment", "should delete old replica sets [Conformance]", types.SpecStatePassed, ""),
		spec("[sig-apps] Job", "should delete a job [Conformance]", types.SpecStateFailed, "\n  timed out waiting for the condition\nmore detail"),
		spec("[sig-storage] Secrets", "should be consumable from pods in volume [Conformance] [NodeConformance]", types.SpecStateSkipped, ""),
		spec("[sig-network] Services", "should have session affinity | work [Conformance]", types.SpecStateSkipped, "Only supported for providers [gce]"),
		spec("[sig-apps] ReplicaSet", "should list and delete a collection of ReplicaSets [Conformance]", types.SpecStateTimedout, ""),
		spec("[sig-apps] ReplicaSet", "is not a conformance spec", types.SpecStateSkipped, ""),
		spec("[sig-apps] ReplicaSet", "is never-seen [Conformance]", types.SpecStateSkipped, ""),
	}}}
	data, err := json.Marshal(report)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "report.json")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	// As vmatrix conformance --from-reports reads an earlier run.
	res, err := ReadRun("v1.37.2", filepath.Dir(path), Options{Skip: "never-seen"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Version != "v1.37.2" || res.Duration != 90*time.Second {
		t.Errorf("version %q, duration %s: want the run's", res.Version, res.Duration)
	}
	res.Duration = time.Minute
	if p, f, o, s := res.Counts(""); p != 1 || f != 2 || o != 1 || s != 1 {
		t.Errorf("counts %d passed, %d failed, %d on purpose, %d by the suite", p, f, o, s)
	}
	if p, f, _, _ := res.Counts("sig-apps"); p != 1 || f != 2 {
		t.Errorf("sig-apps: %d passed, %d failed", p, f)
	}
	md := Markdown([]*Result{res}, "vmatrix conformance --versions 1.37")
	for _, want := range []string{
		"| v1.37.2 | 1 | 2 | 1 | 1 | 1m0s |",
		"| sig-apps | 1 | 2 | 0 | 0 |",
		"| sig-storage | 0 | 0 | 1 | 0 |",
		"- [sig-apps] Job should delete a job [Conformance]: timed out waiting for the condition (why: not known yet)",
		"- [sig-apps] ReplicaSet should list and delete a collection of ReplicaSets [Conformance]: timedout",
		`- [sig-network] Services should have session affinity \| work [Conformance]: Only supported for providers [gce]`,
		"| `\\[NodeConformance\\]` | checks the node itself",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("the Markdown lacks %q:\n%s", want, md)
		}
	}
}

// Updates saved beside a full run replace its outcomes for the specs they
// ran, the later update winning, and the Markdown names them.
func TestUpdatesReplaceTheFullRunsOutcome(t *testing.T) {
	dir := t.TempDir()
	full := []types.Report{{RunTime: time.Hour, SpecReports: types.SpecReports{
		{LeafNodeType: types.NodeTypeIt, ContainerHierarchyTexts: []string{"[sig-apps] Daemon set"}, LeafNodeText: "should run and stop complex daemon [Conformance]", State: types.SpecStateFailed},
		{LeafNodeType: types.NodeTypeIt, ContainerHierarchyTexts: []string{"[sig-apps] Job"}, LeafNodeText: "should delete a job [Conformance]", State: types.SpecStatePassed},
	}}}
	write := func(path string, v any) {
		data, err := json.Marshal(v)
		if err == nil {
			err = os.MkdirAll(filepath.Dir(path), 0o755)
		}
		if err == nil {
			err = os.WriteFile(path, data, 0o600)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(dir, "report.json"), full)
	daemon := "[sig-apps] Daemon set should run and stop complex daemon [Conformance]"
	// Ten updates, so that update-10 must sort after update-9.
	for n := 1; n <= 10; n++ {
		state := "failed"
		if n == 10 {
			state = "passed"
		}
		write(filepath.Join(dir, fmt.Sprintf("update-%d", n), "result.json"),
			Result{Specs: []Spec{{SIG: "sig-apps", Name: daemon, State: state}}, Updates: []string{fmt.Sprintf("daemon %d", n)}})
	}
	res, err := ReadRun("v1.37.2", dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if p, f, _, _ := res.Counts(""); p != 2 || f != 0 || len(res.Specs) != 2 || res.Duration != time.Hour {
		t.Errorf("%d passed, %d failed of %d specs in %s: want the last update's outcome in place of the full run's", p, f, len(res.Specs), res.Duration)
	}
	if len(res.Updates) != 10 || res.Updates[9] != "daemon 10" {
		t.Errorf("updates %v", res.Updates)
	}
	if md := Markdown([]*Result{res}, "vmatrix conformance --versions 1.37"); !strings.Contains(md, "- `daemon 10`") {
		t.Errorf("the Markdown does not name the updates:\n%s", md)
	}
	if _, err := Update(context.Background(), "v1.37.2", Options{Dir: t.TempDir(), Focus: "x"}); err == nil || !strings.Contains(err.Error(), "no full run") {
		t.Errorf("an update with no full run: %v", err)
	}
}

func TestSkipPattern(t *testing.T) {
	for name, skipped := range map[string]bool{
		"[sig-storage] Secrets should be consumable from pods in volume [Conformance] [NodeConformance]":        true,
		"[sig-api-machinery] AdmissionWebhook [Privileged:ClusterAdmin] should mutate pod [Conformance]":        true,
		"[sig-network] DNS should provide DNS for services [Conformance]":                                       true,
		"[sig-apps] Deployment deployment should support rollover [Conformance]":                                false,
		"[sig-network] Services should complete a service status lifecycle [Conformance]":                       false,
		"[sig-api-machinery] Watchers should observe add, update, and delete watch notifications [Conformance]": false,
	} {
		if got := whySkipped(name) != ""; got != skipped {
			t.Errorf("%s: skipped %v, want %v", name, got, skipped)
		}
	}
}
