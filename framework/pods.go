package framework

import (
	"context"
	"fmt"
	"io"

	corev1 "k8s.io/api/core/v1"

	"github.com/vmatrix/vmatrix/internal/podexec"
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
type ExecResult = podexec.Result

// Exec runs command in a container of a pod ("" for the pod's only or
// default container), as `kubectl exec` does, and returns its output and exit
// code. A command that ran and exited non-zero is no error: its ExitCode says
// so. The error is for a command that could not be run.
func (vc *VirtualCluster) Exec(ctx context.Context, namespace, pod, container string, command ...string) (ExecResult, error) {
	res, err := podexec.Run(ctx, vc.config, namespace, pod, container, command...)
	if err != nil {
		return res, fmt.Errorf("%s: exec in pod %s/%s: %w", vc, namespace, pod, err)
	}
	return res, nil
}
