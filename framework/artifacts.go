package framework

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"
)

// Finish ends a run: when failed, it first writes artifacts (ExportArtifacts)
// and, with WithKeepOnFailure, keeps the clusters up for inspection, printing
// a kubectl command for each; then it calls Destroy. The adapters call it
// with the outcome of the tests.
func (e *Environment) Finish(ctx context.Context, failed bool) error {
	var errs []error
	if failed && len(e.Clusters()) > 0 {
		dir, err := e.ExportArtifacts(ctx, "")
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
		e.logf("  %s: %s", vc, vc.KubectlCommand())
	}
	if h := e.HostKubeconfigPath(); h != "" {
		e.logf("  host: kubectl --kubeconfig %s get all -A", h)
	}
	select {
	case <-timeout:
	case <-ctx.Done():
	case <-e.ctx.Done(): // Destroy started elsewhere, e.g. by a signal
	}
}

// ExportArtifacts writes, for every virtual cluster and the embedded host,
// the logs of each component and a YAML dump of the objects (the host's
// restricted to what belongs to the clusters, unless it is embedded), into
// dir ("" for WithArtifactsDir, else a new temporary directory), and returns
// the directory. It is what `kind export logs` is to kind.
func (e *Environment) ExportArtifacts(ctx context.Context, dir string) (string, error) {
	if dir == "" {
		var err error
		if dir, err = e.ArtifactsDir(); err != nil {
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
		errs = append(errs, copyLogs(filepath.Join(hostDir, "logs"), filepath.Join(dir, "host", "logs")))
		if h != nil {
			errs = append(errs, dumpObjects(ctx, h.RESTConfig(), filepath.Join(dir, "host", "objects"), nil))
		}
	}
	return dir, errors.Join(errs...)
}

// ArtifactsDir is where artifacts of failures go: WithArtifactsDir, else a
// temporary directory made on the first call. Tests that fail one at a time
// (vmatrixtest, vmatrixginkgo) put one folder per test there.
func (e *Environment) ArtifactsDir() (string, error) {
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

// ExportArtifacts writes the cluster's component logs (dir/logs) and a dump
// of its objects (dir/objects/NAMESPACE/RESOURCE.yaml), and, when the
// Environment knows its host, the objects of its host namespace
// (dir/host-objects).
func (vc *VirtualCluster) ExportArtifacts(ctx context.Context, dir string) error {
	errs := []error{
		copyLogs(filepath.Join(vc.dir, "logs"), filepath.Join(dir, "logs")),
		dumpObjects(ctx, vc.RESTConfig(), filepath.Join(dir, "objects"), nil),
	}
	if h := vc.env.HostKubeconfigPath(); h != "" {
		vc.env.mu.Lock()
		host := vc.env.host
		vc.env.mu.Unlock()
		if host != nil {
			errs = append(errs, dumpObjects(ctx, host.RESTConfig(), filepath.Join(dir, "host-objects"), []string{HostNamespace(vc.name)}))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("artifacts of %s: %w", vc, err)
	}
	return nil
}

func copyLogs(from, to string) error {
	entries, err := os.ReadDir(from)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := os.MkdirAll(to, 0o755); err != nil {
		return err
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		if err := copyFile(filepath.Join(from, e.Name()), filepath.Join(to, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// dumpObjects writes every listable object (of namespaces, or of all
// namespaces and the cluster-scoped ones when namespaces is nil) as one YAML
// list per resource and namespace. Secrets are dumped too: these are test
// clusters, and a Secret's content is often what a failure is about.
func dumpObjects(ctx context.Context, cfg *rest.Config, dir string, namespaces []string) error {
	cfg.Timeout = 10 * time.Second
	// Listing every resource touches deprecated ones; their warnings are noise.
	cfg.WarningHandler = rest.NoWarnings{}
	disc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	// Partial discovery failures (an aggregated API down) still leave the rest.
	lists, _ := disc.ServerPreferredResources()
	var errs []error
	for _, list := range lists {
		gv, err := schema.ParseGroupVersion(list.GroupVersion)
		if err != nil {
			continue
		}
		for _, r := range list.APIResources {
			if strings.Contains(r.Name, "/") || !hasVerb(r.Verbs, "list") {
				continue
			}
			if namespaces != nil && !r.Namespaced {
				continue
			}
			gvr := gv.WithResource(r.Name)
			scopes := []string{metav1.NamespaceAll}
			if namespaces != nil {
				scopes = namespaces
			}
			for _, ns := range scopes {
				objs, err := dyn.Resource(gvr).Namespace(ns).List(ctx, metav1.ListOptions{})
				if err != nil {
					errs = append(errs, fmt.Errorf("listing %s: %w", gvr, err))
					continue
				}
				if len(objs.Items) == 0 {
					continue
				}
				byNS := map[string][]any{}
				for _, o := range objs.Items {
					key := o.GetNamespace()
					if key == "" {
						key = "_cluster"
					}
					byNS[key] = append(byNS[key], o.Object)
				}
				for key, items := range byNS {
					errs = append(errs, writeYAML(filepath.Join(dir, key, resourceFile(gvr)), items))
				}
			}
		}
	}
	return errors.Join(errs...)
}

func resourceFile(gvr schema.GroupVersionResource) string {
	if gvr.Group == "" {
		return gvr.Resource + ".yaml"
	}
	return gvr.Resource + "." + gvr.Group + ".yaml"
}

func writeYAML(path string, items []any) error {
	sort.Slice(items, func(i, j int) bool { return objectName(items[i]) < objectName(items[j]) })
	data, err := yaml.Marshal(map[string]any{"apiVersion": "v1", "kind": "List", "items": items})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}

func objectName(o any) string {
	m, _ := o.(map[string]any)
	md, _ := m["metadata"].(map[string]any)
	s, _ := md["name"].(string)
	return s
}

func hasVerb(verbs []string, v string) bool {
	for _, x := range verbs {
		if x == v {
			return true
		}
	}
	return false
}
