package syncer_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/vmatrix/vmatrix/internal/host"
	"github.com/vmatrix/vmatrix/internal/k8sdist"
	"github.com/vmatrix/vmatrix/internal/vcluster"
)

// One embedded host for the whole package: every test's virtual clusters
// sync into it, each in its own namespace.
var (
	testHost   *host.Embedded
	hostClient kubernetes.Interface
)

// versions are the virtual cluster versions under test; VMATRIX_TEST_VERSIONS
// (comma-separated) narrows them.
func versions() []string {
	if v := os.Getenv("VMATRIX_TEST_VERSIONS"); v != "" {
		return strings.Split(v, ",")
	}
	return []string{"1.35", "1.36", "1.37"}
}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "vmatrix-syncer-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	testHost, err = host.StartNewest(ctx, k8sdist.Source{Log: os.Stderr}, dir, 3)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer testHost.Stop()
	hostClient = clientFor(testHost.RESTConfig())
	return m.Run()
}

func binaries(ctx context.Context, version string) (k8sdist.Version, k8sdist.Binaries, error) {
	return k8sdist.Source{Log: os.Stderr}.Release(ctx, version)
}

// startVirtual starts a virtual cluster of version on the test host; the
// cleanup stops it (which also empties its host namespace).
func startVirtual(t *testing.T, name, version string) *vcluster.VCluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	v, bins, err := binaries(ctx, version)
	if err != nil {
		t.Fatal(err)
	}
	vc, err := vcluster.Start(ctx, vcluster.Config{Name: name, Dir: t.TempDir(), Version: v, Binaries: bins, Host: testHost})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := vc.Stop(); err != nil {
			t.Errorf("stopping virtual cluster %s: %v", name, err)
		}
	})
	return vc
}

// kubectl runs the real kubectl against a kubeconfig, with stdin if not "".
func kubectl(t testing.TB, kubeconfig, stdin string, args ...string) string {
	t.Helper()
	out, err := kubectlErr(kubeconfig, stdin, args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func kubectlErr(kubeconfig, stdin string, args ...string) (string, error) {
	cmd := exec.Command("kubectl", append([]string{"--kubeconfig=" + kubeconfig}, args...)...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// eventually polls cond until it holds, failing the test after timeout with
// the last thing cond reported.
func eventually(t *testing.T, timeout time.Duration, what string, cond func(ctx context.Context) (bool, string)) {
	t.Helper()
	last := ""
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		ok, why := cond(ctx)
		if ctx.Err() == nil { // a call cut short by the deadline says nothing
			last = why
		}
		return ok, nil
	})
	if err != nil {
		t.Fatalf("waiting for %s: %v (last: %s)", what, err, last)
	}
}

func clientFor(cfg *rest.Config) kubernetes.Interface {
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = 100, 200
	cfg.WarningHandler = rest.NoWarnings{}
	return kubernetes.NewForConfigOrDie(cfg)
}

// hostObjectsOf lists "kind/name" of every host object in ns labelled for
// vcluster.
func hostObjectsOf(ctx context.Context, ns, selector string) ([]string, error) {
	core := hostClient.CoreV1()
	sel := metav1.ListOptions{LabelSelector: selector}
	var names []string
	pods, err := core.Pods(ns).List(ctx, sel)
	if err != nil {
		return nil, err
	}
	for _, o := range pods.Items {
		names = append(names, "pod/"+o.Name)
	}
	svcs, err := core.Services(ns).List(ctx, sel)
	if err != nil {
		return nil, err
	}
	for _, o := range svcs.Items {
		names = append(names, "service/"+o.Name)
	}
	cms, err := core.ConfigMaps(ns).List(ctx, sel)
	if err != nil {
		return nil, err
	}
	for _, o := range cms.Items {
		names = append(names, "configmap/"+o.Name)
	}
	secrets, err := core.Secrets(ns).List(ctx, sel)
	if err != nil {
		return nil, err
	}
	for _, o := range secrets.Items {
		names = append(names, "secret/"+o.Name)
	}
	pvcs, err := core.PersistentVolumeClaims(ns).List(ctx, sel)
	if err != nil {
		return nil, err
	}
	for _, o := range pvcs.Items {
		names = append(names, "persistentvolumeclaim/"+o.Name)
	}
	eps, err := core.Endpoints(ns).List(ctx, sel)
	if err != nil {
		return nil, err
	}
	for _, o := range eps.Items {
		names = append(names, "endpoints/"+o.Name)
	}
	return names, nil
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
