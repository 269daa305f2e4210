package k8sdist

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// These tests use the real per-user cache (DefaultCacheDir), as every vmatrix
// run does: a release is built once per machine, never once per test.

func TestKubernetesNewest(t *testing.T) {
	if testing.Short() {
		t.Skip("builds Kubernetes when it is not cached yet, which takes minutes")
	}
	unsetOverrides(t)
	ctx := t.Context()
	v, err := Newest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cache := DefaultCacheDir()
	before, err := Source{CacheDir: cache}.Cached()
	if err != nil {
		t.Fatal(err)
	}
	wasCached := slices.Contains(before, v)
	t.Logf("Kubernetes %s in %s, cached before: %v", v, cache, wasCached)

	// Three concurrent callers: another process and two goroutines.
	child := helperCommand(ctx, "kubernetes",
		"VMATRIX_K8SDIST_TEST_VERSION="+v.String(), "VMATRIX_K8SDIST_TEST_CACHE="+cache)
	var childOut, childLog bytes.Buffer
	child.Stdout, child.Stderr = &childOut, &childLog
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var (
		wg      sync.WaitGroup
		results [2]Binaries
		errs    [2]error
		logs    [2]syncBuffer
	)
	for i := range results {
		wg.Go(func() {
			results[i], errs[i] = Source{CacheDir: cache, Log: &logs[i]}.Kubernetes(ctx, v)
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	childErr := child.Wait()
	for i := range logs {
		t.Logf("goroutine %d log:\n%s", i, logs[i].String())
	}
	t.Logf("process log:\n%s", childLog.String())
	t.Logf("all callers served in %v", elapsed.Round(time.Millisecond))
	for _, err := range append(errs[:], childErr) {
		if err != nil {
			t.Fatal(err)
		}
	}
	var fromChild Binaries
	if err := json.Unmarshal(childOut.Bytes(), &fromChild); err != nil {
		t.Fatalf("helper output %q: %v", childOut.String(), err)
	}
	if results[0] != results[1] || results[0] != fromChild {
		t.Errorf("callers got different binaries: %+v, %+v, %+v", results[0], results[1], fromChild)
	}
	all := logs[0].String() + logs[1].String() + childLog.String()
	builds, want := countLines(all, "building "), 1
	if wasCached {
		want = 0
	}
	if builds != want {
		t.Errorf("%d builds ran for 3 concurrent callers, want %d", builds, want)
	}

	// The binaries tell the truth about their version.
	b := results[0]
	for _, p := range []string{b.APIServer, b.ControllerManager, b.Scheduler} {
		out, err := exec.CommandContext(ctx, p, "--version").CombinedOutput()
		if err != nil {
			t.Fatalf("%s --version: %v\n%s", p, err, out)
		}
		if got := strings.TrimSpace(string(out)); got != "Kubernetes "+v.String() {
			t.Errorf("%s --version = %q, want %q", p, got, "Kubernetes "+v.String())
		}
	}

	// From now on it is a cache hit.
	start = time.Now()
	again, err := Source{CacheDir: cache}.Kubernetes(ctx, v)
	hit := time.Since(start)
	if err != nil || again != b {
		t.Fatalf("cache hit = %+v, %v; want %+v", again, err, b)
	}
	t.Logf("cache hit in %v", hit)
	if hit > time.Second {
		t.Errorf("a cache hit took %v", hit)
	}
}

func TestKWOK(t *testing.T) {
	if testing.Short() {
		t.Skip("builds kwok when it is not cached yet")
	}
	t.Setenv("VMATRIX_KWOK", "")
	ctx := t.Context()
	var log syncBuffer
	start := time.Now()
	p, err := Source{Log: &log}.KWOK(ctx)
	t.Logf("KWOK in %v, log:\n%s", time.Since(start).Round(time.Millisecond), log.String())
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(ctx, p, "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("%s --version: %v\n%s", p, err, out)
	}
	if !strings.Contains(string(out), KWOKVersion+" ") {
		t.Errorf("%s --version = %q, want version %s", p, out, KWOKVersion)
	}
	t.Logf("%s", bytes.TrimSpace(out))
}
