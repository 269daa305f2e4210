// Package export writes what a person needs to see why something failed on a
// cluster, as `kind export logs` does: component logs, a dump of every
// object, and the logs of every pod's containers.
package export

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

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"
)

// Cluster describes one virtual cluster to export.
type Cluster struct {
	// LogsDir holds the component logs ("" for none).
	LogsDir string
	// Virtual reaches the cluster.
	Virtual *rest.Config
	// Host and HostNamespace, when set, add the host objects of the cluster.
	Host          *rest.Config
	HostNamespace string
}

// Write writes c into dir: logs/ (components), objects/NAMESPACE/RESOURCE.yaml,
// pods/NAMESPACE/POD/CONTAINER.log (and CONTAINER.previous.log for a
// container that restarted) and host-objects/. It goes on past errors and
// returns them all.
func Write(ctx context.Context, dir string, c Cluster) error {
	var errs []error
	if c.LogsDir != "" {
		errs = append(errs, CopyLogs(c.LogsDir, filepath.Join(dir, "logs")))
	}
	errs = append(errs,
		Objects(ctx, c.Virtual, filepath.Join(dir, "objects"), nil),
		PodLogs(ctx, c.Virtual, filepath.Join(dir, "pods")))
	if c.Host != nil && c.HostNamespace != "" {
		errs = append(errs, Objects(ctx, c.Host, filepath.Join(dir, "host-objects"), []string{c.HostNamespace}))
	}
	return errors.Join(errs...)
}

// PodLogs writes the log of every container (init containers included) of
// every pod: NAMESPACE/POD/CONTAINER.log, and CONTAINER.previous.log where
// the container has restarted. A container that has not started has no log
// and is passed over.
func PodLogs(ctx context.Context, cfg *rest.Config, dir string) error {
	client, err := kubernetes.NewForConfig(clientConfig(cfg))
	if err != nil {
		return err
	}
	pods, err := client.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("listing pods: %w", err)
	}
	var errs []error
	for _, pod := range pods.Items {
		statuses := append(append([]corev1.ContainerStatus{}, pod.Status.InitContainerStatuses...), pod.Status.ContainerStatuses...)
		for _, st := range statuses {
			if st.State.Waiting != nil && st.LastTerminationState.Terminated == nil {
				continue
			}
			base := filepath.Join(dir, pod.Namespace, pod.Name, st.Name)
			errs = append(errs, writePodLog(ctx, client, &pod, st.Name, false, base+".log"))
			if st.RestartCount > 0 {
				errs = append(errs, writePodLog(ctx, client, &pod, st.Name, true, base+".previous.log"))
			}
		}
	}
	return errors.Join(errs...)
}

func writePodLog(ctx context.Context, client kubernetes.Interface, pod *corev1.Pod, container string, previous bool, path string) error {
	data, err := client.CoreV1().Pods(pod.Namespace).GetLogs(pod.Name, &corev1.PodLogOptions{Container: container, Previous: previous}).DoRaw(ctx)
	if err != nil {
		return fmt.Errorf("log of %s/%s container %s: %w", pod.Namespace, pod.Name, container, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}

// CopyLogs copies the files of a logs folder.
func CopyLogs(from, to string) error {
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

// Objects writes every listable object (of namespaces, or of all
// namespaces and the cluster-scoped ones when namespaces is nil) as one YAML
// list per resource and namespace. Secrets are dumped too: these are test
// clusters, and a Secret's content is often what a failure is about.
func Objects(ctx context.Context, cfg *rest.Config, dir string, namespaces []string) error {
	cfg = clientConfig(cfg)
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

// clientConfig is cfg for an export's requests: each waits at most 10 s,
// and none waits for client-go's default limit (5 a second), which made an
// export of every resource of a cluster and its host take 15 s or more
// from a kubeconfig that sets none.
func clientConfig(cfg *rest.Config) *rest.Config {
	cfg = rest.CopyConfig(cfg)
	cfg.Timeout = 10 * time.Second
	cfg.QPS, cfg.Burst = 200, 400
	return cfg
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
