package main

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"helm.sh/helm/v3/pkg/cli/values"
	"helm.sh/helm/v3/pkg/getter"

	"github.com/vmatrix/vmatrix/internal/incluster"
	"github.com/vmatrix/vmatrix/internal/k8sdist"
	"github.com/vmatrix/vmatrix/syncer"
)

// In-cluster mode: the virtual cluster runs in the host as the chart's
// StatefulSet. create and delete take --in-cluster; render prints the
// chart's manifests; controlplane is the image's entrypoint.

// chartFlags are the chart values a command takes, as helm takes them.
type chartFlags struct {
	namespace string
	values    values.Options
}

func (f *chartFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&f.namespace, "namespace", "n", "", "host namespace of the virtual cluster (default vmatrix-NAME)")
	cmd.Flags().StringSliceVarP(&f.values.ValueFiles, "values", "f", nil, "chart values from a YAML file (repeatable)")
	cmd.Flags().StringArrayVar(&f.values.Values, "set", nil, "a chart value, key=value as with helm (repeatable)")
}

// release builds the chart release for cluster name of Kubernetes version
// (resolved to a patch release; "" keeps the chart's default).
func (f *chartFlags) release(ctx context.Context, name, version string) (incluster.Release, error) {
	if err := syncer.ValidateName(name); err != nil {
		return incluster.Release{}, err
	}
	vals, err := f.values.MergeValues(getter.Providers{})
	if err != nil {
		return incluster.Release{}, err
	}
	if version != "" {
		v, err := k8sdist.Resolve(ctx, version)
		if err != nil {
			return incluster.Release{}, err
		}
		vals["kubernetesVersion"] = fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch)
	}
	ns := f.namespace
	if ns == "" {
		ns = "vmatrix-" + name
	}
	return incluster.Release{Name: name, Namespace: ns, Values: vals}, nil
}

// inClusterCreate adds --in-cluster to the create command: with it, the
// cluster is installed into the --host cluster with the chart instead of
// being run by a local supervisor.
func inClusterCreate(cmd *cobra.Command) *cobra.Command {
	var inCluster bool
	var flags chartFlags
	cmd.Flags().BoolVar(&inCluster, "in-cluster", false, "run the virtual cluster inside the --host cluster (Helm chart: StatefulSet + Service)")
	flags.add(cmd)
	local := cmd.RunE
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if !inCluster {
			return local(cmd, args)
		}
		host, err := inClusterHost(cmd)
		if err != nil {
			return err
		}
		ctx, cancel := signalContext()
		defer cancel()
		version, _ := cmd.Flags().GetString("version")
		r, err := flags.release(ctx, args[0], version)
		if err != nil {
			return err
		}
		if err := incluster.Install(ctx, host, r, incluster.InstallOptions{Wait: true}); err != nil {
			return err
		}
		fmt.Printf("virtual cluster %q is ready in namespace %s; its kubeconfig (server: the Service %s) is in Secret %s:\n"+
			"  kubectl --kubeconfig %s -n %s get secret %s -o jsonpath='{.data.config}' | base64 -d\n",
			r.Name, r.Namespace, r.Name, incluster.KubeconfigSecret(r.Name), host.Kubeconfig, r.Namespace, incluster.KubeconfigSecret(r.Name))
		return nil
	}
	return cmd
}

// inClusterDelete adds --in-cluster to the delete command: it uninstalls
// the releases and removes what their syncers made.
func inClusterDelete(cmd *cobra.Command) *cobra.Command {
	var inCluster bool
	var namespace, kubeconfig, context string
	cmd.Flags().BoolVar(&inCluster, "in-cluster", false, "delete virtual clusters installed with create --in-cluster")
	cmd.Flags().StringVar(&kubeconfig, "host", "", "kubeconfig of the host cluster (with --in-cluster)")
	cmd.Flags().StringVar(&context, "host-context", "", "context in the --host kubeconfig (default: its current context)")
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "", "host namespace of the virtual cluster (default vmatrix-NAME)")
	local := cmd.RunE
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if !inCluster {
			return local(cmd, args)
		}
		if kubeconfig == "" {
			return usageError{fmt.Errorf("--in-cluster needs --host KUBECONFIG")}
		}
		ctx, cancel := signalContext()
		defer cancel()
		for _, name := range args {
			ns := namespace
			if ns == "" {
				ns = "vmatrix-" + name
			}
			if err := incluster.Uninstall(ctx, incluster.Host{Kubeconfig: kubeconfig, Context: context}, name, ns); err != nil {
				return err
			}
			fmt.Printf("deleted virtual cluster %q from namespace %s\n", name, ns)
		}
		return nil
	}
	return cmd
}

func inClusterHost(cmd *cobra.Command) (incluster.Host, error) {
	kubeconfig, _ := cmd.Flags().GetString("host")
	context, _ := cmd.Flags().GetString("host-context")
	if kubeconfig == "" {
		return incluster.Host{}, usageError{fmt.Errorf("--in-cluster needs --host KUBECONFIG")}
	}
	return incluster.Host{Kubeconfig: kubeconfig, Context: context}, nil
}

func renderCommand() *cobra.Command {
	var flags chartFlags
	var version string
	cmd := &cobra.Command{
		Use:   "render NAME [--version V] [--set k=v] [-f values.yaml]",
		Short: "Print the manifests of an in-cluster virtual cluster, for kubectl apply",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := signalContext()
			defer cancel()
			r, err := flags.release(ctx, args[0], version)
			if err != nil {
				return err
			}
			out, err := incluster.Render(r)
			if err != nil {
				return err
			}
			_, err = os.Stdout.WriteString(out)
			return err
		},
	}
	cmd.Flags().StringVar(&version, "version", "", "Kubernetes version (default: the chart's)")
	flags.add(cmd)
	return cmd
}

func controlplaneCommand() *cobra.Command {
	var opts incluster.RunOptions
	cmd := &cobra.Command{
		Use:   "controlplane --config FILE --data-dir DIR",
		Short: "Run a virtual cluster inside its host (the entrypoint of the chart's pod)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := signalContext()
			defer cancel()
			opts.Log = os.Stderr
			return incluster.Run(ctx, opts)
		},
	}
	cmd.Flags().StringVar(&opts.ConfigPath, "config", envOr("VMATRIX_CONFIG", "/etc/vmatrix/config.yaml"), "config file (env VMATRIX_CONFIG)")
	cmd.Flags().StringVar(&opts.DataDir, "data-dir", envOr("VMATRIX_DATA_DIR", "/data"), "PKI, store and logs (env VMATRIX_DATA_DIR)")
	cmd.Flags().StringVar(&opts.ServiceAccountDir, "service-account-dir", envOr("VMATRIX_SERVICE_ACCOUNT_DIR", incluster.DefaultServiceAccountDir), "the host service account's token, ca.crt and namespace (env VMATRIX_SERVICE_ACCOUNT_DIR)")
	return cmd
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
