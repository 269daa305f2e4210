package framework

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

// The live Environments of this process, torn down on SIGINT or SIGTERM.
// While none is live the signals keep their default effect.
var live struct {
	mu   sync.Mutex
	envs map[*Environment]struct{}
	ch   chan os.Signal
}

func register(e *Environment) {
	live.mu.Lock()
	defer live.mu.Unlock()
	if live.envs == nil {
		live.envs = map[*Environment]struct{}{}
	}
	live.envs[e] = struct{}{}
	if live.ch == nil {
		live.ch = make(chan os.Signal, 2)
		signal.Notify(live.ch, syscall.SIGINT, syscall.SIGTERM)
		go handleSignals(live.ch)
	}
}

func unregister(e *Environment) {
	live.mu.Lock()
	defer live.mu.Unlock()
	delete(live.envs, e)
	if len(live.envs) == 0 && live.ch != nil {
		signal.Stop(live.ch)
		close(live.ch)
		live.ch = nil
	}
}

// handleSignals tears down every live Environment on the first signal, then
// lets the signal take its default effect, so the process still ends as
// interrupted. A second signal during teardown ends the process at once; the
// children die with it (they are started with a parent-death signal).
func handleSignals(ch chan os.Signal) {
	sig, ok := <-ch
	if !ok {
		return
	}
	live.mu.Lock()
	envs := make([]*Environment, 0, len(live.envs))
	for e := range live.envs {
		envs = append(envs, e)
	}
	live.mu.Unlock()
	fmt.Fprintf(os.Stderr, "vmatrix: %v: tearing down %d environment(s)\n", sig, len(envs))
	go func() {
		if s, ok := <-ch; ok {
			fmt.Fprintf(os.Stderr, "vmatrix: %v again: exiting without teardown\n", s)
			os.Exit(2)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	for _, e := range envs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := e.Destroy(ctx); err != nil {
				fmt.Fprintf(os.Stderr, "vmatrix: teardown: %v\n", err)
			}
		}()
	}
	wg.Wait()
	signal.Reset(sig)
	_ = syscall.Kill(os.Getpid(), sig.(syscall.Signal))
	time.Sleep(time.Second)
	os.Exit(1)
}
