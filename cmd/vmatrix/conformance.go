package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/vmatrix/vmatrix/internal/conformance"
	"github.com/vmatrix/vmatrix/internal/k8sdist"
	"github.com/vmatrix/vmatrix/internal/supervisor"
	"github.com/vmatrix/vmatrix/matrix"
)

func conformanceCommand(manager func() *supervisor.Manager) *cobra.Command {
	var spec, focus, skip, subset, out, reportDir string
	var procs int
	var timeout time.Duration
	var fromReports, update bool
	cmd := &cobra.Command{
		Use:   "conformance --versions SPEC [--out FILE]",
		Short: "Run the upstream Kubernetes conformance suite against a virtual cluster of each version",
		Long: `Builds each version's upstream e2e.test from the Go module proxy (once; about 11 minutes
cold), creates a virtual cluster of that version on the embedded host, runs its
[Conformance] specs but for those skipped on purpose (they check what a real node does),
and writes the results per version and per SIG as Markdown. Versions run one after the
other. Exit code 0 if no spec failed, 1 otherwise, 2 for usage errors.

Subsets (--subset): ` + strings.Join(subsetNames(), ", "),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if subset != "" {
				if focus != "" {
					return usageError{fmt.Errorf("--focus and --subset: give one of them")}
				}
				sub, ok := conformance.Subsets[subset]
				if !ok {
					return usageError{fmt.Errorf("no subset %q: want one of %s", subset, strings.Join(subsetNames(), ", "))}
				}
				focus, skip, timeout = sub.Focus, sub.Skip, sub.Timeout
			}
			ctx, cancel := signalContext()
			defer cancel()
			versions, err := matrix.Resolve(ctx, spec)
			if err != nil {
				return usageError{err}
			}
			if (fromReports || update) && reportDir == "" {
				return usageError{fmt.Errorf("--from-reports and --update need --report-dir: the folder of the earlier runs")}
			}
			if update && (focus == "" || fromReports) {
				return usageError{fmt.Errorf("--update runs the --focus specs again: give --focus, and not --from-reports")}
			}
			keep := reportDir != ""
			if !keep {
				if reportDir, err = os.MkdirTemp("", "vmatrix-conformance-"); err != nil {
					return err
				}
			}
			if update {
				// Every version's full run first: none is updated if one is missing.
				for _, v := range versions {
					if err := conformance.HasRun(v.String(), filepath.Join(reportDir, v.String())); err != nil {
						return usageError{err}
					}
				}
			}
			m := manager()
			var results []*conformance.Result
			failed := 0
			for _, v := range versions {
				opts := conformance.Options{Focus: focus, Skip: skip, Procs: procs, Timeout: timeout, Dir: filepath.Join(reportDir, v.String()), Out: os.Stderr}
				var res *conformance.Result
				switch {
				case fromReports:
					res, err = conformance.ReadRun(v.String(), opts.Dir, opts)
				case update:
					res, err = runConformance(ctx, m, v, opts, conformance.Update)
				default:
					res, err = runConformance(ctx, m, v, opts, conformance.Run)
				}
				if err != nil {
					return fmt.Errorf("%s: %w (logs in %s)", v, err, reportDir)
				}
				p, f, o, _ := res.Counts("")
				fmt.Printf("%s: %d passed, %d failed, %d skipped on purpose, in %s\n", v, p, f, o, res.Duration.Round(1e9))
				failed += f
				results = append(results, res)
			}
			command := "vmatrix conformance " + strings.Join(os.Args[2:], " ")
			if fromReports || update {
				// What reproduces the table is the runs, not this reading of them.
				command = "vmatrix conformance --versions " + spec
			}
			if err := os.WriteFile(out, []byte(conformance.Markdown(results, command)), 0o644); err != nil {
				return err
			}
			fmt.Printf("results in %s\n", out)
			if failed > 0 {
				return fmt.Errorf("%d conformance specs failed; the suite's output is in %s", failed, reportDir)
			}
			if !keep {
				os.RemoveAll(reportDir)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&spec, "versions", "", "versions to run against, e.g. 1.35,1.36,1.37")
	_ = cmd.MarkFlagRequired("versions")
	cmd.Flags().StringVar(&focus, "focus", "", "only the [Conformance] specs whose text matches this regular expression")
	cmd.Flags().StringVar(&subset, "subset", "", "a named, fixed subset of the specs (ci)")
	cmd.Flags().IntVar(&procs, "procs", 0, "specs run at once (default: twice the cores)")
	cmd.Flags().StringVar(&out, "out", "conformance.md", "the Markdown results")
	cmd.Flags().BoolVar(&fromReports, "from-reports", false, "run nothing: write the results from the reports of earlier runs in --report-dir (one folder per version)")
	cmd.Flags().BoolVar(&update, "update", false, "run the --focus specs again and put their outcome in place of the full run's in --report-dir")
	cmd.Flags().StringVar(&reportDir, "report-dir", "", "keep the suite's output and JSON report here (default: a temporary folder, kept if a spec fails)")
	return cmd
}

// runConformance runs the suite of version on a virtual cluster of its own,
// deleted afterwards.
func runConformance(ctx context.Context, m *supervisor.Manager, v k8sdist.Version, opts conformance.Options,
	run func(context.Context, string, conformance.Options) (*conformance.Result, error)) (*conformance.Result, error) {
	var err error
	if opts.Suite, err = m.Source.E2E(ctx, v); err != nil {
		return nil, err
	}
	name := fmt.Sprintf("conformance-%d-%d-%d", os.Getpid(), v.Major, v.Minor)
	if _, err := m.Create(ctx, supervisor.CreateOptions{Name: name, Version: v.String(), Owner: os.Getpid()}); err != nil {
		return nil, err
	}
	defer m.Delete(context.WithoutCancel(ctx), name)
	if opts.Kubeconfig, err = m.Kubeconfig(name); err != nil {
		return nil, err
	}
	return run(ctx, v.String(), opts)
}

func subsetNames() []string {
	var names []string
	for n := range conformance.Subsets {
		names = append(names, n)
	}
	return names
}
