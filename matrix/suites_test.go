package matrix

import (
	"bufio"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestPrepareAsksEachRunnerForItsTests(t *testing.T) {
	tmp := "/tmp/r"
	for _, tc := range []struct {
		name    string
		command []string
		junit   string
		want    []string
		source  reportSource
	}{
		{"go test", []string{"go", "test", "./..."}, "", []string{"go", "test", "-json", "./..."}, reportSource{goTest: true, ginkgoDir: tmp}},
		{"go test -json", []string{"go", "test", "-json", "./..."}, "", []string{"go", "test", "-json", "./..."}, reportSource{goTest: true, ginkgoDir: tmp}},
		{"ginkgo", []string{"ginkgo", "-p", "./e2e"}, "", []string{"ginkgo", "--json-report=/tmp/r/ginkgo.json", "-p", "./e2e"}, reportSource{ginkgoJSON: "/tmp/r/ginkgo.json"}},
		{"ginkgo run", []string{"/usr/bin/ginkgo", "run", "-r"}, "", []string{"/usr/bin/ginkgo", "run", "--json-report=/tmp/r/ginkgo.json", "-r"}, reportSource{ginkgoJSON: "/tmp/r/ginkgo.json"}},
		{"go run ginkgo", []string{"go", "run", "github.com/onsi/ginkgo/v2/ginkgo@v2.34.0", "./e2e"}, "",
			[]string{"go", "run", "github.com/onsi/ginkgo/v2/ginkgo@v2.34.0", "--json-report=/tmp/r/ginkgo.json", "./e2e"}, reportSource{ginkgoJSON: "/tmp/r/ginkgo.json"}},
		{"ginkgo's own report", []string{"ginkgo", "--json-report", "out.json", "./e2e"}, "", []string{"ginkgo", "--json-report", "out.json", "./e2e"}, reportSource{ginkgoJSON: "out.json"}},
		{"ginkgo with an output dir", []string{"ginkgo", "--output-dir=out", "./e2e"}, "", []string{"ginkgo", "--output-dir=out", "./e2e"}, reportSource{}},
		{"ginkgo junit", []string{"ginkgo", "--junit-report=j.xml"}, "", []string{"ginkgo", "--junit-report=j.xml"}, reportSource{junit: "j.xml"}},
		{"ginkgo build", []string{"ginkgo", "build", "./e2e"}, "", []string{"ginkgo", "build", "./e2e"}, reportSource{}},
		{"a script", []string{"./e2e.sh"}, "out/junit.xml", []string{"./e2e.sh"}, reportSource{junit: "out/junit.xml"}},
		{"a test binary's flag after --", []string{"./run", "--", "--junit-report", "x"}, "", []string{"./run", "--", "--junit-report", "x"}, reportSource{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, src := prepare(tc.command, tc.junit, tmp)
			if !slices.Equal(got, tc.want) || src != tc.source {
				t.Errorf("prepare(%q) = %q, %+v; want %q, %+v", tc.command, got, src, tc.want, tc.source)
			}
		})
	}
}

// The recordings are of testdata/ginkgoreport, a Ginkgo suite with a passed,
// a failed, a skipped, a pending spec and one in a nested container.
const recordings = "testdata/ginkgoreport"

var wantSpecs = map[string]string{
	"Deployments roll out":                     StatusPassed,
	"Deployments scale to zero":                StatusFailed,
	"Deployments use a new API":                StatusSkipped,
	"Deployments are pending":                  StatusSkipped,
	"Deployments with a Service get endpoints": StatusPassed,
}

func statuses(tests []TestResult) map[string]string {
	out := map[string]string{}
	for _, t := range tests {
		out[t.Name] = t.Status
	}
	return out
}

func TestReadGinkgoReport(t *testing.T) {
	tests, err := readGinkgoReport(filepath.Join(recordings, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	if got := statuses(tests); !mapsEqual(got, wantSpecs) {
		t.Errorf("specs %v, want %v", got, wantSpecs)
	}
	for _, tc := range tests {
		if tc.Package != "recorded suite" {
			t.Errorf("%s: package %q", tc.Name, tc.Package)
		}
		if tc.Name == "Deployments scale to zero" && !strings.Contains(tc.Output, "replicas") {
			t.Errorf("the failed spec's output lacks its failure: %q", tc.Output)
		}
	}
	if _, err := readGinkgoReport(filepath.Join(recordings, "junit.xml")); err == nil || !strings.Contains(err.Error(), "junit.xml") {
		t.Errorf("reading XML as a Ginkgo JSON report: %v", err)
	}
}

func TestReadJUnitOfGinkgo(t *testing.T) {
	tests, err := readJUnit(filepath.Join(recordings, "junit.xml"))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for name, s := range statuses(tests) {
		got[strings.TrimSpace(versionLabel.ReplaceAllString(strings.TrimPrefix(name, "[It] "), ""))] = s
	}
	for name, s := range wantSpecs {
		if got[name] != s {
			t.Errorf("%s: %q, want %q (all: %v)", name, got[name], s, got)
		}
	}
}

// TestGoTestEventsOfAGinkgoSuite: go test -json of a Ginkgo suite is one Go
// test; the printed text is what go test prints.
func TestGoTestEventsOfAGinkgoSuite(t *testing.T) {
	f, err := os.Open(filepath.Join(recordings, "gotest.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	g := newGoTestEvents()
	var printed strings.Builder
	lines := bufio.NewScanner(f)
	for lines.Scan() {
		if text, ok := g.add(lines.Text()); ok {
			printed.WriteString(text)
		}
	}
	if got := statuses(g.results()); !mapsEqual(got, map[string]string{"TestSuite": StatusFailed}) {
		t.Errorf("go test rows: %v", got)
	}
	for _, want := range []string{"Ran 3 of 5 Specs", "--- FAIL: TestSuite", "FAIL\n"} {
		if !strings.Contains(printed.String(), want) {
			t.Errorf("printed output lacks %q:\n%s", want, printed.String())
		}
	}
	if strings.Contains(printed.String(), `"Action"`) {
		t.Errorf("JSON events printed")
	}
}

func TestResultsReadWhatThisRunWrote(t *testing.T) {
	dir := t.TempDir()
	data, err := os.ReadFile(filepath.Join(recordings, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	// Two vmatrixginkgo suites under go test: both reports, after go test's rows.
	os.WriteFile(filepath.Join(dir, "ginkgo-1.json"), data, 0o644)
	os.WriteFile(filepath.Join(dir, "ginkgo-2.json"), data, 0o644)
	goTests := []TestResult{{Package: "example.com/e2e", Name: "TestSuite", Status: StatusFailed}}
	got := reportSource{goTest: true, ginkgoDir: dir}.results(goTests, time.Now())
	if len(got) != 1+2*len(wantSpecs) || got[0].Name != "TestSuite" {
		t.Errorf("%d results, want %d: %v", len(got), 1+2*len(wantSpecs), got)
	}

	// A JUnit file older than the run is an earlier run's: not read.
	junit := filepath.Join(dir, "junit.xml")
	xml, _ := os.ReadFile(filepath.Join(recordings, "junit.xml"))
	os.WriteFile(junit, xml, 0o644)
	old := time.Now().Add(-time.Hour)
	os.Chtimes(junit, old, old)
	if got := (reportSource{junit: junit}).results(nil, time.Now()); len(got) != 0 {
		t.Errorf("a stale JUnit file gave %d results", len(got))
	}
	if got := (reportSource{junit: junit}).results(nil, old.Add(-time.Minute)); len(got) != len(wantSpecs) {
		t.Errorf("this run's JUnit file gave %d results, want %d", len(got), len(wantSpecs))
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
