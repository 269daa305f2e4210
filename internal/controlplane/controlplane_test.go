package controlplane

import (
	"context"
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/vmatrix/vmatrix/internal/k8sdist"
	"github.com/vmatrix/vmatrix/internal/proc"
)

func binaries(t *testing.T, version string) (k8sdist.Version, k8sdist.Binaries) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	v, bins, err := k8sdist.Source{Log: os.Stderr}.Release(ctx, version)
	if err != nil {
		t.Fatal(err)
	}
	return v, bins
}

func TestStartStop(t *testing.T) {
	v, bins := binaries(t, "1.37")
	ctx := context.Background()
	start := time.Now()
	cp, err := Start(ctx, Config{Name: "t", Dir: t.TempDir(), Version: v, Binaries: bins})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ready in %s", time.Since(start))
	pids := cp.PIDs()
	port := cp.Port()
	client := kubernetes.NewForConfigOrDie(cp.RESTConfig())
	info, err := client.Discovery().ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	if info.GitVersion != v.String() {
		t.Errorf("server version %s, want %s", info.GitVersion, v)
	}
	nss, err := client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(nss.Items) < 4 {
		t.Errorf("namespaces: %v", nss.Items)
	}
	if err := cp.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := cp.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	for name, pid := range pids {
		if proc.Alive(pid) {
			t.Errorf("%s (pid %d) still running after Stop", name, pid)
		}
	}
	if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
		c.Close()
		t.Errorf("port %d still open after Stop", port)
	}
}
