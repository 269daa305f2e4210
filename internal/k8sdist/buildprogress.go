package k8sdist

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// buildCount follows `go build -v`: it prints the import path of each
// package as it is compiled (cached ones are not), so the lines counted
// against the packages `go list -deps` names say how far a build is.
type buildCount struct {
	mu     sync.Mutex
	total  int
	output strings.Builder // for the error message of a failed build
}

// Write takes go build's stderr.
func (b *buildCount) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.output.Write(p)
	return len(p), nil
}

// count counts the package lines of what was written so far.
func (b *buildCount) count() (compiled, total int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	sc := bufio.NewScanner(strings.NewReader(b.output.String()))
	for sc.Scan() {
		if isPackageLine(sc.Text()) {
			n++
		}
	}
	return n, b.total
}

// isPackageLine tells a `go build -v` package line ("k8s.io/api/core/v1",
// "net/http") from the go command's other words.
func isPackageLine(line string) bool {
	return line != "" && !strings.ContainsAny(line, " \t:") && !strings.HasPrefix(line, "#")
}

// buildTimes records how long the last build of each version took on this
// machine, in the cache: the estimate of the next one.
type buildTimes struct{ path string }

type buildRecord struct {
	Seconds float64   `json:"seconds"`
	At      time.Time `json:"at"`
}

func (t buildTimes) read() map[string]buildRecord {
	m := map[string]buildRecord{}
	if data, err := os.ReadFile(t.path); err == nil {
		_ = json.Unmarshal(data, &m)
	}
	return m
}

// estimate is the last build of v here, else the most recent build of any
// version (most take about as long); 0 if none is known.
func (t buildTimes) estimate(v Version) time.Duration {
	m := t.read()
	if r, ok := m[v.String()]; ok {
		return time.Duration(r.Seconds * float64(time.Second))
	}
	var last buildRecord
	for _, r := range m {
		if r.At.After(last.At) {
			last = r
		}
	}
	return time.Duration(last.Seconds * float64(time.Second))
}

func (t buildTimes) record(v Version, took time.Duration) {
	m := t.read()
	m[v.String()] = buildRecord{Seconds: took.Seconds(), At: time.Now()}
	if data, err := json.MarshalIndent(m, "", "  "); err == nil {
		_ = os.MkdirAll(filepath.Dir(t.path), 0o755)
		tmp := t.path + ".tmp"
		if os.WriteFile(tmp, data, 0o644) == nil {
			_ = os.Rename(tmp, t.path)
		}
	}
}

// describe says where a build stands: "812 of 1903 packages compiled, 4m10s
// of about 6m (the last build here)".
func describe(compiled, total int, elapsed, estimate time.Duration) string {
	s := fmt.Sprintf("%d of %d packages compiled", compiled, total)
	if total == 0 {
		s = fmt.Sprintf("%d packages compiled", compiled)
	}
	elapsed = elapsed.Round(time.Second)
	switch {
	case estimate > 0 && estimate > elapsed:
		s += fmt.Sprintf(", %s of about %s (the last build here)", elapsed, estimate.Round(time.Second))
	case estimate > 0:
		s += fmt.Sprintf(", %s (longer than the last build here, %s)", elapsed, estimate.Round(time.Second))
	case compiled > 0 && total > compiled:
		left := time.Duration(float64(elapsed) * float64(total-compiled) / float64(compiled)).Round(time.Second)
		s += fmt.Sprintf(", %s so far, about %s left at this pace", elapsed, left)
	default:
		s += fmt.Sprintf(", %s so far", elapsed)
	}
	return s
}

// followBuild reports a build's progress every interval to log and to
// progress, until stop is called.
func followBuild(log io.Writer, progress func(string), v Version, b *buildCount, estimate time.Duration, interval, logEvery time.Duration) (stop func()) {
	start := time.Now()
	lastLog := start
	return ticking(interval, func() {
		compiled, total := b.count()
		what := describe(compiled, total, time.Since(start), estimate)
		if progress != nil {
			progress("building: " + what)
		}
		if time.Since(lastLog) >= logEvery {
			lastLog = time.Now()
			logf(log, "building %s: %s", v, what)
		}
	})
}
