package framework_test

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/vmatrix/vmatrix/fixtures"
	"github.com/vmatrix/vmatrix/framework"
	"github.com/vmatrix/vmatrix/internal/proc"
	"github.com/vmatrix/vmatrix/internal/virtual"
	"github.com/vmatrix/vmatrix/syncer"
)

// bigDeployment is the rollout the fault tests break into: 30 replicas.
const bigDeployment = `
apiVersion: apps/v1
kind: Deployment
metadata: {name: big}
spec:
  replicas: 30
  selector: {matchLabels: {app: big}}
  template:
    metadata: {labels: {app: big}}
    spec: {containers: [{name: app, image: registry.example/app:1}]}
`

// TestComponentKilledMidRollout: kill -9 of the virtual apiserver, then of
// the controller manager (or of the one process that runs both), in the
// middle of a 30-replica rollout; each is restarted, the cluster reports
// it, and the rollout completes.
func TestComponentKilledMidRollout(t *testing.T) {
	fault(t, "kill -9 of the virtual kube-apiserver, then of the controller manager, during a 30-replica rollout")
	vc := ownCluster(t, "1.37", "faults")
	components := slices.Sorted(maps.Keys(framework.PIDs(vc)))
	if !slices.Equal(components, []string{"kube-control-plane"}) && !slices.Equal(components, []string{"kube-apiserver", "kube-controller-manager"}) {
		t.Fatalf("the cluster's processes: %v", components)
	}
	for _, component := range components {
		killMidRollout(t, vc, component, framework.PIDs(vc)[component])
	}
}

// TestStorageKilledMidRollout: kill -9 of the etcd vmatrix runs for a cluster
// in the middle of a 30-replica rollout; it is started again on its data and
// the rollout completes.
func TestStorageKilledMidRollout(t *testing.T) {
	if _, err := exec.LookPath("etcd"); err != nil {
		t.Skip("no etcd here (make deps installs it)")
	}
	fault(t, "kill -9 of the cluster's etcd during a 30-replica rollout")
	dir := t.TempDir()
	vc := ownCluster(t, "1.37", "etcd-faults", framework.WithStateDir(dir), framework.WithStorage("etcd", ""))
	etcd := 0
	for _, pid := range proc.WithArg(dir) {
		if cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); filepath.Base(strings.SplitN(string(cmd), "\x00", 2)[0]) == "etcd" {
			etcd = pid
		}
	}
	if etcd == 0 {
		t.Fatal("no etcd process of the cluster found")
	}
	killMidRollout(t, vc, "etcd", etcd)
}

// killMidRollout starts a 30-replica rollout, kills component (pid) with
// SIGKILL, and checks that the rollout completes, the component was
// restarted once, and the cluster reports no failure.
func killMidRollout(t *testing.T, vc *framework.VirtualCluster, component string, pid int) {
	t.Helper()
	ctx := context.Background()
	ns, err := vc.NewNamespace(ctx, "rollout")
	if err != nil {
		t.Fatal(err)
	}
	if err := vc.ApplyIn(ctx, ns, bigDeployment); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if _, err := fixtures.WaitFor(ctx, vc, fixtures.Deployment(ns, "big"), fixtures.DeploymentAvailable()); err != nil {
		t.Fatalf("rollout after kill -9 of %s: %v", component, err)
	}
	if n := vc.Restarts()[component]; n != 1 {
		t.Errorf("%s restarted %d times, want 1", component, n)
	}
	if err := vc.Err(); err != nil {
		t.Errorf("the cluster reports a failure: %v", err)
	}
}

// TestHostNamespaceDeletedUnderTheCluster: the syncer makes its host
// namespace again and syncs everything into it anew; a pod created
// afterwards runs too.
func TestHostNamespaceDeletedUnderTheCluster(t *testing.T) {
	fault(t, "the cluster's host namespace deleted under it")
	ctx := context.Background()
	vc := ownCluster(t, "1.37", "reaped")
	ns := availableWeb(t, vc, "reaped")
	host := hostClientset(t)
	hostNS := vc.Info().HostNamespace
	if err := host.CoreV1().Namespaces().Delete(ctx, hostNS, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	// Made again, with the Deployment's pods and the Service in it.
	err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		n, err := host.CoreV1().Namespaces().Get(ctx, hostNS, metav1.GetOptions{})
		if err != nil || n.DeletionTimestamp != nil {
			return false, nil
		}
		pods, err := host.CoreV1().Pods(hostNS).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, nil
		}
		running := 0
		for _, p := range pods.Items {
			if p.Status.Phase == corev1.PodRunning {
				running++
			}
		}
		svcs, err := host.CoreV1().Services(hostNS).List(ctx, metav1.ListOptions{})
		return running == 2 && err == nil && len(svcs.Items) == 1, nil
	})
	if err != nil {
		t.Fatalf("the host namespace and its objects were not made again: %v", err)
	}
	if err := vc.ApplyIn(ctx, ns, "apiVersion: v1\nkind: Pod\nmetadata: {name: later}\nspec: {containers: [{name: app, image: registry.example/app:1}]}\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := fixtures.WaitFor(ctx, vc, fixtures.Pod(ns, "later"), fixtures.PodRunning()); err != nil {
		t.Fatalf("a pod created after the namespace came back: %v", err)
	}
}

func hostClientset(t *testing.T) kubernetes.Interface {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", framework.HostKubeconfigPath(env))
	if err != nil {
		t.Fatal(err)
	}
	return kubernetes.NewForConfigOrDie(cfg)
}

// TestHostAPIServerKilledUnderRunningSyncers: the embedded host's apiserver
// is killed during a rollout; its supervisor starts it again, the syncers
// catch up, and the host ends with exactly the virtual cluster's pods, no
// duplicate and no orphan.
func TestHostAPIServerKilledUnderRunningSyncers(t *testing.T) {
	fault(t, "kill -9 of the host kube-apiserver during a 30-replica rollout")
	ctx := context.Background()
	vc := clusters[len(clusters)-1]
	ns, err := vc.NewNamespace(ctx, "host-restart")
	if err != nil {
		t.Fatal(err)
	}
	defer vc.DeleteNamespace(ctx, ns)
	if err := vc.ApplyIn(ctx, ns, bigDeployment); err != nil {
		t.Fatal(err)
	}
	apiserver := 0
	for _, pid := range proc.WithArg(filepath.Dir(framework.HostKubeconfigPath(env))) {
		// kube-apiserver, or kube-control-plane-HASH that runs it with
		// the controller manager.
		cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if exe := filepath.Base(strings.SplitN(string(cmd), "\x00", 2)[0]); exe == "kube-apiserver" || strings.HasPrefix(exe, "kube-control-plane") {
			apiserver = pid
		}
	}
	if apiserver == 0 {
		t.Fatal("no host apiserver process found")
	}
	if err := syscall.Kill(apiserver, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if _, err := fixtures.WaitFor(ctx, vc, fixtures.Deployment(ns, "big"), fixtures.DeploymentAvailable()); err != nil {
		t.Fatalf("rollout after kill -9 of the host apiserver: %v", err)
	}
	virtual, err := vc.Client().CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=big"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, p := range virtual.Items {
		want[syncer.HostName(p.Name, ns, vc.Name())] = true
	}
	err = wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		hostPods, err := hostClientset(t).CoreV1().Pods(vc.Info().HostNamespace).List(ctx, metav1.ListOptions{LabelSelector: "app=big"})
		if err != nil {
			return false, nil
		}
		got := map[string]bool{}
		for _, p := range hostPods.Items {
			got[p.Name] = true
		}
		return len(hostPods.Items) == 30 && maps.Equal(got, want), nil
	})
	if err != nil {
		t.Errorf("the host does not hold exactly the 30 pods of the virtual cluster: %v", err)
	}
}

// TestSoak creates and destroys ten clusters of two versions at once, five
// rounds, on the package's host: every round's teardown is verified (no
// process, port, folder or host object left) and the host keeps no
// namespace of a soak cluster. Each round's create time is logged against
// the first's; the 1.5x bound is a benchmark's to hold, not a test's.
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("minutes of creating and destroying clusters")
	}
	fault(t, "soak: 10 clusters of 2 versions created and destroyed at once, 5 rounds")
	ctx := context.Background()
	versions := []string{clusters[1].Version().SemVer(), clusters[2].Version().SemVer()}
	var first time.Duration
	for round := 1; round <= 5; round++ {
		state := t.TempDir()
		e, err := framework.New(sharedHost(t), framework.WithStateDir(state), framework.WithLog(io.Discard))
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		g, gctx := errgroup.WithContext(ctx)
		for i := 0; i < 10; i++ {
			g.Go(func() error {
				_, err := e.Create(gctx, versions[i%2], framework.WithName(fmt.Sprintf("soak-%d", i)))
				return err
			})
		}
		err = g.Wait()
		took := time.Since(start)
		if derr := e.Destroy(ctx); derr != nil {
			t.Fatalf("round %d: teardown: %v", round, derr)
		}
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		entries, _ := os.ReadDir(filepath.Join(state, "clusters"))
		if pids := proc.WithArg(state); len(entries) > 0 || len(pids) > 0 {
			t.Fatalf("round %d left folders %v and processes %v", round, entries, pids)
		}
		if round == 1 {
			first = took
		}
		t.Logf("round %d: 10 clusters created in %s (%.2fx the first round), destroyed, nothing left", round, took.Round(10*time.Millisecond), took.Seconds()/first.Seconds())
	}
	namespaces, err := hostClientset(t).CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range namespaces.Items {
		if strings.HasPrefix(ns.Name, "vmatrix-soak-") && ns.DeletionTimestamp == nil {
			t.Errorf("host namespace %s left by the soak", ns.Name)
		}
	}
}

// faults is the table of fault tests that TestMain prints after the run.
var faults struct {
	mu   sync.Mutex
	rows []string
	ok   int
}

// fault records that t tries a fault; its outcome goes into the table.
func fault(t *testing.T, what string) {
	t.Cleanup(func() {
		faults.mu.Lock()
		defer faults.mu.Unlock()
		outcome := "survived, nothing left"
		if t.Failed() {
			outcome = "FAILED"
		} else {
			faults.ok++
		}
		faults.rows = append(faults.rows, fmt.Sprintf("| %s | %s |", what, outcome))
	})
}

// faultTable is the summary of the fault tests run, "" if none ran.
func faultTable() string {
	faults.mu.Lock()
	defer faults.mu.Unlock()
	if len(faults.rows) == 0 {
		return ""
	}
	return fmt.Sprintf("faults tried: %d, survived: %d\n| fault | outcome |\n|---|---|\n%s\n",
		len(faults.rows), faults.ok, strings.Join(faults.rows, "\n"))
}

// TestCreateFinishingAfterDestroy: a create whose start outlasts a Destroy
// that gave up waiting for it (a start that does not heed cancellation) must
// not hand back a live cluster nobody tears down: it stops what it started.
func TestCreateFinishingAfterDestroy(t *testing.T) {
	fault(t, "a create that finishes after Destroy gave up waiting for it")
	started, release := make(chan struct{}), make(chan struct{})
	real := *framework.StartCluster
	*framework.StartCluster = func(ctx context.Context, cfg virtual.Config) (*virtual.Cluster, error) {
		vc, err := real(ctx, cfg)
		close(started)
		<-release // past the Destroy, as a start that ignores its context would be
		return vc, err
	}
	defer func() { *framework.StartCluster = real }()

	dir := t.TempDir()
	e, err := framework.New(sharedHost(t), framework.WithStateDir(dir), framework.WithLog(testLog{t}), framework.WithTimeouts(0, 2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	created := make(chan error, 1)
	go func() {
		_, err := e.Create(context.Background(), "1.37", framework.WithName("late"))
		created <- err
	}()
	select {
	case <-started:
	case err := <-created:
		t.Fatalf("the create ended before its start did: %v", err)
	}
	if err := e.Destroy(context.Background()); err == nil || !strings.Contains(err.Error(), "creates still running") {
		t.Errorf("Destroy did not say it gave up waiting: %v", err)
	}
	close(release)
	if err := <-created; err == nil || !strings.Contains(err.Error(), "destroyed while the cluster was being created") {
		t.Errorf("the late create returned %v", err)
	}
	if left := leftovers(filepath.Join(dir, "clusters", "late"), nil); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
	ns, err := hostClientset(t).CoreV1().Namespaces().Get(context.Background(), syncer.DefaultHostNamespace("late"), metav1.GetOptions{})
	if err == nil && ns.DeletionTimestamp == nil {
		t.Errorf("host namespace %s left behind", ns.Name)
	}
}
