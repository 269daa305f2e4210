package kubeconfig

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// userConfig writes a kubeconfig as a user has one: a context of their own,
// current.
func userConfig(t *testing.T, path string) {
	t.Helper()
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["prod"] = &clientcmdapi.Cluster{Server: "https://prod.example:6443"}
	cfg.AuthInfos["me"] = &clientcmdapi.AuthInfo{Token: "t"}
	cfg.Contexts["prod"] = &clientcmdapi.Context{Cluster: "prod", AuthInfo: "me", Namespace: "web"}
	cfg.CurrentContext = "prod"
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
}

func TestMergeAndRemoveKeepTheUsersEntries(t *testing.T) {
	dir := t.TempDir()
	cluster := filepath.Join(dir, "cluster.kubeconfig")
	if _, err := Write(cluster, "a", "https://127.0.0.1:7443", []byte("ca"), []byte("cert"), []byte("key")); err != nil {
		t.Fatal(err)
	}
	user := filepath.Join(dir, "home", ".kube", "config")
	userConfig(t, user)

	if err := Merge(cluster, user, "vmatrix-a", false); err != nil {
		t.Fatal(err)
	}
	got, err := clientcmd.LoadFromFile(user)
	if err != nil {
		t.Fatal(err)
	}
	if got.CurrentContext != "prod" || got.Contexts["prod"] == nil || got.Contexts["prod"].Namespace != "web" || got.AuthInfos["me"] == nil {
		t.Errorf("the user's entries changed: current %q, contexts %v", got.CurrentContext, got.Contexts)
	}
	if c := got.Contexts["vmatrix-a"]; c == nil || c.Cluster != "vmatrix-a" || c.AuthInfo != "vmatrix-a" {
		t.Errorf("context vmatrix-a: %+v", c)
	}
	if c := got.Clusters["vmatrix-a"]; c == nil || c.Server != "https://127.0.0.1:7443" || string(c.CertificateAuthorityData) != "ca" {
		t.Errorf("cluster vmatrix-a: %+v", c)
	}
	if fi, err := os.Stat(user); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("mode of the merged file: %v %v", fi.Mode(), err)
	}

	// Again, switching: the entry is replaced, not doubled, and is current.
	if err := Merge(cluster, user, "vmatrix-a", true); err != nil {
		t.Fatal(err)
	}
	if got, _ = clientcmd.LoadFromFile(user); got.CurrentContext != "vmatrix-a" || len(got.Contexts) != 2 {
		t.Errorf("after --switch-context: current %q, %d contexts", got.CurrentContext, len(got.Contexts))
	}

	// Another cluster's server: not ours to remove.
	if removed, err := Remove(user, "vmatrix-a", "https://127.0.0.1:9999"); err != nil || removed {
		t.Errorf("Remove with another server: %v, %v", removed, err)
	}
	if removed, err := Remove(user, "vmatrix-a", "https://127.0.0.1:7443"); err != nil || !removed {
		t.Fatalf("Remove: %v, %v", removed, err)
	}
	got, _ = clientcmd.LoadFromFile(user)
	if got.Contexts["vmatrix-a"] != nil || got.Clusters["vmatrix-a"] != nil || got.AuthInfos["vmatrix-a"] != nil {
		t.Errorf("vmatrix-a left: %+v", got)
	}
	if got.CurrentContext != "" || got.Contexts["prod"] == nil {
		t.Errorf("after Remove: current %q, contexts %v", got.CurrentContext, got.Contexts)
	}

	// A missing file: Merge creates it, Remove has nothing to do.
	fresh := filepath.Join(dir, "fresh", "config")
	if removed, err := Remove(fresh, "vmatrix-a", "x"); err != nil || removed {
		t.Errorf("Remove on no file: %v, %v", removed, err)
	}
	if err := Merge(cluster, fresh, "vmatrix-a", false); err != nil {
		t.Fatal(err)
	}
	if got, _ = clientcmd.LoadFromFile(fresh); got.Contexts["vmatrix-a"] == nil || got.CurrentContext != "" {
		t.Errorf("fresh file: %+v", got)
	}

	// A file that is not a kubeconfig is refused, naming it, and left as it was.
	bad := filepath.Join(dir, "bad")
	os.WriteFile(bad, []byte("not: [a kubeconfig"), 0o600)
	if err := Merge(cluster, bad, "vmatrix-a", false); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("merge into garbage: %v", err)
	}
	if data, _ := os.ReadFile(bad); string(data) != "not: [a kubeconfig" {
		t.Errorf("garbage rewritten: %q", data)
	}
}

func TestUserPath(t *testing.T) {
	dir := t.TempDir()
	first, second := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	t.Setenv("KUBECONFIG", first+string(os.PathListSeparator)+second)
	if got := UserPath(); got != first {
		t.Errorf("UserPath with $KUBECONFIG: %s, want %s", got, first)
	}
	t.Setenv("KUBECONFIG", "")
	t.Setenv("HOME", dir)
	if got, want := UserPath(), filepath.Join(dir, ".kube", "config"); got != want {
		t.Errorf("UserPath: %s, want %s", got, want)
	}
}
