package controlplane

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/vmatrix/vmatrix/internal/k8sdist"
	"github.com/vmatrix/vmatrix/internal/proc"
	"github.com/vmatrix/vmatrix/internal/testkit"
)

func binaries(t *testing.T, version string) (k8sdist.Version, k8sdist.Binaries) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	v, bins, err := k8sdist.Source{Log: os.Stderr}.Release(ctx, version)
	if err != nil {
		t.Fatal(err)
	}
	return v, bins
}

func TestStartStop(t *testing.T) {
	v, bins := binaries(t, "1.37")
	ctx := context.Background()
	start := time.Now()
	cp, err := Start(ctx, Config{Name: "t", Dir: t.TempDir(), Version: v, Binaries: bins})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ready in %s", time.Since(start))
	pids := cp.PIDs()
	port := cp.Port()
	// A version built here runs as one process; downloaded, as two.
	if want := []string{"kube-apiserver", "kube-controller-manager"}; bins.ControlPlane != "" {
		if len(pids) != 1 || pids["kube-control-plane"] == 0 {
			t.Errorf("processes %v, want only kube-control-plane", pids)
		}
	} else if len(pids) != 2 || pids[want[0]] == 0 || pids[want[1]] == 0 {
		t.Errorf("processes %v, want %v", pids, want)
	}
	client := kubernetes.NewForConfigOrDie(cp.RESTConfig())
	info, err := client.Discovery().ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	if info.GitVersion != v.String() {
		t.Errorf("server version %s, want %s", info.GitVersion, v)
	}
	nss, err := client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(nss.Items) < 4 {
		t.Errorf("namespaces: %v", nss.Items)
	}
	checkAdvertised(t, client, port)
	if err := cp.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := cp.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	for name, pid := range pids {
		if proc.Alive(pid) {
			t.Errorf("%s (pid %d) still running after Stop", name, pid)
		}
	}
	if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
		c.Close()
		t.Errorf("port %d still open after Stop", port)
	}
}

// checkAdvertised: the apiserver publishes itself in the "kubernetes"
// Service's Endpoints and EndpointSlice at this machine's address, as a real
// cluster's does (a conformance spec checks both).
func checkAdvertised(t *testing.T, client kubernetes.Interface, port int) {
	t.Helper()
	addr := machineAddress(false)
	if addr == "" {
		t.Log("no non-loopback address on this machine: nothing to publish")
		return
	}
	want := fmt.Sprintf("%s:%d", addr, port)
	testkit.Eventually(t, 30*time.Second, "the kubernetes Service's endpoints at "+want, func(ctx context.Context) (bool, string) {
		ep, err := client.CoreV1().Endpoints("default").Get(ctx, "kubernetes", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		var got []string
		for _, ss := range ep.Subsets {
			for _, a := range ss.Addresses {
				for _, p := range ss.Ports {
					got = append(got, fmt.Sprintf("%s:%d", a.IP, p.Port))
				}
			}
		}
		slices, err := client.DiscoveryV1().EndpointSlices("default").List(ctx, metav1.ListOptions{LabelSelector: "kubernetes.io/service-name=kubernetes"})
		if err != nil {
			return false, err.Error()
		}
		var slicePorts []int32
		for _, sl := range slices.Items {
			for _, p := range sl.Ports {
				if p.Port != nil {
					slicePorts = append(slicePorts, *p.Port)
				}
			}
		}
		svc, err := client.CoreV1().Services("default").Get(ctx, "kubernetes", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		target := svc.Spec.Ports[0].TargetPort.IntValue()
		ok := len(got) == 1 && got[0] == want && len(slicePorts) == 1 && int(slicePorts[0]) == port && target == port
		return ok, fmt.Sprintf("endpoints %v, slice ports %v, Service target port %d", got, slicePorts, target)
	})
}

// wrapBinary writes a stand-in for a component binary that
// passes --help (the controller list) to the real one and runs script
// otherwise, with $REAL the real binary.
func wrapBinary(t *testing.T, real, script string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), filepath.Base(real))
	body := "#!/bin/sh\nREAL=" + real + "\ncase \"$*\" in *--help*) exec \"$REAL\" \"$@\";; esac\n" + script + "\n"
	if err := os.WriteFile(path, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestControllerManagerExitDuringStart: a controller manager that gives up
// on a slow apiserver during start-up (as it does on a busy machine) is
// started again, and the control plane comes up: as a process of its own,
// and in the one process with the apiserver, which ends with it.
func TestControllerManagerExitDuringStart(t *testing.T) {
	v, bins := binaries(t, "1.37")
	t.Run("two processes", func(t *testing.T) {
		bins := bins
		bins.ControlPlane = ""
		exitOnceDuringStart(t, v, bins, func(b *k8sdist.Binaries) *string { return &b.ControllerManager },
			"failed to wait for apiserver being healthy (simulated)", "kube-controller-manager.log")
	})
	t.Run("one process", func(t *testing.T) {
		if bins.ControlPlane == "" {
			t.Skip("the binaries of 1.37 were not built here: no kube-control-plane")
		}
		exitOnceDuringStart(t, v, bins, func(b *k8sdist.Binaries) *string { return &b.ControlPlane },
			k8sdist.ControllerManagerEnded+" (exit code 1, simulated)", "kube-control-plane.log")
	})
}

// exitOnceDuringStart replaces the binary that pick selects by one that
// exits at its first start, saying words, and checks that the control
// plane comes up all the same, with words in its log.
func exitOnceDuringStart(t *testing.T, v k8sdist.Version, bins k8sdist.Binaries, pick func(*k8sdist.Binaries) *string, words, log string) {
	marker := filepath.Join(t.TempDir(), "exited-once")
	bin := pick(&bins)
	*bin = wrapBinary(t, *bin, `if [ ! -e `+marker+` ]; then : > `+marker+`; echo "`+words+`" >&2; exit 1; fi
exec "$REAL" "$@"`)
	dir := t.TempDir()
	cp, err := Start(context.Background(), Config{Name: "t", Dir: dir, Version: v, Binaries: bins})
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Stop()
	if _, err := os.Stat(marker); err != nil {
		t.Fatal("the stand-in never exited: the test tests nothing")
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "logs", log)); !strings.Contains(string(got), words) {
		t.Errorf("%s lacks the first, failed start:\n%s", log, got)
	}
}

// TestComponentThatKeepsExiting: a controller manager that exits at every
// start fails the start in a first line that names it, well within the
// caller's limit, with its own last words, and nothing left behind.
func TestComponentThatKeepsExiting(t *testing.T) {
	v, bins := binaries(t, "1.37")
	bins.ControlPlane = "" // the stand-in is a process of its own
	bins.ControllerManager = wrapBinary(t, bins.ControllerManager, `echo "broken on purpose" >&2; exit 1`)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	_, err := Start(ctx, Config{Name: "t", Dir: dir, Version: v, Binaries: bins})
	if err == nil {
		t.Fatal("a control plane whose controller manager always exits started")
	}
	first := strings.SplitN(err.Error(), "\n", 2)[0]
	t.Logf("first line of the error: %s", first)
	if !strings.HasPrefix(first, "kube-controller-manager "+v.String()+" exited") || !strings.Contains(first, "started 6 times") {
		t.Errorf("first line of the error: %q", first)
	}
	if !strings.Contains(err.Error(), "broken on purpose") {
		t.Errorf("the error lacks the component's last log lines: %v", err)
	}
	if ctx.Err() != nil {
		t.Errorf("the start used up the caller's whole limit: %v", err)
	}
	if pids := proc.WithArg(dir); len(pids) > 0 {
		t.Errorf("processes left: %v", pids)
	}
}

// waitHealth waits until the control plane's health satisfies ok.
func waitHealth(t *testing.T, cp *ControlPlane, what string, ok func(Health) bool) Health {
	t.Helper()
	deadline := time.After(2 * time.Minute)
	for {
		h := cp.Health()
		if ok(h) {
			return h
		}
		select {
		case <-cp.Changed():
		case <-time.After(time.Second):
		case <-deadline:
			t.Fatalf("waiting for %s: health %+v", what, h)
		}
	}
}

// TestKilledComponentsAreRestarted: kill -9 of the apiserver or of the
// controller manager of a running control plane is followed by a restart,
// counted, and the control plane serves again; as two processes, and as
// the one process of a version built here.
func TestKilledComponentsAreRestarted(t *testing.T) {
	v, bins := binaries(t, "1.37")
	one := bins
	bins.ControlPlane = ""
	t.Run("two processes", func(t *testing.T) {
		killAndRestart(t, v, bins, []string{"kube-apiserver", "kube-controller-manager", "kube-apiserver"})
	})
	t.Run("one process", func(t *testing.T) {
		if one.ControlPlane == "" {
			t.Skip("the binaries of 1.37 were not built here: no kube-control-plane")
		}
		killAndRestart(t, v, one, []string{"kube-control-plane", "kube-control-plane"})
	})
}

// killAndRestart kills each of kills in turn and checks that it is
// restarted and the control plane works again.
func killAndRestart(t *testing.T, v k8sdist.Version, bins k8sdist.Binaries, kills []string) {
	cp, err := Start(context.Background(), Config{Name: "t", Dir: t.TempDir(), Version: v, Binaries: bins})
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Stop()
	client := kubernetes.NewForConfigOrDie(cp.RESTConfig())
	want := map[string]int{}
	for _, name := range kills {
		old := cp.PIDs()[name]
		if old == 0 {
			t.Fatalf("no process %s: %v", name, cp.PIDs())
		}
		if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		want[name]++
		h := waitHealth(t, cp, name+" restarted", func(h Health) bool {
			return h.State == StateRunning && h.Restarts[name] == want[name]
		})
		if pid := cp.PIDs()[name]; pid == old || !proc.Alive(pid) {
			t.Errorf("%s: pid %d after the restart (was %d)", name, pid, old)
		}
		t.Logf("%s killed and restarted: %+v", name, h)
		err := waitFor(func() bool {
			_, err := client.CoreV1().Namespaces().Get(context.Background(), "default", metav1.GetOptions{})
			return err == nil
		})
		if err != nil {
			t.Fatalf("the apiserver does not serve after %s was restarted", name)
		}
	}
	// The controller manager works again: a new namespace gets its default
	// ServiceAccount.
	if _, err := client.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "after"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := waitFor(func() bool {
		_, err := client.CoreV1().ServiceAccounts("after").Get(context.Background(), "default", metav1.GetOptions{})
		return err == nil
	}); err != nil {
		t.Error("the restarted controller manager made no ServiceAccount")
	}
}

func waitFor(ok func() bool) error {
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if ok() {
			return nil
		}
	}
	return fmt.Errorf("timed out")
}

// TestComponentThatKeepsDyingFailsTheControlPlane: a component that exits
// again at each restart makes the control plane Failed, naming it with its
// last words, and nothing more is started. An apiserver that keeps dying
// takes the controller manager with it; a controller manager leaves the
// apiserver serving, for a failed test's artifacts.
func TestComponentThatKeepsDyingFailsTheControlPlane(t *testing.T) {
	defer func(b time.Duration, n int) { restartBackoff, maxRestarts = b, n }(restartBackoff, maxRestarts)
	restartBackoff, maxRestarts = 10*time.Millisecond, 2
	for _, tc := range []struct{ dying, other string }{
		{"kube-controller-manager", "kube-apiserver"},
		{"kube-apiserver", "kube-controller-manager"},
	} {
		t.Run(tc.dying, func(t *testing.T) {
			v, bins := binaries(t, "1.37")
			marker := filepath.Join(t.TempDir(), "ran-once")
			wrap := func(real string) string {
				return wrapBinary(t, real, `if [ -e `+marker+` ]; then echo "broken after its first run" >&2; exit 1; fi
: > `+marker+`
exec "$REAL" "$@"`)
			}
			bins.ControlPlane = "" // two processes, one of them the stand-in
			if tc.dying == "kube-apiserver" {
				bins.APIServer = wrap(bins.APIServer)
			} else {
				bins.ControllerManager = wrap(bins.ControllerManager)
			}
			cp, err := Start(context.Background(), Config{Name: "t", Dir: t.TempDir(), Version: v, Binaries: bins})
			if err != nil {
				t.Fatal(err)
			}
			defer cp.Stop()
			other := cp.PIDs()[tc.other]
			syscall.Kill(cp.PIDs()[tc.dying], syscall.SIGKILL)
			h := waitHealth(t, cp, "the control plane failed", func(h Health) bool { return h.State == StateFailed })
			if h.Err == nil || !strings.Contains(h.Err.Error(), tc.dying) || !strings.Contains(h.Err.Error(), "broken after its first run") {
				t.Errorf("failure: %v", h.Err)
			}
			if h.Restarts[tc.dying] != 2 {
				t.Errorf("restarts: %v, want 2 of %s", h.Restarts, tc.dying)
			}
			if tc.dying == "kube-apiserver" {
				if err := waitFor(func() bool { return !proc.Alive(other) }); err != nil {
					t.Errorf("%s (pid %d) still runs", tc.other, other)
				}
			} else {
				time.Sleep(time.Second) // a stop would have come with the failure
				if !proc.Alive(other) {
					t.Errorf("%s (pid %d) was stopped", tc.other, other)
				}
			}
			t.Logf("failed: %v", strings.SplitN(h.Err.Error(), "\n", 2)[0])
		})
	}
}

// TestFullDiskIsNamed: a control plane on a (nearly) full file system is
// refused at once, saying so, and nothing is left there.
func TestFullDiskIsNamed(t *testing.T) {
	v, bins := binaries(t, "1.37")
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("no tmpfs to fill here (%v: %s)", err, out)
	}
	defer exec.Command("umount", dir).Run()
	_, err := Start(context.Background(), Config{Name: "t", Dir: filepath.Join(dir, "cluster"), Version: v, Binaries: bins})
	if err == nil || !strings.Contains(err.Error(), "MB free on its file system") {
		t.Fatalf("start on a full file system: %v", err)
	}
	t.Logf("refused: %v", err)
	if entries, _ := os.ReadDir(dir); len(entries) > 0 {
		t.Errorf("left on the full file system: %v", entries)
	}
}

// TestPortTakenBeforeTheBind: another process takes the port vmatrix chose
// before the apiserver binds it; the start tries another port and succeeds.
// A port the caller asked for that is taken gives an error naming it.
func TestPortTakenBeforeTheBind(t *testing.T) {
	v, bins := binaries(t, "1.37")
	thief, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer thief.Close()
	taken := thief.Addr().(*net.TCPAddr).Port
	real, handed := freePort, 0
	freePort = func() (int, error) {
		if handed++; handed == 1 {
			return taken, nil
		}
		return real()
	}
	defer func() { freePort = real }()
	cp, err := Start(context.Background(), Config{Name: "t", Dir: t.TempDir(), Version: v, Binaries: bins})
	if err != nil {
		t.Fatalf("start with its first port taken: %v", err)
	}
	defer cp.Stop()
	if cp.Port() == taken || handed != 2 {
		t.Errorf("port %d after %d choices; the taken one was %d", cp.Port(), handed, taken)
	}

	dir := t.TempDir()
	_, err = Start(context.Background(), Config{Name: "t", Dir: dir, Version: v, Binaries: bins, Port: taken})
	if err == nil || !strings.Contains(err.Error(), fmt.Sprint(taken)) || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("start on a taken port it was given: %v", err)
	}
	t.Logf("refused: %v", err)
	if pids := proc.WithArg(dir); len(pids) > 0 {
		t.Errorf("processes left: %v", pids)
	}
}

// TestOneProcessFlags: the apiserver and the controller manager run as one
// process unless a flag of the user's sets what one process holds once
// for both (logging, feature gates, the emulated version) for one of them
// only, or differently for each.
func TestOneProcessFlags(t *testing.T) {
	for _, tc := range []struct {
		bins  string
		flags Flags
		one   bool
	}{
		{"kcp", Flags{}, true},
		{"", Flags{}, false},
		{"kcp", Flags{APIServer: []string{"--audit-log-maxage=1", "--runtime-config=api/all=true"}, ControllerManager: []string{"--concurrent-deployment-syncs=10"}}, true},
		{"kcp", Flags{APIServer: []string{"--v=2"}}, false},
		{"kcp", Flags{ControllerManager: []string{"--vmodule=foo=4"}}, false},
		{"kcp", Flags{ControllerManager: []string{"--log-flush-frequency=1s"}}, false},
		{"kcp", Flags{}.Add("A=true", ""), true},
		{"kcp", Flags{APIServer: []string{"--feature-gates=A=true"}}, false},
		{"kcp", Flags{APIServer: []string{"--feature-gates=A=true"}, ControllerManager: []string{"--feature-gates=A=false"}}, false},
		{"kcp", Flags{APIServer: []string{"--v=2", "--feature-gates=A=true"}, ControllerManager: []string{"--feature-gates=A=true", "--v=2"}}, false},
		{"kcp", Flags{APIServer: []string{"--v=2", "--audit-log-maxage=1"}, ControllerManager: []string{"--v=2"}}, true},
		{"kcp", Flags{}.Add("A=true,ControllerManagerReleaseLeaderElectionLockOnExit=true", ""), false},
		{"kcp", Flags{}.Add("A=true, ControllerManagerReleaseLeaderElectionLockOnExit = True", ""), false},
		{"kcp", Flags{}.Add("kube:ControllerManagerReleaseLeaderElectionLockOnExit=1", ""), false},
		{"kcp", Flags{}.Add("AllAlpha=true", ""), false},
		{"kcp", Flags{}.Add("AllAlpha=true,ControllerManagerReleaseLeaderElectionLockOnExit=false", ""), true},
		{"kcp", Flags{}.Add("ControllerManagerReleaseLeaderElectionLockOnExit=false", ""), true},
		{"kcp", Flags{APIServer: []string{"--emulated-version=1.36"}}, false},
	} {
		cp := &ControlPlane{cfg: Config{Binaries: k8sdist.Binaries{ControlPlane: tc.bins}, Flags: tc.flags}}
		if got := cp.oneProcess(); got != tc.one {
			t.Errorf("binaries %q, flags %+v: one process %v, want %v", tc.bins, tc.flags, got, tc.one)
		}
	}
}
