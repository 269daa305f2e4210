package framework_test

import (
	"context"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/vmatrix/vmatrix/fixtures"
)

// TestUpgradeInPlace: a cluster made at 1.35 with a CRD and a custom
// resource, a Deployment, a Service, a ConfigMap and a Secret is upgraded to
// 1.36 and then 1.37. Every object keeps its UID, resourceVersions go on
// increasing, /version tells the new version, the host pods keep theirs, and
// the Deployment is never seen unavailable. Upgrades that skip a minor, go
// down or name no release are refused, with the cluster on its version.
func TestUpgradeInPlace(t *testing.T) {
	ctx := context.Background()
	vc := ownCluster(t, "1.35", "upgrade")
	ns, err := vc.NewNamespace(ctx, "up")
	if err != nil {
		t.Fatal(err)
	}
	if err := fixtures.Apply(ctx, vc, ns, fixtures.DeploymentWithService, fixtures.PodWithConfig, fixtures.CRDWithResource); err != nil {
		t.Fatal(err)
	}
	if _, err := fixtures.WaitFor(ctx, vc, fixtures.Deployment(ns, "web"), fixtures.DeploymentAvailable()); err != nil {
		t.Fatal(err)
	}
	objects := map[string]schema.GroupVersionResource{
		"web":        {Group: "apps", Version: "v1", Resource: "deployments"},
		"web-svc":    {Version: "v1", Resource: "services"},
		"app-config": {Version: "v1", Resource: "configmaps"},
		"app-secret": {Version: "v1", Resource: "secrets"},
		"gadget-1":   {Group: "fixtures.vmatrix.io", Version: "v1", Resource: "gadgets"},
	}
	uidsOf := func() map[string]string {
		uids := map[string]string{}
		for key, gvr := range objects {
			o, err := vc.Resource(gvr).Namespace(ns).Get(ctx, strings.TrimSuffix(key, "-svc"), metav1.GetOptions{})
			if err != nil {
				t.Fatalf("%s %s: %v", gvr.Resource, key, err)
			}
			uids[gvr.Resource] = string(o.GetUID())
		}
		return uids
	}
	hostPodUIDs := func() map[string]string {
		pods, err := hostClientset(t).CoreV1().Pods(vc.Info().HostNamespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		uids := map[string]string{}
		for _, p := range pods.Items {
			uids[p.Name] = string(p.UID)
		}
		return uids
	}
	uids, hostPods := uidsOf(), hostPodUIDs()
	lastRV := 0
	newRV := func(name string) int {
		cm, err := vc.Client().CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		rv, err := strconv.Atoi(cm.ResourceVersion)
		if err != nil {
			t.Fatal(err)
		}
		return rv
	}
	lastRV = newRV("before")

	for _, bad := range []string{"1.37", "1.34", "1.99"} {
		err := vc.Upgrade(ctx, bad)
		if err == nil || strings.Contains(err.Error(), "\n") {
			t.Errorf("upgrade to %s: %v, want a one-line refusal", bad, err)
		}
		t.Logf("upgrade to %s refused: %v", bad, err)
		if info, err := vc.Client().Discovery().ServerVersion(); err != nil || !strings.HasPrefix(info.GitVersion, "v1.35.") || vc.Version().MinorString() != "1.35" {
			t.Errorf("after the refused upgrade to %s the cluster serves %v (%v), says %s", bad, info, err, vc.Version())
		}
	}

	// The Deployment as any client sees it, all along; reads fail while the
	// apiserver restarts, and say nothing then.
	var watch sync.WaitGroup
	watching, stopWatching := context.WithCancel(ctx)
	var unavailable []string
	watch.Add(1)
	go func() {
		defer watch.Done()
		for watching.Err() == nil {
			d, err := vc.Client().AppsV1().Deployments(ns).Get(watching, "web", metav1.GetOptions{})
			if err == nil && d.Status.AvailableReplicas < *d.Spec.Replicas {
				unavailable = append(unavailable, fmt.Sprintf("%s: %d of %d available", time.Now().Format(time.StampMilli), d.Status.AvailableReplicas, *d.Spec.Replicas))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	for _, to := range []string{"1.36", "1.37"} {
		start := time.Now()
		if err := vc.Upgrade(ctx, to); err != nil {
			t.Fatal(err)
		}
		info, err := vc.Client().Discovery().ServerVersion()
		if err != nil || info.GitVersion != vc.Version().String() || vc.Version().MinorString() != to {
			t.Fatalf("after the upgrade to %s: /version %v (%v), the cluster says %s", to, info, err, vc.Version())
		}
		t.Logf("upgraded to %s in %s", info.GitVersion, time.Since(start).Round(10*time.Millisecond))
		if now := uidsOf(); !maps.Equal(now, uids) {
			t.Errorf("UIDs after the upgrade to %s: %v, before: %v", to, now, uids)
		}
		if rv := newRV("after-" + to); rv <= lastRV {
			t.Errorf("resourceVersion %d after the upgrade to %s, %d before it", rv, to, lastRV)
		} else {
			lastRV = rv
		}
		if now := hostPodUIDs(); !maps.Equal(now, hostPods) {
			t.Errorf("host pods after the upgrade to %s: %v, before: %v", to, now, hostPods)
		}
		// The simulated nodes' kubelets show the new version, as a kind
		// cluster's nodes do once upgraded.
		err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			nodes, err := vc.Client().CoreV1().Nodes().List(ctx, metav1.ListOptions{})
			if err != nil || len(nodes.Items) == 0 {
				return false, nil
			}
			for _, n := range nodes.Items {
				if n.Status.NodeInfo.KubeletVersion != info.GitVersion {
					return false, nil
				}
			}
			return true, nil
		})
		if err != nil {
			t.Errorf("after the upgrade to %s the nodes' kubelets do not show %s", to, info.GitVersion)
		}
	}
	stopWatching()
	watch.Wait()
	if len(unavailable) > 0 {
		t.Errorf("the Deployment was seen unavailable: %v", unavailable)
	}
}

// TestDeprecatedAPIs: a deprecated API that kubectl calls is reported with
// its caller; the v1 Endpoints the cluster's own controller manager writes
// for a Service are not the suite's and are left out.
func TestDeprecatedAPIs(t *testing.T) {
	ctx := context.Background()
	vc := ownCluster(t, "1.37", "deprecated")
	availableWeb(t, vc, "dep")
	if apis, err := vc.DeprecatedAPIs(ctx); err != nil || len(apis) != 0 {
		t.Fatalf("before any deprecated call: %v, %v", apis, err)
	}
	if out, err := kubectlErr(vc.KubeconfigPath(), "get", "componentstatuses"); err != nil {
		t.Fatalf("kubectl get componentstatuses: %v\n%s", err, out)
	}
	apis, err := vc.DeprecatedAPIs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(apis) != 1 || apis[0].Resource != "componentstatuses" || apis[0].Version != "v1" || len(apis[0].Clients) != 1 || !strings.HasPrefix(apis[0].Clients[0], "kubectl/") {
		t.Errorf("deprecated APIs: %+v, want v1 componentstatuses by kubectl", apis)
	}
}
