package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/vmatrix/vmatrix/internal/controlplane"
	"github.com/vmatrix/vmatrix/internal/k8sdist"
	"github.com/vmatrix/vmatrix/internal/kubeconfig"
	"github.com/vmatrix/vmatrix/internal/status"
	"github.com/vmatrix/vmatrix/internal/storage"
	"github.com/vmatrix/vmatrix/internal/supervisor"
	"github.com/vmatrix/vmatrix/matrix"
)

// loadConfig reads vmatrix.yaml (or --config) and lets the flags the user set
// override it.
func loadConfig(cmd *cobra.Command, path string) (matrix.Config, error) {
	c, err := matrix.LoadConfig(path)
	if err != nil {
		return c, usageError{err}
	}
	if _, err := storage.ParseBackend(c.Backend, os.Getenv("VMATRIX_BACKEND_DSN")); err != nil {
		return c, usageError{fmt.Errorf("%s: %w", path, err)}
	}
	if cmd.Flags().Changed("config") {
		if _, err := os.Stat(path); err != nil {
			return c, usageError{err}
		}
	}
	return c, nil
}

// addComponentFlags gives every version the component flags of the command
// line, after those of vmatrix.yaml.
// resolveMatrix adds the component flags to cfg and resolves the versions
// of spec, under a context that ends on SIGINT or SIGTERM; the caller calls
// cancel.
func resolveMatrix(cfg *matrix.Config, flags controlplane.Flags, spec string) (context.Context, context.CancelFunc, []matrix.Version, error) {
	if err := addComponentFlags(cfg, flags); err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := signalContext()
	versions, err := matrix.Resolve(ctx, spec)
	if err != nil {
		cancel()
		return nil, nil, nil, usageError{err}
	}
	return ctx, cancel, versions, nil
}

func addComponentFlags(cfg *matrix.Config, f controlplane.Flags) error {
	if err := f.Validate(); err != nil {
		return usageError{err}
	}
	cfg.AddForAll(f)
	return nil
}

func runCommand(manager func() *supervisor.Manager) *cobra.Command {
	var spec, upgradePath, reportDir, configPath, shard string
	var dryRun bool
	var components func() controlplane.Flags
	opts := matrix.RunOptions{}
	cmd := &cobra.Command{
		Use:   "run --versions SPEC [flags] -- COMMAND [ARGS...]",
		Short: "Run a command once per Kubernetes version, each against a virtual cluster of its own",
		Long: `Creates one virtual cluster per version (in parallel), runs COMMAND against each with
KUBECONFIG, VMATRIX_KUBERNETES_VERSION, VMATRIX_CLUSTER and USE_EXISTING_CLUSTER=true (for
controller-runtime envtest suites) set, streams its output with a
version prefix, and tears everything down. Clusters left running by 'vmatrix up' are used
instead of new ones. With --upgrade, one cluster runs COMMAND at each version of the path
in turn, upgraded in place between the runs. The deprecated APIs the command called are
listed in the reports (--fail-on-deprecated fails the version). Exit code: 0 if every version passed, 1 if any failed, 2 for usage errors.

Each test gets a row in the report: 'go test' is given -json (its output is still shown as
go test prints it; Ginkgo suites written with framework/vmatrixginkgo report each spec),
the ginkgo CLI --json-report; any other command with --junit FILE. A failed version's
cluster is exported (component logs, objects, pod logs) into the report folder's exports/.
With $GITHUB_STEP_SUMMARY set, the compatibility table is appended to it.

A matrix too big for one machine is split across CI jobs: --shard K/N runs the K-th of N
shares of the versions (the same share for the same versions, whatever the order of the
spec; a share with no version passes), and 'vmatrix report merge' joins the jobs' report
folders into one. --dry-run prints the versions a run would take, one per line, and
creates nothing.

SPEC: 1.35,1.36,1.37 | 1.33-1.37 | latest-3 | 1.36.3 | latest-3,-1.36 (see 'vmatrix help run')`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if (len(args) > 0 || !dryRun) && (len(args) == 0 || cmd.ArgsLenAtDash() != 0) {
				return usageError{fmt.Errorf("no command: vmatrix run --versions SPEC -- COMMAND [ARGS...]")}
			}
			shardK, shardN := 1, 1
			if cmd.Flags().Changed("shard") {
				var err error
				if shardK, shardN, err = matrix.ParseShard(shard); err != nil {
					return usageError{err}
				}
				if cmd.Flags().Changed("upgrade") {
					return usageError{fmt.Errorf("--shard and --upgrade: an upgrade path is one cluster's, it cannot be split")}
				}
			}
			cfg, err := loadConfig(cmd, configPath)
			if err != nil {
				return err
			}
			flags := cmd.Flags()
			if flags.Changed("upgrade") {
				if flags.Changed("versions") {
					return usageError{fmt.Errorf("--versions and --upgrade: give one of them")}
				}
				spec, opts.Upgrade = upgradePath, true
			} else if !flags.Changed("versions") {
				spec = cfg.Versions
			}
			if !flags.Changed("parallel") {
				opts.Parallel = cfg.Parallel
			}
			if !flags.Changed("retries") {
				opts.Retries = cfg.Retries
			}
			if !flags.Changed("fail-fast") {
				opts.FailFast = cfg.FailFast
			}
			if !flags.Changed("timeout") {
				opts.Timeout = cfg.TimeoutDuration()
			}
			ctx, cancel, versions, err := resolveMatrix(&cfg, components(), spec)
			if err != nil {
				return err
			}
			defer cancel()
			if opts.Upgrade {
				if err := matrix.CheckUpgradePath(versions); err != nil {
					return usageError{err}
				}
			}
			all := len(versions)
			versions = matrix.Shard(versions, shardK, shardN) // all of them for 1/1
			if dryRun {
				for _, v := range versions {
					fmt.Println(v)
				}
			}
			if len(versions) == 0 {
				// More shards than versions: this one passes with nothing to do.
				msg := fmt.Sprintf("shard %s has no version: %d version(s) in %d shards; nothing to run", shard, all, shardN)
				if dryRun {
					fmt.Fprintln(os.Stderr, msg)
					return nil
				}
				fmt.Println(msg)
				if reportDir != "" {
					// For 'vmatrix report merge', which then finds every job's folder.
					empty := &matrix.Report{Command: strings.Join(args, " "), Started: time.Now(), Passed: true, Versions: []*matrix.VersionResult{}}
					return empty.WriteFiles(reportDir)
				}
				return nil
			}
			if dryRun {
				return nil
			}
			if shardN > 1 {
				fmt.Fprintf(os.Stderr, "[vmatrix] shard %s: %s (of %d versions)\n", shard, joinVersions(versions), all)
			}
			opts.Versions, opts.Command, opts.Out = versions, args, os.Stdout
			opts.LogDir = filepath.Join(reportDir, "logs")
			if reportDir == "" {
				if opts.LogDir, err = os.MkdirTemp("", "vmatrix-run-"); err != nil {
					return err
				}
			}
			opts.ExportDir = filepath.Join(filepath.Dir(opts.LogDir), "exports")
			if reportDir == "" {
				opts.ExportDir = filepath.Join(opts.LogDir, "exports")
			}
			m := manager()
			m.Log = prefixWriter{}
			var board *status.Board
			// An upgrade path is one cluster through several versions: plain lines.
			if status.Live(progressMode) && !opts.Upgrade {
				// Lines updated in place per version; the command's output
				// and the rest above them.
				board = newBoard()
				ts := newTasks(board)
				for _, v := range versions {
					ts.add(v.String(), v.String(), "waiting")
				}
				ts.follow(m, func(cluster string) string {
					for _, v := range versions {
						if strings.HasSuffix(cluster, "-"+strings.TrimPrefix(supervisor.UpName(v), "up-")) {
							return v.String()
						}
					}
					return ""
				}, func(v k8sdist.Version) string { return v.String() })
				opts.Out = board.Writer()
				opts.Status = func(version, phase, outcome string) {
					t := ts.get(version)
					switch outcome {
					case "":
						t.Phase(phase)
					case matrix.StatusPassed:
						t.Done(true, "passed") // the line has the time
					default:
						t.Done(false, phase)
					}
				}
			}
			report, err := matrix.Run(ctx, matrixClusters{M: m, Config: cfg, Fresh: opts.Upgrade}, opts)
			if board != nil {
				board.Close("passed")
			}
			if err != nil {
				return err
			}
			if reportDir != "" {
				if err := report.WriteFiles(reportDir); err != nil {
					return err
				}
				fmt.Printf("reports in %s (report.json, junit.xml, report.md)\n", reportDir)
			}
			if summary := os.Getenv("GITHUB_STEP_SUMMARY"); summary != "" {
				if err := appendFile(summary, "## vmatrix run: "+report.Command+"\n\n"+report.Markdown()+"\n"); err != nil {
					return fmt.Errorf("$GITHUB_STEP_SUMMARY: %w", err)
				}
			}
			var failed []string
			for _, v := range report.Versions {
				if !v.Passed {
					failed = append(failed, v.Version+" ("+v.Status+")")
				}
			}
			if len(failed) > 0 {
				where := opts.LogDir
				if _, err := os.Stat(opts.ExportDir); err == nil {
					where += ", clusters' logs and objects in " + opts.ExportDir
				}
				return fmt.Errorf("failed on %s; logs in %s", strings.Join(failed, ", "), where)
			}
			if reportDir == "" {
				// Logs nobody asked to keep, of a run that passed.
				os.RemoveAll(opts.LogDir)
			}
			fmt.Printf("passed on all %d versions in %s\n", len(report.Versions), report.Duration.Round(time.Millisecond))
			return nil
		},
	}
	cmd.Flags().StringVar(&spec, "versions", "", "versions to run against (required unless vmatrix.yaml names them)")
	cmd.Flags().StringVar(&upgradePath, "upgrade", "", "an upgrade path, e.g. 1.35,1.36,1.37: one cluster runs the command at each version in turn, upgraded in place between")
	cmd.Flags().BoolVar(&opts.FailOnDeprecated, "fail-on-deprecated", false, "fail a version whose run called a deprecated API")
	cmd.Flags().StringVar(&configPath, "config", matrix.ConfigFile, "matrix settings; flags override them")
	cmd.Flags().IntVar(&opts.Parallel, "parallel", 0, "versions created and run at once (default: all)")
	cmd.Flags().BoolVar(&opts.FailFast, "fail-fast", false, "stop the other versions when one fails")
	cmd.Flags().IntVar(&opts.Retries, "retries", 0, "rerun a failed version up to N times")
	cmd.Flags().DurationVar(&opts.Timeout, "timeout", 0, "time limit of each run of the command (0: none)")
	cmd.Flags().StringVar(&shard, "shard", "", "run only share K of N of the versions, e.g. 2/4, for one of N CI jobs ('vmatrix report merge' joins their reports)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the versions the run would take (of --shard's share), one per line, and create nothing")
	cmd.Flags().StringVar(&reportDir, "report-dir", "", "write report.json, junit.xml, report.md and per-version logs here")
	cmd.Flags().StringVar(&opts.JUnit, "junit", "", "a JUnit XML file the command writes, read for a row per test when vmatrix cannot tell them otherwise ($VMATRIX_KUBERNETES_VERSION in it: one file per version)")
	cmd.Flags().BoolVar(&opts.NoEnvtest, "no-envtest", false, "do not set USE_EXISTING_CLUSTER=true (which makes controller-runtime envtest suites use the run's cluster)")
	components = componentFlags(cmd)
	_ = cmd.RegisterFlagCompletionFunc("versions", completeVersions(true))
	return cmd
}

func joinVersions(vs []k8sdist.Version) string {
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = v.String()
	}
	return strings.Join(s, ", ")
}

// appendFile appends text to the file at path, creating it.
func appendFile(path, text string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(text); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// prefixWriter marks the progress lines of cluster creation in run's output.
type prefixWriter struct{}

func (prefixWriter) Write(p []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		fmt.Fprintln(os.Stderr, "[vmatrix] "+line)
	}
	return len(p), nil
}

func upCommand(manager func() *supervisor.Manager) *cobra.Command {
	var spec, configPath string
	var components func() controlplane.Flags
	cmd := &cobra.Command{
		Use:   "up --versions SPEC",
		Short: "Keep a matrix of virtual clusters running for local reruns (vmatrix run uses them)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig(cmd, configPath)
			if err != nil {
				return err
			}
			if !cmd.Flags().Changed("versions") {
				spec = cfg.Versions
			}
			ctx, cancel, versions, err := resolveMatrix(&cfg, components(), spec)
			if err != nil {
				return err
			}
			defer cancel()
			m := manager()
			board := newBoard()
			ts := newTasks(board)
			for _, v := range versions {
				ts.add(supervisor.UpName(v), v.String(), "waiting")
			}
			ts.follow(m, same, supervisor.UpName)
			recs, err := up(ctx, m, versions, cfg)
			for i, v := range versions {
				if i < len(recs) && recs[i].Ready {
					ts.get(supervisor.UpName(v)).Done(true, "ready ("+recs[i].Name+")")
				} else {
					ts.get(supervisor.UpName(v)).Done(false, "failed")
				}
			}
			board.Close("ready")
			if err != nil {
				return err
			}
			for _, r := range recs {
				fmt.Printf("# %s\nexport KUBECONFIG=%s\n", r.Version, filepath.Join(m.Root.ClusterDir(r.Name), "kubeconfig"))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&spec, "versions", "", "versions to keep running (required unless vmatrix.yaml names them)")
	cmd.Flags().StringVar(&configPath, "config", matrix.ConfigFile, "matrix settings; flags override them")
	components = componentFlags(cmd)
	_ = cmd.RegisterFlagCompletionFunc("versions", completeVersions(true))
	return cmd
}

func downCommand(manager func() *supervisor.Manager) *cobra.Command {
	return &cobra.Command{
		Use:   "down",
		Short: "Delete the clusters of vmatrix up",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := signalContext()
			defer cancel()
			deleted, err := manager().Down(ctx)
			for _, name := range deleted {
				fmt.Printf("deleted virtual cluster %q\n", name)
			}
			return err
		},
	}
}

func cleanupCommand(manager func() *supervisor.Manager) *cobra.Command {
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "cleanup",
		Short: "Remove what killed runs left behind (orphaned clusters, their processes and folders)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := signalContext()
			defer cancel()
			m := manager()
			board := newBoard()
			m.Log = board.Writer()
			task := board.Task("cleanup", "looking for what killed runs left")
			// The servers say which vmatrix-NAME contexts are the clusters'.
			servers := map[string]string{}
			if recs, err := m.List(); err == nil {
				for _, r := range recs {
					servers[r.Name], _ = kubeconfig.Server(filepath.Join(m.Root.ClusterDir(r.Name), "kubeconfig"))
				}
			}
			removed, err := m.Cleanup(ctx, dryRun)
			task.Done(err == nil, fmt.Sprintf("%d found", len(removed)))
			board.Close("done")
			verb := "removed"
			if dryRun {
				verb = "would remove"
			}
			for _, line := range removed {
				fmt.Printf("%s %s\n", verb, line)
			}
			if len(removed) == 0 {
				fmt.Println("nothing to clean up")
			}
			for _, name := range slices.Sorted(maps.Keys(servers)) {
				if _, gone := os.Stat(m.Root.ClusterDir(name)); !dryRun && errors.Is(gone, os.ErrNotExist) {
					err = errors.Join(err, forgetContext(name, servers[name], os.Stdout))
				}
			}
			return err
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "only say what would be removed")
	return cmd
}
