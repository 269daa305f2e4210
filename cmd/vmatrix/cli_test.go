package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vmatrix/vmatrix/internal/k8sdist"
	"github.com/vmatrix/vmatrix/internal/proc"
	"github.com/vmatrix/vmatrix/internal/state"
	"github.com/vmatrix/vmatrix/internal/testkit"
)

// The CLI is tested as a user runs it: the built binary, real kubectl, real
// processes, each test in a state directory of its own.

var vmatrixBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "vmatrix-cli-")
	if err != nil {
		panic(err)
	}
	vmatrixBin = filepath.Join(dir, "vmatrix")
	if out, err := exec.Command("go", "build", "-o", vmatrixBin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building vmatrix: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type cli struct {
	t        *testing.T
	stateDir string
	tmp      string // the TMPDIR of the commands
	env      []string
}

// tempDir is the temporary directory the CLI's commands get.
func (c *cli) tempDir() string { return c.tmp }

func newCLI(t *testing.T) *cli {
	c := &cli{t: t, stateDir: t.TempDir(), tmp: t.TempDir()}
	// TMPDIR too: what vmatrix keeps in temp folders (run logs) goes with the test.
	c.env = append(os.Environ(), "VMATRIX_STATE_DIR="+c.stateDir, "TMPDIR="+c.tmp)
	t.Cleanup(func() { c.assertNothingLeft() })
	return c
}

// run runs vmatrix and returns stdout, stderr and the exit code.
func (c *cli) run(args ...string) (string, string, int) {
	c.t.Helper()
	return c.runIn("", args...)
}

// runIn is run in folder dir ("" for the test's own).
func (c *cli) runIn(dir string, args ...string) (string, string, int) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, vmatrixBin, args...)
	cmd.Dir = dir
	cmd.Env = c.env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if exit, ok := err.(*exec.ExitError); ok {
		code = exit.ExitCode()
	} else if err != nil {
		c.t.Fatalf("vmatrix %v: %v", args, err)
	}
	return stdout.String(), stderr.String(), code
}

func (c *cli) mustRun(args ...string) string {
	c.t.Helper()
	out, errOut, code := c.run(args...)
	if code != 0 {
		c.t.Fatalf("vmatrix %s: exit %d\n%s", strings.Join(args, " "), code, errOut)
	}
	return out
}

func kubectl(t *testing.T, kubeconfig string, args ...string) string {
	t.Helper()
	return testkit.Kubectl(t, kubeconfig, "", args...)
}

// assertNothingLeft fails the test if any process still runs with a path of the
// state directory in its command line, or if a cluster folder is left.
func (c *cli) assertNothingLeft() {
	if pids := proc.WithArg(c.stateDir); len(pids) > 0 {
		c.t.Errorf("processes left running under %s: %v", c.stateDir, pids)
	}
	for _, d := range []string{"clusters", "host"} {
		entries, _ := os.ReadDir(filepath.Join(c.stateDir, d))
		if d == "host" {
			if _, err := os.Stat(filepath.Join(c.stateDir, d)); err == nil {
				c.t.Errorf("the embedded host's folder is left")
			}
		} else if len(entries) > 0 {
			c.t.Errorf("cluster folders left: %v", entries)
		}
	}
}

func resolve(t *testing.T, version string) string {
	v, err := k8sdist.Resolve(context.Background(), version)
	if err != nil {
		t.Fatal(err)
	}
	return v.String()
}

func portOpen(port int) bool {
	conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
	if err == nil {
		conn.Close()
	}
	return err == nil
}

func TestCreateTwoVersionsOnTheEmbeddedHost(t *testing.T) {
	c := newCLI(t)
	t.Cleanup(func() { c.run("delete", "a"); c.run("delete", "b") }) // on failure too; before assertNothingLeft
	c.mustRun("create", "a", "--version", "1.35")
	// The host runs already: a node count asked of it is noted, not dropped in silence.
	if _, errOut, code := c.run("create", "b", "--version", "1.37", "--sync", "ingresses", "--host-nodes", "5"); code != 0 || !strings.Contains(errOut, "runs already, with 3 nodes, not 5") {
		t.Fatalf("create b --host-nodes 5 on a running host: exit %d\n%s", code, errOut)
	}

	for name, version := range map[string]string{"a": resolve(t, "1.35"), "b": resolve(t, "1.37")} {
		kc := strings.TrimSpace(c.mustRun("kubeconfig", name))
		var v struct {
			ServerVersion struct{ GitVersion string } `json:"serverVersion"`
		}
		if err := json.Unmarshal([]byte(kubectl(t, kc, "version", "-o", "json")), &v); err != nil {
			t.Fatal(err)
		}
		if v.ServerVersion.GitVersion != version {
			t.Errorf("cluster %s serves %s, want %s", name, v.ServerVersion.GitVersion, version)
		}
		namespaces := kubectl(t, kc, "get", "ns", "-o", "name")
		for _, ns := range []string{"default", "kube-system", "kube-public", "kube-node-lease"} {
			if !strings.Contains(namespaces, "namespace/"+ns+"\n") {
				t.Errorf("cluster %s lacks namespace %s: %s", name, ns, namespaces)
			}
		}
	}
	list := c.mustRun("list")
	for _, want := range []string{"a   ", "b   ", resolve(t, "1.35"), resolve(t, "1.37"), "running"} {
		if !strings.Contains(list, want) {
			t.Errorf("list lacks %q:\n%s", want, list)
		}
	}
	// No context until --merge adds one (TestListJSONAndKubeconfigContexts).
	if wide := c.mustRun("list", "-o", "wide"); strings.Contains(wide, "vmatrix-a") || strings.Contains(wide, "vmatrix-b") {
		t.Errorf("list -o wide names contexts that were never merged:\n%s", wide)
	}

	// A duplicate name is refused and leaves the first cluster as it was.
	if _, errOut, code := c.run("create", "a", "--version", "1.36"); code != 1 || !strings.Contains(errOut, `"a" already exists`) {
		t.Errorf("duplicate create: exit %d, %q", code, errOut)
	}
	kubectl(t, strings.TrimSpace(c.mustRun("kubeconfig", "a")), "get", "ns", "default")

	// The embedded host schedules a pod onto a simulated node and runs it.
	hostKC := strings.TrimSpace(c.mustRun("host", "kubeconfig"))

	// b syncs Ingresses to the host; a, created without --sync, does not.
	ingress := "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: web, namespace: default}\n" +
		"spec: {defaultBackend: {service: {name: web, port: {number: 80}}}}\n"
	for _, name := range []string{"a", "b"} {
		cmd := exec.Command("kubectl", "--kubeconfig", strings.TrimSpace(c.mustRun("kubeconfig", name)), "apply", "-f", "-")
		cmd.Stdin = strings.NewReader(ingress)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("kubectl apply in %s: %v\n%s", name, err, out)
		}
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		out := kubectl(t, hostKC, "-n", "vmatrix-b", "get", "ingress", "-o", "jsonpath={.items[*].spec.defaultBackend.service.name}")
		if out == "web-x-default-x-b" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("b's Ingress on the host: %q, want one for service web-x-default-x-b", out)
		}
	}
	if out := kubectl(t, hostKC, "-n", "vmatrix-a", "get", "ingress", "-o", "name"); out != "" {
		t.Errorf("a syncs Ingresses without --sync: %s", out)
	}
	kubectl(t, hostKC, "run", "probe", "--image=registry.example/probe:1", "--restart=Never")
	kubectl(t, hostKC, "wait", "--for=condition=Ready", "pod/probe", "--timeout=60s")
	pod := kubectl(t, hostKC, "get", "pod", "probe", "-o", "jsonpath={.spec.nodeName} {.status.podIP}")
	if !strings.HasPrefix(pod, "vmatrix-node-") || len(strings.Fields(pod)) != 2 {
		t.Errorf("host pod not on a simulated node with an IP: %q", pod)
	}

	// kill -9 of a's apiserver: its supervisor starts it again, list says so,
	// and kubectl works on.
	rec, err := state.Read(filepath.Join(c.stateDir, "clusters", "a"))
	if err != nil {
		t.Fatal(err)
	}
	apiserver := "kube-apiserver"
	if rec.PIDs["kube-control-plane"] != 0 { // a version built here: one process
		apiserver = "kube-control-plane"
	}
	if rec.PIDs[apiserver] == 0 {
		t.Fatalf("no %s among a's processes: %v", apiserver, rec.PIDs)
	}
	if err := syscall.Kill(rec.PIDs[apiserver], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		if list := c.mustRun("list"); strings.Contains(list, "running ("+apiserver+" restarted 1 times)") {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("list after kill -9 of a's apiserver:\n%s", list)
		}
	}
	// Restarted is started, not serving yet: it answers within seconds.
	aKC := strings.TrimSpace(c.mustRun("kubeconfig", "a"))
	testkit.Eventually(t, time.Minute, "a's restarted apiserver answers", func(ctx context.Context) (bool, string) {
		out, err := testkit.KubectlErr(aKC, "", "get", "ns", "default")
		return err == nil, out
	})

	// Deleting a leaves none of its processes, its port, or its folder.
	if rec, err = state.Read(filepath.Join(c.stateDir, "clusters", "a")); err != nil {
		t.Fatal(err)
	}
	c.mustRun("delete", "a")
	for name, pid := range rec.PIDs {
		if proc.Alive(pid) {
			t.Errorf("%s (pid %d) of a still runs", name, pid)
		}
	}
	if proc.Alive(rec.Supervisor) {
		t.Errorf("supervisor (pid %d) of a still runs", rec.Supervisor)
	}
	if portOpen(rec.Port) {
		t.Errorf("port %d of a still open", rec.Port)
	}
	if _, err := os.Stat(filepath.Join(c.stateDir, "clusters", "a")); !os.IsNotExist(err) {
		t.Errorf("folder of a left: %v", err)
	}
	// b still works: a pod's log reaches kubectl, and `export logs` writes
	// it with the rest; the host stops with it.
	bKC := strings.TrimSpace(c.mustRun("kubeconfig", "b"))
	kubectl(t, bKC, "run", "web", "--image=registry.example/web:1", "--restart=Never")
	kubectl(t, bKC, "wait", "--for=condition=Ready", "pod/web", "--timeout=60s")
	if logs := kubectl(t, bKC, "logs", "web"); !strings.Contains(logs, "simulated container web (image registry.example/web:1)") {
		t.Errorf("kubectl logs web:\n%s", logs)
	}
	exported := filepath.Join(t.TempDir(), "b")
	if out := strings.TrimSpace(c.mustRun("export", "logs", "b", exported)); out != exported {
		t.Errorf("export logs printed %q, want the folder %s", out, exported)
	}
	for _, f := range append(testkit.ComponentLogs(filepath.Join(exported, "logs")), filepath.Join(exported, "objects/default/pods.yaml"),
		filepath.Join(exported, "pods/default/web/web.log"), filepath.Join(exported, "host-objects/vmatrix-b/pods.yaml")) {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("export logs: %v", err)
		}
	}
	if _, errOut, code := c.run("export", "logs", "nosuch"); code != 1 || strings.Count(strings.TrimSpace(errOut), "\n") > 0 || !strings.Contains(errOut, `"nosuch"`) {
		t.Errorf("export logs of no cluster: exit %d, %q", code, errOut)
	}
	c.mustRun("delete", "b")
}

// TestSecondClusterFromTheTemplate: on a machine with no store template yet,
// the first cluster of a version makes one while its syncer already shows
// the host's nodes; the second starts from it with Nodes of its own, so
// kubectl reaches its pods' logs and exec through its own kubelet API.
func TestSecondClusterFromTheTemplate(t *testing.T) {
	c := newCLI(t)
	// A cache of its own with the binaries of the real one but no templates.
	cache, real := t.TempDir(), k8sdist.DefaultCacheDir()
	entries, err := os.ReadDir(real)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != "templates" {
			if err := os.Symlink(filepath.Join(real, e.Name()), filepath.Join(cache, e.Name())); err != nil {
				t.Fatal(err)
			}
		}
	}
	c.env = append(c.env, "VMATRIX_CACHE_DIR="+cache)
	t.Cleanup(func() { c.run("delete", "a", "b") }) // on failure too; before assertNothingLeft

	c.mustRun("create", "a", "--version", "1.37")
	if saved, _ := filepath.Glob(filepath.Join(cache, "templates", "*.db")); len(saved) == 0 {
		t.Fatal("the first cluster saved no store template")
	}
	c.mustRun("create", "b", "--version", "1.37")
	bKC := strings.TrimSpace(c.mustRun("kubeconfig", "b"))
	owners := strings.Fields(kubectl(t, bKC, "get", "nodes", "-o", `jsonpath={.items[*].metadata.labels.vmatrix\.io/managed-by}`))
	if len(owners) == 0 || slices.ContainsFunc(owners, func(o string) bool { return o != "b" }) {
		t.Errorf("b's Nodes are managed by %q, want b alone", owners)
	}
	kubectl(t, bKC, "run", "web", "--image=registry.example/web:1", "--restart=Never")
	kubectl(t, bKC, "wait", "--for=condition=Ready", "pod/web", "--timeout=60s")
	if logs := kubectl(t, bKC, "logs", "web"); !strings.Contains(logs, "simulated container web") {
		t.Errorf("kubectl logs web in b:\n%s", logs)
	}
	// As kind delete clusters --all does.
	if out := c.mustRun("delete", "--all"); !strings.Contains(out, `deleted virtual cluster "a"`) || !strings.Contains(out, `deleted virtual cluster "b"`) {
		t.Errorf("delete --all said:\n%s", out)
	}
	if out := c.mustRun("delete", "--all"); !strings.Contains(out, "no virtual clusters") {
		t.Errorf("delete --all with none left said:\n%s", out)
	}
}

func TestBadInputIsRefusedAndLeavesNothing(t *testing.T) {
	c := newCLI(t)
	missing := filepath.Join(t.TempDir(), "nothing-here")
	unreadable := filepath.Join(t.TempDir(), "garbage.kubeconfig")
	if err := os.WriteFile(unreadable, []byte("this: is: not: a kubeconfig"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		env  []string
		want string
		code int // 2: a bad value on the command line; 1: what it names fails
	}{
		{"unknown version", []string{"create", "x", "--version", "1.99"}, nil, `unknown Kubernetes version "1.99"`, 2},
		{"malformed version", []string{"create", "x", "--version", "one.two"}, nil, `"one.two"`, 2},
		{"unsupported version", []string{"create", "x", "--version", "1.13"}, nil, "not supported", 2},
		{"invalid name", []string{"create", "Not_A_Label", "--version", "1.37"}, nil, `invalid name "Not_A_Label"`, 2},
		{"long name", []string{"create", strings.Repeat("a", 60), "--version", "1.37"}, nil, "invalid name", 2},
		{"missing host kubeconfig", []string{"create", "x", "--version", "1.37", "--host", missing}, nil, missing, 1},
		{"unreadable host kubeconfig", []string{"create", "x", "--version", "1.37", "--host", unreadable}, nil, unreadable, 1},
		{"missing binary", []string{"create", "x", "--version", "1.37"}, []string{"VMATRIX_KUBE_APISERVER=" + missing}, "VMATRIX_KUBE_APISERVER", 1},
		{"unknown backend", []string{"create", "x", "--version", "1.37", "--backend", "nosuch"}, nil, "nosuch", 2},
		{"unknown kind to sync", []string{"create", "x", "--version", "1.37", "--sync", "ingress"}, nil, "--sync ingress: the kinds that can be synced as well are ingresses, networkpolicies", 2},
		{"sqlite with a DSN", []string{"create", "x", "--version", "1.37", "--backend-dsn", "/tmp/x.db"}, nil, "sqlite", 2},
		{"unreachable database", []string{"create", "x", "--version", "1.37", "--backend", "postgres"},
			[]string{"VMATRIX_BACKEND_DSN=postgres://vm:s3cret-pw@127.0.0.1:1/"}, "postgres", 1},
		{"unwritable cache", []string{"versions", "pull", "1.37"}, []string{"VMATRIX_CACHE_DIR=/proc/vmatrix-cache"}, "/proc/vmatrix-cache", 1},
		{"unknown apiserver flag", []string{"create", "x", "--version", "1.37", "--apiserver-arg=--no-such-flag=1"}, nil, "unknown flag: --no-such-flag", 1},
		{"not a flag", []string{"create", "x", "--version", "1.37", "--apiserver-arg=no-dashes"}, nil, `"no-dashes"`, 2},
		{"delete unknown", []string{"delete", "nope"}, nil, `no virtual cluster named "nope"`, 1},
		{"delete nothing", []string{"delete"}, nil, "name the virtual clusters to delete, or give --all", 2},
		{"delete all and a name", []string{"delete", "nope", "--all"}, nil, "--all deletes every virtual cluster: give it no names", 2},
		{"kubeconfig unknown", []string{"kubeconfig", "nope"}, nil, `no virtual cluster named "nope"`, 1},
		{"export unknown", []string{"export", "logs", "nope"}, nil, `no virtual cluster named "nope"`, 1},
		{"unknown subcommand of a group", []string{"export", "nope"}, nil, `unknown command "nope" for "vmatrix export"`, 2},
		{"unknown shell to complete", []string{"completion", "nosuch"}, nil, `unknown command "nosuch" for "vmatrix completion"`, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			saved := c.env
			c.env = append(append([]string{}, c.env...), tc.env...)
			defer func() { c.env = saved }()
			stdout, stderr, code := c.run(tc.args...)
			if code != tc.code {
				t.Errorf("exit code %d, want %d", code, tc.code)
			}
			// Progress lines may come first ("starting the embedded host");
			// the error is one line, the last, and the only one that says so.
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			if last := lines[len(lines)-1]; !strings.HasPrefix(last, "vmatrix: ") || !strings.Contains(last, tc.want) || strings.Count(stderr, "vmatrix: ") != 1 {
				t.Errorf("stderr does not end in one clear line naming %q:\n%s", tc.want, stderr)
			}
			if stdout != "" {
				t.Errorf("stdout: %q", stdout)
			}
			if strings.Contains(stderr, "s3cret-pw") {
				t.Errorf("the error shows the password: %s", stderr)
			}
			if entries, _ := os.ReadDir(filepath.Join(c.stateDir, "clusters")); len(entries) > 0 {
				t.Errorf("half-created clusters left: %v", entries)
			}
			if exports, _ := filepath.Glob(filepath.Join(c.tempDir(), "vmatrix-export-*")); len(exports) > 0 {
				t.Errorf("export folders left: %v", exports)
			}
		})
	}
}

func TestCreateOnAnExistingHost(t *testing.T) {
	// One state directory runs an embedded host; a second one uses it as an
	// existing cluster, as it would kind or a shared CI cluster.
	owner := newCLI(t)
	owner.mustRun("create", "anchor", "--version", "1.37")
	hostKC := strings.TrimSpace(owner.mustRun("host", "kubeconfig"))

	user := newCLI(t)
	user.mustRun("create", "guest", "--version", "1.36", "--host", hostKC)
	kc := strings.TrimSpace(user.mustRun("kubeconfig", "guest"))
	if got := kubectl(t, kc, "get", "--raw", "/version"); !strings.Contains(got, resolve(t, "1.36")) {
		t.Errorf("guest serves %s", got)
	}
	if list := user.mustRun("list"); !strings.Contains(list, hostKC) {
		t.Errorf("list does not name the host kubeconfig:\n%s", list)
	}
	if _, err := os.Stat(filepath.Join(user.stateDir, "host")); !os.IsNotExist(err) {
		t.Errorf("an embedded host was started although --host was given")
	}
	user.mustRun("delete", "guest")
	owner.mustRun("delete", "anchor")
}

// TestUpgradeCommand: vmatrix upgrade refuses a skipped minor, a downgrade
// and an unknown version in one line with the cluster on its version, and
// upgrades one minor in place.
func TestUpgradeCommand(t *testing.T) {
	c := newCLI(t)
	c.mustRun("create", "u", "--version", "1.35")
	from, to := resolve(t, "1.35"), resolve(t, "1.36")
	for _, bad := range []string{"1.37", "1.34", "1.99"} {
		if _, errOut, code := c.run("upgrade", "u", "--version", bad); code != 1 || strings.Count(strings.TrimSpace(errOut), "\n") > 0 {
			t.Errorf("upgrade to %s: exit %d, %q", bad, code, errOut)
		}
		if line := lineOf(c.mustRun("list"), "u "); !strings.Contains(line, from) || !strings.Contains(line, "running") {
			t.Errorf("after the refused upgrade to %s: %q", bad, line)
		}
	}
	kc := strings.TrimSpace(c.mustRun("kubeconfig", "u"))
	uid := kubectl(t, kc, "get", "ns", "default", "-o", "jsonpath={.metadata.uid}")
	if out := c.mustRun("upgrade", "u", "--version", "1.36"); !strings.Contains(out, "from "+from+" to "+to) {
		t.Errorf("upgrade said %q", out)
	}
	if line := lineOf(c.mustRun("list"), "u "); !strings.Contains(line, to) || !strings.Contains(line, "running") {
		t.Errorf("list after the upgrade: %q", line)
	}
	if v := kubectl(t, kc, "version", "-o", "json"); !strings.Contains(v, `"gitVersion": "`+to+`"`) {
		t.Errorf("kubectl version after the upgrade:\n%s", v)
	}
	if now := kubectl(t, kc, "get", "ns", "default", "-o", "jsonpath={.metadata.uid}"); now != uid {
		t.Errorf("namespace default was %s, is %s", uid, now)
	}
	c.mustRun("delete", "u")
}
