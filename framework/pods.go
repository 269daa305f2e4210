package framework

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/client-go/util/exec"
)

// PodLogs streams the log of a pod's container, as `kubectl logs` does; opts
// says which container and how (Follow, TailLines, SinceSeconds, Previous,
// Timestamps...). The caller closes the stream.
func (vc *VirtualCluster) PodLogs(ctx context.Context, namespace, pod string, opts *corev1.PodLogOptions) (io.ReadCloser, error) {
	if opts == nil {
		opts = &corev1.PodLogOptions{}
	}
	s, err := vc.client.CoreV1().Pods(namespace).GetLogs(pod, opts).Stream(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: log of pod %s/%s: %w", vc, namespace, pod, err)
	}
	return s, nil
}

// ExecResult is what a command run in a container printed and how it ended.
type ExecResult struct {
	Stdout, Stderr string
	ExitCode       int
}

// Exec runs command in a container of a pod ("" for the pod's only or
// default container), as `kubectl exec` does, and returns its output and exit
// code. A command that ran and exited non-zero is no error: its ExitCode says
// so. The error is for a command that could not be run.
func (vc *VirtualCluster) Exec(ctx context.Context, namespace, pod, container string, command ...string) (ExecResult, error) {
	req := vc.client.CoreV1().RESTClient().Post().Resource("pods").Namespace(namespace).Name(pod).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{Container: container, Command: command, Stdout: true, Stderr: true}, scheme.ParameterCodec)
	// WebSockets first, as kubectl does; SPDY where they cannot be used.
	ws, err := remotecommand.NewWebSocketExecutor(vc.config, "GET", req.URL().String())
	if err != nil {
		return ExecResult{}, err
	}
	spdy, err := remotecommand.NewSPDYExecutor(vc.config, "POST", req.URL())
	if err != nil {
		return ExecResult{}, err
	}
	exec, err := remotecommand.NewFallbackExecutor(ws, spdy, func(err error) bool {
		return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
	})
	if err != nil {
		return ExecResult{}, err
	}
	var stdout, stderr bytes.Buffer
	err = exec.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: &stdout, Stderr: &stderr})
	res := ExecResult{Stdout: stdout.String(), Stderr: stderr.String()}
	var exit utilexec.ExitError
	if errors.As(err, &exit) && exit.Exited() {
		res.ExitCode = exit.ExitStatus()
		return res, nil
	}
	if err != nil {
		return res, fmt.Errorf("%s: exec in pod %s/%s: %w", vc, namespace, pod, err)
	}
	return res, nil
}
