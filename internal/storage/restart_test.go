package storage_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/vmatrix/vmatrix/internal/controlplane"
	"github.com/vmatrix/vmatrix/internal/k8sdist"
	"github.com/vmatrix/vmatrix/internal/proc"
	"github.com/vmatrix/vmatrix/internal/storage"
)

// TestEtcdProcessKilled: the etcd vmatrix runs for a cluster is killed; the
// control plane starts it again on the same data, counts the restart, and
// serves every object it had.
func TestEtcdProcessKilled(t *testing.T) {
	if _, skip := lookBinary("etcd-server", "etcd"); skip != "" {
		t.Skip(skip)
	}
	ctx := context.Background()
	v, bins := release(t, "1.37")
	dir := t.TempDir()
	cp, err := controlplane.Start(ctx, controlplane.Config{Name: "etcd-kill", Dir: dir, Version: v, Binaries: bins,
		Store: mustParse(t, storage.Etcd, "").Starter("etcd-kill")})
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Stop()
	client := unlimitedClient(cp)
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "before"}, Data: map[string]string{"k": "v"}}
	if _, err := client.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	etcd := 0
	for _, pid := range proc.WithArg(dir) {
		if cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); filepath.Base(strings.SplitN(string(cmd), "\x00", 2)[0]) == "etcd" {
			etcd = pid
		}
	}
	if etcd == 0 {
		t.Fatal("no etcd process of the cluster found")
	}
	if err := syscall.Kill(etcd, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for h := cp.Health(); h.Restarts["etcd"] != 1 || h.State != controlplane.StateRunning; h = cp.Health() {
		if time.Now().After(deadline) {
			t.Fatalf("etcd was not started again: %+v", h)
		}
		time.Sleep(100 * time.Millisecond)
	}
	servesAgain(t, client, deadline, "etcd's restart")
}

// TestDatabaseServerKilled: the PostgreSQL or MariaDB server under a
// cluster dies and is started again (as its own supervisor would); kine
// reconnects, and the cluster serves every object it had.
func TestDatabaseServerKilled(t *testing.T) {
	ctx := context.Background()
	v, bins := release(t, "1.37")
	for _, bc := range backends(t) {
		if bc.name != "postgres" && bc.name != "mysql" {
			continue
		}
		bc.run(t, func(t *testing.T) {
			if bc.srv.Crash == nil {
				t.Skip("a server of the environment's, not this test's to kill")
			}
			cp, err := controlplane.Start(ctx, controlplane.Config{Name: "db-kill-" + bc.name, Dir: t.TempDir(), Version: v, Binaries: bins,
				Store: bc.backend.Starter("db-kill-" + bc.name)})
			if err != nil {
				t.Fatal(err)
			}
			defer cp.Stop()
			client := unlimitedClient(cp)
			cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "before"}, Data: map[string]string{"k": "v"}}
			if _, err := client.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			// The test servers trade durability for speed (no synchronous
			// commit): what was committed in the last second dies with them.
			time.Sleep(2 * time.Second)
			bc.srv.Crash()
			deadline := time.Now().Add(2 * time.Minute)
			servesAgain(t, client, deadline, "its database server came back")
			if h := cp.Health(); h.State != controlplane.StateRunning {
				t.Errorf("health after the database came back: %+v", h)
			}
		})
	}
}

// servesAgain waits until the cluster serves ConfigMap "before", made
// before the fault, and takes a new one, "after".
func servesAgain(t *testing.T, client kubernetes.Interface, deadline time.Time, after string) {
	t.Helper()
	ctx := context.Background()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "after"}}
	for {
		_, errGet := client.CoreV1().ConfigMaps("default").Get(ctx, "before", metav1.GetOptions{})
		_, errCreate := client.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{})
		if errGet == nil && (errCreate == nil || apierrors.IsAlreadyExists(errCreate)) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cluster does not serve after %s: %v, %v", after, errGet, errCreate)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// release resolves a version and obtains its binaries.
func release(t *testing.T, version string) (k8sdist.Version, k8sdist.Binaries) {
	t.Helper()
	ctx := context.Background()
	v, err := k8sdist.Resolve(ctx, version)
	if err != nil {
		t.Fatal(err)
	}
	bins, err := k8sdist.Source{Log: os.Stderr}.Kubernetes(ctx, v)
	if err != nil {
		t.Fatal(err)
	}
	return v, bins
}
