package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"

	"github.com/vmatrix/vmatrix/framework"
	"github.com/vmatrix/vmatrix/internal/k8sdist"
)

// Sync is the rollout of one large Deployment through the syncer.
type Sync struct {
	Replicas int `json:"replicas"`
	// Seconds from the Deployment's create to all its pods Running in the
	// virtual cluster.
	Seconds   Stat `json:"seconds"`
	PodsPerS  Stat `json:"pods_per_second"`
	HostWrite Stat `json:"host_write_requests_per_pod"`
}

// Rerun compares a suite's first cluster when it is created (cold, host
// included) with attaching to one left running (reuse mode).
type Rerun struct {
	ColdSeconds   Stat    `json:"cold_seconds"`
	AttachSeconds Stat    `json:"attach_seconds"`
	Speedup       float64 `json:"speedup"`
}

// sync applies a Deployment of replicas to a fresh cluster per run and counts
// the host's write requests (apiserver_request_total) the rollout cost.
func (e *env) sync(ctx context.Context, v k8sdist.Version, replicas int) (*Sync, error) {
	host, err := kubernetes.NewForConfig(e.host.RESTConfig())
	if err != nil {
		return nil, err
	}
	var secs, rates, writes []float64
	for i := 0; i < e.cfg.Runs; i++ {
		vc, _, err := e.start(ctx, v)
		if err != nil {
			return nil, err
		}
		cfg := vc.RESTConfig()
		cfg.QPS, cfg.Burst = -1, 0 // the figure is the harness's, not this client's limit
		client, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			return nil, err
		}
		before, err := hostWrites(ctx, host)
		if err != nil {
			return nil, err
		}
		start := time.Now()
		if _, err := client.AppsV1().Deployments("default").Create(ctx, deployment(int32(replicas)), metav1.CreateOptions{}); err != nil {
			return nil, err
		}
		err = waitRunning(ctx, client, replicas)
		took := time.Since(start).Seconds()
		if err != nil {
			return nil, fmt.Errorf("waiting for %d pods to run: %w", replicas, err)
		}
		after, err := hostWrites(ctx, host)
		if err != nil {
			return nil, err
		}
		secs, rates = append(secs, took), append(rates, float64(replicas)/took)
		writes = append(writes, (sum(after)-sum(before))/float64(replicas))
		e.logf("sync: %d pods running in %.2fs (%.0f pods/s), %.2f host writes per pod (%s)", replicas, took, float64(replicas)/took, writes[len(writes)-1], writesByKind(before, after))
		if err := teardown(vc, e.dir(vc.Name())); err != nil {
			return nil, err
		}
	}
	return &Sync{Replicas: replicas, Seconds: newStat("s", secs), PodsPerS: newStat("pods/s", rates), HostWrite: newStat("requests", writes)}, nil
}

// waitRunning waits, by a watch as kubectl rollout status does, for replicas
// pods of the Deployment to be Running. Listing them all again and again
// would load the apiserver whose speed is being measured.
func waitRunning(ctx context.Context, client kubernetes.Interface, replicas int) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	pods := client.CoreV1().Pods("default")
	selector := func(o *metav1.ListOptions) { o.LabelSelector = "app=bench" }
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			selector(&o)
			return pods.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			selector(&o)
			return pods.Watch(ctx, o)
		},
	}
	running := map[string]bool{}
	_, err := watchtools.UntilWithSync(ctx, lw, &corev1.Pod{}, nil, func(ev watch.Event) (bool, error) {
		p, ok := ev.Object.(*corev1.Pod)
		if !ok {
			return false, nil
		}
		if ev.Type == watch.Deleted || p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning {
			delete(running, p.Name)
		} else {
			running[p.Name] = true
		}
		return len(running) == replicas, nil
	})
	return err
}

func deployment(replicas int32) *appsv1.Deployment {
	labels := map[string]string{"app": "bench"}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "bench"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example/bench:1"}}},
			},
		},
	}
}

// hostWrites reads the host apiserver's write requests so far, by series.
func hostWrites(ctx context.Context, host kubernetes.Interface) (map[string]float64, error) {
	return hostSeries(ctx, host, func(labels string) bool {
		for _, verb := range []string{`verb="POST"`, `verb="PUT"`, `verb="PATCH"`, `verb="DELETE"`, `verb="APPLY"`} {
			if strings.Contains(labels, verb) {
				return true
			}
		}
		return false
	})
}

// hostSeries reads the host apiserver's apiserver_request_total series
// whose labels match, by their labels.
func hostSeries(ctx context.Context, host kubernetes.Interface, match func(labels string) bool) (map[string]float64, error) {
	raw, err := host.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the host's metrics: %w", err)
	}
	series := map[string]float64{}
	scanner := bufio.NewScanner(strings.NewReader(string(raw)))
	scanner.Buffer(make([]byte, 1024*1024), 16*1024*1024)
	for scanner.Scan() {
		line := scanner.Text()
		if !strings.HasPrefix(line, "apiserver_request_total{") || !match(line) {
			continue
		}
		cut := strings.LastIndexByte(line, ' ')
		if n, err := strconv.ParseFloat(line[cut+1:], 64); err == nil {
			series[line[:cut]] += n
		}
	}
	return series, nil
}

func sum(series map[string]float64) float64 {
	total := 0.0
	for _, n := range series {
		total += n
	}
	return total
}

// writesByKind says which writes a rollout cost, as "verb resource/subresource
// count", the most first: what to look at when the figure moves.
func writesByKind(before, after map[string]float64) string {
	counts := map[string]float64{}
	for labels, n := range after {
		if d := n - before[labels]; d > 0 {
			counts[label(labels, "verb")+" "+strings.TrimSuffix(label(labels, "resource")+"/"+label(labels, "subresource"), "/")] += d
		}
	}
	kinds := make([]string, 0, len(counts))
	for k := range counts {
		kinds = append(kinds, k)
	}
	sort.Slice(kinds, func(i, j int) bool {
		return counts[kinds[i]] > counts[kinds[j]] || counts[kinds[i]] == counts[kinds[j]] && kinds[i] < kinds[j]
	})
	parts := make([]string, len(kinds))
	for i, k := range kinds {
		parts[i] = fmt.Sprintf("%s %.0f", k, counts[k])
	}
	return strings.Join(parts, ", ")
}

// label is the value of name in a Prometheus series' labels.
func label(series, name string) string {
	_, rest, ok := strings.Cut(series, name+`="`)
	if !ok {
		return ""
	}
	value, _, _ := strings.Cut(rest, `"`)
	return value
}

// rerun measures a cold first cluster through the framework, host included,
// against attaching to a running one as a rerun in reuse mode does.
func (e *env) rerun(ctx context.Context, version string) (*Rerun, error) {
	var cold, attach []float64
	for i := 0; i < e.cfg.Runs; i++ {
		env, err := framework.New(framework.WithStateDir(e.dir(fmt.Sprintf("rerun-%d", i))), framework.WithSignalHandling(false))
		if err != nil {
			return nil, err
		}
		start := time.Now()
		vc, err := env.Create(ctx, version)
		if err != nil {
			return nil, err
		}
		cold = append(cold, time.Since(start).Seconds())
		start = time.Now()
		again, err := framework.Connect(ctx, vc.Info())
		if err == nil {
			_, err = again.Client().Discovery().ServerVersion()
		}
		attach = append(attach, time.Since(start).Seconds())
		if err := errors.Join(err, env.Destroy(ctx)); err != nil {
			return nil, err
		}
		e.logf("rerun: cold %.2fs, attach %.3fs", cold[len(cold)-1], attach[len(attach)-1])
	}
	r := &Rerun{ColdSeconds: newStat("s", cold), AttachSeconds: newStat("s", attach)}
	r.Speedup = r.ColdSeconds.Median / r.AttachSeconds.Median
	return r, nil
}
