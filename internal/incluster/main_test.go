package incluster_test

import (
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
)

// One embedded host for the package, and the vmatrix binary the entrypoint
// test runs as a process of its own.
var (
	testHost   *host.Embedded
	hostClient kubernetes.Interface
	vmatrixBin string
)

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if testing.Short() {
		return m.Run() // the chart tests need no host
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "vmatrix-incluster-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	vmatrixBin = filepath.Join(dir, "vmatrix")
	if out, err := exec.Command("go", "build", "-o", vmatrixBin, "github.com/vmatrix/vmatrix/cmd/vmatrix").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building vmatrix: %v\n%s", err, out)
		return 1
	}
	testHost, err = host.StartNewest(ctx, k8sdist.Source{Log: os.Stderr}, filepath.Join(dir, "host"), 0)
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

func needHost(t *testing.T) {
	t.Helper()
	if testHost == nil {
		t.Skip("needs the embedded host (not in -short mode)")
	}
}

func clientFor(cfg *rest.Config) kubernetes.Interface {
	return kubernetes.NewForConfigOrDie(cfg)
}

// eventually polls cond until it holds, failing the test after timeout with
// the last thing cond reported.
func eventually(t *testing.T, timeout time.Duration, what string, cond func(ctx context.Context) (bool, string)) {
	t.Helper()
	last := ""
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		ok, why := cond(ctx)
		last = why
		return ok, nil
	})
	if err != nil {
		t.Fatalf("waiting for %s: %v (last: %s)", what, err, last)
	}
}

// kubectl runs the real kubectl against a kubeconfig, with stdin if not "".
func kubectl(t *testing.T, kubeconfig, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.Command("kubectl", append([]string{"--kubeconfig=" + kubeconfig}, args...)...)
	if stdin != "" {
		cmd.Stdin = stringsReader(stdin)
	}
	// Standard output only: kubectl's own warnings go to standard error.
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kubectl %v: %v\n%s%s", args, err, out, stderr.String())
	}
	return string(out)
}
