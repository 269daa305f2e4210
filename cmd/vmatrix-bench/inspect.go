package main

import (
	"bufio"
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/vmatrix/vmatrix/internal/k8sdist"
	"github.com/vmatrix/vmatrix/internal/podexec"
)

// Inspect is what looking into a pod costs: `kubectl logs` to its first line
// and an exec's round trip through the virtual apiserver, the syncer's
// kubelet API and the host, and the host requests each one makes.
type Inspect struct {
	Samples          int     `json:"samples"`
	FirstLogLine     Stat    `json:"first_log_line_seconds"`
	ExecRoundTrip    Stat    `json:"exec_round_trip_seconds"`
	HostRequestsLogs float64 `json:"host_requests_per_logs"`
	HostRequestsExec float64 `json:"host_requests_per_exec"`
}

// inspect measures samples logs and execs on one pod of a fresh cluster.
func (e *env) inspect(ctx context.Context, v k8sdist.Version, samples int) (*Inspect, error) {
	host, err := kubernetes.NewForConfig(e.host.RESTConfig())
	if err != nil {
		return nil, err
	}
	vc, _, err := e.start(ctx, v)
	if err != nil {
		return nil, err
	}
	defer teardown(vc, e.dir(vc.Name()))
	client, err := kubernetes.NewForConfig(vc.RESTConfig())
	if err != nil {
		return nil, err
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "inspect"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example/bench:1"}}}}
	if _, err := client.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		return nil, err
	}
	err = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		p, err := client.CoreV1().Pods("default").Get(ctx, "inspect", metav1.GetOptions{})
		return err == nil && p.Status.Phase == corev1.PodRunning, nil
	})
	if err != nil {
		return nil, fmt.Errorf("waiting for the pod: %w", err)
	}
	res := &Inspect{Samples: samples}
	var logs, execs []float64
	before, err := hostRequests(ctx, host, "log")
	if err != nil {
		return nil, err
	}
	for i := 0; i < samples; i++ {
		start := time.Now()
		s, err := client.CoreV1().Pods("default").GetLogs("inspect", &corev1.PodLogOptions{Follow: true}).Stream(ctx)
		if err != nil {
			return nil, err
		}
		_, err = bufio.NewReader(s).ReadString('\n')
		logs = append(logs, time.Since(start).Seconds())
		s.Close()
		if err != nil {
			return nil, fmt.Errorf("reading the first log line: %w", err)
		}
	}
	after, err := settledRequests(ctx, host, "log", before+float64(samples))
	if err != nil {
		return nil, err
	}
	res.HostRequestsLogs = (after - before) / float64(samples)
	if before, err = hostRequests(ctx, host, "exec"); err != nil {
		return nil, err
	}
	for i := 0; i < samples; i++ {
		start := time.Now()
		r, err := podexec.Run(ctx, vc.RESTConfig(), "default", "inspect", "", "true")
		if err != nil || r.ExitCode != 0 {
			return nil, fmt.Errorf("exec: %v (exit %d)", err, r.ExitCode)
		}
		execs = append(execs, time.Since(start).Seconds())
	}
	if after, err = settledRequests(ctx, host, "exec", before+float64(samples)); err != nil {
		return nil, err
	}
	res.HostRequestsExec = (after - before) / float64(samples)
	res.FirstLogLine, res.ExecRoundTrip = newStat("s", logs), newStat("s", execs)
	e.logf("inspect: first log line %.3fs, exec round trip %.3fs (medians of %d); host requests %.1f per logs, %.1f per exec",
		res.FirstLogLine.Median, res.ExecRoundTrip.Median, samples, res.HostRequestsLogs, res.HostRequestsExec)
	return res, nil
}

// settledRequests is hostRequests once it has reached want, or after a few
// seconds: a streamed request is counted when it ends, a moment after its
// client closed it, so the last one of a loop may not be counted yet.
func settledRequests(ctx context.Context, host kubernetes.Interface, subresource string, want float64) (float64, error) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, err := hostRequests(ctx, host, subresource)
		if err != nil || n >= want || time.Now().After(deadline) {
			return n, err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// hostRequests sums the host apiserver's requests to a pod subresource so far.
func hostRequests(ctx context.Context, host kubernetes.Interface, subresource string) (float64, error) {
	series, err := hostSeries(ctx, host, func(labels string) bool {
		return strings.Contains(labels, `resource="pods"`) && strings.Contains(labels, `subresource="`+subresource+`"`)
	})
	return sum(series), err
}
