package k8sdist

import (
	"bufio"
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"
)

func TestLockFileInProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "v1.lock")
	unlock, err := lockFile(t.Context(), path, func(bool) { t.Error("first locker had to wait") })
	if err != nil {
		t.Fatal(err)
	}

	waits := make(chan bool, 2)
	got := make(chan error, 1)
	go func() {
		u, err := lockFile(t.Context(), path, func(other bool) { waits <- other })
		if err == nil {
			u()
		}
		got <- err
	}()
	select {
	case other := <-waits:
		if other {
			t.Error("a goroutine of this process was reported as another process")
		}
	case err := <-got:
		t.Fatalf("second locker did not wait: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("second locker neither waited nor returned")
	}
	select {
	case err := <-got:
		t.Fatalf("second locker got the lock while it was held: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	unlock()
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	if len(waits) != 0 {
		t.Error("onWait was called more than once")
	}
}

func TestLockFileAcrossProcesses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v1.lock")
	hold := func() (release func(), kill func()) {
		c := helperCommand(t.Context(), "lock", "VMATRIX_K8SDIST_TEST_LOCK="+path)
		stdin, err := c.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		stdout, err := c.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "locked\n" {
			t.Fatalf("helper said %q, %v", line, err)
		}
		return func() { stdin.Close(); c.Wait() }, func() { c.Process.Kill(); c.Wait() }
	}

	// Held by another process: we wait, are told so, and ctx bounds the wait.
	release, _ := hold()
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	var other []bool
	_, err := lockFile(ctx, path, func(o bool) { other = append(other, o) })
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("lockFile while another process holds the lock = %v, want a deadline error", err)
	}
	if len(other) != 1 || !other[0] {
		t.Errorf("onWait calls = %v, want one saying another process holds it", other)
	}
	// Released: we get it.
	release()
	unlock, err := lockFile(t.Context(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	unlock()

	// A holder that dies (a killed build) does not block anyone.
	_, kill := hold()
	kill()
	ctx, cancel = context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	unlock, err = lockFile(ctx, path, nil)
	if err != nil {
		t.Fatalf("lock of a killed process was not released: %v", err)
	}
	unlock()
}
