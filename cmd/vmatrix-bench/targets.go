package main

import (
	"fmt"
	"slices"
)

// A target is a figure's goal on a 2-core machine; check says in one line
// whether a run met it.
type target struct {
	name   string
	goal   float64
	atMost bool // the figure must be at most goal (else at least)
	unit   string
	value  func(r *Results) (float64, bool) // false: not measured in this run
}

var targets = []target{
	{"create → Ready vs the floor", 1.0, true, "x", func(r *Results) (float64, bool) { return r.Create.RatioToFloor, r.Create.RatioToFloor > 0 }},
	{"3 versions in parallel vs one create", 1.3, true, "x", func(r *Results) (float64, bool) { return r.Matrix.RatioToCreate, r.Matrix.RatioToCreate > 0 }},
	{"idle memory of one cluster, all its processes", 300, true, " MB", func(r *Results) (float64, bool) {
		return r.Memory.TotalMB.Median, r.Memory.TotalMB.Median > 0
	}},
	{"100-replica Deployment to Running", 150, false, " pods/s", func(r *Results) (float64, bool) {
		return podsPerSecond(r.Sync, 100)
	}},
	{"1,000-replica Deployment to Running", 150, false, " pods/s", func(r *Results) (float64, bool) {
		return podsPerSecond(r.SyncLarge, 1000)
	}},
	{"host write requests per synced pod", 4, true, "", func(r *Results) (float64, bool) {
		return statOf(r.Sync, func(s *Sync) Stat { return s.HostWrite })
	}},
	{"idle clusters before create time doubles", 40, false, "", func(r *Results) (float64, bool) {
		// Runs that stopped at their -density limit before the goal, with
		// create time not doubled, have not measured it.
		if r.Density == nil || !slices.ContainsFunc(r.Density.Runs, func(d DensityRun) bool { return !d.Limited || d.Clusters >= 40 }) {
			return 0, false
		}
		return r.Density.Clusters.Median, true
	}},
}

// podsPerSecond is a sync figure's rate, measured only if its Deployment
// had the target's replicas.
func podsPerSecond(s *Sync, replicas int) (float64, bool) {
	if s == nil || s.Replicas != replicas {
		return 0, false
	}
	return s.PodsPerS.Median, true
}

func statOf[T any](p *T, f func(*T) Stat) (float64, bool) {
	if p == nil {
		return 0, false
	}
	return f(p).Median, true
}

func (t target) check(r *Results) string {
	v, ok := t.value(r)
	cmp := "≥"
	if t.atMost {
		cmp = "≤"
	}
	switch {
	case !ok:
		return fmt.Sprintf("%s: not measured (target %s %.3g%s)", t.name, cmp, t.goal, t.unit)
	case t.atMost && v <= t.goal || !t.atMost && v >= t.goal:
		return fmt.Sprintf("met: %s %.3g%s (target %s %.3g%s)", t.name, v, t.unit, cmp, t.goal, t.unit)
	default:
		return fmt.Sprintf("missed: %s %.3g%s (target %s %.3g%s)", t.name, v, t.unit, cmp, t.goal, t.unit)
	}
}
