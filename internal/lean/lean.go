// Package lean keeps an idle process of a cluster small and quiet. A test
// cluster is idle most of its life, and many of them share one machine:
//   - at Go's default GC target the heap grows to twice what is live before
//     each collection, and an idle process would hold that memory for
//     minutes;
//   - each of a process's many timers that fires (leases, resyncs,
//     keep-alives) wakes a second thread to look for work when the runtime
//     may run two: an idle cluster spends a quarter of its CPU on that.
//
// So an idle process gives its free heap back to the system now and then,
// and runs on one core until it is busy again. A lower GC target or one
// core for good would make a busy process (a rollout) collect far more often
// or run slower.
//
// The same file is built into kube-control-plane: internal/k8sdist writes it
// beside that program's main.go as package main. So it uses the standard
// library only.
package lean

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"syscall"
	"time"
)

// Run keeps this process lean; it never returns, so run it on a goroutine of
// its own. A GOMAXPROCS the user set is left alone.
func Run() {
	g := newGovernor(runtime.GOMAXPROCS(0) > 1 && os.Getenv("GOMAXPROCS") == "")
	allocs := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	for range time.Tick(time.Second) {
		metrics.Read(allocs)
		cores, trim := g.step(cpuTime(), allocs[0].Value.Uint64())
		switch cores {
		case narrow:
			runtime.GOMAXPROCS(1)
		case widen:
			// Go's own choice again, which follows the container's
			// CPU limit as it did before the narrowing.
			runtime.SetDefaultGOMAXPROCS()
		}
		if trim {
			before := cpuTime()
			debug.FreeOSMemory()
			g.trimmed(cpuTime() - before)
		}
	}
}

// cpuTime is the CPU this process has used, user and system, all threads.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

const (
	// A second with more CPU than busyCPU is busy: all cores come back at
	// once. An idle control plane uses 30-40 ms a second.
	busyCPU = 250 * time.Millisecond
	// After quietFor seconds each under quietCPU, the process runs on one
	// core.
	quietCPU = 100 * time.Millisecond
	quietFor = 10
	// Every trimEvery seconds the free heap goes back to the system if the
	// process allocated under trimBusy in them (an idle control plane
	// allocates well under 1 MB a second) and at least trimEnough since it
	// last did: for a control plane, a collection every minute or so, of
	// about 120 ms of CPU, which counts as neither busy nor quiet.
	trimEvery  = 10
	trimBusy   = 40 << 20
	trimEnough = 16 << 20
)

// What step asks of the cores the process runs on.
const (
	keep   = iota
	narrow // to one
	widen  // to Go's default
)

// governor decides, once a second, from the process's CPU time and the bytes
// it has allocated so far, how many cores it runs on and when it gives its
// free heap back.
type governor struct {
	adjust, narrowed bool // adjust: GOMAXPROCS is ours to set
	started          bool
	quiet            int // seconds in a row under quietCPU
	seconds          int // since the first sample
	cpu              time.Duration
	looked, freed    uint64 // bytes allocated at the last trim window, at the last trim
}

func newGovernor(adjust bool) *governor { return &governor{adjust: adjust} }

// step takes a second's sample and returns what to do with the cores
// (keep, narrow or widen) and whether to give the free heap back now.
func (g *governor) step(cpu time.Duration, allocated uint64) (cores int, trim bool) {
	used := cpu - g.cpu
	g.cpu = cpu
	if !g.started {
		g.started, g.looked, g.freed = true, allocated, allocated
		return keep, false
	}
	g.seconds++
	if g.adjust {
		switch {
		case used > busyCPU:
			g.quiet = 0
			if g.narrowed {
				g.narrowed, cores = false, widen
			}
		case used < quietCPU:
			g.quiet++
			if g.quiet >= quietFor && !g.narrowed {
				g.narrowed, cores = true, narrow
			}
		default:
			g.quiet = 0
		}
	}
	if g.seconds%trimEvery == 0 {
		trim = allocated-g.looked < trimBusy && allocated-g.freed >= trimEnough
		if trim {
			g.freed = allocated
		}
		g.looked = allocated
	}
	return cores, trim
}

// trimmed takes the CPU a trim used out of the next second's sample.
func (g *governor) trimmed(cpu time.Duration) { g.cpu += cpu }
