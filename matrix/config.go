package matrix

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/vmatrix/vmatrix/internal/controlplane"
)

// ConfigFile is the name of the file `vmatrix run` and `vmatrix up` read from
// the working directory when present.
const ConfigFile = "vmatrix.yaml"

// Config is what vmatrix.yaml holds; command-line flags override it.
//
//	versions: 1.35,1.36,1.37
//	parallel: 2
//	retries: 1
//	failFast: true
//	timeout: 20m
//	backend: sqlite
//	nodes: 3
//	apiserverArgs:
//	  "1.37": ["--audit-log-maxage=1"]
//	controllerManagerArgs:
//	  "*": ["--concurrent-deployment-syncs=10"]
//	featureGates:
//	  "1.37": "SomeGate=true"
//	runtimeConfig:
//	  "1.36.3": "resource.k8s.io/v1beta1=true"
//
// The per-version settings are keyed by minor ("1.37"), patch ("1.37.2") or
// "*" for every version; a cluster gets those of "*", then its minor's, then
// its patch's.
type Config struct {
	Versions string `json:"versions,omitempty"`
	Parallel int    `json:"parallel,omitempty"`
	Retries  int    `json:"retries,omitempty"`
	FailFast bool   `json:"failFast,omitempty"`
	Timeout  string `json:"timeout,omitempty"`
	Backend  string `json:"backend,omitempty"`
	Nodes    int    `json:"nodes,omitempty"`
	// APIServerArgs and ControllerManagerArgs are extra flags of the
	// components, FeatureGates their --feature-gates and RuntimeConfig the
	// apiserver's --runtime-config, per version.
	APIServerArgs         map[string][]string `json:"apiserverArgs,omitempty"`
	ControllerManagerArgs map[string][]string `json:"controllerManagerArgs,omitempty"`
	FeatureGates          map[string]string   `json:"featureGates,omitempty"`
	RuntimeConfig         map[string]string   `json:"runtimeConfig,omitempty"`
}

// AllVersions is the key of the per-version settings that every version gets.
const AllVersions = "*"

// LoadConfig reads a config file; a missing file is an empty config.
func LoadConfig(path string) (Config, error) {
	var c Config
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return c, err
	}
	if err := yaml.UnmarshalStrict(data, &c); err != nil {
		return c, fmt.Errorf("%s: %w", path, err)
	}
	if c.Timeout != "" {
		if _, err := time.ParseDuration(c.Timeout); err != nil {
			return c, fmt.Errorf("%s: timeout %q: %w", path, c.Timeout, err)
		}
	}
	if c.Parallel < 0 || c.Retries < 0 || c.Nodes < 0 {
		return c, fmt.Errorf("%s: parallel, retries and nodes cannot be negative", path)
	}
	return c, nil
}

// TimeoutDuration is Timeout parsed (0 when unset).
func (c Config) TimeoutDuration() time.Duration {
	d, _ := time.ParseDuration(c.Timeout)
	return d
}

// FlagsFor returns the extra component flags of a version ("v1.37.2"): the
// settings for every version, then its minor's, then its exact patch's.
func (c Config) FlagsFor(version string) controlplane.Flags {
	v := strings.TrimPrefix(version, "v")
	keys := []string{AllVersions, v}
	if i := strings.LastIndex(v, "."); strings.Count(v, ".") == 2 {
		keys = []string{AllVersions, v[:i], v}
	}
	var f controlplane.Flags
	for _, k := range keys {
		f = f.Merge(controlplane.Flags{APIServer: c.APIServerArgs[k], ControllerManager: c.ControllerManagerArgs[k]}).
			Add(c.FeatureGates[k], c.RuntimeConfig[k])
	}
	return f
}

// AddForAll adds flags that every version gets (the command line's).
func (c *Config) AddForAll(f controlplane.Flags) {
	if len(f.APIServer) > 0 {
		c.APIServerArgs = withAppended(c.APIServerArgs, f.APIServer)
	}
	if len(f.ControllerManager) > 0 {
		c.ControllerManagerArgs = withAppended(c.ControllerManagerArgs, f.ControllerManager)
	}
}

func withAppended(m map[string][]string, args []string) map[string][]string {
	out := map[string][]string{}
	for k, v := range m {
		out[k] = v
	}
	out[AllVersions] = append(append([]string{}, out[AllVersions]...), args...)
	return out
}
