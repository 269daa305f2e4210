package syncer_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"

	"github.com/vmatrix/vmatrix/internal/controlplane"
	"github.com/vmatrix/vmatrix/internal/testkit"
	"github.com/vmatrix/vmatrix/syncer"
)

// startControlPlane starts a bare virtual control plane, for tests that run
// the syncer themselves.
func startControlPlane(t testing.TB, name, version string) *controlplane.ControlPlane {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	v, bins, err := testkit.Release(ctx, version)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := controlplane.Start(ctx, controlplane.Config{Name: name, Dir: t.TempDir(), Version: v, Binaries: bins, ServiceCIDR: testHost.ServiceCIDR()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cp.Stop() })
	return cp
}

func startSyncer(t testing.TB, name string, virtual, host *rest.Config) *syncer.Syncer {
	t.Helper()
	return startSyncerWith(t, syncer.Options{Name: name, Virtual: virtual, Host: host, MirrorAllNodes: true})
}

func startSyncerWith(t testing.TB, opts syncer.Options) *syncer.Syncer {
	t.Helper()
	s, err := syncer.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return s
}

// teardown removes what a syncer made on the host.
func teardown(t testing.TB, s *syncer.Syncer) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := s.Delete(ctx); err != nil {
		t.Error(err)
	}
}

// TestRestartMidRollout stops the syncer while a Deployment rolls out and
// starts a new one: the result is exactly one host pod (and one token Secret)
// per virtual pod, none left over, and no virtual pod replaced.
func TestRestartMidRollout(t *testing.T) {
	needsHost(t)
	const replicas = 30
	for _, version := range versions() {
		t.Run(version, func(t *testing.T) {
			name := "r" + strings.ReplaceAll(version, ".", "")
			cp := startControlPlane(t, name, version)
			first := startSyncer(t, name, cp.RESTConfig(), testHost.RESTConfig())
			t.Cleanup(func() { teardown(t, first) })
			hostNS := first.HostNamespace()
			kc := cp.KubeconfigPath()
			kubectl(t, kc, strings.NewReplacer("replicas: 3", fmt.Sprintf("replicas: %d", replicas), "namespace: shop", "namespace: default").Replace(deployment), "apply", "-f", "-")

			// Stop once the rollout is under way on the host, not finished.
			eventually(t, 60*time.Second, "the rollout under way", func(ctx context.Context) (bool, string) {
				pods, err := hostClient.CoreV1().Pods(hostNS).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
				if err != nil {
					return false, err.Error()
				}
				started := 0
				for _, p := range pods.Items {
					if p.Status.PodIP != "" {
						started++
					}
				}
				return started >= 5, fmt.Sprintf("%d host pods, %d started", len(pods.Items), started)
			})
			first.Stop()
			v := clientFor(cp.RESTConfig())
			mid, err := v.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{LabelSelector: "app=web"})
			if err != nil {
				t.Fatal(err)
			}
			running := 0
			for _, p := range mid.Items {
				if p.Spec.NodeName != "" {
					running++
				}
			}
			t.Logf("stopped with %d of %d virtual pods bound", running, len(mid.Items))

			second := startSyncer(t, name, cp.RESTConfig(), testHost.RESTConfig())
			t.Cleanup(func() { teardown(t, second) })
			kubectl(t, kc, "", "wait", "--for=condition=Available", "deployment/web", "--timeout=120s")

			// Exactly the right objects, once things settle.
			var last string
			err = wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
				vpods, err := v.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
				if err != nil {
					return false, nil
				}
				want := []string{}
				uids := map[string]string{}
				for _, p := range vpods.Items {
					want = append(want, "pods/"+syncer.HostName(p.Name, "default", name))
					uids[p.Name] = string(p.UID)
				}
				want = append(want, "configmaps/"+syncer.HostName("kube-root-ca.crt", "default", name))
				got, err := hostObjectsOf(ctx, hostNS, syncer.LabelManagedBy+"="+name)
				if err != nil {
					return false, nil
				}
				sort.Strings(want)
				sort.Strings(got)
				if strings.Join(want, " ") != strings.Join(got, " ") {
					last = fmt.Sprintf("host objects:\n got %v\nwant %v", got, want)
					return false, nil
				}
				hpods, err := hostClient.CoreV1().Pods(hostNS).List(ctx, metav1.ListOptions{})
				if err != nil {
					return false, nil
				}
				for _, h := range hpods.Items {
					if uids[h.Annotations[syncer.AnnotationName]] != h.Annotations[syncer.AnnotationUID] {
						last = "host pod " + h.Name + " copies another virtual pod"
						return false, nil
					}
				}
				if len(vpods.Items) != replicas {
					last = fmt.Sprintf("%d virtual pods", len(vpods.Items))
					return false, nil
				}
				return true, nil
			})
			if err != nil {
				t.Fatalf("%v: %s", err, last)
			}
			// No virtual pod of the first syncer's time was replaced.
			after, err := v.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{})
			if err != nil {
				t.Fatal(err)
			}
			known := map[string]bool{}
			for _, p := range after.Items {
				known[string(p.UID)] = true
			}
			for _, p := range mid.Items {
				if !known[string(p.UID)] {
					t.Errorf("virtual pod %s was replaced across the restart", p.Name)
				}
			}
		})
	}
}
