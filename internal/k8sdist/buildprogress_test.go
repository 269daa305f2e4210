package k8sdist

import (
	"bytes"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// What `go build -v` writes: the packages it compiles, and for a failed one
// the compiler's words.
const recordedBuildV = `internal/goarch
k8s.io/apimachinery/pkg/util/sets
k8s.io/api/core/v1
go: downloading k8s.io/klog/v2 v2.140.0
# k8s.io/kubernetes/pkg/broken
pkg/broken/x.go:3:2: undefined: y
k8s.io/kubernetes/cmd/kube-apiserver
`

func TestBuildCountCountsCompiledPackages(t *testing.T) {
	b := &buildCount{total: 10}
	// In pieces, as a pipe delivers it.
	for _, chunk := range []string{recordedBuildV[:20], recordedBuildV[20:77], recordedBuildV[77:]} {
		b.Write([]byte(chunk))
	}
	if compiled, total := b.count(); compiled != 4 || total != 10 {
		t.Errorf("count = %d of %d, want 4 of 10", compiled, total)
	}
}

func TestDescribeABuild(t *testing.T) {
	for _, tc := range []struct {
		compiled, total   int
		elapsed, estimate time.Duration
		want              string
	}{
		{812, 1903, 4*time.Minute + 10*time.Second, 6 * time.Minute, "812 of 1903 packages compiled, 4m10s of about 6m0s (the last build here)"},
		{1900, 1903, 7 * time.Minute, 6 * time.Minute, "1900 of 1903 packages compiled, 7m0s (longer than the last build here, 6m0s)"},
		{500, 1500, time.Minute, 0, "500 of 1500 packages compiled, 1m0s so far, about 2m0s left at this pace"},
		{0, 0, 3 * time.Second, 0, "0 packages compiled, 3s so far"},
	} {
		if got := describe(tc.compiled, tc.total, tc.elapsed, tc.estimate); got != tc.want {
			t.Errorf("describe(%d, %d, %s, %s) = %q, want %q", tc.compiled, tc.total, tc.elapsed, tc.estimate, got, tc.want)
		}
	}
}

func TestBuildTimesEstimateFromTheLastBuild(t *testing.T) {
	times := buildTimes{path: filepath.Join(t.TempDir(), "k8s", "build-times.json")}
	v35, v36, v37 := Version{1, 35, 4}, Version{1, 36, 3}, Version{1, 37, 2}
	if e := times.estimate(v35); e != 0 {
		t.Errorf("estimate with no build: %s", e)
	}
	times.record(v35, 5*time.Minute)
	times.record(v36, 7*time.Minute)
	if e := times.estimate(v35); e != 5*time.Minute {
		t.Errorf("estimate of a version built before: %s, want 5m", e)
	}
	if e := times.estimate(v37); e != 7*time.Minute {
		t.Errorf("estimate of a new version: %s, want the most recent build's 7m", e)
	}
}

func TestFollowBuildReportsAndLogs(t *testing.T) {
	b := &buildCount{total: 4}
	b.Write([]byte("a/b\nc/d\n"))
	var log bytes.Buffer
	var mu sync.Mutex
	var heard []string
	stop := followBuild(&log, func(s string) { mu.Lock(); heard = append(heard, s); mu.Unlock() }, Version{1, 37, 2}, b, time.Minute, 10*time.Millisecond, 30*time.Millisecond)
	time.Sleep(100 * time.Millisecond)
	stop()
	mu.Lock()
	defer mu.Unlock()
	if len(heard) == 0 || !strings.HasPrefix(heard[0], "building: 2 of 4 packages compiled, ") {
		t.Errorf("progress heard %q", heard)
	}
	if !strings.Contains(log.String(), "building v1.37.2: 2 of 4 packages compiled") {
		t.Errorf("log: %q", log.String())
	}
}
