package framework

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/vmatrix/vmatrix/internal/export"
	"github.com/vmatrix/vmatrix/internal/kubeconfig"
	"github.com/vmatrix/vmatrix/syncer"
)

// Finish ends a run: when failed, it first writes the artifacts of every
// cluster (VirtualCluster.ExportArtifacts) and of the embedded host
// and, with WithKeepOnFailure, keeps the clusters up for inspection, printing
// a kubectl command for each; then it calls Destroy. The adapters call it
// with the outcome of the tests.
func (e *Environment) Finish(ctx context.Context, failed bool) error {
	var errs []error
	if failed && len(e.Clusters()) > 0 {
		dir, err := e.exportArtifacts(ctx, "")
		if err != nil {
			errs = append(errs, err)
		}
		if dir != "" {
			e.logf("artifacts of the failed run: %s", dir)
		}
		if e.opts.keepOnFailure {
			e.keep(ctx)
		}
	}
	return errors.Join(append(errs, e.Destroy(ctx))...)
}

// keep holds the clusters up after a failure, printing how to reach them.
func (e *Environment) keep(ctx context.Context) {
	until := "this process gets SIGINT (Ctrl-C) or SIGTERM"
	var timeout <-chan time.Time
	if e.opts.keepFor > 0 {
		until = fmt.Sprintf("%s have passed or %s", e.opts.keepFor, until)
		timeout = time.After(e.opts.keepFor)
	}
	e.logf("keeping the clusters up until %s:", until)
	for _, vc := range e.Clusters() {
		e.logf("  %s: %s", vc, kubeconfig.KubectlCommand(vc.KubeconfigPath()))
	}
	if h := e.hostKubeconfigPath(); h != "" {
		e.logf("  host: %s", kubeconfig.KubectlCommand(h))
	}
	select {
	case <-timeout:
	case <-ctx.Done():
	case <-e.ctx.Done(): // Destroy started elsewhere, e.g. by a signal
	}
}

// exportArtifacts writes, for every virtual cluster and the embedded host,
// the logs of each component and a YAML dump of the objects (the host's
// restricted to what belongs to the clusters, unless it is embedded), into
// dir ("" for WithArtifactsDir, else a new temporary directory), and returns
// the directory. It is what `kind export logs` is to kind.
func (e *Environment) exportArtifacts(ctx context.Context, dir string) (string, error) {
	if dir == "" {
		var err error
		if dir, err = e.artifactsDir(); err != nil {
			return "", err
		}
	}
	var errs []error
	for _, vc := range e.Clusters() {
		errs = append(errs, vc.ExportArtifacts(ctx, filepath.Join(dir, vc.name)))
	}
	e.mu.Lock()
	h, hostDir := e.host, e.hostDir
	e.mu.Unlock()
	if hostDir != "" {
		errs = append(errs, export.CopyLogs(filepath.Join(hostDir, "logs"), filepath.Join(dir, "host", "logs")))
		if h != nil {
			errs = append(errs, export.Objects(ctx, h.RESTConfig(), filepath.Join(dir, "host", "objects"), nil))
		}
	}
	return dir, errors.Join(errs...)
}

// artifactsDir is where artifacts of failures go: WithArtifactsDir, else a
// temporary directory made on the first call. Tests that fail one at a time
// (vmatrixtest, vmatrixginkgo) put one folder per test there.
func (e *Environment) artifactsDir() (string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.opts.artifactsDir == "" {
		dir, err := os.MkdirTemp("", "vmatrix-artifacts-")
		if err != nil {
			return "", err
		}
		e.opts.artifactsDir = dir
	}
	return e.opts.artifactsDir, os.MkdirAll(e.opts.artifactsDir, 0o755)
}

// unsafeChars are what a test's name may hold that a folder's should not.
var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// ExportForTest writes the cluster's artifacts (ExportArtifacts) for a failed
// test into a folder of the Environment's artifacts folder named after the
// test, and returns that folder: what every adapter does on a failure.
func (vc *VirtualCluster) ExportForTest(ctx context.Context, test string) (string, error) {
	root, err := vc.env.artifactsDir()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(root, unsafeChars.ReplaceAllString(test, "_"))
	return dir, vc.ExportArtifacts(ctx, dir)
}

// ExportArtifacts writes the cluster's component logs (dir/logs), a dump of
// its objects (dir/objects/NAMESPACE/RESOURCE.yaml), the logs of its pods'
// containers (dir/pods/NAMESPACE/POD/CONTAINER.log) and, when the
// Environment knows its host, the objects of its host namespace
// (dir/host-objects).
func (vc *VirtualCluster) ExportArtifacts(ctx context.Context, dir string) error {
	c := export.Cluster{LogsDir: filepath.Join(vc.dir, "logs"), Virtual: vc.RESTConfig()}
	if h := vc.env.hostKubeconfigPath(); h != "" {
		vc.env.mu.Lock()
		host := vc.env.host
		vc.env.mu.Unlock()
		if host != nil {
			c.Host, c.HostNamespace = host.RESTConfig(), syncer.DefaultHostNamespace(vc.name)
		}
	}
	if err := export.Write(ctx, dir, c); err != nil {
		return fmt.Errorf("artifacts of %s: %w", vc, err)
	}
	return nil
}
