package host

import (
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
		// The third failure, at 40 s, kills it, and it starts again at once.
		cs := status(40 * s)
		if cs.State.Running == nil || cs.RestartCount != 1 ||
			cs.LastTerminationState.Terminated == nil || cs.LastTerminationState.Terminated.ExitCode != 137 ||
			!cs.LastTerminationState.Terminated.FinishedAt.Time.Equal(time.Date(2026, 1, 1, 0, 0, 40, 0, time.UTC)) {
			t.Errorf("at 40 s: %+v", cs)
		}
		// The second time round, killed at 80 s, it backs off for 10 s.
		if cs := status(85 * s); cs.State.Waiting == nil || cs.State.Waiting.Reason != "CrashLoopBackOff" || cs.RestartCount != 1 {
			t.Errorf("at 85 s: %+v", cs)
		}
		if cs := status(90 * s); cs.State.Running == nil || cs.RestartCount != 2 {
			t.Errorf("at 90 s, after the back-off: %+v", cs)
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
		if cs := status(5 * s); cs.State.Terminated == nil || cs.State.Terminated.ExitCode != 137 {
			t.Errorf("at 5 s: %+v", cs)
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
