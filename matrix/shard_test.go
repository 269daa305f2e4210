package matrix

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/joshdk/go-junit"

	"github.com/vmatrix/vmatrix/internal/k8sdist"
)

// sixVersions is what 1.32-1.37 resolves to, given newest first, as a spec
// with its terms in any order may list them before sorting.
var sixVersions = []k8sdist.Version{
	{Major: 1, Minor: 37, Patch: 2}, {Major: 1, Minor: 36, Patch: 3}, {Major: 1, Minor: 35, Patch: 4},
	{Major: 1, Minor: 34, Patch: 4}, {Major: 1, Minor: 33, Patch: 13}, {Major: 1, Minor: 32, Patch: 13},
}

func TestParseShard(t *testing.T) {
	for s, want := range map[string][2]int{"1/1": {1, 1}, "2/4": {2, 4}, "4/4": {4, 4}, " 3/10 ": {3, 10}} {
		k, n, err := ParseShard(s)
		if err != nil || k != want[0] || n != want[1] {
			t.Errorf("ParseShard(%q) = %d, %d, %v; want %v", s, k, n, err, want)
		}
	}
	for _, s := range []string{"", "0/4", "5/4", "1/0", "0/0", "-1/4", "+1/4", "01/4", "a/4", "2/b", "2", "2/4/8", "2 /4", "1.5/4"} {
		if _, _, err := ParseShard(s); err == nil || strings.Contains(err.Error(), "\n") {
			t.Errorf("ParseShard(%q): err %v; want one line", s, err)
		}
	}
}

// Four shards of six versions take each version exactly once, two shards
// two versions and two one, whatever the order the versions come in.
func TestFourShardsOfSixVersions(t *testing.T) {
	reversed := slices.Clone(sixVersions)
	slices.Reverse(reversed)
	var all []k8sdist.Version
	for k := 1; k <= 4; k++ {
		share := Shard(sixVersions, k, 4)
		if again := Shard(reversed, k, 4); !slices.Equal(share, again) {
			t.Errorf("shard %d/4 is %v, or %v in the other order", k, share, again)
		}
		if len(share) != 1 && len(share) != 2 {
			t.Errorf("shard %d/4 has %d versions: %v", k, len(share), share)
		}
		all = append(all, share...)
	}
	slices.SortFunc(all, k8sdist.Compare)
	if !slices.Equal(all, reversed) {
		t.Errorf("the shards together have %v; want each of %v once", all, reversed)
	}
	if got := Shard(sixVersions, 7, 8); len(got) != 0 {
		t.Errorf("shard 7/8 of six versions: %v; want none", got)
	}
}

// fakeClusters gives every version a "cluster" that is only a folder with a
// kubeconfig path in it: enough for a command that does not call it.
type fakeClusters struct{ dir string }

func (f fakeClusters) Acquire(_ context.Context, v k8sdist.Version) (Cluster, error) {
	return Cluster{Name: "fake-" + v.MinorString(), Version: v, Kubeconfig: filepath.Join(f.dir, v.String(), "kubeconfig")}, nil
}

func (fakeClusters) Release(context.Context, Cluster) error { return nil }

// The command of the runs: a JUnit file with two tests, TestB failing on 1.35.
const shardCommand = `v=$VMATRIX_KUBERNETES_VERSION; b='<testcase classname="e2e" name="TestB" time="0.2"/>'
[ "$v" = v1.35.4 ] && b='<testcase classname="e2e" name="TestB" time="0.2"><failure message="boom">boom</failure></testcase>'
printf '<testsuite name="e2e" tests="2"><testcase classname="e2e" name="TestA" time="0.1"/>%s</testsuite>\n' "$b" > "$JUNIT_DIR/junit-$v.xml"
[ "$v" != v1.35.4 ]`

// runInto runs the command over versions with report folder dir.
func runInto(t *testing.T, versions []k8sdist.Version, dir string) *Report {
	t.Helper()
	junitDir := t.TempDir()
	t.Setenv("JUNIT_DIR", junitDir)
	r, err := Run(context.Background(), fakeClusters{t.TempDir()}, RunOptions{
		Versions: versions,
		Command:  []string{"sh", "-c", shardCommand},
		LogDir:   filepath.Join(dir, "logs"),
		JUnit:    filepath.Join(junitDir, "junit-$VMATRIX_KUBERNETES_VERSION.xml"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	return r
}

// Merging the report folders of four shards gives the report one run of all
// six versions gives: the same report.md (but for the time taken), the same
// tests in junit.xml, a failure on the version that failed.
func TestMergedShardsReportLikeOneRun(t *testing.T) {
	whole := t.TempDir()
	resolved := slices.SortedFunc(slices.Values(sixVersions), k8sdist.Compare) // as Resolve gives them
	one := runInto(t, resolved, whole)
	var dirs []string
	for k := 4; k >= 1; k-- { // in any order
		dir := filepath.Join(t.TempDir(), "shard")
		runInto(t, Shard(sixVersions, k, 4), dir)
		dirs = append(dirs, dir)
	}
	// A job with no version (a fifth of four) wrote an empty report.
	emptyShard := t.TempDir()
	if err := (&Report{Command: one.Command, Passed: true}).WriteFiles(emptyShard); err != nil {
		t.Fatal(err)
	}
	merged, err := MergeReports(append(dirs, emptyShard)...)
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	if err := merged.WriteFiles(out); err != nil {
		t.Fatal(err)
	}
	read := func(dir, name string) string {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		// The time taken differs from run to run.
		return regexp.MustCompile(`(\d+ version\(s\)), [^,]+, `).ReplaceAllString(string(data), "$1, TIME, ")
	}
	if got, want := read(out, "report.md"), read(whole, "report.md"); got != want {
		t.Errorf("report.md of the merged shards:\n%s\nof one run:\n%s", got, want)
	}
	md := read(out, "report.md")
	for _, want := range []string{"| e2e TestB | ✅ pass | ✅ pass | ✅ pass | ❌ fail | ✅ pass | ✅ pass |", "6 version(s), TIME, some failed."} {
		if !strings.Contains(md, want) {
			t.Errorf("report.md lacks %q:\n%s", want, md)
		}
	}
	if merged.Passed || one.Passed {
		t.Errorf("passed: merged %v, one run %v; want false (1.35 failed)", merged.Passed, one.Passed)
	}
	if merged.Started.Before(one.Started) || merged.Duration <= 0 { // the shards ran after the one run
		t.Errorf("merged: started %v, duration %v", merged.Started, merged.Duration)
	}
	suites, err := junit.IngestFile(filepath.Join(out, "junit.xml"))
	if err != nil {
		t.Fatal(err)
	}
	var cases []string
	for _, s := range suites {
		for _, c := range s.Tests {
			cases = append(cases, s.Name+" "+c.Name+" "+string(c.Status))
		}
	}
	if len(cases) != 12 || !slices.Contains(cases, "kubernetes v1.35.4 TestB failed") {
		t.Errorf("junit.xml of the merged shards: %v", cases)
	}
	// A version's log is where its shard's folder is now.
	for _, v := range merged.Versions {
		if _, err := os.Stat(v.LogPath); err != nil || !slices.Contains(dirs, filepath.Dir(filepath.Dir(v.LogPath))) {
			t.Errorf("%s: log %q: %v", v.Version, v.LogPath, err)
		}
	}
}

func TestMergeErrors(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	runInto(t, Shard(sixVersions, 1, 2), a)
	runInto(t, Shard(sixVersions, 1, 3), b) // v1.32.13 and v1.35.4: the first is in a too
	empty := t.TempDir()
	emptyShard := t.TempDir()
	if err := (&Report{Command: "sh -c " + shardCommand, Passed: true}).WriteFiles(emptyShard); err != nil {
		t.Fatal(err)
	}
	other := t.TempDir()
	if err := (&Report{Command: "make e2e", Versions: []*VersionResult{{Version: "v1.37.2"}}}).WriteFiles(other); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		dirs []string
		want []string
	}{
		{[]string{a, b}, []string{"v1.32.13", a, b}},
		{[]string{a, a}, []string{"v1.32.13"}},
		{[]string{a, empty}, []string{empty, "no report.json"}},
		{[]string{a, other}, []string{"different commands", other, "make e2e"}},
		{nil, []string{"no report folder"}},
		{[]string{emptyShard}, []string{"no version in " + emptyShard}},
	} {
		_, err := MergeReports(c.dirs...)
		if err == nil {
			t.Errorf("merge %v: no error", c.dirs)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) || strings.Contains(err.Error(), "\n") {
				t.Errorf("merge %v: %v; want one line naming %q", c.dirs, err, w)
			}
		}
	}
}
