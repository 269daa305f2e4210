package framework_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vmatrix/vmatrix/framework"

	"github.com/vmatrix/vmatrix/internal/proc"
)

// TestReuse attaches to a cluster made by `vmatrix create`, twice, as two
// reruns of a test would: each attach takes well under a second, resets the
// cluster (the previous run's test namespace goes) and leaves it running.
func TestReuse(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the vmatrix CLI and starts a second host")
	}
	ctx := context.Background()
	bin := filepath.Join(t.TempDir(), "vmatrix")
	build := exec.Command("go", "build", "-o", bin, "./cmd/vmatrix")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the CLI: %v\n%s", err, out)
	}
	state := t.TempDir()
	cli := func(args ...string) {
		t.Helper()
		out, err := exec.Command(bin, append([]string{"--state-dir", state}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("vmatrix %v: %v\n%s", args, err, out)
		}
	}
	cli("create", "v1-37", "--version", "1.37")
	defer func() {
		cli("delete", "v1-37")
		if left := proc.WithArg(state); len(left) > 0 {
			t.Errorf("processes left after vmatrix delete: %v", left)
		}
	}()

	var firstNS string
	for run := 1; run <= 2; run++ {
		e, err := framework.New(framework.WithReuse(state), framework.WithLog(testLog{t}))
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		vc, err := e.Create(ctx, "1.37")
		took := time.Since(start)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("run %d: attached in %s", run, took.Round(time.Millisecond))
		if took > time.Second {
			t.Errorf("run %d: attaching took %s", run, took)
		}
		if !vc.Attached() {
			t.Fatalf("run %d: the cluster was created, not reused", run)
		}
		if run == 1 {
			if firstNS, err = vc.NewNamespace(ctx, "rerun"); err != nil {
				t.Fatal(err)
			}
		} else {
			ns, err := vc.Client().CoreV1().Namespaces().Get(ctx, firstNS, metav1.GetOptions{})
			if err == nil && ns.DeletionTimestamp == nil {
				t.Errorf("run 2: the test namespace %s of run 1 was not reset", firstNS)
			}
			// Nothing else is touched.
			if _, err := vc.Client().CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{}); err != nil {
				t.Error(err)
			}
		}
		if err := e.Destroy(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := vc.Client().Discovery().ServerVersion(); err != nil {
			t.Errorf("run %d: the reused cluster is down after Destroy: %v", run, err)
		}
		if _, err := os.Stat(vc.KubeconfigPath()); err != nil {
			t.Errorf("run %d: %v", run, err)
		}
	}
}

// TestRunClustersIsExplicit: under `vmatrix run` (its variables set to one
// of the package's clusters), an Environment with WithRunClusters attaches
// to the run's cluster; one without it creates its own.
func TestRunClustersIsExplicit(t *testing.T) {
	run := clusters[2] // 1.37
	t.Setenv("VMATRIX_CLUSTER", run.Name())
	t.Setenv("KUBECONFIG", run.KubeconfigPath())
	t.Setenv("VMATRIX_KUBERNETES_VERSION", run.Version().String())
	ctx := context.Background()
	for _, tc := range []struct {
		opts     []framework.Option
		attached bool
	}{
		{[]framework.Option{framework.WithRunClusters()}, true},
		{nil, false},
	} {
		e, err := framework.New(append([]framework.Option{sharedHost(t), framework.WithStateDir(t.TempDir()), framework.WithLog(testLog{t})}, tc.opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		vc, err := e.Create(ctx, "1.37", framework.WithName("explicit"))
		if err != nil {
			t.Fatal(err)
		}
		sameServer := vc.RESTConfig().Host == run.RESTConfig().Host
		if vc.Attached() != tc.attached || sameServer != tc.attached {
			t.Errorf("with %d options: attached %v, the run's server %v; want %v", len(tc.opts), vc.Attached(), sameServer, tc.attached)
		}
		if err := e.Destroy(ctx); err != nil {
			t.Fatal(err)
		}
		// The run's cluster outlives an Environment that attached to it.
		if _, err := run.Client().Discovery().ServerVersion(); err != nil {
			t.Errorf("the run's cluster after Destroy: %v", err)
		}
	}
}
