package storage_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmatrix/vmatrix/internal/host"
	"github.com/vmatrix/vmatrix/internal/k8sdist"
	"github.com/vmatrix/vmatrix/internal/virtual"
)

const deployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: default
spec:
  replicas: 3
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: registry.example/web:1
`

// TestDeploymentOnEachBackend runs the syncer's Deployment scenario on a 1.36
// virtual cluster of each backend, on an embedded host: the Deployment becomes
// Available, stays so across an in-place upgrade to 1.37, and deleting the cluster drops what vmatrix made in the backend.
func TestDeploymentOnEachBackend(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an embedded host")
	}
	ctx := context.Background()
	src := k8sdist.Source{Log: os.Stderr}
	h, err := host.StartNewest(ctx, src, host.EmbeddedConfig{Dir: filepath.Join(t.TempDir(), "host")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Stop() })
	v, bins, err := src.Release(ctx, "1.36")
	if err != nil {
		t.Fatal(err)
	}
	next, nextBins, err := src.Release(ctx, "1.37")
	if err != nil {
		t.Fatal(err)
	}
	for _, bc := range backends(t) {
		bc.run(t, func(t *testing.T) {
			name := "dep-" + strings.ReplaceAll(bc.name, "_", "-")
			vc, err := virtual.Start(ctx, virtual.Config{Name: name, Dir: t.TempDir(), Version: v, Binaries: bins, Host: h, Backend: bc.backend})
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				if err := vc.Delete(); err != nil {
					t.Error(err)
				}
			}()
			apply := exec.Command("kubectl", "--kubeconfig", vc.KubeconfigPath(), "apply", "-f", "-")
			apply.Stdin = strings.NewReader(deployment)
			if out, err := apply.CombinedOutput(); err != nil {
				t.Fatalf("kubectl apply: %v\n%s", err, out)
			}
			kubectl := func(args ...string) string {
				out, err := exec.Command("kubectl", append([]string{"--kubeconfig", vc.KubeconfigPath()}, args...)...).CombinedOutput()
				if err != nil {
					t.Fatalf("kubectl %v: %v\n%s", args, err, out)
				}
				return string(out)
			}
			kubectl("wait", "--for=condition=Available", "deployment/web", "--timeout=120s")
			// Upgraded in place to 1.37 on the same store: the Deployment is the
			// same object, and still Available.
			uid := kubectl("get", "deployment/web", "-o", "jsonpath={.metadata.uid}")
			if err := vc.Upgrade(ctx, next, nextBins); err != nil {
				t.Fatal(err)
			}
			if got := kubectl("version", "-o", "json"); !strings.Contains(got, `"gitVersion": "`+next.String()+`"`) {
				t.Errorf("after the upgrade to %s: %s", next, got)
			}
			if now := kubectl("get", "deployment/web", "-o", "jsonpath={.metadata.uid}"); now != uid {
				t.Errorf("the Deployment's UID was %s before the upgrade, %s after", uid, now)
			}
			kubectl("wait", "--for=condition=Available", "deployment/web", "--timeout=120s")
		})
	}
}
