package framework_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/vmatrix/vmatrix/fixtures"
	"github.com/vmatrix/vmatrix/framework"
	"github.com/vmatrix/vmatrix/internal/testkit"
	"github.com/vmatrix/vmatrix/internal/virtual"
)

func TestCreateMany(t *testing.T) {
	t.Logf("3 versions created in parallel, embedded host included, in %s", createTime.Round(10*time.Millisecond))
	if len(clusters) != len(versions) {
		t.Fatalf("got %d clusters, want %d", len(clusters), len(versions))
	}
	for i, vc := range clusters {
		if vc.Version().MinorString() != versions[i] {
			t.Errorf("cluster %d is %s, want %s (CreateMany keeps the order of versions)", i, vc.Version().MinorString(), versions[i])
		}
		if want := virtual.DefaultName(versions[i]); vc.Name() != want {
			t.Errorf("cluster %d is named %s, want %s", i, vc.Name(), want)
		}
		info, err := vc.Client().Discovery().ServerVersion()
		if err != nil {
			t.Fatal(err)
		}
		if info.GitVersion != vc.Version().String() {
			t.Errorf("%s: the API server says %s", vc, info.GitVersion)
		}
		if !slices.Contains(env.Clusters(), vc) {
			t.Errorf("env.Clusters() does not list %s", vc)
		}
		if _, err := os.Stat(vc.KubeconfigPath()); err != nil {
			t.Error(err)
		}
	}
}

func TestApply(t *testing.T) {
	ctx := context.Background()
	for _, vc := range clusters {
		t.Run(vc.Version().MinorString(), func(t *testing.T) {
			ns, err := vc.NewNamespace(ctx, "apply")
			if err != nil {
				t.Fatal(err)
			}
			defer vc.DeleteNamespace(ctx, ns)
			crd := filepath.Join("testdata", "crd.yaml")
			if err := vc.ApplyIn(ctx, ns, crd, `
apiVersion: example.vmatrix.io/v1
kind: Widget
metadata: {name: w1}
spec: {size: 3}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: c1}
data: {k: v}
`); err != nil {
				t.Fatal(err)
			}
			w, err := vc.Resource(schema.GroupVersionResource{Group: "example.vmatrix.io", Version: "v1", Resource: "widgets"}).
				Namespace(ns).Get(ctx, "w1", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if size, _, _ := unstructured.NestedInt64(w.Object, "spec", "size"); size != 3 {
				t.Errorf("widget size %d, want 3", size)
			}
			cm, err := vc.Client().CoreV1().ConfigMaps(ns).Get(ctx, "c1", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			// A second apply of a changed manifest updates in place.
			if err := vc.ApplyIn(ctx, ns, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c1}\ndata: {k: w}\n"); err != nil {
				t.Fatal(err)
			}
			cm2, _ := vc.Client().CoreV1().ConfigMaps(ns).Get(ctx, "c1", metav1.GetOptions{})
			if cm2.Data["k"] != "w" || cm2.UID != cm.UID {
				t.Errorf("second apply: data %v uid %s (was %s)", cm2.Data, cm2.UID, cm.UID)
			}
			if err := vc.Apply(ctx, "no/such/file.yaml"); err == nil {
				t.Error("Apply of a missing file succeeded")
			}
		})
	}
}

// sharedHost is an option that puts a second Environment on the package's
// host, so the tests of failures need no second host.
func sharedHost(t *testing.T) framework.Option {
	t.Helper()
	if framework.HostKubeconfigPath(env) == "" {
		t.Fatal("the package environment has no host")
	}
	return framework.WithHostKubeconfig(framework.HostKubeconfigPath(env), "")
}

func TestCreateManyFailure(t *testing.T) {
	ctx := context.Background()
	state := t.TempDir()
	e, err := framework.New(sharedHost(t), framework.WithStateDir(state), framework.WithLog(testLog{t}))
	if err != nil {
		t.Fatal(err)
	}
	// 1.37.2, not 1.37: its name v1-37-2 differs from the package's v1-37.
	_, err = e.CreateMany(ctx, "1.37.2", "1.99")
	if err == nil {
		t.Fatal("CreateMany with an unknown version succeeded")
	}
	t.Logf("error: %v", err)
	var serr *framework.StepError
	if !errors.As(err, &serr) || serr.Version != "1.99" || serr.Step != "resolve" {
		t.Errorf("error %v does not name version 1.99 and step resolve", err)
	}
	if strings.Contains(err.Error(), "context canceled") {
		t.Errorf("error %q repeats the cancellation of the other clusters", err)
	}
	if len(e.Clusters()) != 0 {
		t.Errorf("clusters left in the environment: %v", e.Clusters())
	}
	if err := e.Destroy(ctx); err != nil {
		t.Fatal(err)
	}
	if left := leftovers(filepath.Join(state, "clusters", "v1-37-2"), nil); len(left) > 0 {
		t.Errorf("left: %v", left)
	}
}

func TestDestroyDuringCreate(t *testing.T) {
	ctx := context.Background()
	state := t.TempDir()
	e, err := framework.New(sharedHost(t), framework.WithStateDir(state), framework.WithLog(testLog{t}))
	if err != nil {
		t.Fatal(err)
	}
	created := make(chan error, 1)
	go func() {
		_, err := e.Create(ctx, "1.36", framework.WithName("half"))
		created <- err
	}()
	// Destroy once the apiserver process runs: the create is half-way.
	logs := filepath.Join(state, "clusters", "half", "logs")
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		if testkit.APIServerStarted(logs) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the create never started the apiserver")
		}
	}
	start := time.Now()
	var wg sync.WaitGroup
	destroyErrs := make([]error, 2)
	for i := range destroyErrs { // twice, concurrently
		wg.Add(1)
		go func() { defer wg.Done(); destroyErrs[i] = e.Destroy(ctx) }()
	}
	wg.Wait()
	t.Logf("Destroy during a create took %s", time.Since(start).Round(time.Millisecond))
	if err := errors.Join(destroyErrs...); err != nil {
		t.Fatal(err)
	}
	if err := <-created; err == nil {
		t.Error("the create cut short by Destroy succeeded")
	} else {
		t.Logf("create: %v", err)
	}
	if err := e.Destroy(ctx); err != nil {
		t.Errorf("Destroy after Destroy: %v", err)
	}
	if left := leftovers(filepath.Join(state, "clusters", "half"), nil); len(left) > 0 {
		t.Errorf("left: %v", left)
	}
	if _, err := e.Create(ctx, "1.36"); err == nil {
		t.Error("Create after Destroy succeeded")
	}
}

func TestArtifactsAndKeepOnFailure(t *testing.T) {
	ctx := context.Background()
	artifacts := t.TempDir()
	log := &syncBuffer{}
	e, err := framework.New(sharedHost(t), framework.WithArtifactsDir(artifacts), framework.WithKeepOnFailure(3*time.Second), framework.WithLog(log))
	if err != nil {
		t.Fatal(err)
	}
	vc, err := e.Create(ctx, "1.37", framework.WithName("failing"))
	if err != nil {
		t.Fatal(err)
	}
	if err := vc.Apply(ctx, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: evidence}\ndata: {k: v}\n---\n"+
		"apiVersion: v1\nkind: Pod\nmetadata: {name: witness}\nspec: {containers: [{name: app, image: registry.example/app:1}]}\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := fixtures.WaitFor(ctx, vc, fixtures.Pod("default", "witness"), fixtures.PodRunning()); err != nil {
		t.Fatal(err)
	}
	finished := make(chan error, 1)
	go func() { finished <- e.Finish(ctx, true) }()

	// While kept, the printed command reaches the cluster.
	var line string
	for deadline := time.Now().Add(30 * time.Second); line == ""; time.Sleep(50 * time.Millisecond) {
		for _, l := range strings.Split(log.String(), "\n") {
			if strings.Contains(l, "failing (v1.37") && strings.Contains(l, "kubectl --kubeconfig") {
				line = l
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no kubectl line printed; log:\n%s", log)
		}
	}
	t.Logf("printed: %s", line)
	args := strings.Fields(line[strings.Index(line, "kubectl"):])
	args = append(args[1:3], "get", "configmap", "evidence", "-o", "name")
	out, err := exec.Command("kubectl", args...).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "configmap/evidence" {
		t.Errorf("kubectl %v while kept: %v\n%s", args, err, out)
	}
	if err := <-finished; err != nil {
		t.Fatal(err)
	}
	if len(e.Clusters()) != 0 {
		t.Error("clusters left after Finish")
	}
	for _, f := range append(testkit.ComponentLogs(filepath.Join(artifacts, "failing", "logs")),
		filepath.Join(artifacts, "failing/objects/default/configmaps.yaml"),
		filepath.Join(artifacts, "failing/objects/_cluster/namespaces.yaml"),
		filepath.Join(artifacts, "failing/pods/default/witness/app.log"),
	) {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("artifact: %v", err)
		}
	}
	dump, _ := os.ReadFile(filepath.Join(artifacts, "failing/objects/default/configmaps.yaml"))
	if !bytes.Contains(dump, []byte("name: evidence")) {
		t.Errorf("the dump of configmaps lacks ours:\n%s", dump)
	}
	if podLog, _ := os.ReadFile(filepath.Join(artifacts, "failing/pods/default/witness/app.log")); !bytes.Contains(podLog, []byte("container app")) {
		t.Errorf("the pod's log in the artifacts:\n%s", podLog)
	}
}

// testLog sends an Environment's progress to the test's log.
type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestExportForTest: what an adapter does when a test fails, the artifacts
// in a folder named after the test.
func TestExportForTest(t *testing.T) {
	artifacts := t.TempDir()
	vc := ownCluster(t, "1.37", "export-for-test", framework.WithArtifactsDir(artifacts))
	dir, err := vc.ExportForTest(context.Background(), "TestDeploy/1.37 web app")
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(artifacts, "TestDeploy_1.37_web_app"); dir != want {
		t.Errorf("folder %s, want %s", dir, want)
	}
	if _, err := os.Stat(filepath.Join(dir, "objects", "default", "configmaps.yaml")); err != nil {
		t.Errorf("the object dump: %v", err)
	}
}
