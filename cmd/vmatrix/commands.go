package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/vmatrix/vmatrix/internal/controlplane"
	"github.com/vmatrix/vmatrix/internal/k8sdist"
	"github.com/vmatrix/vmatrix/internal/kubeconfig"
	"github.com/vmatrix/vmatrix/internal/state"
	"github.com/vmatrix/vmatrix/internal/status"
	"github.com/vmatrix/vmatrix/internal/storage"
	"github.com/vmatrix/vmatrix/internal/supervisor"
	"github.com/vmatrix/vmatrix/syncer"
)

func newRootCommand() *cobra.Command {
	var stateDir string
	root := &cobra.Command{
		Use:   "vmatrix",
		Short: "Virtual Kubernetes clusters of any version, for tests",
		Long: `Virtual Kubernetes clusters of any version, for tests.

Exit codes:
  0  success
  1  failure: a command that could not do its work, or a version of 'vmatrix run' that failed
  2  usage: an unknown command or flag, a missing or extra argument, a bad value
     (version spec, output format, vmatrix.yaml)`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&stateDir, "state-dir", "", "where cluster state lives (default $VMATRIX_STATE_DIR, $XDG_STATE_HOME/vmatrix or ~/.local/state/vmatrix)")
	manager := func() *supervisor.Manager {
		r := state.DefaultRoot()
		if stateDir != "" {
			r = state.Root(stateDir)
		}
		// Absolute, as every process of a cluster names its folder: two
		// relative state folders of one name in two projects stay apart.
		if abs, err := filepath.Abs(string(r)); err == nil {
			r = state.Root(abs)
		}
		return &supervisor.Manager{Root: r, Log: os.Stderr, Source: k8sdist.Source{Log: os.Stderr}}
	}
	root.AddCommand(
		inClusterCreate(createCommand(manager)), inClusterDelete(deleteCommand(manager)), listCommand(manager), upgradeCommand(manager), renderCommand(), controlplaneCommand(),
		kubeconfigCommand(manager), exportCommand(manager), hostCommand(manager), versionsCommand(), versionCommand(),
		runCommand(manager), conformanceCommand(manager), upCommand(manager), downCommand(manager), cleanupCommand(manager),
		serveClusterCommand(manager), serveHostCommand(), imageCommand(), reportCommand(),
	)
	progressFlag(root)
	// Added now rather than as cobra executes: `completion` groups the shells
	// and must refuse an unknown one too.
	root.InitDefaultCompletionCmd()
	refuseUnknownSubcommands(root)
	markRuns(root)
	return root
}

// checkVersion refuses, as a usage error, a version that is malformed or
// not among the releases; that the releases cannot be listed is the
// create's own failure, and it says so.
func checkVersion(ctx context.Context, version string) error {
	if _, _, err := k8sdist.ParseVersion(version); err != nil {
		return usageError{err}
	}
	list, err := k8sdist.Releases(ctx)
	if err != nil {
		return nil
	}
	if _, err := k8sdist.ResolveIn(version, list); err != nil {
		return usageError{err}
	}
	return nil
}

// refuseUnknownSubcommands makes every command that only groups others
// (export, host, report) answer an argument it does not know as the root
// does, "unknown command", a usage error; cobra would show its help and
// succeed. Without an argument it shows its help.
func refuseUnknownSubcommands(cmd *cobra.Command) {
	for _, sub := range cmd.Commands() {
		refuseUnknownSubcommands(sub)
	}
	if cmd.HasParent() && cmd.HasSubCommands() && cmd.Run == nil && cmd.RunE == nil {
		cmd.Args = cobra.NoArgs
		cmd.RunE = func(c *cobra.Command, _ []string) error { return c.Help() }
	}
}

// signalContext ends on SIGINT or SIGTERM, and on SIGHUP (a closed terminal
// or dropped ssh session), so a command stops what it started rather than
// leave an embedded host and half-made clusters behind. A SIGHUP ignored
// from the start (nohup) stays ignored.
func signalContext() (context.Context, context.CancelFunc) {
	sigs := []os.Signal{os.Interrupt, syscall.SIGTERM}
	if !signal.Ignored(syscall.SIGHUP) {
		sigs = append(sigs, syscall.SIGHUP)
	}
	return signal.NotifyContext(context.Background(), sigs...)
}

func createCommand(manager func() *supervisor.Manager) *cobra.Command {
	var opts supervisor.CreateOptions
	var flags func() controlplane.Flags
	var backend, dsn string
	var merge, switchContext bool
	cmd := &cobra.Command{
		Use:   "create NAME --version VERSION",
		Short: "Create a virtual cluster (on the embedded host unless --host is given)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := signalContext()
			defer cancel()
			opts.Name = args[0]
			opts.Flags = flags()
			if err := opts.Flags.Validate(); err != nil {
				return usageError{err}
			}
			if err := syncer.ValidateName(opts.Name); err != nil {
				return usageError{err}
			}
			if err := checkVersion(ctx, opts.Version); err != nil {
				return err
			}
			var err error
			if opts.Backend, err = storage.ParseBackend(backend, dsn); err != nil {
				return usageError{err}
			}
			for _, kind := range opts.Sync {
				if !slices.Contains(syncer.OptionalKinds(), kind) {
					return usageError{fmt.Errorf("--sync %s: the kinds that can be synced as well are %s", kind, strings.Join(syncer.OptionalKinds(), ", "))}
				}
			}
			m := manager()
			board := newBoard()
			ts := newTasks(board)
			task := ts.add(opts.Name, opts.Name, "resolving "+opts.Version)
			ts.follow(m, same, func(k8sdist.Version) string { return opts.Name })
			rec, err := m.Create(ctx, opts)
			if err != nil {
				task.Done(false, "failed")
				board.Close("created")
				return err
			}
			task.Done(true, "ready, "+rec.Version)
			board.Close("created")
			fmt.Printf("virtual cluster %q (%s) is ready: kubectl --kubeconfig \"$(vmatrix kubeconfig %s)\" get ns\n", rec.Name, rec.Version, rec.Name)
			if merge || switchContext {
				return mergeKubeconfig(cmd, filepath.Join(m.Root.ClusterDir(rec.Name), "kubeconfig"), rec.Name, switchContext)
			}
			return nil
		},
	}
	flags = componentFlags(cmd)
	cmd.Flags().StringVar(&opts.Version, "version", "", "Kubernetes version: 1.36 (newest patch), 1.36.3 or v1.36.3")
	cmd.Flags().StringVar(&opts.HostKubeconfig, "host", "", "kubeconfig of an existing host cluster (default: the embedded host)")
	cmd.Flags().StringVar(&opts.HostContext, "host-context", "", "context in the --host kubeconfig (default: its current context)")
	cmd.Flags().IntVar(&opts.HostNodes, "host-nodes", 0, "simulated nodes of the embedded host, if this create starts it (default 3)")
	cmd.Flags().StringVar(&backend, "backend", storage.SQLite, "storage: sqlite (kine, embedded), postgres or mysql (kine on that server), etcd")
	// The DSN may hold a password: the variable keeps it out of `ps`.
	cmd.Flags().StringVar(&dsn, "backend-dsn", os.Getenv("VMATRIX_BACKEND_DSN"), "how to reach the backend's server (default $VMATRIX_BACKEND_DSN; etcd without one: vmatrix starts one)")
	cmd.Flags().StringSliceVar(&opts.Sync, "sync", nil, "also sync these kinds to the host: "+strings.Join(syncer.OptionalKinds(), ", "))
	cmd.Flags().BoolVar(&merge, "merge", false, "add context vmatrix-NAME to your kubeconfig (see 'vmatrix kubeconfig --merge')")
	cmd.Flags().BoolVar(&switchContext, "switch-context", false, "add context vmatrix-NAME to your kubeconfig and make it current, as kind does")
	_ = cmd.MarkFlagRequired("version")
	_ = cmd.RegisterFlagCompletionFunc("version", completeVersions(false))
	return cmd
}

func deleteCommand(manager func() *supervisor.Manager) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "delete NAME... | --all",
		Short: "Delete virtual clusters (and their vmatrix-NAME context, if merged); the embedded host stops with the last one",
		Args: func(cmd *cobra.Command, args []string) error {
			switch {
			case all && len(args) > 0:
				return usageError{errors.New("--all deletes every virtual cluster: give it no names")}
			case !all && len(args) == 0:
				return usageError{errors.New("name the virtual clusters to delete, or give --all")}
			}
			return nil
		},
		ValidArgsFunction: completeClusters(manager, -1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := signalContext()
			defer cancel()
			m := manager()
			if all {
				recs, err := m.List()
				if err != nil {
					return err
				}
				for _, rec := range recs {
					args = append(args, rec.Name)
				}
				if len(args) == 0 {
					fmt.Println("no virtual clusters")
					return nil
				}
			}
			board := newBoard()
			var said strings.Builder
			defer func() {
				board.Close("deleted")
				fmt.Print(said.String())
			}()
			m.Log = board.Writer()
			for _, name := range args {
				// The server says which vmatrix-NAME context is this cluster's.
				server, _ := kubeconfig.Server(filepath.Join(m.Root.ClusterDir(name), "kubeconfig"))
				task := board.Task(name, "deleting")
				if err := m.Delete(ctx, name); err != nil {
					task.Done(false, "failed")
					return err
				}
				task.Done(true, "deleted")
				fmt.Fprintf(&said, "deleted virtual cluster %q\n", name)
				if err := forgetContext(name, server, &said); err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "delete every virtual cluster (as kind delete clusters --all)")
	return cmd
}

// forgetContext removes from the user's kubeconfig the vmatrix-NAME context
// of a cluster that is gone, if it is still that cluster's: its server is
// the one the cluster's own kubeconfig named ("" when it had none).
func forgetContext(name, server string, said io.Writer) error {
	if server == "" {
		return nil
	}
	path := kubeconfig.UserPath()
	removed, err := kubeconfig.Remove(path, contextName(name), server)
	if removed {
		fmt.Fprintf(said, "removed context %q from %s\n", contextName(name), path)
	}
	return err
}

func upgradeCommand(manager func() *supervisor.Manager) *cobra.Command {
	var version string
	cmd := &cobra.Command{
		Use:   "upgrade NAME --version VERSION",
		Short: "Upgrade a running virtual cluster in place, one minor at a time",
		Long: `Upgrade runs a virtual cluster's apiserver and controller manager at a newer
version on the same storage and certificates: every object keeps its UID, and the
pods on the host run on. One minor at a time (1.35 to 1.36), or a newer patch, as
kubeadm allows; a downgrade or a skipped minor is refused before anything stops.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := signalContext()
			defer cancel()
			start := time.Now()
			from, to, err := manager().Upgrade(ctx, args[0], version)
			if err != nil {
				return err
			}
			fmt.Printf("upgraded virtual cluster %q from %s to %s in %s\n", args[0], from, to, time.Since(start).Round(10*time.Millisecond))
			return nil
		},
	}
	cmd.Flags().StringVar(&version, "version", "", "the Kubernetes version to upgrade to, e.g. 1.36 or 1.36.3")
	_ = cmd.MarkFlagRequired("version")
	return cmd
}

func stateOf(r state.Record) string {
	switch {
	case !r.Running():
		return "dead"
	case r.Failed():
		return "failed: " + r.FailureLine()
	case r.Ready:
		return cmp.Or(r.Health, controlplane.StateRunning) + restarts(r.Restarts)
	default:
		return "creating"
	}
}

// restarts says how often components were restarted: " (kube-apiserver
// restarted 2 times)", or nothing.
func restarts(n map[string]int) string {
	var parts []string
	for _, name := range slices.Sorted(maps.Keys(n)) {
		if n[name] > 0 {
			parts = append(parts, fmt.Sprintf("%s restarted %d times", name, n[name]))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

func kubeconfigCommand(manager func() *supervisor.Manager) *cobra.Command {
	var merge, switchContext, print bool
	cmd := &cobra.Command{
		Use:   "kubeconfig NAME [--merge [--switch-context] | --print]",
		Short: "Print the path of a virtual cluster's kubeconfig, its content, or merge it into yours",
		Long: `Prints the path of a virtual cluster's kubeconfig; with --print, the file's content.

With --merge, adds the context, cluster and user vmatrix-NAME to your kubeconfig (the first
file of $KUBECONFIG, else ~/.kube/config), keeping every other entry and the current context
(--switch-context makes vmatrix-NAME current). 'vmatrix delete NAME' removes them again.`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeClusters(manager, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if print && (merge || switchContext) {
				return usageError{errors.New("--print does not go with --merge or --switch-context")}
			}
			path, err := manager().Kubeconfig(args[0])
			if err != nil {
				return err
			}
			switch {
			case print:
				data, err := os.ReadFile(path)
				if err != nil {
					return err
				}
				_, err = cmd.OutOrStdout().Write(data)
				return err
			case merge || switchContext:
				return mergeKubeconfig(cmd, path, args[0], switchContext)
			}
			fmt.Fprintln(cmd.OutOrStdout(), path)
			return nil
		},
	}
	cmd.Flags().BoolVar(&merge, "merge", false, "add context vmatrix-NAME to $KUBECONFIG (its first file) or ~/.kube/config")
	cmd.Flags().BoolVar(&switchContext, "switch-context", false, "merge and make vmatrix-NAME the current context")
	cmd.Flags().BoolVar(&print, "print", false, "print the kubeconfig's content instead of its path")
	return cmd
}

// contextName is the context a cluster gets in the user's kubeconfig.
func contextName(cluster string) string { return kubeconfig.ContextName(cluster) }

// mergeKubeconfig merges the cluster's kubeconfig at path into the user's.
func mergeKubeconfig(cmd *cobra.Command, path, name string, switchContext bool) error {
	into := kubeconfig.UserPath()
	if err := kubeconfig.Merge(path, into, contextName(name), switchContext); err != nil {
		return err
	}
	how := "added"
	if switchContext {
		how = "added and switched to"
	}
	fmt.Fprintf(cmd.OutOrStdout(), "%s context %q in %s: kubectl --context %s get ns\n", how, contextName(name), into, contextName(name))
	return nil
}

func exportCommand(manager func() *supervisor.Manager) *cobra.Command {
	cmd := &cobra.Command{Use: "export", Short: "Export what a running virtual cluster holds, for a bug report or a CI artifact"}
	cmd.AddCommand(&cobra.Command{
		Use: "logs NAME [DIR]",
		ValidArgsFunction: func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
			if len(args) == 1 {
				return nil, cobra.ShellCompDirectiveFilterDirs
			}
			return completeClusters(manager, 1)(cmd, args, toComplete)
		},
		Short: "Write the component logs, object dumps and every pod's container logs of a virtual cluster to DIR (default: a new temporary folder)",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := signalContext()
			defer cancel()
			if _, err := manager().Kubeconfig(args[0]); err != nil {
				return err // before a folder is made for nothing
			}
			dir, made := "", false
			if len(args) == 2 {
				dir = args[1]
			} else {
				var err error
				if dir, err = os.MkdirTemp("", "vmatrix-export-"+args[0]+"-"); err != nil {
					return err
				}
				made = true
			}
			err := manager().ExportLogs(ctx, args[0], dir)
			if entries, _ := os.ReadDir(dir); made && len(entries) == 0 {
				os.Remove(dir)
				return err
			}
			fmt.Println(dir) // what could be written is there, failed or not
			return err
		},
	})
	return cmd
}

func hostCommand(manager func() *supervisor.Manager) *cobra.Command {
	cmd := &cobra.Command{Use: "host", Short: "The embedded host cluster"}
	cmd.AddCommand(&cobra.Command{
		Use:   "kubeconfig",
		Short: "Print the path of the embedded host's kubeconfig",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			path, err := manager().HostKubeconfig()
			if err != nil {
				return err
			}
			fmt.Println(path)
			return nil
		},
	}, &cobra.Command{
		Use:   "down",
		Short: "Stop the embedded host (it must run no virtual cluster)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := signalContext()
			defer cancel()
			return manager().HostDown(ctx)
		},
	})
	return cmd
}

func versionsCommand() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "versions [-o json|yaml]",
		Short: "List the Kubernetes versions that are cached and that can be had",
		Args:  cobra.NoArgs,
	}
	check := outputFlag(cmd, &format, formatJSON, formatYAML)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := check(); err != nil {
			return err
		}
		ctx, cancel := signalContext()
		defer cancel()
		releases, err := k8sdist.Releases(ctx)
		if err != nil {
			return err
		}
		cached, err := k8sdist.Source{}.Cached()
		if err != nil {
			return err
		}
		return writeVersions(cmd.OutOrStdout(), format, releases, cached)
	}
	var e2e bool
	pull := &cobra.Command{
		Use:               "pull VERSION...",
		ValidArgsFunction: completeVersions(false),
		Short:             "Fill the binary cache ahead of time (for CI caches)",
		Args:              cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := signalContext()
			defer cancel()
			board := newBoard()
			// What scripts read goes to stdout once the board is done with
			// the terminal.
			var paths strings.Builder
			defer func() {
				board.Close("in the cache")
				fmt.Print(paths.String())
			}()
			var task *status.Task
			src := k8sdist.Source{Log: board.Writer(), Progress: func(_ k8sdist.Version, what string) { task.Phase(what) }}
			for _, a := range args {
				task = board.Task(a, "resolving")
				v, err := k8sdist.Resolve(ctx, a)
				if err != nil {
					task.Done(false, "unknown")
					return err
				}
				task.Phase("obtaining " + v.String())
				bins, err := src.Kubernetes(ctx, v)
				if err != nil {
					task.Done(false, "failed")
					return err
				}
				task.Done(true, v.String()+" cached")
				fmt.Fprintf(&paths, "%s\t%s\n", v, bins.APIServer)
				if e2e {
					task = board.Task(a+" e2e", "obtaining e2e.test "+v.String())
					suite, err := src.E2E(ctx, v)
					if err != nil {
						task.Done(false, "failed")
						return err
					}
					task.Done(true, "e2e.test "+v.String()+" cached")
					fmt.Fprintf(&paths, "%s\t%s\n", v, suite.Test)
				}
			}
			task = board.Task("kwok", "obtaining "+k8sdist.KWOKVersion)
			kwok, err := src.KWOK(ctx)
			if err != nil {
				task.Done(false, "failed")
				return err
			}
			task.Done(true, k8sdist.KWOKVersion+" cached")
			fmt.Fprintf(&paths, "kwok %s\t%s\n", k8sdist.KWOKVersion, kwok)
			return nil
		},
	}
	pull.Flags().BoolVar(&e2e, "e2e", false, "also the versions' upstream e2e.test, for vmatrix conformance")
	cmd.AddCommand(pull)
	return cmd
}

// The supervisors are started by create; they are not for users.

func serveClusterCommand(manager func() *supervisor.Manager) *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:    "serve-cluster --dir DIR",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := signalContext()
			defer cancel()
			return supervisor.ServeCluster(ctx, manager().Root, dir, supervisor.ReadyPipe())
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "the cluster's state folder")
	return cmd
}

func serveHostCommand() *cobra.Command {
	var dir string
	var nodes int
	cmd := &cobra.Command{
		Use:    "serve-host --dir DIR",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := signalContext()
			defer cancel()
			return supervisor.ServeHost(ctx, dir, nodes, supervisor.ReadyPipe())
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "the host's state folder")
	cmd.Flags().IntVar(&nodes, "nodes", 0, "simulated nodes")
	return cmd
}
