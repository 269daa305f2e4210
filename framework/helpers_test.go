package framework_test

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"time"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/vmatrix/vmatrix/framework"

	"github.com/vmatrix/vmatrix/internal/proc"
)

// port is the API server port of a cluster, read from its kubeconfig.
func port(vc *framework.VirtualCluster) int { return kubeconfigPort(vc.KubeconfigPath()) }

func hostPort(e *framework.Environment) int { return kubeconfigPort(e.HostKubeconfigPath()) }

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
