package incluster_test

import (
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/vmatrix/vmatrix/internal/image"
	"github.com/vmatrix/vmatrix/internal/incluster"
	"github.com/vmatrix/vmatrix/internal/k8sdist"
)

var update = flag.Bool("update", false, "rewrite the golden files")

const chartSource = "../../charts/vmatrix"

func stringsReader(s string) *strings.Reader { return strings.NewReader(s) }

// TestLint runs Helm's linter, through the SDK, with the default values and
// with every switch turned the other way.
func TestLint(t *testing.T) {
	for name, vals := range map[string]map[string]any{
		"defaults": nil,
		"switched": {
			"storage": map[string]any{
				"backend":     "postgres",
				"dsnSecret":   map[string]any{"name": "db", "key": "dsn"},
				"persistence": map[string]any{"enabled": false},
			},
			"apiServer":        map[string]any{"extraArgs": []any{"--v=2"}},
			"sync":             map[string]any{"nodes": map[string]any{"mirrorAll": true}, "ingresses": true, "networkPolicies": true},
			"policy":           map[string]any{"allowPrivileged": true, "tokenSecrets": true},
			"imagePullSecrets": []any{"regcred"},
			"nodeSelector":     map[string]any{"disk": "ssd"},
		},
	} {
		t.Run(name, func(t *testing.T) {
			for _, m := range incluster.Lint(chartSource, vals) {
				// Helm's INFO messages (an icon is recommended) are advice.
				if !strings.HasPrefix(m, "[INFO]") {
					t.Error(m)
				}
			}
		})
	}
}

// TestRenderGolden compares the manifests of the default values with
// testdata/default.golden (go test -run TestRenderGolden -update rewrites it).
func TestRenderGolden(t *testing.T) {
	got, err := incluster.Render(incluster.Release{Name: "demo", Namespace: "vmatrix-demo"})
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "default.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("rendered manifests differ from %s (rerun with -update and review the diff):\n%s", golden, got)
	}
}

// TestRenderOptionalKinds: the sync switches reach the syncer's config and
// give its Role the rights on those kinds, and only those.
func TestRenderOptionalKinds(t *testing.T) {
	for _, tc := range []struct {
		values     map[string]any
		sync, rule string
	}{
		{nil, "sync: []", ""},
		{map[string]any{"ingresses": true}, "sync: [ingresses]", "resources: [ingresses]"},
		{map[string]any{"ingresses": true, "networkPolicies": true}, "sync: [ingresses, networkpolicies]", "resources: [ingresses, networkpolicies]"},
	} {
		vals := map[string]any{}
		if tc.values != nil {
			vals["sync"] = tc.values
		}
		got, err := incluster.Render(incluster.Release{Name: "demo", Namespace: "vmatrix-demo", Values: vals})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(got, "    "+tc.sync+"\n") {
			t.Errorf("%v: the config lacks %q", tc.values, tc.sync)
		}
		if hasRule := strings.Contains(got, "apiGroups: [networking.k8s.io]"); hasRule != (tc.rule != "") || !strings.Contains(got, tc.rule) {
			t.Errorf("%v: Role rule for networking.k8s.io: %v, want %q", tc.values, hasRule, tc.rule)
		}
	}
}

// TestValuesDocumented checks that every value in values.yaml has a comment
// and is used by a template, and that the templates use no value that
// values.yaml lacks.
func TestValuesDocumented(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(chartSource, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	// Free-form maps: their keys are the user's (resource names, labels).
	freeForm := map[string]bool{"resources": true}
	declared := map[string]bool{}
	var walk func(n *yaml.Node, prefix string, documented bool)
	walk = func(n *yaml.Node, prefix string, documented bool) {
		for i := 0; i+1 < len(n.Content); i += 2 {
			key, val := n.Content[i], n.Content[i+1]
			path := prefix + key.Value
			has := key.HeadComment != "" || key.LineComment != ""
			declared[path] = true
			if val.Kind == yaml.MappingNode && len(val.Content) > 0 && !freeForm[path] {
				walk(val, path+".", documented || has)
				continue
			}
			if !has {
				t.Errorf("values.yaml: %s has no comment", path)
			}
		}
	}
	walk(doc.Content[0], "", false)

	var templates strings.Builder
	entries, err := os.ReadDir(filepath.Join(chartSource, "templates"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(chartSource, "templates", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		templates.Write(b)
	}
	used := map[string]bool{}
	for _, m := range regexp.MustCompile(`\.Values((?:\.[A-Za-z0-9_]+)+)`).FindAllStringSubmatch(templates.String(), -1) {
		used[strings.TrimPrefix(m[1], ".")] = true
	}
	var leaves []string
	for p := range declared {
		leaves = append(leaves, p)
	}
	sort.Strings(leaves)
	for _, p := range leaves {
		// A value counts as used when it or a key below it is.
		found := false
		for u := range used {
			if u == p || strings.HasPrefix(u, p+".") || strings.HasPrefix(p, u+".") {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("values.yaml: %s is used by no template", p)
		}
	}
	for u := range used {
		if !declared[u] {
			t.Errorf("templates use .Values.%s, which values.yaml does not declare", u)
		}
	}
}

// TestImageReference: the chart's image is the one make image builds for its
// Kubernetes version, and --set image.repository=..., or image set to a
// whole reference, replaces it.
func TestImageReference(t *testing.T) {
	v, _, err := k8sdist.ParseVersion(chartValue(t, "kubernetesVersion"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		values map[string]any
		want   string
	}{
		{nil, image.Reference(v)},
		{map[string]any{"kubernetesVersion": "1.36.3"}, image.Repository + ":v1.36.3"},
		{map[string]any{"image": map[string]any{"repository": "localhost:5001/vmatrix"}}, "localhost:5001/vmatrix:" + image.Tag(v)},
		{map[string]any{"image": "localhost:5001/vmatrix:test"}, "localhost:5001/vmatrix:test"},
	} {
		out, err := incluster.Render(incluster.Release{Name: "demo", Namespace: "vmatrix-demo", Values: c.values})
		if err != nil {
			t.Errorf("%v: %v", c.values, err)
			continue
		}
		if m := regexp.MustCompile(`(?m)^\s+image: (\S+)$`).FindStringSubmatch(out); m == nil || m[1] != c.want {
			t.Errorf("%v: image %q, want %s", c.values, m, c.want)
		}
	}
}

// chartValue reads a top-level string value from values.yaml.
func chartValue(t *testing.T, key string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(chartSource, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var vals map[string]any
	if err := yaml.Unmarshal(data, &vals); err != nil {
		t.Fatal(err)
	}
	s, _ := vals[key].(string)
	return s
}
