package main

import (
	"github.com/spf13/cobra"

	"github.com/vmatrix/vmatrix/internal/controlplane"
)

// componentFlags adds the flags that pass settings to a cluster's
// kube-apiserver and kube-controller-manager, and returns what they say.
func componentFlags(cmd *cobra.Command) func() controlplane.Flags {
	var apiserver, controllerManager []string
	var gates, runtimeConfig string
	cmd.Flags().StringArrayVar(&apiserver, "apiserver-arg", nil, "extra kube-apiserver flag, e.g. --apiserver-arg=--audit-log-maxage=1 (repeatable)")
	cmd.Flags().StringArrayVar(&controllerManager, "controller-manager-arg", nil, "extra kube-controller-manager flag (repeatable)")
	cmd.Flags().StringVar(&gates, "feature-gates", "", "feature gates of the apiserver and controller manager, e.g. SomeGate=true,Other=false")
	cmd.Flags().StringVar(&runtimeConfig, "runtime-config", "", "the apiserver's --runtime-config, e.g. api/alpha=true")
	return func() controlplane.Flags {
		return controlplane.Flags{APIServer: apiserver, ControllerManager: controllerManager}.Add(gates, runtimeConfig)
	}
}
