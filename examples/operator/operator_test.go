package operator_test

import (
	"context"
	"os"
	"sync"
	"testing"

	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/vmatrix/vmatrix/examples/operator"
	"github.com/vmatrix/vmatrix/framework"
	"github.com/vmatrix/vmatrix/framework/vmatrixtest"
)

var versions = []string{"1.35", "1.36", "1.37"}

func TestMain(m *testing.M) { os.Exit(vmatrixtest.Main(m, versions)) }

var (
	scheme        = operator.NewScheme()
	serveWebhooks sync.Once
)

// TestOperator is the envtest suite's checks written with the framework:
// vmatrix installs the CRD and the webhook configurations, pointed at the
// webhook server this test runs, and the operator runs against a cluster with
// a controller manager, so its Deployment really becomes Available.
func TestOperator(t *testing.T) {
	// The server lives until every version's subtest is done.
	serverCtx := t.Context()
	vmatrixtest.ForEachVersion(t, versions, func(t *testing.T, vc *framework.VirtualCluster) {
		ctx := t.Context()
		ws, err := vc.WebhookServer()
		if err != nil {
			t.Fatal(err)
		}
		// One webhook server for every cluster: webhooks hold no state.
		serveWebhooks.Do(func() {
			server := webhook.NewServer(webhook.Options{Host: ws.Host, Port: ws.Port, CertDir: ws.CertDir})
			operator.RegisterWebhooks(server, scheme)
			go server.Start(serverCtx)
		})
		if err := vc.InstallCRDs(ctx, "config/crd"); err != nil {
			t.Fatal(err)
		}
		if err := vc.InstallWebhooks(ctx, "config/webhook"); err != nil {
			t.Fatal(err)
		}
		if err := vc.WaitForWebhooks(ctx); err != nil {
			t.Fatal(err)
		}
		mgr, err := ctrl.NewManager(vc.RESTConfig(), ctrl.Options{
			Scheme:  scheme,
			Metrics: metricsserver.Options{BindAddress: "0"},
			// One manager per cluster in this process, each with the same controller.
			Controller: config.Controller{SkipNameValidation: ptr.To(true)},
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := operator.SetupController(mgr); err != nil {
			t.Fatal(err)
		}
		mgrCtx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- mgr.Start(mgrCtx) }()
		defer func() {
			stop()
			if err := <-done; err != nil {
				t.Errorf("manager: %v", err)
			}
		}()
		c, err := client.New(vc.RESTConfig(), client.Options{Scheme: scheme})
		if err != nil {
			t.Fatal(err)
		}
		if err := operator.Check(ctx, c); err != nil {
			t.Fatalf("%s: %v", vc, err)
		}
	})
}
