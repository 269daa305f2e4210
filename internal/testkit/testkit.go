// Package testkit holds what the packages' tests share: the real kubectl,
// waiting on a condition, and a client that does not throttle a test.
package testkit

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmatrix/vmatrix/internal/k8sdist"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Kubectl runs the real kubectl against a kubeconfig, with stdin if not "",
// and returns its standard output (kubectl's warnings go to standard error);
// it fails the test with both outputs if kubectl fails.
func Kubectl(t testing.TB, kubeconfig, stdin string, args ...string) string {
	t.Helper()
	out, err := KubectlErr(kubeconfig, stdin, args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// KubectlErr is Kubectl for a command that may fail: its standard output,
// or on failure both outputs and the error. A kubectl that hangs is stopped
// after a minute.
func KubectlErr(kubeconfig, stdin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "kubectl", append([]string{"--kubeconfig=" + kubeconfig}, args...)...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return out.String() + errOut.String(), err
	}
	return out.String(), nil
}

// Eventually polls cond until it holds, failing the test after timeout with
// the last thing cond reported.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func(ctx context.Context) (bool, string)) {
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

// Client is a client of cfg for a test: limits that do not throttle it, and
// no deprecation warnings (tests read v1 Endpoints on purpose).
func Client(cfg *rest.Config) kubernetes.Interface {
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = 100, 200
	cfg.WarningHandler = rest.NoWarnings{}
	return kubernetes.NewForConfigOrDie(cfg)
}

// Release is the binaries of a Kubernetes version from the cache (built
// there first if missing, with progress on standard error).
func Release(ctx context.Context, version string) (k8sdist.Version, k8sdist.Binaries, error) {
	return k8sdist.Source{Log: os.Stderr}.Release(ctx, version)
}

// ComponentLogs are the logs a control plane's components write into
// logsDir: kube-control-plane.log where the apiserver and the controller
// manager run as one process (a version built here), else one log each.
// Where neither is there, it names the two, for the caller to find missing.
func ComponentLogs(logsDir string) []string {
	one := filepath.Join(logsDir, k8sdist.ControlPlaneProgram+".log")
	if _, err := os.Stat(one); err == nil {
		return []string{one}
	}
	return []string{filepath.Join(logsDir, "kube-apiserver.log"), filepath.Join(logsDir, "kube-controller-manager.log")}
}

// APIServerStarted says whether the process that runs the apiserver of the
// control plane whose logs are in logsDir was started: its log is there.
func APIServerStarted(logsDir string) bool {
	_, err := os.Stat(ComponentLogs(logsDir)[0])
	return err == nil
}
