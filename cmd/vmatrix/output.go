package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/util/duration"
	"sigs.k8s.io/yaml"

	"github.com/vmatrix/vmatrix/internal/k8sdist"
	"github.com/vmatrix/vmatrix/internal/kubeconfig"
	"github.com/vmatrix/vmatrix/internal/state"
	"github.com/vmatrix/vmatrix/internal/storage"
	"github.com/vmatrix/vmatrix/internal/supervisor"
)

// Output formats of -o.
const (
	formatTable = ""
	formatWide  = "wide"
	formatJSON  = "json"
	formatYAML  = "yaml"
)

// outputFlag adds -o/--output with the formats given (the table is always
// one: the default) and returns a check of the value.
func outputFlag(cmd *cobra.Command, format *string, formats ...string) func() error {
	cmd.Flags().StringVarP(format, "output", "o", formatTable, "output format: "+strings.Join(formats, "|")+" (default: a table)")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(formats, cobra.ShellCompDirectiveNoFileComp))
	return func() error {
		for _, f := range append([]string{formatTable}, formats...) {
			if *format == f {
				return nil
			}
		}
		return usageError{fmt.Errorf("unknown output format %q: want %s", *format, strings.Join(formats, "|"))}
	}
}

// writeStructured writes v as JSON or YAML.
func writeStructured(w io.Writer, format string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if format == formatYAML {
		if data, err = yaml.JSONToYAML(data); err != nil {
			return err
		}
		_, err = w.Write(data)
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", data)
	return err
}

// clusterInfo is what `list -o json|yaml` says of a cluster: never its
// backend's DSN, which may hold a password.
type clusterInfo struct {
	Name        string    `json:"name"`
	Version     string    `json:"version"`
	Host        string    `json:"host"`
	HostContext string    `json:"hostContext,omitempty"`
	Backend     string    `json:"backend"`
	State       string    `json:"state"`
	Age         string    `json:"age"`
	Created     time.Time `json:"created,omitzero"`
	Port        int       `json:"port,omitempty"`
	Kubeconfig  string    `json:"kubeconfig"`
	Context     string    `json:"context"` // "" until merged into the user's kubeconfig
	Up          bool      `json:"up,omitempty"`
	Owner       int       `json:"owner,omitempty"`
}

func infoOf(root state.Root, r state.Record) clusterInfo {
	age := "-"
	if !r.Created.IsZero() {
		age = duration.HumanDuration(time.Since(r.Created))
	}
	info := clusterInfo{
		Name: r.Name, Version: r.Version, Host: r.Host, HostContext: r.HostContext,
		Backend: cmp.Or(r.Backend, storage.SQLite), State: stateOf(r), Age: age, Created: r.Created,
		Port: r.Port, Kubeconfig: filepath.Join(root.ClusterDir(r.Name), "kubeconfig"),
		Up: r.Up, Owner: r.Owner,
	}
	// The context only once --merge has put it in the user's kubeconfig.
	if server, err := kubeconfig.Server(info.Kubeconfig); err == nil && kubeconfig.Merged(kubeconfig.UserPath(), contextName(r.Name), server) {
		info.Context = contextName(r.Name)
	}
	return info
}

func listCommand(manager func() *supervisor.Manager) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "list [-o json|yaml|wide]",
		Short: "List virtual clusters",
		Args:  cobra.NoArgs,
	}
	check := outputFlag(cmd, &format, formatWide, formatJSON, formatYAML)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := check(); err != nil {
			return err
		}
		m := manager()
		recs, err := m.List()
		if err != nil {
			return err
		}
		infos := make([]clusterInfo, 0, len(recs))
		for _, r := range recs {
			infos = append(infos, infoOf(m.Root, r))
		}
		out := cmd.OutOrStdout()
		switch format {
		case formatJSON, formatYAML:
			return writeStructured(out, format, infos)
		}
		w := tabwriter.NewWriter(out, 0, 4, 3, ' ', 0)
		if format == formatWide {
			fmt.Fprintln(w, "NAME\tVERSION\tHOST\tBACKEND\tAGE\tSTATE\tPORT\tCONTEXT\tKUBECONFIG")
		} else {
			fmt.Fprintln(w, "NAME\tVERSION\tHOST\tBACKEND\tAGE\tSTATE")
		}
		for _, i := range infos {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s", i.Name, i.Version, i.Host, i.Backend, i.Age, i.State)
			if format == formatWide {
				port := "-"
				if i.Port != 0 {
					port = fmt.Sprint(i.Port)
				}
				fmt.Fprintf(w, "\t%s\t%s\t%s", port, cmp.Or(i.Context, "-"), i.Kubeconfig)
			}
			fmt.Fprintln(w)
		}
		return w.Flush()
	}
	return cmd
}

// versionInfo is one line of `versions -o json`.
type versionInfo struct {
	Version string `json:"version"`
	Cached  bool   `json:"cached"`
}

func writeVersions(w io.Writer, format string, releases, cached []k8sdist.Version) error {
	isCached := map[k8sdist.Version]bool{}
	for _, v := range cached {
		isCached[v] = true
	}
	infos := make([]versionInfo, 0, len(releases))
	for _, v := range releases {
		infos = append(infos, versionInfo{Version: v.String(), Cached: isCached[v]})
	}
	if format != formatTable {
		return writeStructured(w, format, infos)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tCACHED")
	for _, i := range infos {
		fmt.Fprintf(tw, "%s\t%s\n", i.Version, map[bool]string{true: "yes", false: "no"}[i.Cached])
	}
	return tw.Flush()
}

// buildInfo is what `vmatrix version` says.
type buildInfo struct {
	Version  string `json:"version"`
	Revision string `json:"revision,omitempty"`
	Modified bool   `json:"modified,omitempty"`
	Time     string `json:"time,omitempty"`
	Go       string `json:"go"`
	Platform string `json:"platform"`
	// Kubernetes is the built-in release table: the newest patch of each
	// supported minor, which specs resolve against when the proxy is out of
	// reach; OldestSupported is the oldest minor vmatrix runs.
	Kubernetes      []string `json:"kubernetes"`
	OldestSupported string   `json:"oldestSupported"`
	KWOK            string   `json:"kwok"`
}

func readBuildInfo() buildInfo {
	b := buildInfo{Version: "(devel)", Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH,
		OldestSupported: k8sdist.OldestSupported.MinorString(), KWOK: k8sdist.KWOKVersion}
	for _, v := range k8sdist.BuiltinReleases() {
		b.Kubernetes = append(b.Kubernetes, v.String())
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	b.Version = cmp.Or(info.Main.Version, b.Version)
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Revision = s.Value
		case "vcs.modified":
			b.Modified = s.Value == "true"
		case "vcs.time":
			b.Time = s.Value
		}
	}
	return b
}

func versionCommand() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "version [-o json|yaml]",
		Short: "Print vmatrix's own version and the Kubernetes versions it knows without asking the proxy",
		Args:  cobra.NoArgs,
	}
	check := outputFlag(cmd, &format, formatJSON, formatYAML)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := check(); err != nil {
			return err
		}
		b := readBuildInfo()
		out := cmd.OutOrStdout()
		if format != formatTable {
			return writeStructured(out, format, b)
		}
		rev := b.Revision
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if b.Modified {
			rev += " (modified)"
		}
		fmt.Fprintf(out, "vmatrix %s", b.Version)
		if rev != "" {
			fmt.Fprintf(out, ", commit %s", rev)
		}
		fmt.Fprintf(out, ", %s, %s\n", b.Go, b.Platform)
		fmt.Fprintf(out, "Kubernetes: %s (built-in table; `vmatrix versions` asks the module proxy), oldest supported %s\n", strings.Join(b.Kubernetes, " "), b.OldestSupported)
		fmt.Fprintf(out, "KWOK: %s\n", b.KWOK)
		return nil
	}
	return cmd
}
