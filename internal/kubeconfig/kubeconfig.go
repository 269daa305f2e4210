// Package kubeconfig writes and reads the kubeconfig files vmatrix hands out.
package kubeconfig

import (
	"fmt"
	"os"
	"path/filepath"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/client-go/util/homedir"
)

// Write writes a self-contained kubeconfig (certificates embedded, so the file can
// be copied anywhere) with one context named name, and returns its REST config.
func Write(path, name, server string, caPEM, certPEM, keyPEM []byte) (*rest.Config, error) {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[name] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: caPEM}
	cfg.AuthInfos[name] = &clientcmdapi.AuthInfo{ClientCertificateData: certPEM, ClientKeyData: keyPEM}
	cfg.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name}
	cfg.CurrentContext = name
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return nil, fmt.Errorf("writing kubeconfig %s: %w", path, err)
	}
	return clientcmd.NewDefaultClientConfig(*cfg, nil).ClientConfig()
}

// Load reads a kubeconfig file and returns the REST config of the given context
// (the current context when empty). Errors name the file.
func Load(path, context string) (*rest.Config, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", path, err)
	}
	rules := &clientcmd.ClientConfigLoadingRules{ExplicitPath: path}
	overrides := &clientcmd.ConfigOverrides{CurrentContext: context}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", path, err)
	}
	return cfg, nil
}

// ContextName is the context, cluster and user name a virtual cluster gets in
// the user's kubeconfig: vmatrix-NAME.
func ContextName(cluster string) string { return "vmatrix-" + cluster }

// UserPath is the kubeconfig file `--merge` writes to: the first file of
// $KUBECONFIG, else ~/.kube/config (as kubectl config set-context does).
func UserPath() string {
	for _, f := range filepath.SplitList(os.Getenv(clientcmd.RecommendedConfigPathEnvVar)) {
		if f != "" {
			return f
		}
	}
	return filepath.Join(homedir.HomeDir(), clientcmd.RecommendedHomeDir, clientcmd.RecommendedFileName)
}

// Merge copies the only context of the kubeconfig at from (as Write makes
// them) into the kubeconfig at into as context, cluster and user name,
// replacing entries of that name and keeping every other one. The current
// context becomes name only with switchContext. A missing file at into is
// created.
func Merge(from, into, name string, switchContext bool) error {
	src, err := clientcmd.LoadFromFile(from)
	if err != nil {
		return fmt.Errorf("kubeconfig %s: %w", from, err)
	}
	ctx := src.Contexts[src.CurrentContext]
	if ctx == nil || src.Clusters[ctx.Cluster] == nil || src.AuthInfos[ctx.AuthInfo] == nil {
		return fmt.Errorf("kubeconfig %s: no complete current context", from)
	}
	dst, err := loadOrNew(into)
	if err != nil {
		return err
	}
	dst.Clusters[name] = src.Clusters[ctx.Cluster]
	dst.AuthInfos[name] = src.AuthInfos[ctx.AuthInfo]
	dst.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name}
	if switchContext {
		dst.CurrentContext = name
	}
	return writeFile(dst, into)
}

// Server returns the server of the current context of the kubeconfig at path.
func Server(path string) (string, error) {
	cfg, err := Load(path, "")
	if err != nil {
		return "", err
	}
	return cfg.Host, nil
}

// Remove deletes the context, cluster and user name from the kubeconfig at
// path if its cluster entry points at server (another state directory's
// cluster of the same name is left alone). It reports whether it removed
// anything; a missing file is not an error. A current context of that name
// is unset.
func Remove(path, name, server string) (bool, error) {
	if _, err := os.Stat(path); os.IsNotExist(err) {
		return false, nil
	}
	cfg, err := loadOrNew(path)
	if err != nil {
		return false, err
	}
	if c := cfg.Clusters[name]; c == nil || c.Server != server {
		return false, nil
	}
	delete(cfg.Contexts, name)
	delete(cfg.Clusters, name)
	delete(cfg.AuthInfos, name)
	if cfg.CurrentContext == name {
		cfg.CurrentContext = ""
	}
	return true, writeFile(cfg, path)
}

// Merged reports whether the kubeconfig at path holds context name for
// server, as Merge leaves it; a file that cannot be read holds none.
func Merged(path, name, server string) bool {
	cfg, err := clientcmd.LoadFromFile(path)
	if err != nil {
		return false
	}
	ctx := cfg.Contexts[name]
	return ctx != nil && cfg.Clusters[ctx.Cluster] != nil && cfg.Clusters[ctx.Cluster].Server == server
}

func loadOrNew(path string) (*clientcmdapi.Config, error) {
	if _, err := os.Stat(path); os.IsNotExist(err) {
		return clientcmdapi.NewConfig(), nil
	}
	cfg, err := clientcmd.LoadFromFile(path)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", path, err)
	}
	return cfg, nil
}

// writeFile writes cfg to path as kubectl does (clientcmd, owner-only).
func writeFile(cfg *clientcmdapi.Config, path string) error {
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return fmt.Errorf("kubeconfig %s: %w", path, err)
	}
	return nil
}

// KubectlCommand is a shell command that shows what runs in the cluster of
// the kubeconfig at path, for messages that tell a user how to look.
func KubectlCommand(path string) string {
	return "kubectl --kubeconfig " + path + " get all -A"
}

// Protobuf makes the built-in types' clients made from cfg speak protobuf
// to the apiserver, as the controller manager and the scheduler do: encoding
// and decoding JSON is a large part of an apiserver's and a client's CPU
// when pods are made in bulk. Clients of custom resources cannot use it.
func Protobuf(cfg *rest.Config) {
	cfg.ContentType = "application/vnd.kubernetes.protobuf"
	cfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
}
