package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vmatrix/vmatrix/matrix"
)

func reportCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "report", Short: "Work with the report folders of 'vmatrix run'"}
	var out string
	merge := &cobra.Command{
		Use:   "merge DIR...",
		Short: "Join the report folders of sharded runs (vmatrix run --shard K/N) into one",
		Long: `Joins the report folders of the jobs of a sharded matrix ('vmatrix run --shard K/N
--report-dir DIR', one per job) into one report.json, junit.xml and report.md, as one run of
every version would have written them: the versions in version order; passed if every
version passed; started at the earliest job's start, lasting until the latest job's end. A
version's log and export are named where they are in the folders given.

A version in two folders, folders of different commands, or a folder without report.json
is an error. The exit code does not say whether the versions passed (the jobs' did):
0 once the reports are written.`,
		Example: `  vmatrix report merge shard-1 shard-2 shard-3 shard-4 --out report
  vmatrix report merge reports/* --out report && cat report/report.md >> "$GITHUB_STEP_SUMMARY"`,
		Args: cobra.MinimumNArgs(1),
		ValidArgsFunction: func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
			return nil, cobra.ShellCompDirectiveFilterDirs
		},
		RunE: func(cmd *cobra.Command, dirs []string) error {
			r, err := matrix.MergeReports(dirs...)
			if errors.Is(err, matrix.ErrNoReport) {
				return usageError{err}
			}
			if err != nil {
				return err
			}
			if err := r.WriteFiles(out); err != nil {
				return err
			}
			var failed []string
			for _, v := range r.Versions {
				if !v.Passed {
					failed = append(failed, v.Version)
				}
			}
			outcome := "all passed"
			if len(failed) > 0 {
				outcome = "failed on " + strings.Join(failed, ", ")
			}
			fmt.Printf("merged %d report folder(s): %d version(s), %s; report.json, junit.xml, report.md in %s\n", len(dirs), len(r.Versions), outcome, out)
			return nil
		},
	}
	merge.Flags().StringVar(&out, "out", "vmatrix-report", "folder to write the merged report.json, junit.xml and report.md into")
	cmd.AddCommand(merge)
	return cmd
}
