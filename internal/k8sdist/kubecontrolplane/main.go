//go:build ignore

// Command kube-control-plane runs kube-apiserver and kube-controller-manager
// in one process, as k3s does: the two share their code and one Go runtime,
// which holds an idle cluster's memory down.
//
//	kube-control-plane [kube-apiserver flags] --controller-manager [kube-controller-manager flags]
//
// The controller manager starts once the apiserver is healthy. When either
// ends, the process ends, and whoever supervises it starts it again.
// Logging, feature gates and the emulated version are one setting per
// process: vmatrix runs a control plane as two processes unless its flags
// give both components the same of them.
//
// vmatrix writes this file, without its build constraint (which keeps it out
// of vmatrix's own build), into the module that builds each Kubernetes
// version from the Go module proxy.
package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"
	_ "time/tzdata" // CronJob time zones, as in kube-controller-manager

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/component-base/cli"
	logsapi "k8s.io/component-base/logs/api/v1"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
)

// separator ends the apiserver's flags and begins the controller manager's.
const separator = "--controller-manager"

func main() {
	apiArgs, cmArgs := os.Args[1:], []string(nil)
	for i, a := range apiArgs {
		if a == separator {
			apiArgs, cmArgs = apiArgs[:i], apiArgs[i+1:]
			break
		}
	}
	if cmArgs == nil {
		fmt.Fprintf(os.Stderr, "Error: usage: %s [kube-apiserver flags] %s [kube-controller-manager flags]\n", os.Args[0], separator)
		os.Exit(2)
	}
	// A flag the controller manager does not know fails the start at once,
	// not after the apiserver has come up. A command of its own parses
	// them: parsing twice would append list flags' values twice.
	if err := controllermanager.NewControllerManagerCommand().ParseFlags(cmArgs); err != nil {
		fmt.Fprintf(os.Stderr, "Error: kube-controller-manager: %v\n", err)
		os.Exit(1)
	}
	// Both commands apply the logging configuration, the same one; the
	// second time is no error.
	logsapi.ReapplyHandling = logsapi.ReapplyHandlingIgnoreUnchanged

	// A client's default user agent, which also names it as the field
	// manager of what it writes, begins with the program's name, read when
	// the client is made; neither command lets its caller set it. Each
	// component's clients are made as it starts, under its own name, as
	// when it runs alone: the apiserver's before it is healthy, the
	// controller manager's after. (The second write races with nothing but
	// an apiserver client made later than its start, which would then be
	// named after the controller manager.)
	os.Args[0] = "kube-apiserver"
	api := apiserver.NewAPIServerCommand()
	api.SetArgs(apiArgs)
	cm := controllermanager.NewControllerManagerCommand()
	cm.SetArgs(cmArgs)
	go func() {
		waitHealthy(cmArgs)
		fmt.Fprintln(os.Stderr, "kube-control-plane: the apiserver is healthy; starting the controller manager")
		os.Args[0] = "kube-controller-manager"
		code := cli.Run(cm)
		fmt.Fprintf(os.Stderr, "kube-control-plane: the controller manager ended (exit code %d)\n", code)
		os.Exit(max(code, 1))
	}()
	// Run is lean.go's (internal/lean), which vmatrix writes beside this file.
	go Run()
	os.Exit(cli.Run(api))
}

// waitHealthy returns when the apiserver answers /healthz ok to the
// controller manager's kubeconfig, looking every 50 ms: the controller
// manager itself looks once a second.
func waitHealthy(cmArgs []string) {
	kubeconfig := ""
	for _, a := range cmArgs {
		if v, ok := strings.CutPrefix(a, "--kubeconfig="); ok {
			kubeconfig = v
		}
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return // the controller manager will say what is wrong
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return
	}
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		body, err := client.Discovery().RESTClient().Get().AbsPath("/healthz").Do(ctx).Raw()
		cancel()
		if err == nil && string(body) == "ok" {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}
