package k8sdist

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// lockPoll is how often a waiter retries a held lock. Polling rather than a
// blocking flock keeps the wait cancellable through ctx.
const lockPoll = 200 * time.Millisecond

// inProcess holds one token per lock path. flock alone would also exclude
// goroutines of this process (each open file is its own lock owner), but the
// token lets a waiter tell "this process is already building" from "another
// process is", and avoids polling between goroutines.
var inProcess sync.Map // lock path -> chan struct{} with capacity 1

// lockFile takes an exclusive lock on path, shared by this and other
// processes, waiting until it is free or ctx ends. onWait is called once,
// with otherProcess telling who holds it, if the lock is not free at once.
// The returned function releases the lock.
func lockFile(ctx context.Context, path string, onWait func(otherProcess bool)) (unlock func(), err error) {
	waited := false
	wait := func(other bool) {
		if !waited && onWait != nil {
			onWait(other)
		}
		waited = true
	}

	v, _ := inProcess.LoadOrStore(path, make(chan struct{}, 1))
	token := v.(chan struct{})
	select {
	case token <- struct{}{}:
	default:
		wait(false)
		select {
		case token <- struct{}{}:
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}
	release := func() { <-token }

	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		release()
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		release()
		return nil, err
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			release()
			return nil, fmt.Errorf("locking %s: %w", path, err)
		}
		wait(true)
		select {
		case <-time.After(lockPoll):
		case <-ctx.Done():
			f.Close()
			release()
			return nil, context.Cause(ctx)
		}
	}
	return func() {
		// Closing the file drops the flock. The lock file stays: removing
		// it would race with a process that has opened but not locked it.
		f.Close()
		release()
	}, nil
}
