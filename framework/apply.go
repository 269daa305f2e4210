package framework

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
)

// fieldManager is the server-side apply field manager of Apply.
const fieldManager = "vmatrix"

// Apply creates or updates the objects of manifests with server-side apply, in
// order. Each argument is a YAML or JSON document stream, or the path of a
// file or directory (its .yaml, .yml and .json files, in lexical order).
// Namespaced objects without a namespace go to "default".
//
// A custom resource may follow its CustomResourceDefinition in the same call:
// Apply waits (up to 30s) for the API server to serve the new kind.
func (vc *VirtualCluster) Apply(ctx context.Context, manifests ...string) error {
	return vc.ApplyIn(ctx, "", manifests...)
}

// ApplyIn is Apply with namespace as the default namespace ("" for "default").
func (vc *VirtualCluster) ApplyIn(ctx context.Context, namespace string, manifests ...string) error {
	objs, err := readManifests(manifests)
	if err != nil {
		return fmt.Errorf("%s: %w", vc, err)
	}
	for _, obj := range objs {
		if err := vc.applier.apply(ctx, namespace, obj); err != nil {
			return fmt.Errorf("%s: applying %s %s: %w", vc, obj.GetKind(), obj.GetName(), err)
		}
	}
	return nil
}

// readManifest reads a file, a directory or inline YAML.
func readManifest(m string) ([]*unstructured.Unstructured, error) {
	inline := strings.ContainsAny(m, "\n:")
	fi, err := os.Stat(m)
	switch {
	case err == nil && fi.IsDir():
		entries, err := os.ReadDir(m)
		if err != nil {
			return nil, err
		}
		var names []string
		for _, e := range entries {
			if ext := filepath.Ext(e.Name()); !e.IsDir() && (ext == ".yaml" || ext == ".yml" || ext == ".json") {
				names = append(names, e.Name())
			}
		}
		sort.Strings(names)
		var out []*unstructured.Unstructured
		for _, n := range names {
			o, err := readManifest(filepath.Join(m, n))
			if err != nil {
				return nil, err
			}
			out = append(out, o...)
		}
		return out, nil
	case err == nil:
		f, err := os.Open(m)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		objs, err := decode(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", m, err)
		}
		return objs, nil
	case inline:
		return decode(strings.NewReader(m))
	default:
		return nil, fmt.Errorf("manifest %q: %w", m, err)
	}
}

// decode splits a YAML or JSON stream into objects, skipping empty documents.
func decode(r io.Reader) ([]*unstructured.Unstructured, error) {
	d := utilyaml.NewYAMLOrJSONDecoder(r, 4096)
	var out []*unstructured.Unstructured
	for i := 1; ; i++ {
		var m map[string]any
		if err := d.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if len(m) == 0 {
			continue
		}
		obj := &unstructured.Unstructured{Object: m}
		if obj.GetKind() == "" || obj.GetAPIVersion() == "" {
			return nil, fmt.Errorf("document %d: no kind or apiVersion", i)
		}
		out = append(out, obj)
	}
}

// applier maps kinds to resources through discovery, cached, and refreshes
// the cache when a kind is unknown: it may come from a CRD applied just now.
type applier struct {
	mu     sync.Mutex
	mapper *restmapper.DeferredDiscoveryRESTMapper
	dyn    dynamic.Interface
}

func newApplier(d discovery.DiscoveryInterface, dyn dynamic.Interface) *applier {
	return &applier{mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(d)), dyn: dyn}
}

func (a *applier) mapping(ctx context.Context, obj *unstructured.Unstructured) (*meta.RESTMapping, error) {
	gvk := obj.GroupVersionKind()
	deadline := time.Now().Add(30 * time.Second)
	for {
		a.mu.Lock()
		m, err := a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil && meta.IsNoMatchError(err) {
			a.mapper.Reset()
		}
		a.mu.Unlock()
		if err == nil || !meta.IsNoMatchError(err) || time.Now().After(deadline) {
			return m, err
		}
		// A CRD becomes servable a moment after it is created; discovery has
		// no watch to wait on.
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for kind %s to be served: %w", gvk, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (a *applier) apply(ctx context.Context, namespace string, obj *unstructured.Unstructured) error {
	m, err := a.mapping(ctx, obj)
	if err != nil {
		return err
	}
	var ri dynamic.ResourceInterface = a.dyn.Resource(m.Resource)
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		ns := obj.GetNamespace()
		if ns == "" {
			ns = namespace
		}
		if ns == "" {
			ns = metav1.NamespaceDefault
		}
		obj.SetNamespace(ns)
		ri = a.dyn.Resource(m.Resource).Namespace(ns)
	}
	_, err = ri.Apply(ctx, obj.GetName(), obj, metav1.ApplyOptions{FieldManager: fieldManager, Force: true})
	return err
}

func isNotFound(err error) bool { return apierrors.IsNotFound(err) }
