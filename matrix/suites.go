package matrix

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/onsi/ginkgo/v2/types"
	"github.com/vmatrix/vmatrix/internal/ginkgoreport"
)

// How a run learns the result of each test, whatever runs them:
//   - `go test`: -json is added and its events read (the output is still
//     shown as go test prints it); Ginkgo suites written with
//     framework/vmatrixginkgo also write their Ginkgo report into the folder
//     named by GinkgoReportDirEnv, so each spec gets a row;
//   - the ginkgo CLI (`ginkgo`, `go run .../ginkgo`): --json-report is added
//     (or the one given read) and Ginkgo's JSON report read;
//   - `--junit-report FILE` in the command, or RunOptions.JUnit: a JUnit file
//     the suite writes.

// GinkgoReportDirEnv names, for a suite run by `vmatrix run`, a folder where
// vmatrixginkgo writes the suite's Ginkgo JSON report.
const GinkgoReportDirEnv = "VMATRIX_GINKGO_REPORT_DIR"

// reportSource is where one run of the command leaves its per-test results.
type reportSource struct {
	goTest bool
	// ginkgoJSON is the Ginkgo JSON report of a ginkgo CLI run.
	ginkgoJSON string
	// ginkgoDir receives the reports of vmatrixginkgo suites under go test.
	ginkgoDir string
	// junit is a JUnit file the suite writes; it counts only if written
	// during this run.
	junit string
}

// prepare returns the command to run with what makes it report each test,
// and where to read them; tmp is a folder of this run of the command.
func prepare(command []string, junit, tmp string) ([]string, reportSource) {
	var src reportSource
	if junit != "" {
		src.junit = junit
	} else if j := flagValue(command, "junit-report"); j != "" {
		src.junit = j
	}
	if args, ok := withGoTestJSON(command); ok {
		src.goTest, src.ginkgoDir = true, tmp
		return args, src
	}
	i := ginkgoCLI(command)
	if i < 0 || src.junit != "" || flagValue(command, "output-dir") != "" {
		// An output dir moves Ginkgo's reports where vmatrix does not look.
		return command, src
	}
	if j := flagValue(command, "json-report"); j != "" {
		src.ginkgoJSON = j
		return command, src
	}
	src.ginkgoJSON = filepath.Join(tmp, "ginkgo.json")
	return slices.Insert(slices.Clone(command), i+1, "--json-report="+src.ginkgoJSON), src
}

// ginkgoCLI returns the index of the ginkgo CLI (or of its run subcommand)
// in command, after which flags go; -1 if it is not ginkgo.
func ginkgoCLI(command []string) int {
	i := -1
	switch {
	case len(command) > 0 && filepath.Base(command[0]) == "ginkgo":
		i = 0
	case len(command) > 2 && filepath.Base(command[0]) == "go" && command[1] == "run" &&
		(strings.HasSuffix(strings.Split(command[2], "@")[0], "/ginkgo")):
		i = 2
	default:
		return -1
	}
	if len(command) > i+1 {
		switch command[i+1] {
		case "run":
			return i + 1
		case "build", "bootstrap", "generate", "labels", "outline", "unfocus", "version", "help", "watch":
			return -1 // not a run of the suites
		}
	}
	return i
}

// flagValue finds --name=V, -name=V, --name V or -name V in command, before a
// lone "--".
func flagValue(command []string, name string) string {
	for i, a := range command {
		if a == "--" {
			break
		}
		for _, flag := range []string{"--" + name, "-" + name} {
			if v, ok := strings.CutPrefix(a, flag+"="); ok {
				return v
			}
			if a == flag && i+1 < len(command) {
				return command[i+1]
			}
		}
	}
	return ""
}

// results reads what the run left, after go test's events (goTests); a
// JUnit file counts if modified after since (its time before the run).
func (s reportSource) results(goTests []TestResult, since time.Time) []TestResult {
	out := goTests
	if s.ginkgoDir != "" {
		files, _ := filepath.Glob(filepath.Join(s.ginkgoDir, "*.json"))
		slices.Sort(files)
		for _, f := range files {
			if specs, err := readGinkgoReport(f); err == nil {
				out = append(out, specs...)
			}
		}
	}
	if s.ginkgoJSON != "" {
		if specs, err := readGinkgoReport(s.ginkgoJSON); err == nil {
			out = append(out, specs...)
		}
	}
	if s.junit != "" {
		// A file from an earlier run is not this run's result.
		if fi, err := os.Stat(s.junit); err == nil && fi.ModTime().After(since) {
			if tests, err := readJUnit(s.junit); err == nil {
				out = append(out, tests...)
			}
		}
	}
	return out
}

// versionLabel is what vmatrixginkgo's Describe adds to a container's text;
// it goes, so a spec has one row across versions.
var versionLabel = regexp.MustCompile(`\s*\[Kubernetes [^\]]*\]`)

// readGinkgoReport reads a Ginkgo JSON report (--json-report): one result
// per spec, and per setup node that failed (a BeforeSuite, an AfterSuite).
func readGinkgoReport(path string) ([]TestResult, error) {
	reports, err := ginkgoreport.Read(path)
	if err != nil {
		return nil, err
	}
	var out []TestResult
	for _, r := range reports {
		for _, spec := range r.SpecReports {
			isSpec := spec.LeafNodeType == types.NodeTypeIt
			if !isSpec && !spec.State.Is(types.SpecStateFailureStates) {
				continue
			}
			texts := append(slices.Clone(spec.ContainerHierarchyTexts), spec.LeafNodeText)
			if !isSpec {
				texts = append(texts[:len(texts)-1], "["+spec.LeafNodeType.String()+"]")
			}
			name := strings.TrimSpace(versionLabel.ReplaceAllString(strings.Join(slices.DeleteFunc(texts, func(s string) bool { return s == "" }), " "), ""))
			status := StatusPassed
			switch {
			case spec.State.Is(types.SpecStateFailureStates):
				status = StatusFailed
			case spec.State.Is(types.SpecStateSkipped | types.SpecStatePending):
				status = StatusSkipped
			}
			output := spec.CapturedGinkgoWriterOutput
			if spec.Failure.Message != "" {
				output += spec.Failure.Message + "\n" + spec.Failure.Location.String() + "\n"
			}
			out = append(out, TestResult{Package: r.SuiteDescription, Name: name, Status: status, Elapsed: spec.RunTime, Output: output})
		}
	}
	return out, nil
}
