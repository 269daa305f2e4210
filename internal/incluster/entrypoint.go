package incluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"

	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"github.com/vmatrix/vmatrix/internal/controlplane"
	"github.com/vmatrix/vmatrix/internal/k8sdist"
	"github.com/vmatrix/vmatrix/internal/storage"
	"github.com/vmatrix/vmatrix/internal/virtual"
	"github.com/vmatrix/vmatrix/syncer"
)

// Config is the control plane's configuration file, which the chart mounts
// from its ConfigMap at /etc/vmatrix/config.yaml.
type Config struct {
	// Name is the virtual cluster's name (the release's).
	Name string `json:"name"`
	// KubernetesVersion is the exact version of the binaries to run.
	KubernetesVersion string `json:"kubernetesVersion"`
	// ServiceName is the Service in front of the pod; the serving
	// certificate names it, and the kubeconfig in the Secret points at it.
	ServiceName string `json:"serviceName"`
	// KubeconfigSecret is the Secret in the pod's namespace that receives the
	// admin kubeconfig under the key "config".
	KubeconfigSecret string `json:"kubeconfigSecret"`
	// ServiceCIDR is the host's service IP range.
	ServiceCIDR string `json:"serviceCIDR"`
	// Port is the apiserver's port in the pod; 0 picks a free one (for a
	// local run).
	Port int `json:"port"`
	// StorageBackend is sqlite, postgres, mysql or etcd; a DSN comes from
	// the environment variable VMATRIX_STORAGE_DSN.
	StorageBackend string `json:"storageBackend"`
	// MirrorAllNodes, AllowPrivileged and TokenSecrets are the syncer's
	// options.
	MirrorAllNodes  bool `json:"mirrorAllNodes"`
	AllowPrivileged bool `json:"allowPrivileged"`
	TokenSecrets    bool `json:"tokenSecrets"`
	// Sync names the optional kinds the syncer syncs as well.
	Sync []string `json:"sync"`
	// APIServerArgs are extra kube-apiserver flags.
	APIServerArgs []string `json:"apiServerArgs"`
}

// DSNEnv is the environment variable that carries the storage backend's DSN
// (it holds credentials, so it comes from a Secret, not the ConfigMap).
const DSNEnv = "VMATRIX_STORAGE_DSN"

// DefaultServiceAccountDir is where Kubernetes mounts a pod's service account
// token, CA certificate and namespace.
const DefaultServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// RunOptions are what the pod gives the entrypoint besides its config file.
type RunOptions struct {
	// ConfigPath is the config file (Config as YAML).
	ConfigPath string
	// DataDir holds the PKI, the store and the component logs; in the pod it
	// is the data volume.
	DataDir string
	// ServiceAccountDir holds token, ca.crt and namespace; "" means
	// DefaultServiceAccountDir. The host is reached at
	// $KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT, as in-cluster
	// clients do.
	ServiceAccountDir string
	// Log receives progress; nil discards it.
	Log io.Writer
}

// ReadConfig reads and checks a config file.
func ReadConfig(path string) (Config, error) {
	var c Config
	data, err := os.ReadFile(path)
	if err != nil {
		return c, err
	}
	if err := yaml.UnmarshalStrict(data, &c); err != nil {
		return c, fmt.Errorf("config %s: %w", path, err)
	}
	switch {
	case c.Name == "":
		return c, fmt.Errorf("config %s: no name", path)
	case c.KubernetesVersion == "":
		return c, fmt.Errorf("config %s: no kubernetesVersion", path)
	case c.ServiceCIDR == "":
		return c, fmt.Errorf("config %s: no serviceCIDR", path)
	}
	return c, nil
}

// inClusterHost is the host as a pod sees it: its service account, limited
// to its namespace, and the service range it is told (reading the host's
// ServiceCIDR object would take a cluster-wide right).
type inClusterHost struct {
	config      *rest.Config
	serviceCIDR string
}

func (h inClusterHost) RESTConfig() *rest.Config { return rest.CopyConfig(h.config) }
func (h inClusterHost) KubeconfigPath() string   { return "" }
func (h inClusterHost) ServiceCIDR() string      { return h.serviceCIDR }
func (h inClusterHost) Stop() error              { return nil }

// serviceAccount reads the pod's host credentials and namespace from dir and
// the environment, as rest.InClusterConfig does, but from any folder, so the
// entrypoint also runs as a local process given a token.
func serviceAccount(dir string) (*rest.Config, string, error) {
	hostAddr, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
	if hostAddr == "" || port == "" {
		return nil, "", errors.New("KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be set: is this running in a pod?")
	}
	ns, err := os.ReadFile(filepath.Join(dir, "namespace"))
	if err != nil {
		return nil, "", fmt.Errorf("the pod's namespace: %w", err)
	}
	token := filepath.Join(dir, "token")
	if _, err := os.Stat(token); err != nil {
		return nil, "", fmt.Errorf("the service account token: %w", err)
	}
	return &rest.Config{
		Host: "https://" + net.JoinHostPort(hostAddr, port),
		// A file, not its content: the kubelet rotates the token.
		BearerTokenFile: token,
		TLSClientConfig: rest.TLSClientConfig{CAFile: filepath.Join(dir, "ca.crt")},
	}, strings.TrimSpace(string(ns)), nil
}

// Run is `vmatrix controlplane`: it starts the virtual cluster of the config
// file (the same control plane and syncer as the local mode) with the pod's
// namespace as its host namespace, writes its kubeconfig to the Secret, and
// runs until ctx ends. Then it stops without removing what the syncer made
// on the host: a restarted pod takes that over, and an uninstall removes it.
func Run(ctx context.Context, opts RunOptions) error {
	logf := func(format string, args ...any) {
		if opts.Log != nil {
			fmt.Fprintf(opts.Log, format+"\n", args...)
		}
	}
	cfg, err := ReadConfig(opts.ConfigPath)
	if err != nil {
		return err
	}
	if opts.ServiceAccountDir == "" {
		opts.ServiceAccountDir = DefaultServiceAccountDir
	}
	hostConfig, namespace, err := serviceAccount(opts.ServiceAccountDir)
	if err != nil {
		return err
	}
	v, exact, err := k8sdist.ParseVersion(cfg.KubernetesVersion)
	if err != nil {
		return err
	}
	if !exact {
		// The image holds one version's binaries; a minor alone would be
		// resolved over the network to whatever patch is newest today.
		return fmt.Errorf("kubernetesVersion %q: give the exact version of the image's binaries (MAJOR.MINOR.PATCH)", cfg.KubernetesVersion)
	}
	bins, err := k8sdist.Source{Log: opts.Log}.ControlPlane(ctx, v)
	if err != nil {
		return err
	}
	backend, err := storage.ParseBackend(cfg.StorageBackend, os.Getenv(DSNEnv))
	if err != nil {
		return err
	}
	sans := []string{cfg.ServiceName}
	if cfg.ServiceName != "" {
		for _, suffix := range []string{"", ".svc", ".svc.cluster.local"} {
			sans = append(sans, cfg.ServiceName+"."+namespace+suffix)
		}
	}
	if ip := os.Getenv("POD_IP"); ip != "" {
		sans = append(sans, ip)
	}
	logf("starting virtual cluster %s (%s) syncing into namespace %s", cfg.Name, v, namespace)
	vc, err := virtual.Start(ctx, virtual.Config{
		Name: cfg.Name, Dir: opts.DataDir, Version: v, Binaries: bins,
		Host:  inClusterHost{config: hostConfig, serviceCIDR: cfg.ServiceCIDR},
		Flags: controlplane.Flags{APIServer: cfg.APIServerArgs},
		ControlPlane: func(c *controlplane.Config) {
			c.Port, c.BindAddress, c.SANs = cfg.Port, "0.0.0.0", sans
			c.Store = backend.Starter(cfg.Name)
			// A pod's file system is read-only and forgets everything on a
			// restart: there is nowhere to keep a template.
			c.TemplateDir = ""
		},
		Syncer: func(o *syncer.Options) {
			o.HostNamespace = namespace
			o.MirrorAllNodes, o.AllowPrivileged, o.TokenSecrets, o.Sync = cfg.MirrorAllNodes, cfg.AllowPrivileged, cfg.TokenSecrets, cfg.Sync
			o.Log = slog.New(slog.NewTextHandler(logOrDiscard(opts.Log), nil))
		},
	})
	if err != nil {
		return err
	}
	if cfg.KubeconfigSecret != "" {
		if err := publishKubeconfig(ctx, hostConfig, namespace, cfg, vc); err != nil {
			return errors.Join(err, vc.Stop())
		}
	}
	logf("virtual cluster %s is ready on port %d", cfg.Name, vc.Port())
	<-ctx.Done()
	logf("stopping virtual cluster %s", cfg.Name)
	return vc.Stop()
}

func logOrDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

// publishKubeconfig writes the admin kubeconfig, pointed at the Service, to
// the Secret the chart made for it.
func publishKubeconfig(ctx context.Context, hostConfig *rest.Config, namespace string, cfg Config, vc *virtual.Cluster) error {
	kc, err := clientcmd.LoadFromFile(vc.KubeconfigPath())
	if err != nil {
		return err
	}
	if cfg.ServiceName != "" {
		for _, c := range kc.Clusters {
			// The Service listens on 443 and forwards to the pod's port.
			c.Server = "https://" + cfg.ServiceName + "." + namespace + ".svc:443"
		}
	}
	data, err := clientcmd.Write(*kc)
	if err != nil {
		return err
	}
	client, err := kubernetes.NewForConfig(hostConfig)
	if err != nil {
		return err
	}
	secrets := client.CoreV1().Secrets(namespace)
	s, err := secrets.Get(ctx, cfg.KubeconfigSecret, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("reading the kubeconfig Secret %s/%s: %w", namespace, cfg.KubeconfigSecret, err)
	}
	if s.Data == nil {
		s.Data = map[string][]byte{}
	}
	s.Data["config"] = data
	if _, err := secrets.Update(ctx, s, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("writing the kubeconfig Secret %s/%s: %w", namespace, cfg.KubeconfigSecret, err)
	}
	return nil
}
