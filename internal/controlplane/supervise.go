package controlplane

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/vmatrix/vmatrix/internal/proc"
	"github.com/vmatrix/vmatrix/internal/storage"
)

// How a running control plane keeps its components (and an etcd of its own)
// up. A component that
// exits (killed, crashed) is started again with the same flags after a
// back-off that doubles from restartBackoff up to maxBackoff; when one has
// exited more than maxRestarts times within restartWindow the control plane
// is Failed, with that component's last words, and nothing more is started.
// When what failed is the store's process or the apiserver, every other
// component is stopped too: none can work without it, and each would hold
// memory and retry until the cluster is deleted. The folder (store, logs)
// stays.
var (
	restartBackoff = time.Second
	maxBackoff     = 30 * time.Second
	maxRestarts    = 5
	restartWindow  = 10 * time.Minute
	superviseEvery = 200 * time.Millisecond
)

// The states of a running control plane.
const (
	StateRunning    = "running"
	StateRestarting = "restarting" // a component is down and will be started again
	StateFailed     = "failed"
)

// Health is where a running control plane stands.
type Health struct {
	State string
	// Restarts counts, per component, the starts since the control plane
	// was ready.
	Restarts map[string]int
	// Err says, for a failed control plane, which component could not be
	// kept up and why, with its last log lines.
	Err error
}

// supervision is the state supervise keeps, guarded by cp.mu.
type supervision struct {
	cancel   context.CancelFunc
	done     chan struct{}
	restarts map[string]int
	recent   map[string][]time.Time // exits within restartWindow
	due      map[string]time.Time   // when an exited component starts again
	err      error
	orphans  []*proc.Process // components left without what they need, to stop
	changed  chan struct{}   // closed and replaced on every change
}

// supervise watches the components from now on, until Stop.
func (cp *ControlPlane) supervise() {
	ctx, cancel := context.WithCancel(context.Background())
	cp.mu.Lock()
	cp.sup = &supervision{cancel: cancel, done: make(chan struct{}), restarts: map[string]int{},
		recent: map[string][]time.Time{}, due: map[string]time.Time{}, changed: make(chan struct{})}
	sup := cp.sup
	cp.mu.Unlock()
	go func() {
		defer close(sup.done)
		tick := time.NewTicker(superviseEvery)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			cp.mu.Lock()
			if cp.checkComponents(time.Now()) {
				close(sup.changed)
				sup.changed = make(chan struct{})
			}
			orphans := sup.orphans
			sup.orphans = nil
			cp.mu.Unlock()
			for _, p := range orphans {
				_ = p.Stop(componentGrace(p))
			}
		}
	}()
}

// supervised is a process the control plane keeps up: a component, or the
// store's own process.
type supervised struct {
	get func() *proc.Process
	set func(*proc.Process)
}

// watched lists what supervise keeps up. cp.mu is held.
func (cp *ControlPlane) watched() []supervised {
	var w []supervised
	if ps, ok := cp.store.(storage.ProcessStore); ok && ps.Process() != nil {
		w = append(w, supervised{ps.Process, ps.Restarted})
	}
	for i := range cp.procs {
		w = append(w, supervised{func() *proc.Process { return cp.procs[i] }, func(p *proc.Process) { cp.procs[i] = p }})
	}
	return w
}

// checkComponents restarts what is due and reports whether anything
// changed. cp.mu is held.
func (cp *ControlPlane) checkComponents(now time.Time) bool {
	sup := cp.sup
	if sup.err != nil {
		return false
	}
	changed := false
	for _, w := range cp.watched() {
		p := w.get()
		done, exitErr := p.Exited()
		if !done {
			continue
		}
		due, waiting := sup.due[p.Name]
		if !waiting {
			var recent []time.Time
			for _, t := range sup.recent[p.Name] {
				if now.Sub(t) < restartWindow {
					recent = append(recent, t)
				}
			}
			sup.recent[p.Name] = append(recent, now)
			if len(sup.recent[p.Name]) > maxRestarts {
				sup.err, sup.orphans = cp.exitError(p, exitErr, len(recent)), cp.dependents(p)
				return true
			}
			backoff := restartBackoff << (len(recent))
			if backoff > maxBackoff {
				backoff = maxBackoff
			}
			sup.due[p.Name] = now.Add(backoff)
			changed = true
			continue
		}
		if now.Before(due) {
			continue
		}
		np, err := p.Restart()
		if err != nil {
			sup.err, sup.orphans = err, cp.dependents(p)
			return true
		}
		w.set(np)
		sup.restarts[p.Name]++
		delete(sup.due, p.Name)
		changed = true
	}
	return changed
}

// dependents are the components that cannot work without p: all of them
// when p is the store's process or the apiserver, last started first. cp.mu
// is held.
func (cp *ControlPlane) dependents(p *proc.Process) []*proc.Process {
	ps, ok := cp.store.(storage.ProcessStore)
	if !servesAPI(p) && !(ok && ps.Process() == p) {
		return nil
	}
	var out []*proc.Process
	for _, c := range slices.Backward(cp.procs) {
		if c != p {
			out = append(out, c)
		}
	}
	return out
}

// Health says where the control plane stands.
func (cp *ControlPlane) Health() Health {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if cp.sup == nil {
		return Health{State: StateRunning, Restarts: map[string]int{}}
	}
	h := Health{State: StateRunning, Restarts: maps.Clone(cp.sup.restarts), Err: cp.sup.err}
	switch {
	case cp.sup.err != nil:
		h.State = StateFailed
	case len(cp.sup.due) > 0:
		h.State = StateRestarting
	}
	return h
}

// Changed is closed at the next change of Health.
func (cp *ControlPlane) Changed() <-chan struct{} {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if cp.sup == nil {
		return make(chan struct{})
	}
	return cp.sup.changed
}

// stopSupervising ends supervise and waits for it.
func (cp *ControlPlane) stopSupervising() {
	cp.mu.Lock()
	sup := cp.sup
	cp.mu.Unlock()
	if sup != nil {
		sup.cancel()
		<-sup.done
	}
}
