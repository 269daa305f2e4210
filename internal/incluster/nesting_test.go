package incluster_test

import (
	"context"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vmatrix/vmatrix/internal/host"
	"github.com/vmatrix/vmatrix/internal/testkit"
	"github.com/vmatrix/vmatrix/internal/virtual"
	"github.com/vmatrix/vmatrix/syncer"
)

// TestNesting runs a virtual cluster whose host is another virtual cluster:
// the inner cluster's pods are synced into the middle one, whose syncer
// syncs them to the embedded host; their status climbs back up both levels.
// Deleting the middle cluster (with the inner one it hosts) leaves nothing.
func TestNesting(t *testing.T) {
	needHost(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	start := func(name, version string, h host.Host) *virtual.Cluster {
		t.Helper()
		v, bins, err := testkit.Release(ctx, version)
		if err != nil {
			t.Fatal(err)
		}
		vc, err := virtual.Start(ctx, virtual.Config{Name: name, Dir: t.TempDir(), Version: v, Binaries: bins, Host: h})
		if err != nil {
			t.Fatal(err)
		}
		return vc
	}
	middle := start("middle", "1.37", testHost)
	middleStopped := false
	defer func() {
		if !middleStopped {
			_ = middle.Delete()
		}
	}()
	// Any API server is a host: the middle cluster through its kubeconfig,
	// with its ServiceCIDR object giving the service range.
	asHost, err := host.Connect(ctx, middle.KubeconfigPath(), "")
	if err != nil {
		t.Fatal(err)
	}
	inner := start("inner", "1.36", asHost)
	innerStopped := false
	defer func() {
		if !innerStopped {
			_ = inner.Delete()
		}
	}()

	kubectl(t, inner.KubeconfigPath(), "", "create", "namespace", "shop")
	innerClient := clientFor(inner.RESTConfig())
	eventually(t, 30*time.Second, "the default ServiceAccount of shop", func(ctx context.Context) (bool, string) {
		_, err := innerClient.CoreV1().ServiceAccounts("shop").Get(ctx, "default", metav1.GetOptions{})
		return err == nil, errString(err)
	})
	kubectl(t, inner.KubeconfigPath(), deployment, "apply", "-f", "-")
	kubectl(t, inner.KubeconfigPath(), "", "-n", "shop", "wait", "--for=condition=Available", "deployment/web", "--timeout=120s")
	t.Logf("inner: kubectl get pods -o wide:\n%s", kubectl(t, inner.KubeconfigPath(), "", "-n", "shop", "get", "pods", "-o", "wide"))

	// Two translations down: the real host runs the pods, and the pod IPs
	// the inner cluster shows are the real host's.
	hostPods, err := hostClient.CoreV1().Pods(middle.HostNamespace()).List(ctx, metav1.ListOptions{LabelSelector: "app=web," + syncer.LabelManagedBy + "=middle"})
	if err != nil {
		t.Fatal(err)
	}
	innerPods, err := innerClient.CoreV1().Pods("shop").List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil {
		t.Fatal(err)
	}
	var hostIPs, innerIPs []string
	for _, p := range hostPods.Items {
		hostIPs = append(hostIPs, p.Status.PodIP)
	}
	for _, p := range innerPods.Items {
		innerIPs = append(innerIPs, p.Status.PodIP)
	}
	slices.Sort(hostIPs)
	slices.Sort(innerIPs)
	if len(hostIPs) != 3 || !slices.Equal(hostIPs, innerIPs) || slices.Contains(innerIPs, "") {
		t.Errorf("pod IPs: real host %v, inner cluster %v; want the same 3", hostIPs, innerIPs)
	}

	// Logs and exec go down both levels: the inner syncer's kubelet API
	// forwards to the middle apiserver, whose syncer forwards to the host.
	if logs := kubectl(t, inner.KubeconfigPath(), "", "-n", "shop", "logs", "deploy/web"); !strings.Contains(logs, "simulated container") {
		t.Errorf("kubectl logs through two levels:\n%s", logs)
	}
	if out, err := exec.Command("kubectl", "--kubeconfig", inner.KubeconfigPath(), "-n", "shop", "exec", "deploy/web", "--", "sh", "-c", "echo deep; exit 4").Output(); err == nil || string(out) != "deep\n" {
		t.Errorf("kubectl exec through two levels: %q, %v (want exit status 4)", out, err)
	} else if exit, ok := err.(*exec.ExitError); !ok || exit.ExitCode() != 4 {
		t.Errorf("kubectl exec through two levels: %v, want exit status 4", err)
	}

	// Deleting the middle cluster takes the one it hosts first.
	innerStopped = true
	if err := inner.Delete(); err != nil {
		t.Errorf("stopping the inner cluster: %v", err)
	}
	middleStopped = true
	if err := middle.Delete(); err != nil {
		t.Errorf("stopping the middle cluster: %v", err)
	}
	// The namespace is deleted, not waited for: the host finalizes it.
	if ns, err := hostClient.CoreV1().Namespaces().Get(ctx, middle.HostNamespace(), metav1.GetOptions{}); !apierrors.IsNotFound(err) && (err != nil || ns.DeletionTimestamp == nil) {
		t.Errorf("host namespace %s: %v, want it deleted", middle.HostNamespace(), err)
	}
	left, err := hostClient.CoreV1().Pods("").List(ctx, metav1.ListOptions{LabelSelector: syncer.LabelManagedBy})
	if err != nil || len(left.Items) > 0 {
		t.Errorf("synced pods left on the host: %v %d", err, len(left.Items))
	}
}
