package framework_test

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/vmatrix/vmatrix/fixtures"
	"github.com/vmatrix/vmatrix/framework"

	"github.com/vmatrix/vmatrix/internal/proc"
)

// port is the API server port of a cluster, read from its kubeconfig.
func port(vc *framework.VirtualCluster) int { return kubeconfigPort(vc.KubeconfigPath()) }

func hostPort(e *framework.Environment) int { return kubeconfigPort(framework.HostKubeconfigPath(e)) }

func kubeconfigPort(path string) int {
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return 0
	}
	u, err := url.Parse(cfg.Host)
	if err != nil {
		return 0
	}
	p, _ := strconv.Atoi(u.Port())
	return p
}

// leftovers looks, as an outside observer would, for processes whose command
// line names dir, open ports among ports, and dir itself.
func leftovers(dir string, ports []int) []string {
	var left []string
	for _, pid := range proc.WithArg(dir) {
		left = append(left, fmt.Sprintf("process %d", pid))
	}
	for _, p := range ports {
		if p != 0 && portOpen(p) {
			left = append(left, fmt.Sprintf("port %d", p))
		}
	}
	if _, err := os.Stat(dir); err == nil {
		left = append(left, "folder "+dir)
	}
	return left
}

func portOpen(port int) bool {
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), 200*time.Millisecond)
	if err == nil {
		c.Close()
	}
	return err == nil
}

// ownCluster creates a cluster of version named name on the shared host,
// in an Environment of the test's own that the test's end destroys.
func ownCluster(t *testing.T, version, name string, opts ...framework.Option) *framework.VirtualCluster {
	t.Helper()
	ctx := context.Background()
	e, err := framework.New(append([]framework.Option{sharedHost(t), framework.WithStateDir(t.TempDir()), framework.WithLog(testLog{t})}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Destroy(ctx) })
	vc, err := e.Create(ctx, version, framework.WithName(name))
	if err != nil {
		t.Fatal(err)
	}
	return vc
}

// availableWeb runs fixtures.DeploymentWithService in a new namespace and
// waits until the Deployment is Available; it returns the namespace.
func availableWeb(t *testing.T, vc *framework.VirtualCluster, prefix string) string {
	t.Helper()
	ctx := context.Background()
	ns, err := vc.NewNamespace(ctx, prefix)
	if err != nil {
		t.Fatal(err)
	}
	if err := fixtures.Apply(ctx, vc, ns, fixtures.DeploymentWithService); err != nil {
		t.Fatal(err)
	}
	if _, err := fixtures.WaitFor(ctx, vc, fixtures.Deployment(ns, "web"), fixtures.DeploymentAvailable()); err != nil {
		t.Fatal(err)
	}
	return ns
}
