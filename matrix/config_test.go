package matrix

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vmatrix/vmatrix/internal/controlplane"
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
controllerManagerArgs:
  "*": ["--concurrent-deployment-syncs=10"]
featureGates:
  "1.37": "A=true"
runtimeConfig:
  "1.37.2": "api/alpha=true"
`), 0o644)
	c, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.Versions != "latest-3,-1.36" || c.Parallel != 2 || c.Retries != 1 || !c.FailFast || c.TimeoutDuration() != 20*time.Minute || c.Nodes != 5 {
		t.Errorf("config: %+v", c)
	}
	got := c.FlagsFor("v1.37.2")
	if want := []string{"--v=2", "--feature-gates=A=true", "--max-requests-inflight=800", "--runtime-config=api/alpha=true"}; !slices.Equal(got.APIServer, want) {
		t.Errorf("apiserver flags for v1.37.2: %v, want %v", got.APIServer, want)
	}
	if want := []string{"--concurrent-deployment-syncs=10", "--feature-gates=A=true"}; !slices.Equal(got.ControllerManager, want) {
		t.Errorf("controller manager flags for v1.37.2: %v, want %v", got.ControllerManager, want)
	}
	if got := c.FlagsFor("v1.36.3"); len(got.APIServer) != 0 || !slices.Equal(got.ControllerManager, []string{"--concurrent-deployment-syncs=10"}) {
		t.Errorf("flags for v1.36.3: %+v", got)
	}
	c.AddForAll(controlplane.Flags{APIServer: []string{"--v=4"}})
	if got := c.FlagsFor("v1.36.3"); !slices.Equal(got.APIServer, []string{"--v=4"}) {
		t.Errorf("flags for every version from the command line: %+v", got)
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
