package framework_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/vmatrix/vmatrix/framework"
)

// versions are the releases every test package of the project runs against.
var versions = []string{"1.35", "1.36", "1.37"}

// env is the package's one Environment: its host and three virtual clusters
// serve every test, so the machine's cores go to tests, not to start-ups.
var (
	env      *framework.Environment
	clusters []*framework.VirtualCluster
	// createTime is how long CreateMany took, host included.
	createTime time.Duration
)

// helperEnv makes the test binary a child process for the signal tests
// instead of running tests: a signal can only be shown on a real process.
const helperEnv = "VMATRIX_FRAMEWORK_TEST_HELPER"

func TestMain(m *testing.M) {
	if kind := os.Getenv(helperEnv); kind != "" {
		os.Exit(helper(kind))
	}
	os.Exit(run(m))
}

func run(m *testing.M) int {
	var err error
	env, err = framework.New()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	start := time.Now()
	clusters, err = env.CreateMany(ctx, versions...)
	createTime = time.Since(start)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		env.Destroy(ctx)
		return 1
	}
	fmt.Fprintf(os.Stderr, "created %v in parallel, host included, in %s\n", versions, createTime.Round(10*time.Millisecond))
	code := m.Run()
	if table := faultTable(); table != "" {
		fmt.Fprint(os.Stderr, table)
	}

	// The package's last test: the teardown of everything, checked here by
	// looking at processes, ports and folders independently of Destroy's own
	// verification.
	var ports []int
	for _, vc := range clusters {
		ports = append(ports, port(vc))
	}
	ports = append(ports, hostPort(env))
	ports = append(ports, kubeletPorts...)
	start = time.Now()
	err = env.Destroy(ctx)
	fmt.Fprintf(os.Stderr, "teardown of %d clusters and the host in %s\n", len(clusters), time.Since(start).Round(10*time.Millisecond))
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: Destroy:", err)
		return 1
	}
	if err := env.Destroy(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: second Destroy:", err)
		return 1
	}
	if left := leftovers(framework.StateDir(env), ports); len(left) > 0 {
		fmt.Fprintln(os.Stderr, "FAIL: left after teardown:", left)
		return 1
	}
	fmt.Fprintln(os.Stderr, "teardown left no process, port or folder")
	return code
}
