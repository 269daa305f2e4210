package incluster_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/vmatrix/vmatrix/internal/host"
	"github.com/vmatrix/vmatrix/internal/testkit"
	"github.com/vmatrix/vmatrix/internal/testkit/testhost"
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
	h, dir, stop, err := testhost.Start(ctx, "vmatrix-incluster-test-", 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer stop()
	testHost, hostClient = h, clientFor(h.RESTConfig())
	vmatrixBin = filepath.Join(dir, "vmatrix")
	if out, err := exec.Command("go", "build", "-o", vmatrixBin, "github.com/vmatrix/vmatrix/cmd/vmatrix").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building vmatrix: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

func needHost(t *testing.T) {
	t.Helper()
	if testHost == nil {
		t.Skip("needs the embedded host (not in -short mode)")
	}
}

// The shared helpers, by the names these tests use.
var (
	clientFor  = testkit.Client
	eventually = testkit.Eventually
	kubectl    = testkit.Kubectl
)
