package syncer_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/vmatrix/vmatrix/internal/host"
	"github.com/vmatrix/vmatrix/internal/k8sdist"
	"github.com/vmatrix/vmatrix/internal/vcluster"
	"github.com/vmatrix/vmatrix/syncer"
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

// needsHost skips a test that needs the embedded host under -short, which
// runs the unit tests only, in seconds, with no binary.
func needsHost(t testing.TB) {
	if testing.Short() {
		t.Skip("needs the embedded host (not under -short)")
	}
}

func run(m *testing.M) int {
	flag.Parse()
	if testing.Short() {
		return m.Run()
	}
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

// startVirtual starts a virtual cluster of version on the test host, its
// syncer configured by opts; the cleanup stops it (which also empties its
// host namespace).
func startVirtual(t *testing.T, name, version string, opts ...func(*syncer.Options)) *vcluster.VCluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	v, bins, err := binaries(ctx, version)
	if err != nil {
		t.Fatal(err)
	}
	cfg := vcluster.Config{Name: name, Dir: t.TempDir(), Version: v, Binaries: bins, Host: testHost}
	if len(opts) > 0 {
		cfg.Syncer = func(o *syncer.Options) {
			for _, opt := range opts {
				opt(o)
			}
		}
	}
	vc, err := vcluster.Start(ctx, cfg)
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

// hostObjectsOf lists "resource/name" of every host object in ns that
// selector selects.
func hostObjectsOf(ctx context.Context, ns, selector string) ([]string, error) {
	return syncer.HostObjectNames(ctx, hostClient, ns, selector)
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
