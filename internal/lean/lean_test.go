package lean

import (
	"slices"
	"testing"
	"time"
)

// process feeds a governor one sample a second, as Run does, from a start
// that used startCPU and allocated startBytes; each trim costs trimCPU.
type process struct {
	g        *governor
	cpu      time.Duration
	allocs   uint64
	cores    int // the cores it runs on
	defaults int // Go's choice
	trims    int
}

const trimCPU = 120 * time.Millisecond

func newProcess(cores int, adjust bool) *process {
	p := &process{g: newGovernor(adjust), cores: cores, defaults: cores, cpu: 5 * time.Second, allocs: 300 << 20}
	p.second(0, 0) // Run's first sample
	return p
}

// second is one second that used cpu and allocated bytes.
func (p *process) second(cpu time.Duration, bytes uint64) {
	p.cpu += cpu
	p.allocs += bytes
	cores, trim := p.g.step(p.cpu, p.allocs)
	switch cores {
	case narrow:
		p.cores = 1
	case widen:
		p.cores = p.defaults
	}
	if trim {
		p.trims++
		p.cpu += trimCPU
		p.g.trimmed(trimCPU)
	}
}

// seconds runs n seconds alike and returns the cores after each.
func (p *process) seconds(n int, cpu time.Duration, bytes uint64) []int {
	var procs []int
	for range n {
		p.second(cpu, bytes)
		procs = append(procs, p.cores)
	}
	return procs
}

func TestIdleProcessRunsOnOneCoreUntilBusy(t *testing.T) {
	p := newProcess(4, true)
	idle := p.seconds(quietFor, 30*time.Millisecond, 100<<10)
	if want := append(slices.Repeat([]int{4}, quietFor-1), 1); !slices.Equal(idle, want) {
		t.Fatalf("idle for %d s: cores %v, want %v", quietFor, idle, want)
	}
	if got := p.seconds(1, 400*time.Millisecond, 50<<20); got[0] != 4 {
		t.Fatalf("a busy second left the process on %d cores, want all 4", got[0])
	}
	// Neither a moderate second nor a short quiet spell takes the cores
	// away again.
	p.seconds(1, 150*time.Millisecond, 1<<20)
	if got := p.seconds(quietFor-1, 30*time.Millisecond, 0); got[len(got)-1] != 4 {
		t.Fatalf("after %d quiet seconds the process runs on %d cores, want 4", quietFor-1, got[len(got)-1])
	}
	if got := p.seconds(1, 30*time.Millisecond, 0); got[0] != 1 {
		t.Fatalf("after %d quiet seconds the process runs on %d cores, want 1", quietFor, got[0])
	}
}

func TestCoresAreLeftAloneWhenFixed(t *testing.T) {
	for _, p := range []*process{newProcess(4, false), newProcess(1, false)} {
		want := p.cores
		p.seconds(3*quietFor, 0, 0)
		p.seconds(2, time.Second, 0)
		if p.cores != want {
			t.Errorf("cores changed from %d to %d", want, p.cores)
		}
	}
}

func TestTrimOnlyWhenIdleAndWorthIt(t *testing.T) {
	p := newProcess(2, true)
	// Busy: 10 MB a second is 100 MB a window, over trimBusy.
	p.seconds(3*trimEvery, 400*time.Millisecond, 10<<20)
	if p.trims != 0 {
		t.Fatalf("a busy process gave its heap back %d times", p.trims)
	}
	// Idle right after: the first quiet window gives back what the busy
	// time left.
	p.seconds(trimEvery, 30*time.Millisecond, 100<<10)
	if p.trims != 1 {
		t.Fatalf("the first idle window gave the heap back %d times, want 1", p.trims)
	}
	// Then only once trimEnough has been allocated again: at 100 KB a
	// second, 16 MB take about 164 s.
	p.seconds(15*trimEvery, 30*time.Millisecond, 100<<10)
	if p.trims != 1 {
		t.Fatalf("150 idle seconds gave the heap back %d more times, want none", p.trims-1)
	}
	p.seconds(3*trimEvery, 30*time.Millisecond, 100<<10)
	if p.trims != 2 {
		t.Fatalf("after 16 MB more, %d trims, want 2", p.trims)
	}
}

// A process that gives its heap back every window, whose trims use more CPU
// than a quiet second may, still goes down to one core.
func TestTrimsDoNotKeepAProcessBusy(t *testing.T) {
	p := newProcess(2, true)
	p.seconds(trimEvery/2, 400*time.Millisecond, 2<<20)
	p.seconds(6*trimEvery, 30*time.Millisecond, 2<<20)
	if p.trims < 4 || p.cores != 1 {
		t.Fatalf("after %d trims, on %d cores; want several trims and one core", p.trims, p.cores)
	}
}
