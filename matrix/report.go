package matrix

import (
	"cmp"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/joshdk/go-junit"
)

// Statuses of a version and of a test.
const (
	StatusPassed    = "passed"
	StatusFailed    = "failed"
	StatusSkipped   = "skipped"
	StatusCancelled = "cancelled"
)

// Report is the outcome of a matrix run.
type Report struct {
	Command  string           `json:"command"`
	Started  time.Time        `json:"started"`
	Duration time.Duration    `json:"duration"`
	Passed   bool             `json:"passed"`
	Versions []*VersionResult `json:"versions"`
}

// VersionResult is the outcome for one version.
type VersionResult struct {
	Version  string        `json:"version"`
	Cluster  string        `json:"cluster,omitempty"`
	Passed   bool          `json:"passed"`
	Status   string        `json:"status"`
	Error    string        `json:"error,omitempty"`
	Attempts int           `json:"attempts"`
	Duration time.Duration `json:"duration"`
	LogPath  string        `json:"log"`
	// Export is the folder with the cluster's logs and objects, for a
	// version that failed.
	Export string       `json:"export,omitempty"`
	Tests  []TestResult `json:"tests,omitempty"`
	// UpgradedFrom is the version the cluster ran at the step before, in a
	// run along an upgrade path.
	UpgradedFrom string `json:"upgradedFrom,omitempty"`
	// DeprecatedAPIs are those the command called on this version.
	DeprecatedAPIs []DeprecatedAPI `json:"deprecatedAPIs,omitempty"`
}

// TestResult is one test of a version's run, when the command reports them.
type TestResult struct {
	Package string        `json:"package,omitempty"`
	Name    string        `json:"name"`
	Status  string        `json:"status"`
	Elapsed time.Duration `json:"elapsed"`
	Output  string        `json:"-"`
}

// Counts returns how many tests passed, failed and were skipped.
func (r *VersionResult) Counts() (passed, failed, skipped int) {
	for _, t := range r.Tests {
		switch t.Status {
		case StatusPassed:
			passed++
		case StatusFailed:
			failed++
		case StatusSkipped:
			skipped++
		}
	}
	return
}

// goTestEvents collects the results of `go test -json`.
type goTestEvents struct {
	byKey map[string]*TestResult
	order []string
}

func newGoTestEvents() *goTestEvents { return &goTestEvents{byKey: map[string]*TestResult{}} }

// add takes one line of go test -json output and returns the text go test
// would have printed for it (ok=false: nothing to print).
func (g *goTestEvents) add(line string) (text string, ok bool) {
	var e struct {
		Action  string
		Package string
		Test    string
		Output  string
		Elapsed float64
	}
	if err := json.Unmarshal([]byte(line), &e); err != nil {
		return line, true // not an event: the go command's own message
	}
	key := e.Package + "\x00" + e.Test
	t := g.byKey[key]
	if t == nil {
		name := e.Test
		if name == "" {
			name = "(package)"
		}
		t = &TestResult{Package: e.Package, Name: name}
		g.byKey[key] = t
		g.order = append(g.order, key)
	}
	switch e.Action {
	case "output":
		t.Output += e.Output
		return e.Output, true
	case "pass", "fail", "skip":
		t.Status = map[string]string{"pass": StatusPassed, "fail": StatusFailed, "skip": StatusSkipped}[e.Action]
		t.Elapsed = time.Duration(e.Elapsed * float64(time.Second))
	}
	return "", false
}

// results lists the tests; a package appears only when it failed without a
// failing test of its own (a build failure, a panic in TestMain).
func (g *goTestEvents) results() []TestResult {
	var out []TestResult
	failedTests := map[string]bool{}
	for _, k := range g.order {
		if t := g.byKey[k]; t.Name != "(package)" && t.Status == StatusFailed {
			failedTests[t.Package] = true
		}
	}
	for _, k := range g.order {
		t := *g.byKey[k]
		if t.Name == "(package)" && (t.Status != StatusFailed || failedTests[t.Package]) {
			continue
		}
		if t.Status == "" {
			t.Status = StatusFailed // started, never finished: the binary died
		}
		out = append(out, t)
	}
	return out
}

// readJUnit reads a JUnit XML report (Ginkgo's --junit-report).
func readJUnit(path string) ([]TestResult, error) {
	suites, err := junit.IngestFile(path)
	if err != nil {
		return nil, err
	}
	var out []TestResult
	for _, s := range suites {
		for _, t := range s.Tests {
			status := StatusPassed
			switch t.Status {
			case junit.StatusFailed, junit.StatusError:
				status = StatusFailed
			case junit.StatusSkipped:
				status = StatusSkipped
			}
			out = append(out, TestResult{Package: t.Classname, Name: t.Name, Status: status, Elapsed: t.Duration})
		}
	}
	return out, nil
}

// WriteFiles writes report.json, junit.xml and report.md into dir.
func (r *Report) WriteFiles(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	junitXML, err := r.JUnit()
	if err != nil {
		return err
	}
	for name, data := range map[string][]byte{"report.json": js, "junit.xml": junitXML, "report.md": []byte(r.Markdown())} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Time     float64      `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name       string          `xml:"name,attr"`
	Tests      int             `xml:"tests,attr"`
	Failures   int             `xml:"failures,attr"`
	Errors     int             `xml:"errors,attr"`
	Skipped    int             `xml:"skipped,attr"`
	Time       float64         `xml:"time,attr"`
	Timestamp  string          `xml:"timestamp,attr"`
	Properties []junitProperty `xml:"properties>property,omitempty"`
	Cases      []junitCase     `xml:"testcase"`
}

// junitProperty carries what a suite found beyond its tests: the
// deprecated APIs called, the version upgraded from.
type junitProperty struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      float64       `xml:"time,attr"`
	Failure   *junitMessage `xml:"failure,omitempty"`
	Skipped   *junitMessage `xml:"skipped,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitMessage struct {
	Message string `xml:"message,attr"`
	Text    string `xml:",chardata"`
}

// JUnit renders the report as JUnit XML: one testsuite per version, one
// testcase per test (or one for the whole command when it reports no tests).
func (r *Report) JUnit() ([]byte, error) {
	doc := junitSuites{Time: r.Duration.Seconds()}
	for _, v := range r.Versions {
		suite := junitSuite{Name: "kubernetes " + v.Version, Time: v.Duration.Seconds(), Timestamp: r.Started.UTC().Format("2006-01-02T15:04:05")}
		if v.UpgradedFrom != "" {
			suite.Properties = append(suite.Properties, junitProperty{"upgraded-from", v.UpgradedFrom})
		}
		for _, a := range v.DeprecatedAPIs {
			suite.Properties = append(suite.Properties, junitProperty{"deprecated-api", a.String()})
		}
		tests := v.Tests
		if len(tests) == 0 {
			status := v.Status
			if status == StatusCancelled {
				status = StatusSkipped
			}
			tests = []TestResult{{Name: r.Command, Status: status, Elapsed: v.Duration, Output: v.Error}}
		}
		for _, t := range tests {
			c := junitCase{Name: t.Name, Classname: t.Package, Time: t.Elapsed.Seconds()}
			if c.Classname == "" {
				c.Classname = "kubernetes " + v.Version
			}
			switch t.Status {
			case StatusFailed:
				c.Failure = &junitMessage{Message: "failed on " + v.Version, Text: t.Output}
				suite.Failures++
			case StatusSkipped:
				c.Skipped = &junitMessage{Message: "skipped on " + v.Version}
				suite.Skipped++
			default:
				c.SystemOut = t.Output
			}
			suite.Cases = append(suite.Cases, c)
			suite.Tests++
		}
		doc.Tests += suite.Tests
		doc.Failures += suite.Failures
		doc.Skipped += suite.Skipped
		doc.Suites = append(doc.Suites, suite)
	}
	out, err := xml.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, err
	}
	return append([]byte(xml.Header), append(out, '\n')...), nil
}

// Markdown renders the compatibility table: versions as columns, tests as
// rows, for a pull request or $GITHUB_STEP_SUMMARY.
func (r *Report) Markdown() string {
	var b strings.Builder
	b.WriteString("| test |")
	for _, v := range r.Versions {
		b.WriteString(" " + v.Version + " |")
	}
	b.WriteString("\n|---|")
	b.WriteString(strings.Repeat("---|", len(r.Versions)))
	b.WriteString("\n| **whole run** |")
	for _, v := range r.Versions {
		b.WriteString(" " + mark(v.Status) + " |")
	}
	b.WriteString("\n")
	var names []string
	cells := map[string]map[string]string{}
	for _, v := range r.Versions {
		for _, t := range v.Tests {
			name := t.Name
			if t.Package != "" {
				name = t.Package + " " + t.Name
			}
			if cells[name] == nil {
				cells[name] = map[string]string{}
				names = append(names, name)
			}
			cells[name][v.Version] = t.Status
		}
	}
	slices.Sort(names)
	for _, name := range names {
		b.WriteString("| " + strings.ReplaceAll(name, "|", `\|`) + " |")
		for _, v := range r.Versions {
			b.WriteString(" " + mark(cells[name][v.Version]) + " |")
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "\n%d version(s), %s, %s.\n", len(r.Versions), r.Duration.Round(time.Second), map[bool]string{true: "all passed", false: "some failed"}[r.Passed])
	if len(r.Versions) > 1 && r.Versions[1].UpgradedFrom != "" {
		b.WriteString("\n### Upgrade path\n\nOne cluster, upgraded in place between the steps.\n\n| step | version | upgraded from | cluster | result |\n|---|---|---|---|---|\n")
		for i, v := range r.Versions {
			fmt.Fprintf(&b, "| %d | %s | %s | %s | %s |\n", i+1, v.Version, cmp.Or(v.UpgradedFrom, "(created)"), cmp.Or(v.Cluster, "-"), mark(v.Status))
		}
	}
	deprecatedRows := ""
	for _, v := range r.Versions {
		for _, a := range v.DeprecatedAPIs {
			gv := strings.TrimPrefix(a.Group+"/"+a.Version, "/")
			res := strings.TrimSuffix(a.Resource+"/"+a.Subresource, "/")
			deprecatedRows += fmt.Sprintf("| %s | %s %s | %s | %s |\n", v.Version, gv, res, cmp.Or(a.RemovedRelease, "not planned"), strings.Join(a.Clients, ", "))
		}
	}
	if deprecatedRows != "" {
		b.WriteString("\n### Deprecated APIs used\n\n| version | API | removed in | called by |\n|---|---|---|---|\n" + deprecatedRows)
	}
	return b.String()
}

func mark(status string) string {
	switch status {
	case StatusPassed:
		return "✅ pass"
	case StatusFailed:
		return "❌ fail"
	case StatusSkipped:
		return "⏭️ skip"
	case StatusCancelled:
		return "⏹️ cancelled"
	}
	return "–"
}
