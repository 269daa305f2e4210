package main

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/util/duration"

	"github.com/vmatrix/vmatrix/internal/controlplane"
	"github.com/vmatrix/vmatrix/internal/k8sdist"
	"github.com/vmatrix/vmatrix/internal/local"
	"github.com/vmatrix/vmatrix/internal/state"
	"github.com/vmatrix/vmatrix/internal/storage"
)

func newRootCommand() *cobra.Command {
	var stateDir string
	root := &cobra.Command{
		Use:           "vmatrix",
		Short:         "Virtual Kubernetes clusters of any version, for tests",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&stateDir, "state-dir", "", "where cluster state lives (default $VMATRIX_STATE_DIR, $XDG_STATE_HOME/vmatrix or ~/.local/state/vmatrix)")
	manager := func() *local.Manager {
		r := state.DefaultRoot()
		if stateDir != "" {
			r = state.Root(stateDir)
		}
		return &local.Manager{Root: r, Log: os.Stderr, Source: k8sdist.Source{Log: os.Stderr}}
	}
	root.AddCommand(
		inClusterCreate(createCommand(manager)), inClusterDelete(deleteCommand(manager)), listCommand(manager), upgradeCommand(manager), renderCommand(), controlplaneCommand(),
		kubeconfigCommand(manager), exportCommand(manager), hostCommand(manager), versionsCommand(),
		runCommand(manager), conformanceCommand(manager), upCommand(manager), downCommand(manager), cleanupCommand(manager),
		serveClusterCommand(manager), serveHostCommand(), imageCommand(),
	)
	return root
}

// signalContext ends on SIGINT or SIGTERM, so a command stops what it started.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

func createCommand(manager func() *local.Manager) *cobra.Command {
	var opts local.CreateOptions
	var flags func() controlplane.Flags
	var backend, dsn string
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
				return err
			}
			var err error
			if opts.Backend, err = storage.ParseBackend(backend, dsn); err != nil {
				return err
			}
			rec, err := manager().Create(ctx, opts)
			if err != nil {
				return err
			}
			fmt.Printf("virtual cluster %q (%s) is ready: kubectl --kubeconfig \"$(vmatrix kubeconfig %s)\" get ns\n", rec.Name, rec.Version, rec.Name)
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
	_ = cmd.MarkFlagRequired("version")
	return cmd
}

func deleteCommand(manager func() *local.Manager) *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME...",
		Short: "Delete virtual clusters; the embedded host stops with the last one",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := signalContext()
			defer cancel()
			for _, name := range args {
				if err := manager().Delete(ctx, name); err != nil {
					return err
				}
				fmt.Printf("deleted virtual cluster %q\n", name)
			}
			return nil
		},
	}
}

func upgradeCommand(manager func() *local.Manager) *cobra.Command {
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

func listCommand(manager func() *local.Manager) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List virtual clusters",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			recs, err := manager().List()
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(os.Stdout, 0, 4, 3, ' ', 0)
			fmt.Fprintln(w, "NAME\tVERSION\tHOST\tBACKEND\tAGE\tSTATE")
			for _, r := range recs {
				age := "-"
				if !r.Created.IsZero() {
					age = duration.HumanDuration(time.Since(r.Created))
				}
				// The kind only: the DSN may hold a password.
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, r.Version, r.Host, cmp.Or(r.Backend, storage.SQLite), age, stateOf(r))
			}
			return w.Flush()
		},
	}
}

func stateOf(r state.Record) string {
	switch {
	case !r.Running():
		return "dead"
	case r.Health == controlplane.StateFailed:
		return "failed: " + strings.SplitN(r.Failure, "\n", 2)[0]
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

func kubeconfigCommand(manager func() *local.Manager) *cobra.Command {
	return &cobra.Command{
		Use:   "kubeconfig NAME",
		Short: "Print the path of a virtual cluster's kubeconfig",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path, err := manager().Kubeconfig(args[0])
			if err != nil {
				return err
			}
			fmt.Println(path)
			return nil
		},
	}
}

func exportCommand(manager func() *local.Manager) *cobra.Command {
	cmd := &cobra.Command{Use: "export", Short: "Export what a running virtual cluster holds, for a bug report or a CI artifact"}
	cmd.AddCommand(&cobra.Command{
		Use:   "logs NAME [DIR]",
		Short: "Write the component logs, object dumps and every pod's container logs of a virtual cluster to DIR (default: a new temporary folder)",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := signalContext()
			defer cancel()
			dir := ""
			if len(args) == 2 {
				dir = args[1]
			} else {
				var err error
				if dir, err = os.MkdirTemp("", "vmatrix-export-"+args[0]+"-"); err != nil {
					return err
				}
			}
			if err := manager().ExportLogs(ctx, args[0], dir); err != nil {
				return err
			}
			fmt.Println(dir)
			return nil
		},
	})
	return cmd
}

func hostCommand(manager func() *local.Manager) *cobra.Command {
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
	cmd := &cobra.Command{
		Use:   "versions",
		Short: "List the Kubernetes versions that are cached and that can be had",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
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
			isCached := map[k8sdist.Version]bool{}
			for _, v := range cached {
				isCached[v] = true
			}
			w := tabwriter.NewWriter(os.Stdout, 0, 4, 3, ' ', 0)
			fmt.Fprintln(w, "VERSION\tCACHED")
			for _, v := range releases {
				c := "no"
				if isCached[v] {
					c = "yes"
				}
				fmt.Fprintf(w, "%s\t%s\n", v, c)
			}
			return w.Flush()
		},
	}
	var e2e bool
	pull := &cobra.Command{
		Use:   "pull VERSION...",
		Short: "Fill the binary cache ahead of time (for CI caches)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := signalContext()
			defer cancel()
			src := k8sdist.Source{Log: os.Stderr}
			for _, a := range args {
				v, err := k8sdist.Resolve(ctx, a)
				if err != nil {
					return err
				}
				bins, err := src.Kubernetes(ctx, v)
				if err != nil {
					return err
				}
				fmt.Printf("%s\t%s\n", v, bins.APIServer)
				if e2e {
					suite, err := src.E2E(ctx, v)
					if err != nil {
						return err
					}
					fmt.Printf("%s\t%s\n", v, suite.Test)
				}
			}
			kwok, err := src.KWOK(ctx)
			if err != nil {
				return err
			}
			fmt.Printf("kwok %s\t%s\n", k8sdist.KWOKVersion, kwok)
			return nil
		},
	}
	pull.Flags().BoolVar(&e2e, "e2e", false, "also the versions' upstream e2e.test, for vmatrix conformance")
	cmd.AddCommand(pull)
	return cmd
}

// The supervisors are started by create; they are not for users.

func serveClusterCommand(manager func() *local.Manager) *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:    "serve-cluster --dir DIR",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := signalContext()
			defer cancel()
			return local.ServeCluster(ctx, manager().Root, dir, local.ReadyPipe())
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
			return local.ServeHost(ctx, dir, nodes, local.ReadyPipe())
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "the host's state folder")
	cmd.Flags().IntVar(&nodes, "nodes", 0, "simulated nodes")
	return cmd
}
