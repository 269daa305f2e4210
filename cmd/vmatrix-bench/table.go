package main

import (
	"fmt"
	"strings"
)

// Table renders the results as the Markdown table of bench/README.md.
func Table(r *Results) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d cores, %.0f GiB, %s; host %s, virtual %s, matrix %s\n\n",
		r.Machine.Cores, float64(r.Machine.MemoryBytes)/(1<<30), r.Machine.Go, r.Versions.Host, r.Versions.Virtual, strings.Join(r.Versions.Matrix, ","))
	b.WriteString("| figure | median | min | max | vs floor |\n|---|---|---|---|---|\n")
	row := func(name string, s Stat, ratio float64) {
		vs := ""
		if ratio > 0 {
			vs = fmt.Sprintf("%.2fx", ratio)
		}
		fmt.Fprintf(&b, "| %s | %.3g %s | %.3g | %.3g | %s |\n", name, s.Median, s.Unit, s.Min, s.Max, vs)
	}
	row("floor: bare kube-apiserver to /readyz", r.Floor, 0)
	row("create: one virtual cluster to Ready", r.Create, r.Create.RatioToFloor)
	if len(r.Versions.Matrix) > 0 {
		row(fmt.Sprintf("matrix: %d versions in parallel (%.2fx one create)", len(r.Versions.Matrix), r.Matrix.RatioToCreate), r.Matrix.Wall, r.Matrix.Wall.RatioToFloor)
		row(fmt.Sprintf("teardown: %d clusters, verified", len(r.Versions.Matrix)), r.TeardownThree, 0)
	}
	row("teardown: one cluster, verified", r.TeardownOne, 0)
	row("memory: one idle cluster after "+r.Memory.Idle, r.Memory.TotalMB, 0)
	row("  of which the apiserver and controller manager ("+r.Memory.Processes+")", r.Memory.ControlPlane, 0)
	row("  of which the supervisor (store, syncer)", r.Memory.Supervisor, 0)
	for _, s := range []*Sync{r.Sync, r.SyncLarge} {
		if s != nil {
			row(fmt.Sprintf("sync: %d-replica Deployment to Running", s.Replicas), s.Seconds, 0)
			row("  pods per second", s.PodsPerS, 0)
			row("  host write requests per pod", s.HostWrite, 0)
		}
	}
	if rr := r.Rerun; rr != nil {
		row("rerun: cold first cluster (host included)", rr.ColdSeconds, 0)
		row(fmt.Sprintf("rerun: attach in reuse mode (%.0fx faster)", rr.Speedup), rr.AttachSeconds, 0)
	}
	if in := r.Inspect; in != nil {
		row(fmt.Sprintf("logs: first line through the kubelet API (%.1f host requests each)", in.HostRequestsLogs), in.FirstLogLine, 0)
		row(fmt.Sprintf("exec: round trip of `true` (%.1f host requests each)", in.HostRequestsExec), in.ExecRoundTrip, 0)
	}
	if d := r.Density; d != nil {
		row("density: idle clusters before create-to-ready doubles", d.Clusters, 0)
		row("  memory each idle cluster took (MemAvailable)", d.AddedMB, 0)
		b.WriteString("\ndensity, each run:\n")
		for _, run := range d.Runs {
			fmt.Fprintf(&b, "- %d idle clusters (%s), %.0f MB each\n", run.Clusters, run.StoppedBecause, run.AddedMB)
		}
	}
	b.WriteString("\nTargets:\n")
	for _, t := range targets {
		fmt.Fprintf(&b, "- %s\n", t.check(r))
	}
	for _, f := range r.Failed {
		fmt.Fprintf(&b, "\nFAILED %s: %s\n", f.Figure, f.Reason)
	}
	return b.String()
}
