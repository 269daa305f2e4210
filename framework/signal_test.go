package framework_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vmatrix/vmatrix/framework"

	"github.com/vmatrix/vmatrix/internal/proc"
	"github.com/vmatrix/vmatrix/internal/testkit"
)

// helper is the child process of the signal tests: an Environment on the
// host given by VMATRIX_TEST_HOST with its state in VMATRIX_TEST_STATE. It
// prints "creating", then "ready PORT" once its cluster is up, and waits to
// be signalled.
func helper(kind string) int {
	e, err := framework.New(
		framework.WithHostKubeconfig(os.Getenv("VMATRIX_TEST_HOST"), ""),
		framework.WithStateDir(os.Getenv("VMATRIX_TEST_STATE")),
	)
	if err != nil {
		fmt.Println(err)
		return 1
	}
	fmt.Println("creating")
	vc, err := e.Create(context.Background(), "1.37", framework.WithName("sig"))
	if err != nil {
		// A signal during the create ends up here too; Destroy waits for the
		// teardown the signal started, as a test's cleanup would.
		fmt.Println(err)
		if derr := e.Destroy(context.Background()); derr != nil {
			fmt.Println(derr)
		}
		return 1
	}
	fmt.Println("ready", port(vc))
	select {}
}

// startHelper runs the test binary as a helper and returns it with a reader
// of its output lines.
func startHelper(t *testing.T, state string) (*exec.Cmd, *bufio.Scanner) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=1", "VMATRIX_TEST_HOST="+framework.HostKubeconfigPath(env), "VMATRIX_TEST_STATE="+state)
	cmd.Stderr = testLog{t}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd, bufio.NewScanner(out)
}

func expectLine(t *testing.T, sc *bufio.Scanner, prefix string) string {
	t.Helper()
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), prefix) {
			return sc.Text()
		}
		t.Logf("helper: %s", sc.Text())
	}
	t.Fatalf("helper ended before printing %q", prefix)
	return ""
}

// waitExit waits for the helper with a bound and returns how it ended.
func waitExit(t *testing.T, cmd *exec.Cmd) syscall.WaitStatus {
	t.Helper()
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		t.Fatal("the helper did not exit within 2 minutes of the signal")
	}
	return cmd.ProcessState.Sys().(syscall.WaitStatus)
}

// waitNothingLeft waits up to timeout for leftovers to be none.
func waitNothingLeft(t *testing.T, dir string, ports []int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		left := leftovers(dir, ports)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("left: %v", left)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestSIGINTAfterCreate(t *testing.T) {
	state := t.TempDir()
	cmd, sc := startHelper(t, state)
	var port int
	fmt.Sscanf(expectLine(t, sc, "ready"), "ready %d", &port)
	start := time.Now()
	cmd.Process.Signal(syscall.SIGINT)
	ws := waitExit(t, cmd)
	t.Logf("the helper exited %s after SIGINT (%v)", time.Since(start).Round(time.Millisecond), ws)
	if !ws.Signaled() || ws.Signal() != syscall.SIGINT {
		t.Errorf("the helper ended with %v, want death by SIGINT after teardown", ws)
	}
	// Teardown is done before the exit: nothing may be left at this moment.
	waitNothingLeft(t, filepath.Join(state, "clusters", "sig"), []int{port}, 0)
}

func TestSIGINTDuringCreate(t *testing.T) {
	state := t.TempDir()
	cmd, sc := startHelper(t, state)
	expectLine(t, sc, "creating")
	logs := filepath.Join(state, "clusters", "sig", "logs")
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
		if testkit.APIServerStarted(logs) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the helper never started an apiserver")
		}
	}
	cmd.Process.Signal(syscall.SIGINT)
	ws := waitExit(t, cmd)
	// Either the signal handler ends the process, or the failed create's
	// Destroy (which waits for the handler's teardown) returns first.
	if !(ws.Signaled() && ws.Signal() == syscall.SIGINT) && ws.ExitStatus() != 1 {
		t.Errorf("the helper ended with %v, want death by SIGINT or exit 1 after teardown", ws)
	}
	waitNothingLeft(t, filepath.Join(state, "clusters", "sig"), nil, 0)
}

func TestSIGKILLTakesChildren(t *testing.T) {
	state := t.TempDir()
	cmd, sc := startHelper(t, state)
	var port int
	fmt.Sscanf(expectLine(t, sc, "ready"), "ready %d", &port)
	dir := filepath.Join(state, "clusters", "sig")
	if len(proc.WithArg(dir)) == 0 {
		t.Fatal("no cluster process found before the kill")
	}
	cmd.Process.Signal(syscall.SIGKILL)
	waitExit(t, cmd)
	// The children get SIGKILL from the kernel as their parent dies; the
	// state folder stays for `vmatrix cleanup`.
	var left []int
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if left = proc.WithArg(dir); len(left) == 0 && !portOpen(port) {
			break
		}
	}
	if len(left) > 0 {
		t.Errorf("processes alive after SIGKILL of their parent: %v", left)
	}
	if portOpen(port) {
		t.Errorf("port %d open after SIGKILL of its owner", port)
	}
}
