package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestUpShowsLiveStatusOnATerminal drives `vmatrix up` in a terminal (a tmux
// pane) and reads the screen: one line per version updated in place, then
// a summary; without a terminal the same run prints plain lines only.
func TestUpShowsLiveStatusOnATerminal(t *testing.T) {
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Skip("no tmux")
	}
	c := newCLI(t)
	socket := filepath.Join(t.TempDir(), "tmux")
	tmux := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("tmux", append([]string{"-S", socket}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("tmux %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	done, pid := filepath.Join(t.TempDir(), "done"), filepath.Join(t.TempDir(), "pid")
	script := filepath.Join(t.TempDir(), "up.sh")
	os.WriteFile(script, []byte("#!/bin/sh\nunset CI\n"+vmatrixBin+" up --versions 1.35,1.36 &\necho $! > "+pid+"\nwait $!\necho $? > "+done+"\nsleep 600\n"), 0o755)
	cmd := exec.Command("tmux", "-S", socket, "new-session", "-d", "-x", "120", "-y", "40", script)
	cmd.Env = append(c.env, "TERM=xterm-256color")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tmux new-session: %v\n%s", err, out)
	}
	// Whatever happened: the terminal closes, which stops an up still at
	// work (SIGHUP) and lets it remove what it started; then down.
	defer c.run("down")
	defer func() {
		exec.Command("tmux", "-S", socket, "kill-server").Run()
		data, _ := os.ReadFile(pid)
		n, err := strconv.Atoi(strings.TrimSpace(string(data)))
		for deadline := time.Now().Add(time.Minute); err == nil && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if syscall.Kill(n, 0) != nil {
				break
			}
		}
	}()

	var screens []string
	for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(300 * time.Millisecond) {
		screens = append(screens, tmux("capture-pane", "-p"))
		if _, err := os.Stat(done); err == nil {
			screens = append(screens, tmux("capture-pane", "-p"))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("up did not end; screen:\n%s", screens[len(screens)-1])
		}
	}
	if code, _ := os.ReadFile(done); strings.TrimSpace(string(code)) != "0" {
		t.Fatalf("up exited %s; screen:\n%s", code, screens[len(screens)-1])
	}
	v135, v136 := resolve(t, "1.35"), resolve(t, "1.36")
	// While it ran: each version on one line with a phase, the line updated
	// in place (never two lines of one version on a screen).
	sawPhase := false
	for _, screen := range screens {
		for _, v := range []string{v135, v136} {
			if n := strings.Count(screen, " "+v+" "); n > 1 {
				t.Fatalf("%s on %d lines of one screen:\n%s", v, n, screen)
			}
		}
		for _, phase := range []string{"binaries", "embedded host", "starting control plane"} {
			if strings.Contains(screen, v135+" ") && strings.Contains(screen, phase) {
				sawPhase = true
			}
		}
	}
	if !sawPhase {
		t.Errorf("no screen showed a phase of the create; last:\n%s", screens[len(screens)-1])
	}
	final := screens[len(screens)-1]
	for _, want := range []string{"✓ ready (up-1-35-", "✓ ready (up-1-36-", "2 of 2 ready in ", "export KUBECONFIG="} {
		if !strings.Contains(final, want) {
			t.Errorf("final screen lacks %q:\n%s", want, final)
		}
	}

	// Without a terminal: plain timestamped lines, no escape codes.
	c.mustRun("down")
	_, stderr, code := c.run("up", "--versions", "1.35,1.36")
	if code != 0 {
		t.Fatalf("up without a terminal: exit %d\n%s", code, stderr)
	}
	if strings.ContainsAny(stderr, "\x1b\r") {
		t.Errorf("escape codes without a terminal:\n%q", stderr)
	}
	for _, want := range []string{v135 + ": ready (up-1-35-", v136 + ": ready (up-1-36-", "2 of 2 ready in "} {
		if !strings.Contains(stderr, want) {
			t.Errorf("plain output lacks %q:\n%s", want, stderr)
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(stderr), "\n") {
		if _, err := time.Parse("15:04:05", strings.Fields(line)[0]); err != nil {
			t.Errorf("line without a timestamp: %q", line)
		}
	}
	c.mustRun("down")
}
