package framework

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/vmatrix/vmatrix/internal/pki"
)

// WebhookServer is where a test serves the admission and conversion webhooks
// that InstallWebhooks and InstallCRDs point the virtual apiservers at, as
// envtest's WebhookInstallOptions does: a host and port on this machine, and
// a folder with tls.crt and tls.key, a serving certificate signed by CAData.
// Host, Port and CertDir are what controller-runtime's webhook.Options take.
// The virtual apiservers run on this machine, so they reach the test process
// directly.
type WebhookServer struct {
	Host    string
	Port    int
	CertDir string
	CAData  []byte
}

// URL is the address of a path on the server.
func (w *WebhookServer) URL(path string) string {
	return "https://" + net.JoinHostPort(w.Host, strconv.Itoa(w.Port)) + "/" + strings.TrimPrefix(path, "/")
}

// webhookServer returns where the test serves webhooks, made on the first
// call: one for the whole Environment.
func (e *Environment) webhookServer() (*WebhookServer, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.webhooks != nil {
		return e.webhooks, nil
	}
	// In the state folder: a killed test leaves it where cleanup looks.
	dir, err := os.MkdirTemp(e.root, "webhook-")
	if err != nil {
		return nil, err
	}
	ca, err := pki.WebhookServing(dir, "127.0.0.1")
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("webhook serving certificate: %w", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("webhook port: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	e.webhooks = &WebhookServer{Host: "127.0.0.1", Port: port, CertDir: dir, CAData: ca}
	return e.webhooks, nil
}

// WebhookServer returns where the test serves webhooks, made on the first
// call: a free port on 127.0.0.1 and a serving certificate for it in a folder
// that Destroy removes. The clusters of one Environment share it.
func (vc *VirtualCluster) WebhookServer() (*WebhookServer, error) { return vc.env.webhookServer() }

// InstallWebhooks installs the ValidatingWebhookConfigurations and
// MutatingWebhookConfigurations of manifests (files, folders or inline YAML,
// as Apply reads them) with every webhook's clientConfig pointed at the
// Environment's WebhookServer: the URL https://HOST:PORT/PATH, where PATH is
// the path the configuration gives (of its service or URL), and the server's
// CA. Objects of other kinds are refused. WaitForWebhooks tells when the
// apiserver calls them.
func (vc *VirtualCluster) InstallWebhooks(ctx context.Context, manifests ...string) error {
	ws, err := vc.env.webhookServer()
	if err != nil {
		return err
	}
	objs, err := readManifests(manifests)
	if err != nil {
		return fmt.Errorf("%s: %w", vc, err)
	}
	for _, obj := range objs {
		if k := obj.GetKind(); k != "ValidatingWebhookConfiguration" && k != "MutatingWebhookConfiguration" {
			return fmt.Errorf("%s: InstallWebhooks takes webhook configurations, not %s %s", vc, k, obj.GetName())
		}
		hooks, _, _ := unstructured.NestedSlice(obj.Object, "webhooks")
		for i, h := range hooks {
			hook, _ := h.(map[string]any)
			cc, _, _ := unstructured.NestedMap(hook, "clientConfig")
			hook["clientConfig"] = pointAt(ws, cc)
			hooks[i] = hook
		}
		if err := unstructured.SetNestedSlice(obj.Object, hooks, "webhooks"); err != nil {
			return err
		}
		if err := vc.applier.apply(ctx, "", obj); err != nil {
			return fmt.Errorf("%s: installing %s %s: %w", vc, obj.GetKind(), obj.GetName(), err)
		}
	}
	return nil
}

// pointAt is a webhook clientConfig that reaches ws at the path that cc
// names.
func pointAt(ws *WebhookServer, cc map[string]any) map[string]any {
	path, _, _ := unstructured.NestedString(cc, "service", "path")
	if u, ok, _ := unstructured.NestedString(cc, "url"); ok && path == "" {
		if i := strings.Index(strings.TrimPrefix(u, "https://"), "/"); i >= 0 {
			path = strings.TrimPrefix(u, "https://")[i:]
		}
	}
	return map[string]any{"url": ws.URL(path), "caBundle": base64.StdEncoding.EncodeToString(ws.CAData)}
}

// InstallCRDs installs the CustomResourceDefinitions of manifests and waits
// until each is Established and each of its served versions is in
// discovery, as envtest's CRDInstallOptions does. A CRD whose conversion
// strategy is Webhook gets its clientConfig pointed at the Environment's
// WebhookServer (path /convert unless it names one).
func (vc *VirtualCluster) InstallCRDs(ctx context.Context, manifests ...string) error {
	objs, err := readManifests(manifests)
	if err != nil {
		return fmt.Errorf("%s: %w", vc, err)
	}
	for _, obj := range objs {
		if obj.GetKind() != "CustomResourceDefinition" {
			return fmt.Errorf("%s: InstallCRDs takes CustomResourceDefinitions, not %s %s", vc, obj.GetKind(), obj.GetName())
		}
		if strategy, _, _ := unstructured.NestedString(obj.Object, "spec", "conversion", "strategy"); strategy == "Webhook" {
			ws, err := vc.env.webhookServer()
			if err != nil {
				return err
			}
			cc, _, _ := unstructured.NestedMap(obj.Object, "spec", "conversion", "webhook", "clientConfig")
			if p, _, _ := unstructured.NestedString(cc, "service", "path"); p == "" && cc["url"] == nil {
				cc = map[string]any{"service": map[string]any{"path": "/convert"}}
			}
			if err := unstructured.SetNestedMap(obj.Object, pointAt(ws, cc), "spec", "conversion", "webhook", "clientConfig"); err != nil {
				return err
			}
		}
		if err := vc.applier.apply(ctx, "", obj); err != nil {
			return fmt.Errorf("%s: installing CRD %s: %w", vc, obj.GetName(), err)
		}
	}
	crds := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	for _, obj := range objs {
		err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
			crd, err := vc.dynamic.Resource(crds).Get(ctx, obj.GetName(), metav1.GetOptions{})
			if err != nil {
				return false, nil
			}
			return established(crd) && vc.served(crd), nil
		})
		if err != nil {
			return fmt.Errorf("%s: waiting for CRD %s to be served: %w", vc, obj.GetName(), err)
		}
	}
	return nil
}

func established(crd *unstructured.Unstructured) bool {
	conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == "Established" && m["status"] == "True" {
			return true
		}
	}
	return false
}

// served reports whether discovery lists the CRD's resource in every served
// version.
func (vc *VirtualCluster) served(crd *unstructured.Unstructured) bool {
	group, _, _ := unstructured.NestedString(crd.Object, "spec", "group")
	plural, _, _ := unstructured.NestedString(crd.Object, "spec", "names", "plural")
	versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
	for _, v := range versions {
		m, _ := v.(map[string]any)
		if m["served"] != true {
			continue
		}
		list, err := vc.client.Discovery().ServerResourcesForGroupVersion(group + "/" + fmt.Sprint(m["name"]))
		if err != nil {
			return false
		}
		found := false
		for _, r := range list.APIResources {
			found = found || r.Name == plural
		}
		if !found {
			return false
		}
	}
	return true
}

// WaitForWebhooks waits until the apiserver calls the Environment's webhook
// server: the server answers TLS with its certificate, and a probe webhook
// installed after the test's (so seen after them) reaches the server. The
// probe is removed again.
func (vc *VirtualCluster) WaitForWebhooks(ctx context.Context) error {
	ws, err := vc.env.webhookServer()
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ws.CAData)
	addr := net.JoinHostPort(ws.Host, strconv.Itoa(ws.Port))
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", addr, &tls.Config{RootCAs: pool, ServerName: ws.Host})
		if err == nil {
			c.Close()
		}
		return err == nil, nil
	})
	if err != nil {
		return fmt.Errorf("%s: the webhook server at %s does not answer TLS with its certificate: %w", vc, addr, err)
	}

	const probe = "vmatrix-webhook-probe"
	probeLabel := map[string]string{"vmatrix.io/webhook-probe": "true"}
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
		"metadata": map[string]any{"name": probe},
		"webhooks": []any{map[string]any{
			"name":                    "probe.vmatrix.io",
			"clientConfig":            pointAt(ws, map[string]any{"url": ws.URL("/" + probe)}),
			"rules":                   []any{map[string]any{"apiGroups": []any{""}, "apiVersions": []any{"v1"}, "operations": []any{"CREATE"}, "resources": []any{"configmaps"}}},
			"objectSelector":          map[string]any{"matchLabels": map[string]any{"vmatrix.io/webhook-probe": "true"}},
			"failurePolicy":           "Fail",
			"sideEffects":             "None",
			"admissionReviewVersions": []any{"v1"},
			"timeoutSeconds":          int64(5),
		}},
	}}
	if err := vc.applier.apply(ctx, "", obj); err != nil {
		return fmt.Errorf("%s: installing the webhook probe: %w", vc, err)
	}
	gvr := schema.GroupVersionResource{Group: "admissionregistration.k8s.io", Version: "v1", Resource: "validatingwebhookconfigurations"}
	defer vc.dynamic.Resource(gvr).Delete(context.WithoutCancel(ctx), probe, metav1.DeleteOptions{})
	var last error
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{GenerateName: probe + "-", Labels: probeLabel}}
		_, last = vc.client.CoreV1().ConfigMaps(metav1.NamespaceDefault).Create(ctx, cm, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		// Any answer of the server (it serves no probe: 404) shows the call
		// got there; no error means the apiserver does not see the probe yet.
		return last != nil && strings.Contains(last.Error(), "probe.vmatrix.io") && !unreachable(last), nil
	})
	if err != nil {
		return fmt.Errorf("%s: the apiserver does not call the webhook server at %s (last: %v): %w", vc, addr, last, err)
	}
	return nil
}

func unreachable(err error) bool {
	for _, s := range []string{"connection refused", "no such host", "i/o timeout", "context deadline exceeded", "certificate"} {
		if strings.Contains(err.Error(), s) {
			return true
		}
	}
	return errors.Is(err, context.DeadlineExceeded)
}

// readManifests reads the objects of several manifests, as Apply does.
func readManifests(manifests []string) ([]*unstructured.Unstructured, error) {
	var objs []*unstructured.Unstructured
	for _, m := range manifests {
		o, err := readManifest(m)
		if err != nil {
			return nil, err
		}
		objs = append(objs, o...)
	}
	return objs, nil
}

// removeWebhookServer removes the serving certificate's folder.
func (e *Environment) removeWebhookServer() error {
	e.mu.Lock()
	ws := e.webhooks
	e.webhooks = nil
	e.mu.Unlock()
	if ws == nil {
		return nil
	}
	return os.RemoveAll(filepath.Clean(ws.CertDir))
}
