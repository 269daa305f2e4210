package framework

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/vmatrix/vmatrix/internal/host"
	"github.com/vmatrix/vmatrix/internal/proc"
	"github.com/vmatrix/vmatrix/syncer"
)

// leftoverError says what a teardown left behind. Destroy returns it (joined
// with any other error) when its verification finds something.
type leftoverError struct {
	// What names the cluster or "embedded host".
	What string
	// Leftovers describe each thing found, e.g. "process 1234 (kube-apiserver)".
	Leftovers []string
}

// Error lists the leftovers.
func (e *leftoverError) Error() string {
	return fmt.Sprintf("teardown of %s left: %s", e.What, strings.Join(e.Leftovers, "; "))
}

// Destroy tears everything down: creates still running are cancelled, then
// every virtual cluster (concurrently, each in the fixed order: syncer and
// its host objects, controller-manager, apiserver, storage, files), then the
// embedded host, then the state directory if it is the Environment's own.
// Each step is bounded in time. Afterwards it verifies that no process,
// listening port, state folder or host object is left, and returns an
// error naming each one if there is.
//
// Destroy is idempotent and safe to call concurrently, twice, or after a
// create that failed half-way; every call returns the first call's result.
// Clusters attached with WithReuse are left running.
func (e *Environment) Destroy(ctx context.Context) error {
	e.destroyOnce.Do(func() { e.destroyErr = e.destroy(ctx) })
	return e.destroyErr
}

func (e *Environment) destroy(ctx context.Context) error {
	start := time.Now()
	e.cancel()
	// Creates in flight see the cancellation within their next step.
	waited := make(chan struct{})
	go func() { e.creating.Wait(); close(waited) }()
	var errs []error
	select {
	case <-waited:
	case <-time.After(e.opts.destroyTimeout):
		errs = append(errs, fmt.Errorf("creates still running after %s; tearing down anyway", e.opts.destroyTimeout))
	}
	// Serialised with a host start that might still be running.
	e.hostMu.Lock()
	defer e.hostMu.Unlock()
	e.mu.Lock()
	e.destroyed = true
	var clusters []*VirtualCluster
	for _, vc := range e.clusters {
		clusters = append(clusters, vc)
	}
	e.mu.Unlock()
	sort.Slice(clusters, func(i, j int) bool { return clusters[i].name < clusters[j].name })

	clusterErrs := make([]error, len(clusters))
	var wg sync.WaitGroup
	for i, vc := range clusters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			clusterErrs[i] = e.destroyCluster(vc)
		}()
	}
	wg.Wait()
	errs = append(errs, clusterErrs...)
	errs = append(errs, e.destroyHost(), e.removeWebhookServer())
	if e.ownRoot {
		if err := os.RemoveAll(e.root); err != nil {
			errs = append(errs, fmt.Errorf("removing %s: %w", e.root, err))
		} else if _, err := os.Stat(e.root); !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, &leftoverError{What: "environment", Leftovers: []string{"state dir " + e.root}})
		}
	}
	unregister(e)
	err := errors.Join(errs...)
	owned := 0
	for _, vc := range clusters {
		if !vc.attached {
			owned++
		}
	}
	what := fmt.Sprintf("%d virtual clusters", owned)
	if reused := len(clusters) - owned; reused > 0 {
		what += fmt.Sprintf(" (%d reused, left running)", reused)
	}
	if e.hostDir != "" {
		what += " and the embedded host"
	}
	took := time.Since(start).Round(10 * time.Millisecond)
	if err != nil {
		e.logf("teardown of %s in %s: %v", what, took, err)
	} else {
		e.logf("teardown of %s in %s, nothing left", what, took)
	}
	return err
}

// destroyCluster is the one teardown of one virtual cluster. Every path (a
// failed create, VirtualCluster.Destroy, Environment.Destroy, a signal)
// comes here; the first call does the work and later ones return its result.
func (e *Environment) destroyCluster(vc *VirtualCluster) error {
	vc.teardown.Do(func() { vc.destroyErr = e.teardownCluster(vc) })
	return vc.destroyErr
}

func (e *Environment) teardownCluster(vc *VirtualCluster) error {
	vc.mu.Lock()
	vc.destroyed = true
	inner := vc.inner // set by now, or never (Create checks destroyed)
	vc.mu.Unlock()
	defer func() {
		e.mu.Lock()
		if e.clusters[vc.name] == vc {
			delete(e.clusters, vc.name)
		}
		e.mu.Unlock()
	}()
	if vc.attached {
		return nil // a reused cluster outlives the run, by design
	}
	var errs []error
	var pids map[string]int
	port := 0
	if inner != nil {
		pids, port = inner.PIDs(), inner.Port()
		errs = append(errs, e.bounded(vc.name, pids, inner.Delete))
	}
	e.mu.Lock()
	h := e.host
	e.mu.Unlock()
	if inner != nil && h != nil {
		errs = append(errs, removeHostObjects(h, vc.name, e.opts.destroyTimeout))
	}
	if err := os.RemoveAll(vc.dir); err != nil {
		errs = append(errs, fmt.Errorf("removing %s: %w", vc.dir, err))
	}
	if inner == nil {
		h = nil // it never reached the host; what is there is not its
	}
	if err := verifyGone(vc.String(), vc.dir, pids, port, h, vc.name); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// bounded runs stop, and if it takes longer than the destroy timeout kills
// the recorded processes outright: a teardown must end.
func (e *Environment) bounded(what string, pids map[string]int, stop func() error) error {
	done := make(chan error, 1)
	go func() { done <- stop() }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("stopping %s: %w", what, err)
		}
		return nil
	case <-time.After(e.opts.destroyTimeout):
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		return fmt.Errorf("stopping %s: not done after %s; its processes were killed", what, e.opts.destroyTimeout)
	}
}

func (e *Environment) destroyHost() error {
	e.mu.Lock()
	h, dir, pids, port := e.host, e.hostDir, e.hostPIDs, e.hostPort
	e.host = nil
	e.mu.Unlock()
	if dir == "" {
		return nil // none, or an existing cluster we only connected to
	}
	var errs []error
	if h != nil {
		errs = append(errs, e.bounded("the embedded host", pids, h.Stop))
	}
	if err := os.RemoveAll(dir); err != nil {
		errs = append(errs, fmt.Errorf("removing %s: %w", dir, err))
	}
	if err := verifyGone("embedded host", dir, pids, port, nil, ""); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// verifyGone checks what a teardown must have removed: the recorded
// processes and any other process started with a path in dir, the API
// server's port, the folder, and (with a host) the cluster's host objects.
func verifyGone(what, dir string, pids map[string]int, port int, h host.Host, name string) error {
	var left []string
	names := make([]string, 0, len(pids))
	for n := range pids {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if proc.Alive(pids[n]) {
			left = append(left, fmt.Sprintf("process %d (%s)", pids[n], n))
		}
	}
	for _, pid := range proc.WithArg(dir + "/") {
		if !slicesContains(pids, pid) {
			left = append(left, fmt.Sprintf("process %d (command line names %s)", pid, dir))
		}
	}
	if port != 0 && proc.PortOpen(port) {
		left = append(left, fmt.Sprintf("listening port %d", port))
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		left = append(left, "state folder "+dir)
	}
	if h != nil {
		objs, err := hostObjects(context.Background(), h, name)
		if err != nil {
			left = append(left, fmt.Sprintf("host objects unknown (%v)", err))
		}
		left = append(left, objs...)
	}
	if len(left) > 0 {
		return &leftoverError{What: what, Leftovers: left}
	}
	return nil
}

func slicesContains(pids map[string]int, pid int) bool {
	for _, p := range pids {
		if p == pid {
			return true
		}
	}
	return false
}

// hostClient is a client of the host for the framework's own checks, which
// read v1 Endpoints on purpose: their deprecation warning is noise.
func hostClient(h host.Host) (kubernetes.Interface, error) {
	cfg := h.RESTConfig()
	cfg.Timeout = 5 * time.Second
	cfg.WarningHandler = rest.NoWarnings{}
	return kubernetes.NewForConfig(cfg)
}

// hostObjects lists what of the cluster is still on the host: the objects
// its syncer labelled as the cluster's. An empty host namespace, or one the
// host is still finalizing, is not the cluster's any more.
func hostObjects(ctx context.Context, h host.Host, name string) ([]string, error) {
	client, err := hostClient(h)
	if err != nil {
		return nil, err
	}
	return syncer.HostObjects(ctx, client, syncer.DefaultHostNamespace(name), name)
}

// hostNamespaceFree fails when the host namespace of name exists and is not
// being deleted: a cluster of the same name runs on that host, perhaps from
// another process.
func hostNamespaceFree(ctx context.Context, h host.Host, name string) error {
	client, err := hostClient(h)
	if err != nil {
		return err
	}
	ns, err := client.CoreV1().Namespaces().Get(ctx, syncer.DefaultHostNamespace(name), metav1.GetOptions{})
	if isNotFound(err) || (err == nil && ns.DeletionTimestamp != nil) {
		return nil
	}
	if err != nil {
		return err
	}
	return fmt.Errorf("the host has namespace %s already: a cluster of the same name runs there (choose another name with WithName)", ns.Name)
}

// removeHostObjects deletes what a cluster whose syncer did not tear down
// (a create that failed half-way) left on the host: its host namespace, and
// with it the objects in it. It waits until those objects are gone.
func removeHostObjects(h host.Host, name string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	client, err := hostClient(h)
	if err != nil {
		return err
	}
	if err := syncer.DeleteHostNamespace(ctx, client, name); err != nil {
		return err
	}
	for {
		objs, err := hostObjects(ctx, h, name)
		if err == nil && len(objs) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return fmt.Errorf("checking the host objects of %s: %w", name, err)
			}
			return nil // verifyGone reports what is left
		case <-time.After(100 * time.Millisecond):
		}
	}
}
