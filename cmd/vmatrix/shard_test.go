package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vmatrix/vmatrix/matrix"
)

// Four shards of a six-version spec take every version exactly once, the
// same whatever the order of the spec; --dry-run creates nothing.
func TestRunShardDryRun(t *testing.T) {
	c := newCLI(t)
	lines := func(s string) []string { return strings.Fields(s) }
	all := lines(c.mustRun("run", "--versions", "1.32-1.37", "--dry-run", "--", "go", "test", "./..."))
	if len(all) != 6 {
		t.Fatalf("1.32-1.37 resolves to %v; want six versions", all)
	}
	var union []string
	for k := range 4 {
		shard := string(rune('1'+k)) + "/4"
		share := lines(c.mustRun("run", "--versions", "1.32-1.37", "--shard", shard, "--dry-run", "--", "go", "test", "./..."))
		// The same spec written another way, without a command.
		other := lines(c.mustRun("run", "--versions", "1.36-1.37,1.32,1.35,1.33-1.34", "--shard", shard, "--dry-run"))
		if !slices.Equal(share, other) || len(share) < 1 || len(share) > 2 {
			t.Errorf("shard %s: %v, or %v with the spec in another order", shard, share, other)
		}
		union = append(union, share...)
	}
	slices.Sort(union)
	want := slices.Clone(all)
	slices.Sort(want)
	if !slices.Equal(union, want) {
		t.Errorf("the four shards take %v; want each of %v once", union, all)
	}

	stdout, stderr, code := c.run("run", "--versions", "1.32-1.37", "--shard", "7/8", "--dry-run", "--", "true")
	if code != 0 || stdout != "" || !strings.Contains(stderr, "shard 7/8 has no version") {
		t.Errorf("shard 7/8 of six versions: exit %d, stdout %q, stderr %q; want 0 and a line saying it has none", code, stdout, stderr)
	}
	for _, bad := range []string{"0/4", "5/4", "x/4", "2/y", "2", "1/0", ""} {
		_, stderr, code := c.run("run", "--versions", "1.32-1.37", "--shard", bad, "--dry-run", "--", "true")
		if code != 2 || strings.Count(strings.TrimSpace(stderr), "\n") != 0 || !strings.Contains(stderr, "want K/N") {
			t.Errorf("--shard %q: exit %d, stderr %q; want exit 2 and one line", bad, code, stderr)
		}
	}
	if _, stderr, code := c.run("run", "--upgrade", "1.35,1.36", "--shard", "1/2", "--", "true"); code != 2 || !strings.Contains(stderr, "--upgrade") {
		t.Errorf("--shard with --upgrade: exit %d, %q; want 2", code, stderr)
	}
	for _, dir := range []string{c.stateDir, c.tempDir()} {
		if entries, _ := os.ReadDir(dir); len(entries) > 0 {
			t.Errorf("a dry run left %v in %s", entries, dir)
		}
	}
}

// report merge joins report folders; a version in two of them and a folder
// without report.json are errors naming them.
func TestReportMerge(t *testing.T) {
	c := newCLI(t)
	dir := t.TempDir()
	write := func(name string, versions ...string) string {
		r := &matrix.Report{Command: "go test ./...", Started: time.Now(), Duration: time.Second, Passed: true}
		for _, v := range versions {
			r.Versions = append(r.Versions, &matrix.VersionResult{Version: v, Passed: v != "v1.35.4", Status: map[bool]string{true: matrix.StatusPassed, false: matrix.StatusFailed}[v != "v1.35.4"]})
		}
		if err := r.WriteFiles(filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
		return filepath.Join(dir, name)
	}
	a, b, again := write("a", "v1.37.2", "v1.33.13"), write("b", "v1.35.4"), write("again", "v1.33.13")
	out := filepath.Join(dir, "merged")
	stdout := c.mustRun("report", "merge", a, b, "--out", out)
	if !strings.Contains(stdout, "3 version(s), failed on v1.35.4") {
		t.Errorf("report merge said %q", stdout)
	}
	md, err := os.ReadFile(filepath.Join(out, "report.md"))
	if err != nil || !strings.Contains(string(md), "| **whole run** | ✅ pass | ❌ fail | ✅ pass |\n") || !strings.Contains(string(md), "| test | v1.33.13 | v1.35.4 | v1.37.2 |") {
		t.Errorf("merged report.md (%v):\n%s", err, md)
	}
	if r := readReport(t, out); r.Passed || len(r.Versions) != 3 {
		t.Errorf("merged report.json: passed %v, %d versions", r.Passed, len(r.Versions))
	}
	if _, stderr, code := c.run("report", "merge", a, b, again, "--out", out); code != 1 || !strings.Contains(stderr, "v1.33.13") || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
		t.Errorf("a version in two folders: exit %d, %q; want 1 and one line naming it", code, stderr)
	}
	if _, stderr, code := c.run("report", "merge", a, dir, "--out", out); code != 2 || !strings.Contains(stderr, dir+": no report.json") {
		t.Errorf("a folder without report.json: exit %d, %q; want 2 naming it", code, stderr)
	}
}
