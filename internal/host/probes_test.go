package host

import (
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
)

// fakeKubelet is a simulated kubelet with no server, stepped on a clock of
// the test's: it starts pods and tells events, nothing else.
func fakeKubelet(t *testing.T) (*simulatedKubelet, *record.FakeRecorder) {
	indexer := func() cache.Indexer {
		return cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	}
	events := record.NewFakeRecorder(1000)
	return &simulatedKubelet{
		dir:        t.TempDir(),
		client:     fake.NewClientset(),
		configMaps: corelisters.NewConfigMapLister(indexer()),
		secrets:    corelisters.NewSecretLister(indexer()),
		recorder:   events,
	}, events
}

// steppedPod runs p on a fake kubelet from t0 and returns the status of its
// first container at a time into its life (asked in order), and the events
// told so far.
func steppedPod(t *testing.T, p *corev1.Pod) (func(time.Duration) corev1.ContainerStatus, func() []string) {
	pod := stepPod(t, p)
	return func(d time.Duration) corev1.ContainerStatus { return pod.at(d).ContainerStatuses[0] }, pod.events
}

// steppedRun is a pod run on a fake kubelet, stepped on the test's clock.
type steppedRun struct {
	k        *simulatedKubelet
	recorder *record.FakeRecorder
	r        *podRun
	p        *corev1.Pod
	t0, next time.Time
	told     []string
}

func stepPod(t *testing.T, p *corev1.Pod) *steppedRun {
	k, recorder := fakeKubelet(t)
	s := &steppedRun{k: k, recorder: recorder, r: newPodRun(p, "10.0.0.1"), p: p, t0: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	k.pods = map[types.UID]*podRun{p.UID: s.r}
	s.next = k.step(s.r, p, s.t0)
	return s
}

// at is the pod's status d into its life; asked in order.
func (s *steppedRun) at(d time.Duration) corev1.PodStatus {
	for !s.next.IsZero() && !s.next.After(s.t0.Add(d)) {
		s.next = s.k.step(s.r, s.p, s.next)
	}
	s.next = s.k.step(s.r, s.p, s.t0.Add(d))
	return s.r.status(s.p, s.t0.Add(d))
}

// events are the events told so far.
func (s *steppedRun) events() []string {
	for {
		select {
		case e := <-s.recorder.Events:
			s.told = append(s.told, e)
		default:
			return s.told
		}
	}
}

// log is what a container's log holds, its lines' text.
func (s *steppedRun) log(t *testing.T, container string) string {
	b, err := os.ReadFile(ContainerLogPath(s.k.dir, s.p.Namespace, s.p.Name, container))
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	for _, l := range strings.SplitAfter(string(b), "\n") {
		if _, text, ok := strings.Cut(l, " stdout F "); ok {
			out.WriteString(text)
		}
	}
	return out.String()
}

func unhealthy(events []string) []string {
	var out []string
	for _, e := range events {
		if strings.Contains(e, " Unhealthy ") {
			out = append(out, e)
		}
	}
	return out
}

func execProbe(command string, delay, period, failures int32) *corev1.Probe {
	return &corev1.Probe{
		ProbeHandler:        corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"sh", "-c", command}}},
		InitialDelaySeconds: delay, PeriodSeconds: period, FailureThreshold: failures, SuccessThreshold: 1, TimeoutSeconds: 1,
	}
}

func probedPod(script string, c func(*corev1.Container)) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u"},
		Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyAlways, Containers: []corev1.Container{{
			Name: "app", Image: "busybox", Command: []string{"sh", "-c", script},
			VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/data"}},
		}}, Volumes: []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}},
	}
	c(&p.Spec.Containers[0])
	return p
}

// TestUnitProbes: exec probes see what the container's script has written
// and removed by their moment, and act on it as a kubelet's prober does.
func TestUnitProbes(t *testing.T) {
	s := time.Second
	t.Run("liveness", func(t *testing.T) {
		// The Kubernetes documentation's liveness example.
		status, events := steppedPod(t, probedPod("touch /tmp/healthy; sleep 30; rm -f /tmp/healthy; sleep 600", func(c *corev1.Container) {
			c.LivenessProbe = execProbe("cat /tmp/healthy", 5, 5, 3)
		}))
		if cs := status(39 * s); cs.State.Running == nil || cs.RestartCount != 0 || !cs.Ready {
			t.Errorf("at 39 s, after two failed probes: %+v", cs)
		}
		// The third failure, at 40 s, has it killed when its grace period
		// of 30 s is over; then it starts again at once.
		if cs := status(69 * s); cs.State.Running == nil || cs.RestartCount != 0 {
			t.Errorf("at 69 s, in its grace period: %+v", cs)
		}
		cs := status(70 * s)
		if cs.State.Running == nil || cs.RestartCount != 1 ||
			cs.LastTerminationState.Terminated == nil || cs.LastTerminationState.Terminated.ExitCode != 137 ||
			!cs.LastTerminationState.Terminated.FinishedAt.Time.Equal(time.Date(2026, 1, 1, 0, 1, 10, 0, time.UTC)) {
			t.Errorf("at 70 s: %+v", cs)
		}
		// The second time round, killed at 140 s, it backs off for 10 s.
		if cs := status(145 * s); cs.State.Waiting == nil || cs.State.Waiting.Reason != "CrashLoopBackOff" || cs.RestartCount != 1 {
			t.Errorf("at 145 s: %+v", cs)
		}
		if cs := status(150 * s); cs.State.Running == nil || cs.RestartCount != 2 {
			t.Errorf("at 150 s, after the back-off: %+v", cs)
		}
		got := strings.Join(events(), "\n")
		want := "Warning Unhealthy Liveness probe failed: cat: can't open '/tmp/healthy': No such file or directory\n"
		if strings.Count(got, want) != 6 || !strings.Contains(got, "Normal Killing Container app failed liveness probe, will be restarted") {
			t.Errorf("events:\n%s", got)
		}
	})
	t.Run("readiness", func(t *testing.T) {
		status, events := steppedPod(t, probedPod("sleep 4; echo ok > /data/ready; sleep 20; rm /data/ready; sleep infinity", func(c *corev1.Container) {
			c.ReadinessProbe = execProbe(`test "$(cat /data/ready)" = ok`, 0, 2, 2)
		}))
		for _, step := range []struct {
			at    time.Duration
			ready bool
		}{{0, false}, {3 * s, false}, {4 * s, true}, {25 * s, true}, {26 * s, false}, {60 * s, false}} {
			if cs := status(step.at); cs.Ready != step.ready || cs.State.Running == nil {
				t.Errorf("at %s: ready %v, want %v (%+v)", step.at, cs.Ready, step.ready, cs)
			}
		}
		// Failed at 0 and 2 s, before the file is there, and from 24 s on.
		if got := unhealthy(events()); len(got) != 2+(60-24)/2+1 || !strings.HasPrefix(got[0], "Warning Unhealthy Readiness probe failed: cat: can't open '/data/ready'") {
			t.Errorf("events: %q", got)
		}
	})
	t.Run("startup", func(t *testing.T) {
		status, _ := steppedPod(t, probedPod("sleep 12; mkdir -p /data/run; touch /data/run/started; sleep infinity", func(c *corev1.Container) {
			c.StartupProbe = execProbe("[ -f /data/run/started ]", 0, 5, 10)
			// Not looked at before it has started: it would kill it.
			c.LivenessProbe = execProbe("[ -f /data/run/started ]", 0, 1, 1)
			c.ReadinessProbe = execProbe("true", 0, 1, 1)
		}))
		if cs := status(14 * s); *cs.Started || cs.Ready {
			t.Errorf("at 14 s, before the startup probe passes: %+v", cs)
		}
		if cs := status(15 * s); !*cs.Started || !cs.Ready || cs.RestartCount != 0 {
			t.Errorf("at 15 s: %+v", cs)
		}
	})
	t.Run("startup fails", func(t *testing.T) {
		p := probedPod("sleep infinity", func(c *corev1.Container) {
			c.StartupProbe = execProbe("cat /data/x", 1, 1, 2)
		})
		p.Spec.RestartPolicy = corev1.RestartPolicyNever
		status, events := steppedPod(t, p)
		// Failed at 1 and 2 s; killed at 32 s.
		if cs := status(31 * s); cs.State.Running == nil {
			t.Errorf("at 31 s: %+v", cs)
		}
		if cs := status(32 * s); cs.State.Terminated == nil || cs.State.Terminated.ExitCode != 137 {
			t.Errorf("at 32 s: %+v", cs)
		}
		if got := strings.Join(events(), "\n"); !strings.HasSuffix(got, "Normal Killing Container app failed startup probe") {
			t.Errorf("events:\n%s", got)
		}
	})
	t.Run("never written", func(t *testing.T) {
		// /tmp is empty in an image: a file the script never made is not there.
		status, _ := steppedPod(t, probedPod("sleep infinity", func(c *corev1.Container) {
			c.ReadinessProbe = execProbe("cat /tmp/ready", 0, 1, 3)
		}))
		if cs := status(30 * s); cs.Ready || cs.State.Running == nil {
			t.Errorf("at 30 s: %+v", cs)
		}
	})
	t.Run("folder", func(t *testing.T) {
		status, _ := steppedPod(t, probedPod("sleep 2; mkdir -p /data/ready; sleep infinity", func(c *corev1.Container) {
			c.ReadinessProbe = execProbe("test -d /data/ready", 0, 1, 1)
		}))
		if cs := status(1 * s); cs.Ready {
			t.Errorf("at 1 s: %+v", cs)
		}
		if cs := status(2 * s); !cs.Ready {
			t.Errorf("at 2 s: %+v", cs)
		}
	})
	t.Run("sidecar", func(t *testing.T) {
		// A sidecar holds the app back until its startup probe passes, and
		// its readiness is the pod's.
		always := corev1.ContainerRestartPolicyAlways
		p := probedPod("sleep infinity", func(c *corev1.Container) {})
		p.Spec.InitContainers = []corev1.Container{{Name: "proxy", Image: "busybox", RestartPolicy: &always,
			Command:        []string{"sh", "-c", "sleep 3; touch /tmp/up; sleep 10; rm /tmp/up; sleep infinity"},
			StartupProbe:   execProbe("cat /tmp/up", 0, 1, 10),
			ReadinessProbe: execProbe("cat /tmp/up", 0, 1, 1)}}
		pod := stepPod(t, p)
		if st := pod.at(2 * s); len(st.ContainerStatuses) != 1 || st.ContainerStatuses[0].State.Running != nil {
			t.Errorf("at 2 s the app runs before its sidecar has started: %+v", st.ContainerStatuses)
		}
		ready := func(st corev1.PodStatus) bool {
			for _, c := range st.Conditions {
				if c.Type == corev1.PodReady {
					return c.Status == corev1.ConditionTrue
				}
			}
			return false
		}
		if st := pod.at(4 * s); st.ContainerStatuses[0].State.Running == nil || !ready(st) {
			t.Errorf("at 4 s: %+v", st)
		}
		if st := pod.at(14 * s); ready(st) || !st.ContainerStatuses[0].Ready {
			t.Errorf("at 14 s, its sidecar not ready: %+v", st)
		}
	})
	t.Run("written by another", func(t *testing.T) {
		// What a container the simulation cannot follow wrote, or one
		// running beside, is unknown: a probe of it passes.
		p := probedPod("sleep infinity", func(c *corev1.Container) {
			c.ReadinessProbe = execProbe("cat /data/index.html", 0, 1, 1)
		})
		p.Spec.InitContainers = []corev1.Container{{Name: "fetch", Image: "busybox", Command: []string{"wget", "-O", "/data/index.html", "http://example"},
			VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}}}
		pod := stepPod(t, p)
		if st := pod.at(10 * s); !st.ContainerStatuses[0].Ready {
			t.Errorf("after a fetching init container: %+v", st.ContainerStatuses)
		}
		p = probedPod("sleep infinity", func(c *corev1.Container) {
			c.ReadinessProbe = execProbe("test -f /data/ready", 0, 1, 1)
		})
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "writer", Image: "busybox", Command: []string{"sh", "-c", "sleep 5; touch /data/ready; sleep infinity"},
			VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}})
		pod = stepPod(t, p)
		if st := pod.at(10 * s); !st.ContainerStatuses[0].Ready {
			t.Errorf("beside a writer: %+v", st.ContainerStatuses)
		}
	})
	t.Run("tmp shared", func(t *testing.T) {
		// Both mount an emptyDir at /tmp; the other makes the file.
		p := probedPod("sleep 3600", func(c *corev1.Container) {
			c.ReadinessProbe = execProbe("cat /tmp/ready", 0, 1, 1)
			c.VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/tmp"}}
		})
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "maker", Image: "busybox", Command: []string{"sh", "-c", "touch /tmp/ready; sleep 3600"},
			VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/tmp"}}})
		if st := stepPod(t, p).at(5 * s); !st.ContainerStatuses[0].Ready {
			t.Errorf("%+v", st.ContainerStatuses)
		}
	})
	t.Run("reader beside a sleeper", func(t *testing.T) {
		// One that only sleeps beside it does not make the volume unknown.
		p := probedPod("cat /data/msg; sleep 3600", func(c *corev1.Container) {})
		p.Spec.InitContainers = []corev1.Container{{Name: "init", Image: "busybox", Command: []string{"sh", "-c", "echo hello > /data/msg"},
			VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}}}
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "idle", Image: "busybox", Command: []string{"sleep", "3600"},
			VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}})
		pod := stepPod(t, p)
		pod.at(5 * s)
		if got := pod.log(t, "app"); !strings.Contains(got, "started\nhello\n") {
			t.Errorf("the app's log:\n%s", got)
		}
	})
	t.Run("http", func(t *testing.T) {
		status, _ := steppedPod(t, probedPod("sleep infinity", func(c *corev1.Container) {
			c.ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/"}}, SuccessThreshold: 3, PeriodSeconds: 1}
		}))
		if cs := status(5 * s); !cs.Ready {
			t.Errorf("an HTTP probe with successThreshold 3: %+v", cs)
		}
	})
	t.Run("cannot follow", func(t *testing.T) {
		// A probe of a command the simulation cannot follow, or of a
		// container whose own command it cannot, passes.
		status, events := steppedPod(t, probedPod("sleep infinity", func(c *corev1.Container) {
			c.LivenessProbe = execProbe("pg_isready", 0, 1, 1)
			c.ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/"}}, InitialDelaySeconds: 2}
		}))
		if cs := status(1 * s); cs.Ready {
			t.Errorf("ready before its readiness probe's delay: %+v", cs)
		}
		if cs := status(30 * s); !cs.Ready || cs.RestartCount != 0 {
			t.Errorf("at 30 s: %+v", cs)
		}
		nginx, _ := steppedPod(t, probedPod("", func(c *corev1.Container) {
			c.Command, c.Image = nil, "nginx"
			c.LivenessProbe = execProbe("cat /data/pid", 0, 1, 1)
		}))
		if cs := nginx(30 * s); !cs.Ready || cs.RestartCount != 0 {
			t.Errorf("nginx at 30 s: %+v", cs)
		}
		if got := unhealthy(events()); len(got) != 0 {
			t.Errorf("events: %q", got)
		}
	})
}

// TestUnitSharedVolumes: what a container writes to an emptyDir, the
// containers that start after it read, and so does its own next run.
func TestUnitSharedVolumes(t *testing.T) {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u"},
		Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyOnFailure,
			InitContainers: []corev1.Container{{Name: "init", Image: "busybox", Command: []string{"sh", "-c", "mkdir /work/conf; echo port=80 > /work/conf/app.conf"},
				VolumeMounts: []corev1.VolumeMount{{Name: "work", MountPath: "/work"}}}},
			Containers: []corev1.Container{{Name: "app", Image: "busybox",
				Command:      []string{"sh", "-c", "cat /etc/app/app.conf; cat /data/runs 2>/dev/null; echo run >> /data/runs; sleep 1; [ $(wc -l < /data/runs) -ge 2 ] || exit 1"},
				VolumeMounts: []corev1.VolumeMount{{Name: "work", MountPath: "/etc/app", SubPath: "conf"}, {Name: "work", MountPath: "/data", SubPath: "state"}}}},
			Volumes: []corev1.Volume{{Name: "work", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}},
	}
	pod := stepPod(t, p)
	if st := pod.at(time.Minute); st.Phase != corev1.PodSucceeded || st.ContainerStatuses[0].RestartCount != 1 {
		t.Fatalf("the pod: %s %+v", st.Phase, st.ContainerStatuses)
	}
	// The first run found no runs before it; the second, the first's.
	if got := pod.log(t, "app"); !strings.Contains(got, "started\nport=80\nrun\ncontainer app is ready\ncontainer app terminated: exit code 0") {
		t.Errorf("the app's log:\n%s", got)
	}
}

// TestUnitExec: a command exec'd into a simulated container that the
// simulation can follow runs in its sandbox: it reads what the script
// wrote, and what it writes and removes stays for the run, probes included.
func TestUnitExec(t *testing.T) {
	s := time.Second
	pod := stepPod(t, probedPod("echo up > /tmp/healthy; sleep infinity", func(c *corev1.Container) {
		c.LivenessProbe = execProbe("cat /tmp/healthy", 0, 5, 3)
	}))
	exec := func(d time.Duration, cmd ...string) (string, int32, bool) {
		res, ok := pod.k.simulatedExec(pod.p, "app", cmd, pod.t0.Add(d))
		var out strings.Builder
		for _, l := range res.output {
			out.WriteString(l.text + "\n")
		}
		return out.String(), res.exitCode, ok
	}
	pod.at(9 * s)
	if out, code, ok := exec(9*s, "cat", "/tmp/healthy"); out != "up\n" || code != 0 || !ok {
		t.Errorf("cat /tmp/healthy: %q %d %v", out, code, ok)
	}
	if _, _, ok := exec(9*s, "sh", "-c", "echo x > /data/f; rm /tmp/healthy"); !ok {
		t.Error("the writes were not followed")
	}
	if out, code, _ := exec(9*s, "sh", "-c", "cat /data/f; cat /tmp/healthy"); out != "x\ncat: can't open '/tmp/healthy': No such file or directory\n" || code != 1 {
		t.Errorf("after them: %q %d", out, code)
	}
	for _, cmd := range [][]string{{"cat", "/etc/os-release"}, {"sleep", "1"}, {"uname", "-a"}} {
		if _, _, ok := exec(9*s, cmd...); ok {
			t.Errorf("%q ran in the sandbox", cmd)
		}
	}
	// printf x prints no end of line.
	if res, ok := pod.k.simulatedExec(pod.p, "app", []string{"printf", "x"}, pod.t0.Add(9*s)); !ok || len(res.output) != 1 || !res.output[0].unfinished {
		t.Errorf("printf x: %+v %v", res.output, ok)
	}
	// After a command ran on this machine, what the sandbox's writable
	// folders hold is no longer its to tell.
	pod.k.execOnMachine(pod.p, "app")
	if _, _, ok := exec(9*s, "cat", "/data/f"); ok {
		t.Error("cat /data/f ran in the sandbox after a command on the machine")
	}
	// The probe finds the file gone: failures at 10, 15 and 20 s.
	if cs := pod.at(20 * s).ContainerStatuses[0]; cs.State.Running == nil {
		t.Errorf("at 20 s: %+v", cs)
	}
	if got := unhealthy(pod.events()); len(got) != 3 {
		t.Errorf("events: %q", got)
	}
	// Killed at 50 s and started again: the next run has its own /tmp.
	if cs := pod.at(60 * s).ContainerStatuses[0]; cs.RestartCount != 1 {
		t.Errorf("at 60 s: %+v", cs)
	}
	if out, _, ok := exec(60*s, "cat", "/tmp/healthy"); out != "up\n" || !ok {
		t.Errorf("in the next run, cat /tmp/healthy: %q %v", out, ok)
	}
}
