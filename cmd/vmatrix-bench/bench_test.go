package main

import (
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSmoke runs every figure once with a short idle time, so the benchmark
// cannot rot between full runs of make bench.
func TestSmoke(t *testing.T) {
	vmatrix := filepath.Join(t.TempDir(), "vmatrix")
	if out, err := exec.Command("go", "build", "-o", vmatrix, "../vmatrix").CombinedOutput(); err != nil {
		t.Fatalf("building vmatrix: %v\n%s", err, out)
	}
	res, err := Run(context.Background(), Config{
		Runs: 1, Version: "1.37", MatrixVersions: []string{"1.36", "1.37"}, VMatrix: vmatrix,
		Idle: time.Second, DensityMax: 2, SyncReplicas: 10, SyncLarge: 20, Rerun: true, Inspect: 3, Dir: t.TempDir(), Log: testWriter{t},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Floor.Median <= 0 || res.Create.Median <= 0 || res.Matrix.Wall.Median <= 0 || res.TeardownOne.Median <= 0 {
		t.Errorf("a timed figure is missing: %+v", res)
	}
	if res.Memory.ControlPlane.Median < 60 || res.Memory.Supervisor.Median < 10 || res.Memory.Processes == "" ||
		res.Memory.TotalMB.Median < res.Memory.ControlPlane.Median+res.Memory.Supervisor.Median {
		t.Errorf("memory figures too small to be real: %+v", res.Memory)
	}
	for _, s := range []*Sync{res.Sync, res.SyncLarge} {
		if s == nil || s.PodsPerS.Median <= 0 || s.HostWrite.Median < 1 {
			t.Errorf("sync: %+v", s)
		}
	}
	if res.Rerun == nil || res.Rerun.AttachSeconds.Median <= 0 || res.Rerun.ColdSeconds.Median <= res.Rerun.AttachSeconds.Median {
		t.Errorf("rerun: %+v", res.Rerun)
	}
	if res.Density == nil || res.Density.Clusters.Median < 1 || len(res.Density.Runs) != 1 {
		t.Errorf("density: %+v", res.Density)
	}
	if in := res.Inspect; in == nil || in.FirstLogLine.Median <= 0 || in.ExecRoundTrip.Median <= 0 || in.HostRequestsLogs < 1 || in.HostRequestsExec < 1 {
		t.Errorf("inspect: %+v", res.Inspect)
	}
	if len(res.Failed) > 0 {
		t.Errorf("figures failed: %+v", res.Failed)
	}
	if _, err := json.Marshal(res); err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + Table(res))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

// TestTableNamesFailedFigures: a figure that could not be measured is in the
// table with its reason, not lost.
func TestTableNamesFailedFigures(t *testing.T) {
	table := Table(&Results{Failed: []Failure{{Figure: "matrix", Reason: "kube-controller-manager exited"}}})
	if want := "FAILED matrix: kube-controller-manager exited"; !strings.Contains(table, want) {
		t.Errorf("the table lacks %q:\n%s", want, table)
	}
}

// TestTargets: each target says met, missed or not measured, by its
// direction.
func TestTargets(t *testing.T) {
	r := &Results{}
	r.Create.RatioToFloor = 1.38
	r.Matrix.RatioToCreate = 1.2
	r.Memory.TotalMB.Median = 490
	r.Sync = &Sync{Replicas: 100, PodsPerS: Stat{Median: 160}, HostWrite: Stat{Median: 5.2}}
	r.SyncLarge = &Sync{Replicas: 500, PodsPerS: Stat{Median: 170}}
	r.Density = &Density{Clusters: Stat{Median: 20}, AddedMB: Stat{Unit: "MB", Median: 191, Min: 188, Max: 192},
		Runs: []DensityRun{{Clusters: 20, StoppedBecause: "reached the limit of 20", Limited: true, AddedMB: 191}}}
	table := Table(r)
	for _, want := range []string{
		"|   memory each idle cluster took (MemAvailable) | 191 MB | 188 | 192 |  |",
		"- 20 idle clusters (reached the limit of 20), 191 MB each",
		"missed: create → Ready vs the floor 1.38x (target ≤ 1x)",
		"met: 3 versions in parallel vs one create 1.2x (target ≤ 1.3x)",
		"missed: idle memory of one cluster, all its processes 490 MB (target ≤ 300 MB)",
		"met: 100-replica Deployment to Running 160 pods/s (target ≥ 150 pods/s)",
		"1,000-replica Deployment to Running: not measured (target ≥ 150 pods/s)",
		"missed: host write requests per synced pod 5.2 (target ≤ 4)",
		"idle clusters before create time doubles: not measured (target ≥ 40)",
	} {
		if !strings.Contains(table, want) {
			t.Errorf("the table lacks %q:\n%s", want, table)
		}
	}
	// One run that doubled measures it: the median of all runs counts.
	r.Density = &Density{Clusters: Stat{Median: 38}, Runs: []DensityRun{{Clusters: 20, Limited: true}, {Clusters: 38}}}
	if want := "missed: idle clusters before create time doubles 38 (target ≥ 40)"; !strings.Contains(Table(r), want) {
		t.Errorf("the table lacks %q:\n%s", want, Table(r))
	}
}

// TestWritesByKind: the log line that says what a rollout wrote counts only
// what changed, by verb and resource, the most first.
func TestWritesByKind(t *testing.T) {
	before := map[string]float64{
		`apiserver_request_total{code="201",resource="pods",subresource="",verb="POST"}`:        5,
		`apiserver_request_total{code="200",resource="leases",subresource="",verb="PUT"}`:       9,
		`apiserver_request_total{code="200",resource="pods",subresource="status",verb="PATCH"}`: 1,
	}
	after := map[string]float64{
		`apiserver_request_total{code="201",resource="pods",subresource="",verb="POST"}`:        105,
		`apiserver_request_total{code="409",resource="pods",subresource="",verb="POST"}`:        2,
		`apiserver_request_total{code="200",resource="leases",subresource="",verb="PUT"}`:       9,
		`apiserver_request_total{code="200",resource="pods",subresource="status",verb="PATCH"}`: 101,
		`apiserver_request_total{code="201",resource="events",subresource="",verb="POST"}`:      3,
	}
	if got, want := writesByKind(before, after), "POST pods 102, PATCH pods/status 100, POST events 3"; got != want {
		t.Errorf("writesByKind = %q, want %q", got, want)
	}
	if got := sum(after) - sum(before); got != 205 {
		t.Errorf("sum of the change = %v, want 205", got)
	}
}
