package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"mvdan.cc/sh/v3/expand"
	"mvdan.cc/sh/v3/syntax"
	"sigs.k8s.io/yaml"
)

type workflow struct {
	Jobs map[string]struct {
		Needs    any    `json:"needs"`
		If       string `json:"if"`
		Strategy struct {
			Matrix struct {
				Shard []int `json:"shard"`
			} `json:"matrix"`
		} `json:"strategy"`
		Steps []struct {
			Uses string            `json:"uses"`
			Run  string            `json:"run"`
			With map[string]string `json:"with"`
		} `json:"steps"`
	} `json:"jobs"`
}

// The workflows of examples/ci parse, every vmatrix command in them is one
// the CLI takes, and the sharded one has four shards and a job that merges
// their reports.
func TestCIExamples(t *testing.T) {
	files, _ := filepath.Glob("../../examples/ci/*.yaml")
	if len(files) < 2 {
		t.Fatalf("workflows in examples/ci: %v", files)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var w workflow
		if err := yaml.Unmarshal(data, &w); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		var calls []string
		for name, job := range w.Jobs {
			for _, step := range job.Steps {
				for _, args := range vmatrixCalls(t, step.Run) {
					root := newRootCommand()
					cmd, rest, err := root.Find(args[1:])
					if err == nil && cmd != root {
						err = cmd.ParseFlags(rest)
					}
					if err != nil || cmd == root {
						t.Errorf("%s, job %s: %q is not a vmatrix command: %v", f, name, args, err)
					}
					calls = append(calls, name+": "+strings.Join(args, " "))
				}
			}
		}
		if filepath.Base(f) != "kubernetes-matrix-sharded.yaml" {
			continue
		}
		if got := w.Jobs["shard"].Strategy.Matrix.Shard; !slices.Equal(got, []int{1, 2, 3, 4}) {
			t.Errorf("%s: shards %v; want 1 to 4", f, got)
		}
		if needs := w.Jobs["merge"].Needs; needs != "shard" || w.Jobs["merge"].If != "always()" {
			t.Errorf("%s: the merge job needs %v, if %q; want the shards, always", f, needs, w.Jobs["merge"].If)
		}
		for _, want := range []string{
			"shard: vmatrix run --versions 1.31-1.37 --shard 1/4 --report-dir reports -- go test ./e2e/...",
			"merge: vmatrix report merge reports/vmatrix-report-* --out vmatrix-report",
		} {
			if !slices.Contains(calls, want) {
				t.Errorf("%s: no %q among %q", f, want, calls)
			}
		}
		uses := func(job, action, key, value string) {
			for _, s := range w.Jobs[job].Steps {
				if strings.HasPrefix(s.Uses, action+"@") && s.With[key] == value {
					return
				}
			}
			t.Errorf("%s: job %s has no step using %s with %s: %s", f, job, action, key, value)
		}
		uses("shard", "actions/upload-artifact", "path", "reports/")
		uses("merge", "actions/download-artifact", "pattern", "vmatrix-report-*")
		if !strings.Contains(string(data), `cat vmatrix-report/report.md >> "$GITHUB_STEP_SUMMARY"`) {
			t.Errorf("%s: the merged table does not go to the summary", f)
		}
	}
}

// vmatrixCalls lists the vmatrix commands of a step's script, words
// expanded as the shell would (the GitHub expressions made a shard number).
func vmatrixCalls(t *testing.T, script string) [][]string {
	t.Helper()
	script = strings.ReplaceAll(script, "${{ matrix.shard }}", "1")
	prog, err := syntax.NewParser().Parse(strings.NewReader(script), "")
	if err != nil {
		t.Fatalf("%q: %v", script, err)
	}
	cfg := &expand.Config{Env: expand.ListEnviron("VERSIONS=1.31-1.37", "VERSIONS_OF_SHARD=v1.31.14,v1.35.4")}
	var calls [][]string
	syntax.Walk(prog, func(n syntax.Node) bool {
		if call, ok := n.(*syntax.CallExpr); ok && len(call.Args) > 0 && call.Args[0].Lit() == "vmatrix" {
			args, err := expand.Fields(cfg, call.Args...)
			if err != nil {
				t.Fatalf("%q: %v", script, err)
			}
			calls = append(calls, args)
		}
		return true
	})
	return calls
}
