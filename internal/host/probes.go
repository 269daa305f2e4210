package host

import (
	"cmp"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
)

// How the simulated kubelet probes a running container, as a kubelet's
// prober does: the startup probe first, then liveness and readiness, each
// from the container's start plus its initial delay, every period.
//
//   - An exec probe's command is read as a container's command is
//     (readCommand), in the container's sandbox as its run has left it at
//     that moment: the files its script, and commands exec'd into it, have
//     written or removed by then. It passes when it exits 0 within its
//     timeout.
//   - A probe the simulation cannot follow passes at its first look and is
//     not looked at again: one that runs a program or reads a file the
//     simulation cannot know, any exec probe of a container whose own
//     command it cannot follow (whatever that wrote is unknown), and an
//     HTTP, TCP or gRPC probe, since nothing listens in a simulated pod.
//   - Each failure is an Unhealthy event with the probe's output. A liveness
//     or startup probe that fails failureThreshold times in a row kills the
//     container (exit code 137, after its grace period, as a shell that
//     ignores SIGTERM ends), which then starts again as the pod's
//     restartPolicy says. Readiness comes
//     after successThreshold passes and goes after failureThreshold
//     failures.

type probeKind int

const (
	startupProbe probeKind = iota
	livenessProbe
	readinessProbe
)

func (k probeKind) String() string { return [...]string{"Startup", "Liveness", "Readiness"}[k] }

// prober is one probe of a container's current run.
type prober struct {
	kind          probeKind
	spec          *corev1.Probe
	at            time.Time // its next look
	fails, passes int32     // in a row
	settled       bool      // not looked at again
}

// newProbers are the probes of a container's run that starts at start.
func newProbers(c *corev1.Container, start time.Time) []*prober {
	var probes []*prober
	for kind, spec := range []*corev1.Probe{c.StartupProbe, c.LivenessProbe, c.ReadinessProbe} {
		if spec != nil {
			probes = append(probes, &prober{kind: probeKind(kind), spec: spec, at: start.Add(seconds(spec.InitialDelaySeconds, 0))})
		}
	}
	return probes
}

// seconds is a probe's field in seconds, or its default when not set.
func seconds(n, fallback int32) time.Duration {
	if n <= 0 {
		n = fallback
	}
	return time.Duration(n) * time.Second
}

func threshold(n int32) int32 { return max(n, 1) }

// probe returns the container's probe of kind; nil if it has none.
func (c *simContainer) probe(kind probeKind) *prober {
	for _, pr := range c.probes {
		if pr.kind == kind {
			return pr
		}
	}
	return nil
}

// startedUp reports whether the container's startup probe, if any, has passed.
func (c *simContainer) startedUp() bool {
	pr := c.probe(startupProbe)
	return pr == nil || pr.passes >= 1
}

// dueProbe is the probe to look at next by now, before the run ends; nil
// when none is due.
func (c *simContainer) dueProbe(now time.Time) *prober {
	var due *prober
	for _, pr := range c.probes {
		if c.killing || pr.settled || pr.kind != startupProbe && !c.startedUp() || pr.at.After(now) ||
			!c.exitAt.IsZero() && !pr.at.Before(c.exitAt) {
			continue
		}
		if due == nil || pr.at.Before(due.at) {
			due = pr
		}
	}
	return due
}

// nextProbe is when the container is next probed (zero: never).
func (c *simContainer) nextProbe() time.Time {
	var next time.Time
	for _, pr := range c.probes {
		if !c.killing && !pr.settled && (pr.kind == startupProbe || c.startedUp()) {
			next = earliest(next, pr.at)
		}
	}
	return next
}

// look runs a probe at a moment of the container's run, the pod's volumes
// unknown (unknownVolumes) as they are now: whether it passed, what it
// printed, and whether the simulation could follow it.
func (c *simContainer) look(pr *prober, at time.Time, unknown map[string]bool) (passed bool, output string, known bool) {
	if pr.spec.Exec == nil || c.guessed {
		return true, "", false // nothing listens; or what the run wrote is unknown
	}
	argv := expandCommand(pr.spec.Exec.Command, c.box.env)
	res, err := readCommand(argv, c.box.opaque(unknown).at(c.view.changes(), at.Sub(c.started)))
	if err != nil {
		return true, "", false
	}
	if res.forever || res.duration > seconds(pr.spec.TimeoutSeconds, 1) {
		return false, fmt.Sprintf("command %q timed out", strings.Join(argv, " ")), true
	}
	var out strings.Builder
	for _, l := range res.output {
		out.WriteString(l.text + "\n")
	}
	return res.exitCode == 0, out.String(), true
}

// runProbes looks at the container's probes due by now, in their order in
// time. It returns true when a failed one has the container killed: its run
// then ends after its grace period (exitAt), with exit code 137, and is not
// probed again.
func (k *simulatedKubelet) runProbes(r *podRun, p *corev1.Pod, c *simContainer, now time.Time) bool {
	for {
		pr := c.dueProbe(now)
		if pr == nil {
			return false
		}
		at := pr.at
		passed, output, known := c.look(pr, at, r.unknownVolumes(c))
		pr.at = at.Add(seconds(pr.spec.PeriodSeconds, 10))
		pr.settled = !known
		switch {
		case !known: // as good as passing for ever
			pr.fails, pr.passes = 0, threshold(pr.spec.SuccessThreshold)
		case passed:
			pr.fails, pr.passes = 0, pr.passes+1
		default:
			pr.fails, pr.passes = pr.fails+1, 0
			k.recorder.Eventf(p, corev1.EventTypeWarning, "Unhealthy", "%s probe failed: %s", pr.kind, output)
		}
		switch {
		case pr.kind == startupProbe && passed:
			pr.settled = true
			for _, other := range c.probes {
				other.at = latest(other.at, at) // held until now, due from now
			}
			if c.probe(readinessProbe) == nil {
				c.ready(at)
			}
		case pr.kind == readinessProbe && passed && pr.passes >= threshold(pr.spec.SuccessThreshold):
			c.ready(at)
		case pr.kind == readinessProbe && !passed && pr.fails >= threshold(pr.spec.FailureThreshold):
			c.readyAt, c.readyLogged = time.Time{}, false
		case !passed && pr.fails >= threshold(pr.spec.FailureThreshold): // startup, liveness
			restart := ""
			if r.restarts(c, 137) {
				restart = ", will be restarted"
			}
			k.recorder.Eventf(p, corev1.EventTypeNormal, "Killing", "Container %s failed %s probe%s", c.spec.Name, strings.ToLower(pr.kind.String()), restart)
			// Stopped as a shell that ignores SIGTERM is: killed when its
			// grace period is over, unless its script ends before.
			grace := time.Duration(*cmp.Or(pr.spec.TerminationGracePeriodSeconds, p.Spec.TerminationGracePeriodSeconds, ptr.To[int64](30))) * time.Second
			if end := at.Add(grace); c.exitAt.IsZero() || end.Before(c.exitAt) {
				c.code, c.exitAt = 137, end
			}
			c.killing = true
			return true
		}
	}
}

// ready makes the container Ready from at, if it ever becomes Ready.
func (c *simContainer) ready(at time.Time) {
	if c.readyAt.IsZero() && !c.neverReady && !(c.init && !c.sidecar) && !c.ephemeral {
		c.readyAt = at
	}
}

func latest(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
