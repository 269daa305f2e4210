package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/yaml"
)

// TestOutputsWithoutACluster: -o, `version`, exit codes and completion, as a
// script or a shell reads them.
func TestOutputsWithoutACluster(t *testing.T) {
	c := newCLI(t)
	var info struct {
		Version    string
		Go         string
		Kubernetes []string
	}
	if err := json.Unmarshal([]byte(c.mustRun("version", "-o", "json")), &info); err != nil || info.Go == "" || len(info.Kubernetes) == 0 || info.Version == "" {
		t.Errorf("version -o json: %+v, %v", info, err)
	}
	if out := c.mustRun("version"); !strings.HasPrefix(out, "vmatrix ") || !strings.Contains(out, "v1.37.") {
		t.Errorf("version:\n%s", out)
	}
	var clusters []map[string]any
	if err := json.Unmarshal([]byte(c.mustRun("list", "-o", "json")), &clusters); err != nil || clusters == nil || len(clusters) != 0 {
		t.Errorf("list -o json with no cluster: %v, %v (want [])", clusters, err)
	}
	var versions []struct {
		Version string
		Cached  bool
	}
	if err := json.Unmarshal([]byte(c.mustRun("versions", "-o", "json")), &versions); err != nil || len(versions) == 0 {
		t.Errorf("versions -o json: %v, %v", versions, err)
	}
	cached := map[string]bool{}
	for _, v := range versions {
		cached[v.Version] = v.Cached
	}
	if !cached[resolve(t, "1.37")] {
		t.Errorf("versions -o json does not say %s is cached: %v", resolve(t, "1.37"), versions)
	}
	if help := c.mustRun("--help"); !strings.Contains(help, "Exit codes:") || !strings.Contains(help, "2  usage") {
		t.Errorf("--help does not document the exit codes:\n%s", help)
	}

	// Usage errors: exit 2, one line, pointing at the help.
	for _, args := range [][]string{
		{"list", "-o", "xml"}, {"frobnicate"}, {"list", "--no-such-flag"}, {"create"}, {"create", "x"},
		{"kubeconfig", "x", "--print", "--merge"}, {"versions", "-o", "wide"},
	} {
		stdout, stderr, code := c.run(args...)
		if code != 2 || stdout != "" || strings.Count(strings.TrimSpace(stderr), "\n") != 0 || !strings.HasPrefix(stderr, "vmatrix: ") {
			t.Errorf("vmatrix %s: exit %d, stdout %q, stderr %q; want 2 and one line", strings.Join(args, " "), code, stdout, stderr)
		}
	}
	// A failure of the work itself: 1.
	if _, _, code := c.run("delete", "nope"); code != 1 {
		t.Errorf("delete of no cluster: exit %d, want 1", code)
	}

	for _, shell := range []string{"bash", "zsh", "fish"} {
		if out := c.mustRun("completion", shell); !strings.Contains(out, "__complete") {
			t.Errorf("completion %s gives no script calling __complete", shell)
		}
	}
	complete := func(args ...string) []string {
		t.Helper()
		var got []string
		for _, line := range strings.Split(c.mustRun(append([]string{"__complete"}, args...)...), "\n") {
			if line != "" && !strings.HasPrefix(line, ":") {
				got = append(got, strings.Split(line, "\t")[0])
			}
		}
		return got
	}
	if got := complete("create", "x", "--version", "1.3"); !contains(got, "1.37") || !contains(got, "1.35") {
		t.Errorf("--version completes to %v", got)
	}
	if got := complete("run", "--versions", "1.35,1.3"); !contains(got, "1.35,1.37") || contains(got, "1.35,1.35") {
		t.Errorf("--versions completes to %v", got)
	}
	if got := complete("list", "-o", ""); strings.Join(got, " ") != "wide json yaml" {
		t.Errorf("-o completes to %v", got)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestListJSONAndKubeconfigContexts: a cluster as a script lists it, and as
// a kubectl user reaches it through a context merged into their kubeconfig,
// with their own entries kept; delete takes the context away again.
func TestListJSONAndKubeconfigContexts(t *testing.T) {
	c := newCLI(t)
	home := t.TempDir()
	user := filepath.Join(home, "kube", "config")
	mine := clientcmdapi.NewConfig()
	mine.Clusters["mine"] = &clientcmdapi.Cluster{Server: "https://127.0.0.1:1"}
	mine.AuthInfos["mine"] = &clientcmdapi.AuthInfo{Token: "x"}
	mine.Contexts["mine"] = &clientcmdapi.Context{Cluster: "mine", AuthInfo: "mine"}
	mine.CurrentContext = "mine"
	if err := clientcmd.WriteToFile(*mine, user); err != nil {
		t.Fatal(err)
	}
	// $KUBECONFIG names two files: the first is the one written. (HOME
	// stays: the binary cache is under it.)
	c.env = append(c.env, "KUBECONFIG="+user+string(os.PathListSeparator)+filepath.Join(home, "other"))
	kubectlCtx := func(args ...string) (string, error) {
		cmd := exec.Command("kubectl", args...)
		cmd.Env = c.env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	loadUser := func() *clientcmdapi.Config {
		t.Helper()
		cfg, err := clientcmd.LoadFromFile(user)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}

	out := c.mustRun("create", "ctx", "--version", "1.37", "--merge")
	if !strings.Contains(out, `added context "vmatrix-ctx" in `+user) {
		t.Errorf("create --merge said:\n%s", out)
	}
	defer c.run("delete", "ctx")
	if got, err := kubectlCtx("--context", "vmatrix-ctx", "get", "ns", "default", "-o", "name"); err != nil || strings.TrimSpace(got) != "namespace/default" {
		t.Errorf("kubectl --context vmatrix-ctx get ns default: %v\n%s", err, got)
	}
	if cfg := loadUser(); cfg.CurrentContext != "mine" || cfg.Contexts["mine"] == nil {
		t.Errorf("--merge changed the user's entries: current %q", cfg.CurrentContext)
	}

	var list []map[string]any
	if err := json.Unmarshal([]byte(c.mustRun("list", "-o", "json")), &list); err != nil || len(list) != 1 {
		t.Fatalf("list -o json: %v, %v", list, err)
	}
	want := map[string]any{"name": "ctx", "version": resolve(t, "1.37"), "host": "embedded", "backend": "sqlite", "state": "running", "context": "vmatrix-ctx"}
	for k, v := range want {
		if list[0][k] != v {
			t.Errorf("list -o json: %s = %v, want %v", k, list[0][k], v)
		}
	}
	if age, _ := list[0]["age"].(string); age == "" || age == "-" {
		t.Errorf("list -o json: age %q", age)
	}
	var fromYAML []map[string]any
	if err := yaml.Unmarshal([]byte(c.mustRun("list", "-o", "yaml")), &fromYAML); err != nil || len(fromYAML) != 1 || fromYAML[0]["name"] != "ctx" {
		t.Errorf("list -o yaml: %v, %v", fromYAML, err)
	}
	if wide := c.mustRun("list", "-o", "wide"); !strings.Contains(wide, "KUBECONFIG") || !strings.Contains(wide, "vmatrix-ctx") {
		t.Errorf("list -o wide:\n%s", wide)
	}

	if got := strings.Fields(strings.Join(strings.Split(c.mustRun("__complete", "delete", ""), "\t"), " ")); !contains(got, "ctx") {
		t.Errorf("delete completes to %v", got)
	}
	path := strings.TrimSpace(c.mustRun("kubeconfig", "ctx"))
	if data, _ := os.ReadFile(path); c.mustRun("kubeconfig", "ctx", "--print") != string(data) {
		t.Errorf("--print is not the file's content")
	}

	c.mustRun("kubeconfig", "ctx", "--switch-context")
	if cfg := loadUser(); cfg.CurrentContext != "vmatrix-ctx" || len(cfg.Contexts) != 2 {
		t.Errorf("after --switch-context: current %q, %d contexts", cfg.CurrentContext, len(cfg.Contexts))
	}
	if got, err := kubectlCtx("get", "ns", "kube-system", "-o", "name"); err != nil {
		t.Errorf("kubectl on the current context: %v\n%s", err, got)
	}

	if out := c.mustRun("delete", "ctx"); !strings.Contains(out, `removed context "vmatrix-ctx" from `+user) {
		t.Errorf("delete said:\n%s", out)
	}
	cfg := loadUser()
	if cfg.Contexts["vmatrix-ctx"] != nil || cfg.Clusters["vmatrix-ctx"] != nil || cfg.AuthInfos["vmatrix-ctx"] != nil || cfg.Contexts["mine"] == nil {
		t.Errorf("after delete: contexts %v", cfg.Contexts)
	}
	if got, err := kubectlCtx("--context", "vmatrix-ctx", "get", "ns"); err == nil {
		t.Errorf("kubectl --context vmatrix-ctx works after delete:\n%s", got)
	}
}
