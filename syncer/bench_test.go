package syncer_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
)

// BenchmarkRollout100 measures a 100-replica Deployment from its creation in
// the virtual cluster until all its virtual pods are Running: pods per second,
// and host API requests per synced pod, counted by the host apiserver
// (apiserver_request_total: the syncer, scheduler, KWOK and controllers
// together) and by the syncer's own host client.
//
//	go test ./syncer -run '^$' -bench Rollout100 -benchtime 1x -timeout 20m
func BenchmarkRollout100(b *testing.B) {
	needsHost(b)
	const replicas = 100
	for _, version := range versions() {
		b.Run(version, func(b *testing.B) {
			name := "b" + strings.ReplaceAll(version, ".", "")
			cp := startControlPlane(b, name, version)
			var syncerRequests atomic.Int64
			hostCfg := testHost.RESTConfig()
			hostCfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
				return roundTripFunc(func(r *http.Request) (*http.Response, error) {
					syncerRequests.Add(1)
					return rt.RoundTrip(r)
				})
			})
			s := startSyncer(b, name, cp.RESTConfig(), hostCfg)
			b.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
				defer cancel()
				if err := s.Delete(ctx); err != nil {
					b.Error(err)
				}
			})
			v := clientFor(cp.RESTConfig())
			var elapsed time.Duration
			var hostReqs, ownReqs float64
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				ns := fmt.Sprintf("bench%d", i)
				if _, err := v.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
					b.Fatal(err)
				}
				waitServiceAccount(b, v, ns)
				manifest := strings.NewReplacer("replicas: 3", fmt.Sprintf("replicas: %d", replicas), "namespace: shop", "namespace: "+ns).Replace(deployment)
				before := hostRequests(b)
				own := syncerRequests.Load()
				b.StartTimer()
				start := time.Now()
				kubectl(b, cp.KubeconfigPath(), manifest, "apply", "-f", "-")
				err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 5*time.Minute, true, func(ctx context.Context) (bool, error) {
					pods, err := v.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
					if err != nil {
						return false, nil
					}
					n := 0
					for _, p := range pods.Items {
						if p.Status.Phase == corev1.PodRunning && p.Spec.NodeName != "" {
							n++
						}
					}
					return n == replicas, nil
				})
				if err != nil {
					b.Fatal(err)
				}
				elapsed += time.Since(start)
				b.StopTimer()
				hostReqs += hostRequests(b) - before
				ownReqs += float64(syncerRequests.Load() - own)
				kubectl(b, cp.KubeconfigPath(), "", "delete", "namespace", ns, "--wait=false")
			}
			pods := float64(b.N * replicas)
			b.ReportMetric(pods/elapsed.Seconds(), "pods/s")
			b.ReportMetric(hostReqs/pods, "host-req/pod")
			b.ReportMetric(ownReqs/pods, "syncer-host-req/pod")
		})
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func waitServiceAccount(tb testing.TB, v kubernetes.Interface, ns string) {
	tb.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := v.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
	if err != nil {
		tb.Fatal(err)
	}
}

// hostRequests is the sum of the host apiserver's apiserver_request_total.
func hostRequests(tb testing.TB) float64 {
	tb.Helper()
	raw, err := hostClient.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	sum := 0.0
	sc := bufio.NewScanner(strings.NewReader(string(raw)))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "apiserver_request_total{") {
			continue
		}
		f, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err == nil {
			sum += f
		}
	}
	return sum
}
