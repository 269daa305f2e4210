package framework

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vmatrix/vmatrix/internal/k8sdist"
	"github.com/vmatrix/vmatrix/internal/state"
)

// attach makes vc the running cluster of the same name that the vmatrix CLI
// recorded in the reuse state directory, if its version matches what vc asks
// for, and resets it. It reports false when there is no such cluster.
func (e *Environment) attach(ctx context.Context, vc *VirtualCluster) (bool, error) {
	root := state.DefaultRoot()
	if e.opts.reuseRoot != "" {
		root = state.Root(e.opts.reuseRoot)
	}
	dir := root.ClusterDir(vc.name)
	rec, err := state.Read(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	want, exact, err := k8sdist.ParseVersion(vc.requested)
	if err != nil {
		return false, err
	}
	have, _, err := k8sdist.ParseVersion(rec.Version)
	if err != nil {
		return false, err
	}
	if have.Major != want.Major || have.Minor != want.Minor || (exact && have.Patch != want.Patch) {
		e.logf("%s: the running cluster of %s is %s, not %s; creating one", vc.name, dir, have, vc.requested)
		return false, nil
	}
	if !rec.Ready || !rec.Running() {
		e.logf("%s: the cluster of %s is not running; creating one", vc.name, dir)
		return false, nil
	}
	if rec.Failed() {
		e.logf("%s: the cluster of %s has failed (%s); creating one", vc.name, dir, rec.FailureLine())
		return false, nil
	}
	vc.dir, vc.version, vc.attached = dir, have, true
	if err := vc.connect(filepath.Join(dir, "kubeconfig")); err != nil {
		return false, err
	}
	return true, vc.reset(ctx)
}

// reset deletes the test namespaces of earlier runs, and nothing else. It does
// not wait for their contents to go: new test namespaces get new names.
func (vc *VirtualCluster) reset(ctx context.Context) error {
	list, err := vc.client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{LabelSelector: testNamespaceLabel})
	if err != nil {
		return fmt.Errorf("resetting %s: %w", vc, err)
	}
	for _, ns := range list.Items {
		if ns.DeletionTimestamp != nil {
			continue
		}
		if err := vc.DeleteNamespace(ctx, ns.Name); err != nil {
			return fmt.Errorf("resetting %s: %w", vc, err)
		}
	}
	return nil
}
