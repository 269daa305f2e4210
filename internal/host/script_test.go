package host

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vmatrix/vmatrix/syncer"
)

func TestReadCommand(t *testing.T) {
	for _, tc := range []struct {
		argv []string
		env  map[string]string
		want run
		err  error
	}{
		{argv: []string{"sleep", "5"}, want: run{duration: 5 * time.Second}},
		{argv: []string{"/bin/sleep", "1m", "30"}, want: run{duration: 90 * time.Second}},
		{argv: []string{"sleep", "infinity"}, want: run{forever: true}},
		{argv: []string{"sleep", "3600000"}, want: run{forever: true}},
		{argv: []string{"true"}, want: run{}},
		{argv: []string{"false"}, want: run{exitCode: 1}},
		{argv: []string{"sh", "-c", "sleep 2; exit $((JOB_COMPLETION_INDEX % 2))"}, env: map[string]string{"JOB_COMPLETION_INDEX": "3"}, want: run{duration: 2 * time.Second, exitCode: 1}},
		{argv: []string{"sh", "-c", "sleep 2; exit $((JOB_COMPLETION_INDEX % 2))"}, env: map[string]string{"JOB_COMPLETION_INDEX": "2"}, want: run{duration: 2 * time.Second}},
		{argv: []string{"sh", "-c", "echo hello; echo oops >&2; exit 3"}, want: run{exitCode: 3, output: []outputLine{{at: 0, text: "hello"}, {at: 0, text: "oops"}}}},
		{argv: []string{"sh", "-c", `if [ "$MODE" = fail ]; then exit 7; fi; sleep 1`}, env: map[string]string{"MODE": "fail"}, want: run{exitCode: 7}},
		{argv: []string{"sh", "-c", `if [ "$MODE" = fail ]; then exit 7; fi; sleep 1`}, want: run{duration: time.Second}},
		{argv: []string{"/bin/sh", "-c", "sleep 0.5 && echo done > /dev/null && echo out"}, want: run{duration: 500 * time.Millisecond, output: []outputLine{{at: 500 * time.Millisecond, text: "out"}}}},
		// Each line when it is printed: "two" after the sleep.
		{argv: []string{"sh", "-c", "echo one; sleep 3; echo two; printf end"}, want: run{duration: 3 * time.Second, output: []outputLine{{at: 0, text: "one"}, {at: 3 * time.Second, text: "two"}, {at: 3 * time.Second, text: "end"}}}},
		{argv: []string{"sh", "-c", "echo up; sleep infinity"}, want: run{forever: true, output: []outputLine{{at: 0, text: "up"}}}},
		{argv: []string{"bash", "-c", "while true; do sleep 10; done"}, want: run{forever: true}},
		{argv: []string{"sh", "-c", "while :; do :; done"}, want: run{forever: true}},
		{argv: []string{"sh", "-c", "if [ $(expr ${JOB_COMPLETION_INDEX} % 2) -ne 0 ]; then\n exit 1\nelse\n exit 0\nfi"}, env: map[string]string{"JOB_COMPLETION_INDEX": "1"}, want: run{exitCode: 1}},
		{argv: []string{"sh", "-c", "if [ $(expr ${JOB_COMPLETION_INDEX} % 2) -ne 0 ]; then\n exit 1\nelse\n exit 0\nfi"}, env: map[string]string{"JOB_COMPLETION_INDEX": "4"}, want: run{}},
		{argv: []string{"expr", "2", "-", "2"}, want: run{exitCode: 1, output: []outputLine{{at: 0, text: "0"}}}},
		{argv: []string{"nginx", "-g", "daemon off;"}, err: errUnreadable},
		{argv: []string{"sh", "-c", "curl http://example"}, err: errUnreadable},
		{argv: []string{"sh", "/entrypoint.sh"}, err: errUnreadable},
		{argv: []string{"sh", "-c", "cat /etc/os-release"}, err: errUnreadable},
		{argv: []string{"sh", "-c", "date +%s"}, err: errUnreadable},
		{argv: []string{"env", "A=b", "sleep", "1"}, err: errUnreadable},
		// What a script writes it can read back, in the same run.
		{argv: []string{"sh", "-c", "echo x > /tmp/file; echo y >> /tmp/file; cat /tmp/file"}, want: run{output: []outputLine{{at: 0, text: "x"}, {at: 0, text: "y"}}}},
		{argv: []string{"sh", "-c", "echo a | cat; hostname; printenv MODE; printenv NONE"}, env: map[string]string{"HOSTNAME": "web-0", "MODE": "on"}, want: run{exitCode: 1, output: []outputLine{{at: 0, text: "a"}, {at: 0, text: "web-0"}, {at: 0, text: "on"}}}},
		{argv: []string{"printenv"}, env: map[string]string{"HOSTNAME": "p"}, want: run{output: []outputLine{{at: 0, text: "HOME=/root"}, {at: 0, text: "HOSTNAME=p"}, {at: 0, text: "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}}}},
		// touch, rm and mkdir on the files it can know.
		{argv: []string{"sh", "-c", "touch /tmp/a; cat /tmp/a; echo x > /tmp/a; cat /tmp/a; rm /tmp/a; cat /tmp/a"}, want: run{exitCode: 1, output: []outputLine{{at: 0, text: "x"}, {at: 0, text: "cat: can't open '/tmp/a': No such file or directory"}}}},
		{argv: []string{"sh", "-c", "rm -f /etc/motd; [ -f /etc/motd ] || echo gone"}, want: run{output: []outputLine{{at: 0, text: "gone"}}}},
		{argv: []string{"sh", "-c", "mkdir -p /tmp/d/e; echo 1 > /tmp/d/e/f; [ -d /tmp/d ] && echo dir; rm /tmp/d; rm -r /tmp/d; [ -e /tmp/d/e/f ] || echo gone"}, want: run{output: []outputLine{{at: 0, text: "dir"}, {at: 0, text: "rm: '/tmp/d' is a directory"}, {at: 0, text: "gone"}}}},
		{argv: []string{"sh", "-c", "touch -d yesterday /tmp/a"}, err: errUnreadable},
		// Text programs, as busybox's.
		{argv: []string{"sh", "-c", "for i in $(seq 1 3); do echo $i; sleep 1; done"}, want: run{duration: 3 * time.Second, output: []outputLine{{at: 0, text: "1"}, {at: time.Second, text: "2"}, {at: 2 * time.Second, text: "3"}}}},
		{argv: []string{"sh", "-c", "seq 3 | sort -rn | head -n 2; seq 10 | tail -1"}, want: run{output: []outputLine{{at: 0, text: "3"}, {at: 0, text: "2"}, {at: 0, text: "10"}}}},
		{argv: []string{"sh", "-c", `printf 'b\na\nb\n' > /tmp/f; sort -u /tmp/f; wc -l /tmp/f; wc -w < /tmp/f; grep -c b /tmp/f; grep -q z /tmp/f || echo none; grep -n a /tmp/f`}, want: run{output: []outputLine{{at: 0, text: "a"}, {at: 0, text: "b"}, {at: 0, text: "3 /tmp/f"}, {at: 0, text: "3"}, {at: 0, text: "2"}, {at: 0, text: "none"}, {at: 0, text: "2:a"}}}},
		{argv: []string{"sh", "-c", `echo 'error: x' | grep -E '^(error|warn):' && echo 'a(b)' | grep 'a(b)' && echo A | grep -iv b`}, want: run{output: []outputLine{{at: 0, text: "error: x"}, {at: 0, text: "a(b)"}, {at: 0, text: "A"}}}},
		{argv: []string{"sh", "-c", "grep x /etc/none"}, err: errUnreadable}, // a file of the image
		{argv: []string{"sh", "-c", "grep -s x /tmp/none; echo $?; echo a > /tmp/a; echo b > /tmp/b; grep -c -e a -e b /tmp/a /tmp/b; ls /tmp; mkdir /tmp/a"}, want: run{exitCode: 1, output: []outputLine{{at: 0, text: "2"}, {at: 0, text: "/tmp/a:1"}, {at: 0, text: "/tmp/b:1"}, {at: 0, text: "a"}, {at: 0, text: "b"}, {at: 0, text: "mkdir: can't create directory '/tmp/a': File exists"}}}},
		{argv: []string{"sh", "-c", "printf '10 b\\n9 a\\n' | sort -n; seq 9223372036854775807 9223372036854775807"}, err: errUnreadable},
		{argv: []string{"sh", "-c", "printf '  10 b\\n9 a\\n' | sort -n"}, want: run{output: []outputLine{{at: 0, text: "9 a"}, {at: 0, text: "  10 b"}}}},
		{argv: []string{"sh", "-c", `sleep "" | cat`}, err: errUnreadable},
		{argv: []string{"sh", "-c", "mkdir /tmp/d; touch /tmp/d/b /tmp/d/a; ls /tmp/d; echo hi | tee /tmp/t; cat /tmp/t; basename /a/b/c.txt; dirname /a/b/c.txt"}, want: run{output: []outputLine{{at: 0, text: "a"}, {at: 0, text: "b"}, {at: 0, text: "hi"}, {at: 0, text: "hi"}, {at: 0, text: "c.txt"}, {at: 0, text: "/a/b"}}}},
		{argv: []string{"tail", "-f", "/dev/null"}, want: run{forever: true}},
		{argv: []string{"sh", "-c", "seq 4 > /tmp/n; tail -n +3 /tmp/n; head -2 /tmp/n"}, want: run{output: []outputLine{{at: 0, text: "3"}, {at: 0, text: "4"}, {at: 0, text: "1"}, {at: 0, text: "2"}}}},
		{argv: []string{"sh", "-c", "seq 4 > /tmp/n; head -n -1 /tmp/n"}, err: errUnreadable}, // all but the last: not followed

		{argv: []string{"tail", "-f", "/var/log/app.log"}, err: errUnreadable},
		{argv: []string{"sh", "-c", "ls -l /tmp"}, err: errUnreadable},
		{argv: []string{"sh", "-c", "ls /usr/bin"}, err: errUnreadable},
		{argv: nil, err: errUnreadable},
	} {
		got, err := readCommand(tc.argv, sandbox{env: tc.env, mounts: []mount{{path: "/tmp"}}}) // as containerFiles gives
		if !errors.Is(err, tc.err) {
			t.Errorf("%q: error %v, want %v", tc.argv, err, tc.err)
			continue
		}
		if err == nil && (got.forever != tc.want.forever || got.duration != tc.want.duration || got.exitCode != tc.want.exitCode || !slices.Equal(logLines(got.output), tc.want.output)) {
			t.Errorf("%q: %+v, want %+v", tc.argv, got, tc.want)
		}
	}
}

// logLines is a command's output as its log holds it: the streams alike,
// every line ended.
func logLines(lines []outputLine) []outputLine {
	out := slices.Clone(lines)
	for i := range out {
		out[i].stderr, out[i].unfinished = false, false
	}
	return out
}

// TestUnitFileChanges: a run records what it writes and removes, when, and
// a probe's sandbox at a moment of the run holds the files as they were.
func TestUnitFileChanges(t *testing.T) {
	box := sandbox{files: map[string]string{"/etc/app/conf": "a"}, mounts: []mount{{path: "/etc/app", readOnly: true}, {path: "/data"}}}
	r, err := readCommand([]string{"sh", "-c", "touch /tmp/healthy; sleep 30; rm -f /tmp/healthy; echo 1 > /data/n; sleep 5; echo 2 >> /data/n; rm /etc/app/conf; sleep infinity"}, box)
	if err != nil {
		t.Fatal(err)
	}
	want := []fileChange{{at: 0, path: "/tmp/healthy"}, {at: 30 * time.Second, path: "/tmp/healthy", gone: true}, {at: 30 * time.Second, path: "/data/n", text: "1\n"}, {at: 35 * time.Second, path: "/data/n", text: "1\n2\n"}}
	if !r.forever || !slices.Equal(r.files, want) || len(r.output) != 1 || r.output[0].text != "rm: can't remove '/etc/app/conf': Read-only file system" {
		t.Fatalf("run: %+v\nwant files %+v", r, want)
	}
	for _, tc := range []struct {
		at   time.Duration
		want string
	}{{10 * time.Second, "up\ncat: can't open '/data/n': No such file or directory\n"}, {30 * time.Second, "down\n1\n"}, {34 * time.Second, "down\n1\n"}, {40 * time.Second, "down\n1\n2\n"}} {
		probe, err := readCommand([]string{"sh", "-c", "[ -f /tmp/healthy ] && echo up || echo down; cat /data/n"}, box.at(r.files, tc.at))
		var out strings.Builder
		for _, l := range probe.output {
			out.WriteString(l.text + "\n")
		}
		if err != nil || out.String() != tc.want {
			t.Errorf("at %s: %q, %v; want %q", tc.at, out.String(), err, tc.want)
		}
	}
	if box.files["/etc/app/conf"] != "a" || len(box.gone) != 0 {
		t.Errorf("the run's own sandbox changed: %+v", box)
	}
}

// TestUnitContainerFiles: a container's command reads the files of its
// volumes as a kubelet lays them out, writes only where a kubelet lets it,
// and tells the time from its start on its own clock.
func TestUnitContainerFiles(t *testing.T) {
	data := func(kind, name string) (map[string]string, bool) {
		switch kind + "/" + name {
		case "ConfigMap/cfg":
			return map[string]string{"app.conf": "port=80", "mode": "fast"}, true
		case "Secret/sec":
			return map[string]string{"password": "s3cret"}, true
		}
		return nil, false
	}
	yes := true
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-0", Namespace: "shop", Labels: map[string]string{"app": "web", "tier": "front"}},
		Spec: corev1.PodSpec{Volumes: []corev1.Volume{
			{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}}},
			{Name: "secret", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "sec", Items: []corev1.KeyToPath{{Key: "password", Path: "db/pass"}}}}},
			{Name: "info", VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{Items: []corev1.DownwardAPIVolumeFile{
				{Path: "labels", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels"}},
				{Path: "name", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}},
			}}}},
			{Name: "gone", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "none"}, Optional: &yes}}},
			{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
			{Name: "host", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/var/log"}}},
		}},
	}
	c := &corev1.Container{VolumeMounts: []corev1.VolumeMount{
		{Name: "config", MountPath: "/etc/app"},
		{Name: "config", MountPath: "/etc/mode.txt", SubPath: "mode"},
		{Name: "secret", MountPath: "/secrets/"},
		{Name: "info", MountPath: "/etc/podinfo"},
		{Name: "gone", MountPath: "/opt/extra"},
		{Name: "scratch", MountPath: "/work"},
		{Name: "host", MountPath: "/logs"},
	}}
	files, mounts := containerFiles(p, c, data, nil, nil)
	wantFiles := map[string]string{
		"/etc/app/app.conf": "port=80", "/etc/app/mode": "fast", "/etc/mode.txt": "fast", "/secrets/db/pass": "s3cret",
		"/etc/podinfo/labels": "app=\"web\"\ntier=\"front\"", "/etc/podinfo/name": "web-0",
	}
	if !maps.Equal(files, wantFiles) {
		t.Errorf("files:\n%v\nwant\n%v", files, wantFiles)
	}
	if len(mounts) != 7 || mounts[6] != (mount{path: "/tmp"}) {
		t.Errorf("mounts %v: want all but the hostPath, and /tmp", mounts)
	}
	// A volume with a field the simulation cannot know is not known at all.
	limits := p.DeepCopy()
	limits.Spec.Volumes[2].DownwardAPI.Items = append(limits.Spec.Volumes[2].DownwardAPI.Items,
		corev1.DownwardAPIVolumeFile{Path: "cpu", ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.cpu"}})
	if files, mounts := containerFiles(limits, c, data, nil, nil); files["/etc/podinfo/name"] != "" || len(mounts) != 6 {
		t.Errorf("with a resource field, the downward API volume gives %v, mounts %v", files, mounts)
	}
	// A synced pod's labels are its user's, not the syncer's too.
	synced := p.DeepCopy()
	synced.Labels[syncer.LabelManagedBy] = "vc"
	synced.Annotations = map[string]string{syncer.AnnotationNS: "shop"}
	if files, _ := containerFiles(synced, c, data, nil, nil); files["/etc/podinfo/labels"] != wantFiles["/etc/podinfo/labels"] {
		t.Errorf("a synced pod's labels file: %q", files["/etc/podinfo/labels"])
	}
	start := time.Date(2026, 11, 28, 4, 42, 0, 0, time.UTC)
	box := sandbox{env: map[string]string{"HOSTNAME": "web-0"}, files: files, mounts: mounts, dir: "/etc/app", start: start}
	for _, tc := range []struct {
		script string
		want   run
		err    error
	}{
		{script: "cat /etc/app/app.conf /etc/mode.txt; echo; cat app.conf", want: run{output: []outputLine{{at: 0, text: "port=80fast"}, {at: 0, text: "port=80"}}}},
		{script: "cat /secrets/db/pass /etc/podinfo/labels", want: run{output: []outputLine{{at: 0, text: "s3cretapp=\"web\""}, {at: 0, text: "tier=\"front\""}}}},
		// A file missing below a mount is missing; one in the image is unknown.
		{script: "cat /etc/app/missing 2>/dev/null || echo no", want: run{output: []outputLine{{at: 0, text: "no"}}}},
		{script: "cat /opt/extra/key", want: run{exitCode: 1, output: []outputLine{{at: 0, text: "cat: can't open '/opt/extra/key': No such file or directory"}}}},
		{script: "cat /logs/syslog", err: errUnreadable},
		{script: "cat /etc/hostname", err: errUnreadable},
		{script: "echo x > /work/out; cat /work/out", want: run{output: []outputLine{{at: 0, text: "x"}}}},
		{script: "echo x > /etc/app/mode || echo read-only", want: run{output: []outputLine{{at: 0, text: "open /etc/app/mode: read-only file system"}, {at: 0, text: "read-only"}}}},
		{script: "read v < /etc/podinfo/name; echo $v", want: run{output: []outputLine{{at: 0, text: "web-0"}}}},
		// Tests and globs see the same files; the image's are unknown.
		{script: "[ -f /etc/app/app.conf ] && [ -d /etc ] && [ -d /secrets/db ] && [ ! -e /etc/app/none ] && echo /etc/app/*", want: run{output: []outputLine{{at: 0, text: "/etc/app/app.conf /etc/app/mode"}}}},
		{script: "[ -w /etc/app/mode ] || [ -x /etc/app/mode ] || [ -w /work ] && echo ok", want: run{output: []outputLine{{at: 0, text: "ok"}}}},
		{script: "cd /work && echo x > out && cat /work/out", want: run{output: []outputLine{{at: 0, text: "x"}}}},
		{script: "[ -f /etc/passwd ] && echo yes", err: errUnreadable},
		// Above a mount, a glob finds only what leads to what it knows.
		{script: "echo /etc/*", want: run{output: []outputLine{{at: 0, text: "/etc/app /etc/mode.txt /etc/podinfo"}}}},
		{script: "echo /usr/*", err: errUnreadable},
		{script: "echo oops > /dev/stderr; echo fine >/dev/stdout", want: run{output: []outputLine{{at: 0, text: "oops"}, {at: 0, text: "fine"}}}},
		{script: "cat /proc/self/status", err: errUnreadable},
		{script: "date; sleep 90; date -u", want: run{duration: 90 * time.Second, output: []outputLine{{at: 0, text: "Sat Nov 28 04:42:00 UTC 2026"}, {at: 90 * time.Second, text: "Sat Nov 28 04:43:30 UTC 2026"}}}},
	} {
		got, err := readCommand([]string{"sh", "-c", tc.script}, box)
		if !errors.Is(err, tc.err) {
			t.Errorf("%q: error %v, want %v", tc.script, err, tc.err)
			continue
		}
		if err == nil && (got.duration != tc.want.duration || got.exitCode != tc.want.exitCode || !slices.Equal(logLines(got.output), tc.want.output)) {
			t.Errorf("%q: %+v, want %+v", tc.script, got, tc.want)
		}
	}
}

// TestUnitContainerEnv: a container sees the hostname a kubelet gives its
// pod (a synced pod's virtual name, not the host pod's), and the values its
// env takes from ConfigMaps and Secrets, in a kubelet's order.
func TestUnitContainerEnv(t *testing.T) {
	none := func(kind, name string) (map[string]string, bool) { return nil, false }
	long := strings.Repeat("a", 62) + "-x-default-x-a"
	for _, tc := range []struct {
		pod  corev1.Pod
		want string
	}{
		{corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-x-default-x-a"}, Spec: corev1.PodSpec{Hostname: "web"}}, "web"},
		{corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web"}}, "web"},
		{corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: long}}, strings.Repeat("a", 62)},
	} {
		c := corev1.Container{Name: "c", Env: []corev1.EnvVar{{Name: "WHO", Value: "$(HOSTNAME)"}}}
		env, err := containerEnv(&tc.pod, &c, none)
		if err != nil || env["HOSTNAME"] != tc.want || env["WHO"] != tc.want {
			t.Errorf("pod %s (hostname %q): HOSTNAME=%q WHO=%q (%v), want %q", tc.pod.Name, tc.pod.Spec.Hostname, env["HOSTNAME"], env["WHO"], err, tc.want)
		}
	}

	yes := true
	objects := map[string]map[string]string{
		"ConfigMap/cfg": {"greeting": "hi", "MODE": "from-cfg"},
		"Secret/sec":    {"token": "s3cret"},
	}
	data := func(kind, name string) (map[string]string, bool) {
		v, ok := objects[kind+"/"+name]
		return v, ok
	}
	c := corev1.Container{
		Name:    "app",
		Command: []string{"sh", "-c", "echo $(GREETING) $(UNKNOWN)"},
		EnvFrom: []corev1.EnvFromSource{
			{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}},
			{Prefix: "S_", SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "sec"}}},
			{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "missing"}, Optional: &yes}},
		},
		Env: []corev1.EnvVar{
			{Name: "MODE", Value: "literal"}, // env wins over envFrom
			{Name: "GREETING", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}, Key: "greeting"}}},
			{Name: "TOKEN", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "sec"}, Key: "token"}}},
			{Name: "NOKEY", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "sec"}, Key: "nokey", Optional: &yes}}},
			{Name: "BOTH", Value: "$(GREETING)-$(TOKEN)"},
		},
	}
	env, err := containerEnv(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}}, &c, data)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"HOSTNAME": "p", "greeting": "hi", "MODE": "literal", "S_token": "s3cret", "GREETING": "hi", "TOKEN": "s3cret", "BOTH": "hi-s3cret"}
	if !maps.Equal(env, want) {
		t.Errorf("env:\n%v\nwant\n%v", env, want)
	}
	if got := expandCommand(c.Command, env); !slices.Equal(got, []string{"sh", "-c", "echo hi $(UNKNOWN)"}) {
		t.Errorf("command %q expanded to %q", c.Command, got)
	}
	plan, err := readCommand(expandCommand([]string{"sh", "-c", "echo $(GREETING)"}, env), sandbox{env: env})
	if err != nil || !slices.Equal(plan.output, []outputLine{{at: 0, text: "hi"}}) {
		t.Errorf("the expanded command runs as %+v, %v; want it to print hi", plan, err)
	}
}

// A ConfigMap, Secret or key that a container's environment or a pod's
// volume needs and cannot have keeps it from starting, in a kubelet's words
// and with the names the pod's user wrote, not the host copies' names.
func TestUnitMissingConfig(t *testing.T) {
	objects := map[string]map[string]string{"ConfigMap/cfg-x-default-x-a": {"k": "v"}}
	data := func(kind, name string) (map[string]string, bool) {
		v, ok := objects[kind+"/"+name]
		return v, ok
	}
	synced := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{
		Name: "web-x-default-x-a", Namespace: "vmatrix-a",
		Labels:      map[string]string{syncer.LabelManagedBy: "a"},
		Annotations: map[string]string{syncer.AnnotationNS: "default"},
	}}
	ref := func(name string) corev1.LocalObjectReference { return corev1.LocalObjectReference{Name: name} }
	yes := true
	for _, tc := range []struct {
		c    corev1.Container
		want string
	}{
		{corev1.Container{EnvFrom: []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: ref("gone-x-default-x-a")}}}},
			`configmap "gone" not found`},
		{corev1.Container{EnvFrom: []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: ref("gone-x-default-x-a")}}}},
			`secret "gone" not found`},
		{corev1.Container{Env: []corev1.EnvVar{{Name: "X", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: ref("cfg-x-default-x-a"), Key: "nokey"}}}}},
			"couldn't find key nokey in ConfigMap default/cfg"},
		{corev1.Container{Env: []corev1.EnvVar{{Name: "X", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: ref("gone-x-default-x-a"), Key: "k"}}}}},
			`secret "gone" not found`},
		{corev1.Container{Env: []corev1.EnvVar{{Name: "X", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: ref("gone-x-default-x-a"), Key: "k", Optional: &yes}}}}},
			""},
		{corev1.Container{Env: []corev1.EnvVar{{Name: "X", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: ref("cfg-x-default-x-a"), Key: "k"}}}}},
			""},
	} {
		_, err := containerEnv(synced, &tc.c, data)
		if got := fmt.Sprint(err); (tc.want == "" && err != nil) || (tc.want != "" && got != tc.want) {
			t.Errorf("env %+v %+v: error %q, want %q", tc.c.EnvFrom, tc.c.Env, got, tc.want)
		}
	}

	pod := synced.DeepCopy()
	pod.Spec.Volumes = []corev1.Volume{
		{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: ref("cfg-x-default-x-a")}}},
		{Name: "maybe", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "opt-x-default-x-a", Optional: &yes}}},
		{Name: "all", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
			{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: ref("cfg-x-default-x-a")}},
			{Secret: &corev1.SecretProjection{LocalObjectReference: ref("tls-x-default-x-a")}},
		}}}},
	}
	want := `MountVolume.SetUp failed for volume "all" : secret "tls" not found`
	if got := volumesMissing(pod, data); got != want {
		t.Errorf("volumes: %q, want %q", got, want)
	}
	objects["Secret/tls-x-default-x-a"] = map[string]string{}
	if got := volumesMissing(pod, data); got != "" {
		t.Errorf("volumes with all there: %q, want none", got)
	}

	// Looked for again with back-off; told of once, when missing twice.
	var w waitingOn
	now := time.Now()
	var told []bool
	for i := 0; i < 7; i++ {
		told = append(told, w.missing("x", now))
	}
	if !slices.Equal(told, []bool{false, true, false, false, false, false, false}) || w.retryAt != now.Add(8*time.Second) {
		t.Errorf("told %v, next look %v after the last; want once, on the second, and 8s", told, w.retryAt.Sub(now))
	}
	// A new reason starts again, and is not told of on its first look.
	if w.missing("y", now) || w.misses != 1 || w.retryAt != now.Add(500*time.Millisecond) {
		t.Errorf("a new reason: misses %d, next look %v after; want 1 and 500ms, not told", w.misses, w.retryAt.Sub(now))
	}
}

func TestUnpullable(t *testing.T) {
	for image, want := range map[string]bool{
		"webserver:404": true, "registry.k8s.io/e2e-test-images/agnhost:2.53": false,
		"invalid.registry.k8s.io/invalid/alpine:3.1": true, "example.invalid/app:1": true,
		"nginx:does-not-exist": true, "nginx": false, "localhost:5000/app:invalid": true,
		"localhost:5000/app:1": false, "invalid/app:1": false, "app@sha256:abc": false,
	} {
		if got := unpullable(image); got != want {
			t.Errorf("unpullable(%q) = %v, want %v", image, got, want)
		}
	}
}

func TestIsPause(t *testing.T) {
	for image, want := range map[string]bool{
		"registry.k8s.io/pause:3.10.2": true, "pause": true, "k8s.gcr.io/pause@sha256:abc": true,
		"registry.k8s.io/e2e-test-images/busybox:1.37.0-2": false, "example.com/pause-tool:1": false, "pauser": false,
	} {
		if got := isPause(image); got != want {
			t.Errorf("isPause(%q) = %v, want %v", image, got, want)
		}
	}
}

// TestUnitPrograms: every program that args alone may start
// (argsAreCommand) is one a script may run.
func TestUnitPrograms(t *testing.T) {
	valid := map[string]string{"sleep": "1", "expr": "1 + 1", "date": "-u", "printenv": "HOME", "env": "", "seq": "2", "basename": "/a/b", "dirname": "/a/b",
		"touch": "/tmp/a", "rm": "-f /tmp/a", "mkdir": "-p /tmp/d", "ls": "/tmp", "grep": "-c x", "head": "-n 1", "tail": "-1", "wc": "-l", "sort": "-n", "tee": "/tmp/t", "cat": "", "hostname": ""}
	for name := range programs {
		args, ok := valid[name]
		if !ok {
			t.Errorf("%s: no valid use of it in this test", name)
			continue
		}
		argv := append([]string{name}, strings.Fields(args)...)
		if _, err := readCommand(argv, sandbox{env: map[string]string{"HOSTNAME": "h"}, mounts: []mount{{path: "/tmp"}}}); err != nil {
			t.Errorf("%q: %v", argv, err)
		}
		if !argsAreCommand(argv) {
			t.Errorf("%q are not taken as a command", argv)
		}
	}
}
