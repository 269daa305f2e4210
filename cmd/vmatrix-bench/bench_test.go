package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestSmoke runs every figure once with a short idle time, so the benchmark
// cannot rot between full runs of make bench.
func TestSmoke(t *testing.T) {
	res, err := Run(context.Background(), Config{
		Runs: 1, Version: "1.37", MatrixVersions: []string{"1.36", "1.37"},
		Idle: time.Second, DensityMax: 2, SyncReplicas: 10, Rerun: true, Inspect: 3, Dir: t.TempDir(), Log: testWriter{t},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Floor.Median <= 0 || res.Create.Median <= 0 || res.Matrix.Wall.Median <= 0 || res.TeardownOne.Median <= 0 {
		t.Errorf("a timed figure is missing: %+v", res)
	}
	if res.Memory.APIServer.Median < 50 || res.Memory.CtrlMgr.Median < 10 {
		t.Errorf("memory figures too small to be real: %+v", res.Memory)
	}
	if res.Sync == nil || res.Sync.PodsPerS.Median <= 0 || res.Sync.HostWrite.Median < 1 {
		t.Errorf("sync: %+v", res.Sync)
	}
	if res.Rerun == nil || res.Rerun.AttachSeconds.Median <= 0 || res.Rerun.ColdSeconds.Median <= res.Rerun.AttachSeconds.Median {
		t.Errorf("rerun: %+v", res.Rerun)
	}
	if res.Density == nil || res.Density.Clusters < 1 {
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
