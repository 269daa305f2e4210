package framework_test

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/vmatrix/vmatrix/framework"
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
	for _, pid := range processesNaming(dir) {
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

// processesNaming scans /proc, like pgrep -f, for live processes other than
// this one whose command line contains s.
func processesNaming(s string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil || !strings.Contains(string(cmdline), s) {
			continue
		}
		stat, _ := os.ReadFile("/proc/" + e.Name() + "/stat")
		if i := strings.LastIndexByte(string(stat), ')'); i > 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
			continue // a zombie is dead
		}
		pids = append(pids, pid)
	}
	return pids
}

func portOpen(port int) bool {
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), 200*time.Millisecond)
	if err == nil {
		c.Close()
	}
	return err == nil
}
