package syncer_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/vmatrix/vmatrix/internal/host"
	"github.com/vmatrix/vmatrix/internal/testkit"
	"github.com/vmatrix/vmatrix/internal/testkit/testhost"
	"github.com/vmatrix/vmatrix/internal/virtual"
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
	h, _, stop, err := testhost.Start(ctx, "vmatrix-syncer-test-", 3)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer stop()
	testHost, hostClient = h, clientFor(h.RESTConfig())
	return m.Run()
}

// startVirtual starts a virtual cluster of version on the test host, its
// syncer configured by opts; the cleanup stops it (which also empties its
// host namespace).
func startVirtual(t *testing.T, name, version string, opts ...func(*syncer.Options)) *virtual.Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	v, bins, err := testkit.Release(ctx, version)
	if err != nil {
		t.Fatal(err)
	}
	cfg := virtual.Config{Name: name, Dir: t.TempDir(), Version: v, Binaries: bins, Host: testHost}
	if len(opts) > 0 {
		cfg.Syncer = func(o *syncer.Options) {
			for _, opt := range opts {
				opt(o)
			}
		}
	}
	vc, err := virtual.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := vc.Delete(); err != nil {
			t.Errorf("stopping virtual cluster %s: %v", name, err)
		}
	})
	return vc
}

// The shared helpers, by the names these tests use.
var (
	kubectl    = testkit.Kubectl
	kubectlErr = testkit.KubectlErr
	eventually = testkit.Eventually
	clientFor  = testkit.Client
)

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
