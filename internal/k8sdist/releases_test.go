package k8sdist

import (
	"context"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// forgetReleases drops the per-process listing so that a test can observe
// the lookup again, with a cache folder of the test's own, so that no
// listing kept on disk answers; the listing is "unknown" afterwards too.
func forgetReleases(t *testing.T) {
	t.Setenv("VMATRIX_CACHE_DIR", t.TempDir())
	forgetProcessListing()
	t.Cleanup(forgetProcessListing)
}

// forgetProcessListing is what a new process starts with: no listing in
// memory, whatever is on disk.
func forgetProcessListing() {
	releases.mu.Lock()
	releases.list = nil
	releases.mu.Unlock()
}

// TestReleasesKeptOnDisk: a listing is kept in the cache folder, and another
// process uses it without asking the proxy while it is fresh and listed with
// the same proxy settings; a stale one, or one of other settings, is asked
// again, and is still better than the built-in table when the proxy cannot
// be asked.
func TestReleasesKeptOnDisk(t *testing.T) {
	forgetReleases(t)
	list, err := Releases(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(releasesFile()); err != nil {
		if slices.Equal(list, builtinReleases) {
			t.Skipf("the module proxy is not reachable here: nothing to keep")
		}
		t.Fatalf("a listing of the proxy was not kept: %v", err)
	}
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	forgetProcessListing()
	if again, err := Releases(cancelled); err != nil || !slices.Equal(again, list) {
		t.Fatalf("a fresh listing on disk did not answer: %v, %v", again, err)
	}

	keep := func(saved savedReleases) {
		b, err := json.Marshal(saved)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(releasesFile(), b, 0o644); err != nil {
			t.Fatal(err)
		}
		forgetProcessListing()
	}
	mine := []Version{{1, 37, 9}}
	keep(savedReleases{Source: releasesSource(), At: time.Now().Add(-2 * releasesFresh), Versions: mine})
	if _, err := Releases(cancelled); err == nil {
		t.Error("a stale listing answered without asking the proxy")
	}
	keep(savedReleases{Source: "GOPROXY=elsewhere", At: time.Now(), Versions: mine})
	if _, err := Releases(cancelled); err == nil {
		t.Error("a listing of other proxy settings answered without asking the proxy")
	}
	t.Setenv("GOPROXY", "off")
	if got, err := Releases(t.Context()); err != nil || !slices.Equal(got, mine) {
		t.Errorf("offline with a listing kept: %v, %v; want the kept %v", got, err, mine)
	}
}

func TestReleasesFromProxy(t *testing.T) {
	// Make sure this is a real answer of the module proxy, not the table.
	list, err := listReleases(t.Context())
	if err != nil {
		t.Skipf("the module proxy is not reachable here: %v", err)
	}
	forgetReleases(t)
	got, err := Releases(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, list) {
		t.Fatalf("Releases = %v, go list says %v", got, list)
	}
	for i, v := range got {
		if v.Major != 1 {
			t.Errorf("release %v is not of major 1", v)
		}
		if i > 0 && !got[i-1].Less(v) {
			t.Errorf("releases not strictly ascending at %v, %v", got[i-1], v)
		}
	}
	t.Logf("the module proxy lists %d releases, %v ... %v", len(got), got[0], got[len(got)-1])

	// Memoized: a second call asks nobody (a cancelled context would fail
	// a request), and callers cannot corrupt it.
	got[0] = Version{9, 9, 9}
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	again, err := Releases(cancelled)
	if err != nil {
		t.Fatalf("second Releases asked again: %v", err)
	}
	if !slices.Equal(again, list) {
		t.Errorf("Releases after the caller modified its copy = %v", again)
	}
}

func TestReleasesOffline(t *testing.T) {
	forgetReleases(t)
	t.Setenv("GOPROXY", "off") // what an offline machine is configured with
	got, err := Releases(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, builtinReleases) {
		t.Errorf("offline Releases = %v, want the built-in table %v", got, builtinReleases)
	}
}

func TestReleasesCancelled(t *testing.T) {
	forgetReleases(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if got, err := Releases(ctx); err == nil {
		t.Fatalf("Releases with a cancelled context = %v, want an error", got)
	}
	releases.mu.Lock()
	defer releases.mu.Unlock()
	if releases.list != nil {
		t.Errorf("a cancelled lookup was memoized: %v", releases.list)
	}
}

func TestResolve(t *testing.T) {
	ctx := t.Context()
	list, err := Releases(ctx)
	if err != nil {
		t.Fatal(err)
	}

	v, err := Resolve(ctx, "1.36")
	if err != nil {
		t.Fatal(err)
	}
	if v.Major != 1 || v.Minor != 36 || !slices.Contains(list, v) {
		t.Errorf(`Resolve("1.36") = %v, not a listed 1.36 release (%v)`, v, list)
	}
	for _, o := range list {
		if o.Major == 1 && o.Minor == 36 && v.Less(o) {
			t.Errorf(`Resolve("1.36") = %v, but %v is newer`, v, o)
		}
	}

	newest, err := Newest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if newest != list[len(list)-1] {
		t.Errorf("Newest = %v, want %v", newest, list[len(list)-1])
	}
	for _, in := range []string{newest.String(), strings.TrimPrefix(newest.String(), "v")} {
		if got, err := Resolve(ctx, in); err != nil || got != newest {
			t.Errorf("Resolve(%q) = %v, %v; want %v", in, got, err, newest)
		}
	}

	for _, tc := range []struct{ in, want string }{
		{"1.99", `unknown Kubernetes version "1.99" (known minors: `},
		{"1.36.99", `unknown Kubernetes version "1.36.99" (known 1.36 releases: `},
		{"one.two", `invalid Kubernetes version "one.two"`},
		{"1", `invalid Kubernetes version "1"`},
	} {
		got, err := Resolve(ctx, tc.in)
		if err == nil {
			t.Errorf("Resolve(%q) = %v, want an error", tc.in, got)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Resolve(%q) error = %q, want it to contain %q", tc.in, err, tc.want)
		}
		t.Logf("Resolve(%q): %v", tc.in, err)
	}
}
