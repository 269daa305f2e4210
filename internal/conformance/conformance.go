// Package conformance runs the upstream Kubernetes conformance suite (the
// [Conformance] specs of a version's e2e.test) against a cluster and writes
// what it finds as a table per version and per SIG.
package conformance

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/onsi/ginkgo/v2/types"

	"github.com/vmatrix/vmatrix/internal/ginkgoreport"
	"github.com/vmatrix/vmatrix/internal/k8sdist"
	"github.com/vmatrix/vmatrix/internal/proc"
)

// Options say what to run and where.
type Options struct {
	Suite      k8sdist.E2E
	Kubeconfig string
	// Focus narrows the [Conformance] specs to those whose text matches
	// this regular expression ("" for all of them), and Skip leaves out
	// those that match it besides those SkippedOnPurpose.
	Focus, Skip string
	// Procs is how many specs run at once (default twice the cores; specs
	// mostly wait). [Serial] specs run alone at the end.
	Procs int
	// Timeout ends the run (default 4 hours): the specs still running are
	// reported as failed by timeout, with where they waited.
	Timeout time.Duration
	// Dir receives the suite's JSON report and its output.
	Dir string
	// Out receives the suite's output as it runs; nil discards it.
	Out io.Writer
}

// Spec is the outcome of one conformance spec.
type Spec struct {
	SIG      string        `json:"sig"`
	Name     string        `json:"name"`
	State    string        `json:"state"` // passed, failed, skipped
	Reason   string        `json:"reason,omitempty"`
	Duration time.Duration `json:"duration"`
	// Why is, for a spec skipped on purpose, the reason (SkippedOnPurpose).
	Why string `json:"why,omitempty"`
}

// Result is one version's run.
type Result struct {
	Version  string        `json:"version"`
	Duration time.Duration `json:"duration"`
	Specs    []Spec        `json:"specs"`
	// Updates are the focuses of the later runs (Update) whose outcomes
	// replace the full run's for the specs they ran, oldest first.
	Updates []string `json:"updates,omitempty"`
}

// Counts tallies the specs of one SIG ("" for all).
func (r *Result) Counts(sig string) (passed, failed, onPurpose, skipped int) {
	for _, s := range r.Specs {
		if sig != "" && s.SIG != sig {
			continue
		}
		switch {
		case s.State == "passed":
			passed++
		case s.State == "failed":
			failed++
		case s.Why != "":
			onPurpose++
		default:
			skipped++
		}
	}
	return
}

// Run runs the [Conformance] specs of opts.Suite against opts.Kubeconfig,
// but for those skipped on purpose, and reads the outcome of every spec.
// The error is about the run itself; failed specs are in the Result.
func Run(ctx context.Context, version string, opts Options) (*Result, error) {
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, err
	}
	procs := opts.Procs
	if procs <= 0 {
		procs = 2 * runtime.NumCPU()
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = 4 * time.Hour
	}
	args := []string{
		"--procs=" + fmt.Sprint(procs), "--no-color", "--timeout=" + timeout.String(),
		// A spec that runs long says where it waits, in the output.
		"--poll-progress-after=2m", "--poll-progress-interval=1m",
		"--label-filter=Conformance", "--skip=" + skipPattern(opts.Skip),
		"--json-report=report.json", "--output-dir=" + opts.Dir,
	}
	if opts.Focus != "" {
		args = append(args, "--focus="+opts.Focus)
	}
	args = append(args, opts.Suite.Test, "--", "--kubeconfig="+opts.Kubeconfig, "--provider=skeleton")
	cmd := exec.CommandContext(ctx, opts.Suite.Ginkgo, args...)
	out := opts.Out
	if out == nil {
		out = io.Discard
	}
	log, err := os.Create(filepath.Join(opts.Dir, "e2e.log"))
	if err != nil {
		return nil, err
	}
	defer log.Close()
	cmd.Stdout, cmd.Stderr = io.MultiWriter(log, out), io.MultiWriter(log, out)
	// Its own process group, so that a cancelled run stops its e2e.test
	// processes too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	proc.DieWithParent(cmd.SysProcAttr)
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	start := time.Now()
	runErr := cmd.Run()
	res, err := ReadReport(filepath.Join(opts.Dir, "report.json"), opts.Selected)
	if err != nil {
		if runErr != nil {
			return nil, fmt.Errorf("the suite: %v; its report: %w (output in %s)", runErr, err, log.Name())
		}
		return nil, err
	}
	res.Version, res.Duration = version, time.Since(start)
	return res, nil
}

// ReadRun reads the outcome of an earlier Run of version whose Dir was dir,
// with the outcomes of the Updates saved there since in place of the run's.
func ReadRun(version, dir string, opts Options) (*Result, error) {
	res, err := ReadReport(filepath.Join(dir, "report.json"), opts.Selected)
	if err != nil {
		return nil, err
	}
	res.Version = version
	updates, err := filepath.Glob(filepath.Join(dir, updatePrefix+"*", updateFile))
	if err != nil {
		return nil, err
	}
	// update-1, update-2, ... update-10: in the order they were made.
	slices.SortFunc(updates, func(a, b string) int { return cmp.Compare(len(a), len(b))*2 + cmp.Compare(a, b) })
	for _, path := range updates {
		var u Result
		data, err := os.ReadFile(path)
		if err == nil {
			err = json.Unmarshal(data, &u)
		}
		if err != nil {
			return nil, fmt.Errorf("an update of %s: %w", version, err)
		}
		res.merge(&u)
	}
	return res, nil
}

const (
	updatePrefix = "update-"
	updateFile   = "result.json"
)

// Update runs the specs of opts.Focus again, after a full Run whose Dir
// is opts.Dir, and saves their outcome there for ReadRun, which then gives
// the full run's result with these specs' outcomes replaced: a fix is
// checked on the specs it concerns without the hours of a full run.
func Update(ctx context.Context, version string, opts Options) (*Result, error) {
	if opts.Focus == "" {
		return nil, fmt.Errorf("an update needs a focus: the specs to run again")
	}
	if err := HasRun(version, opts.Dir); err != nil {
		return nil, err
	}
	full := opts.Dir
	for n := 1; ; n++ {
		// Mkdir, not a look first: two updates at once get a folder each.
		opts.Dir = filepath.Join(full, updatePrefix+strconv.Itoa(n))
		err := os.Mkdir(opts.Dir, 0o755)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, err
		}
	}
	res, err := Run(ctx, version, opts)
	if err != nil {
		return nil, err
	}
	res.Updates = []string{opts.Focus}
	data, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(opts.Dir, updateFile), data, 0o644); err != nil {
		return nil, err
	}
	return ReadRun(version, full, Options{})
}

// HasRun says whether dir holds a full run of version to update.
func HasRun(version, dir string) error {
	if _, err := os.Stat(filepath.Join(dir, "report.json")); err != nil {
		return fmt.Errorf("no full run of %s to update in %s", version, dir)
	}
	return nil
}

// merge puts the outcomes of update u in place of r's for the specs u ran.
func (r *Result) merge(u *Result) {
	at := map[string]int{}
	for i, s := range r.Specs {
		at[s.Name] = i
	}
	for _, s := range u.Specs {
		if i, ok := at[s.Name]; ok {
			r.Specs[i] = s
		} else {
			r.Specs = append(r.Specs, s)
		}
	}
	r.Updates = append(r.Updates, u.Updates...)
}

var sigPattern = regexp.MustCompile(`\[(sig-[a-z-]+)\]`)

// Selected reports whether a spec was part of the run: a [Conformance]
// spec of the focus, not left out by Skip. (The report lists every spec of
// e2e.test, the others as skipped.)
func (opts Options) Selected(name string) bool {
	if !strings.Contains(name, "[Conformance]") {
		return false
	}
	if opts.Focus != "" && !regexp.MustCompile(opts.Focus).MatchString(name) {
		return false
	}
	return opts.Skip == "" || !regexp.MustCompile(opts.Skip).MatchString(name)
}

// ReadReport reads Ginkgo's JSON report of a run: the specs for which
// selected is true.
func ReadReport(path string, selected func(name string) bool) (*Result, error) {
	reports, err := ginkgoreport.Read(path)
	if err != nil {
		return nil, err
	}
	res := &Result{}
	for _, r := range reports {
		res.Duration += r.RunTime
		for _, s := range r.SpecReports {
			if s.LeafNodeType != types.NodeTypeIt {
				continue
			}
			name := s.FullText()
			if !selected(name) {
				continue
			}
			spec := Spec{Name: name, Duration: s.RunTime}
			if m := sigPattern.FindStringSubmatch(name); m != nil {
				spec.SIG = m[1]
			}
			switch s.State {
			case types.SpecStatePassed:
				spec.State = "passed"
			case types.SpecStateSkipped, types.SpecStatePending:
				spec.State = "skipped"
				spec.Why = whySkipped(name)
				if spec.Why == "" {
					spec.Reason = firstLine(s.Failure.Message)
				}
			default:
				spec.State, spec.Reason = "failed", firstLine(s.Failure.Message)
				if spec.Reason == "" {
					spec.Reason = s.State.String()
				}
			}
			res.Specs = append(res.Specs, spec)
		}
	}
	return res, nil
}

// firstLine is the first non-blank line of a failure message, cut short.
func firstLine(msg string) string {
	for _, l := range strings.Split(msg, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			if len(l) > 200 {
				l = l[:200] + "..."
			}
			return l
		}
	}
	return ""
}
