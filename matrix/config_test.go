package matrix

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestLoadConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), ConfigFile)
	if c, err := LoadConfig(path); err != nil || c.Versions != "" {
		t.Fatalf("missing file: %+v, %v", c, err)
	}
	os.WriteFile(path, []byte(`versions: latest-3,-1.36
parallel: 2
retries: 1
failFast: true
timeout: 20m
nodes: 5
apiserverArgs:
  "1.37": ["--v=2"]
  "1.37.2": ["--max-requests-inflight=800"]
`), 0o644)
	c, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.Versions != "latest-3,-1.36" || c.Parallel != 2 || c.Retries != 1 || !c.FailFast || c.TimeoutDuration() != 20*time.Minute || c.Nodes != 5 {
		t.Errorf("config: %+v", c)
	}
	if got := c.ArgsFor("v1.37.2"); !slices.Equal(got, []string{"--v=2", "--max-requests-inflight=800"}) {
		t.Errorf("args for v1.37.2: %v", got)
	}
	if got := c.ArgsFor("v1.36.3"); len(got) != 0 {
		t.Errorf("args for v1.36.3: %v", got)
	}
	for content, want := range map[string]string{
		"versions: [1, 2": "yaml",
		"version: 1.35":   "unknown field",
		"timeout: soon":   `timeout "soon"`,
		"parallel: -1":    "negative",
	} {
		os.WriteFile(path, []byte(content), 0o644)
		if _, err := LoadConfig(path); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", content, err, want)
		}
	}
}
