// Package envtestsuite is the operator's controller-runtime envtest suite as
// operator projects write it, unchanged but for the guard in TestMain: run
// under `vmatrix run`, envtest uses the run's virtual cluster
// (USE_EXISTING_CLUSTER=true and KUBECONFIG), with its controller manager and
// real pods, instead of starting a bare apiserver of its own.
package envtestsuite

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"k8s.io/client-go/discovery"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/vmatrix/vmatrix/examples/operator"
)

var (
	testEnv   *envtest.Environment
	k8sClient client.Client
	scheme    = operator.NewScheme()
)

func TestMain(m *testing.M) {
	// The one line an envtest suite needs for vmatrix: without a cluster of
	// vmatrix run (and without envtest's binaries) there is nothing to test on.
	if os.Getenv("USE_EXISTING_CLUSTER") != "true" {
		fmt.Println("skipped: run this suite with vmatrix run (see examples/operator/README.md)")
		os.Exit(0)
	}
	os.Exit(run(m))
}

func run(m *testing.M) int {
	testEnv = &envtest.Environment{
		CRDInstallOptions:     envtest.CRDInstallOptions{Paths: []string{"../config/crd"}, Scheme: scheme},
		WebhookInstallOptions: envtest.WebhookInstallOptions{Paths: []string{"../config/webhook"}},
		ErrorIfCRDPathMissing: true,
	}
	cfg, err := testEnv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting envtest:", err)
		return 1
	}
	defer testEnv.Stop()
	wh := testEnv.WebhookInstallOptions
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:        scheme,
		Metrics:       metricsserver.Options{BindAddress: "0"},
		WebhookServer: webhook.NewServer(webhook.Options{Host: wh.LocalServingHost, Port: wh.LocalServingPort, CertDir: wh.LocalServingCertDir}),
	})
	if err == nil {
		err = operator.SetupController(mgr)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	operator.RegisterWebhooks(mgr.GetWebhookServer(), scheme)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go mgr.Start(ctx)
	// As the envtest documentation does: wait until the webhook server answers.
	addr := net.JoinHostPort(wh.LocalServingHost, strconv.Itoa(wh.LocalServingPort))
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true})
		if err == nil {
			conn.Close()
			break
		}
		if time.Now().After(deadline) {
			fmt.Fprintln(os.Stderr, "webhook server never answered:", err)
			return 1
		}
	}
	if k8sClient, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// TestRunsOnTheRunsCluster: the specs below ran against the version vmatrix
// run gave, not a cluster of envtest's own.
func TestRunsOnTheRunsCluster(t *testing.T) {
	disc, err := discovery.NewDiscoveryClientForConfig(testEnv.Config)
	if err != nil {
		t.Fatal(err)
	}
	v, err := disc.ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	if want := os.Getenv("VMATRIX_KUBERNETES_VERSION"); want == "" || v.GitVersion != want {
		t.Errorf("the cluster serves %s; vmatrix run asked for %q", v.GitVersion, want)
	}
}

func TestOperator(t *testing.T) {
	if err := operator.Check(t.Context(), k8sClient); err != nil {
		t.Fatal(err)
	}
}
