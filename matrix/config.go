package matrix

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
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
//	  "1.37": ["--feature-gates=SomeGate=true"]
type Config struct {
	Versions string `json:"versions,omitempty"`
	Parallel int    `json:"parallel,omitempty"`
	Retries  int    `json:"retries,omitempty"`
	FailFast bool   `json:"failFast,omitempty"`
	Timeout  string `json:"timeout,omitempty"`
	Backend  string `json:"backend,omitempty"`
	Nodes    int    `json:"nodes,omitempty"`
	// APIServerArgs are extra kube-apiserver flags per minor ("1.37") or patch.
	APIServerArgs map[string][]string `json:"apiserverArgs,omitempty"`
}

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

// ArgsFor returns the extra apiserver flags for a version ("v1.37.2"): those
// given for its minor, then those for its exact patch.
func (c Config) ArgsFor(version string) []string {
	v := strings.TrimPrefix(version, "v")
	minor := v
	if i := strings.LastIndex(v, "."); strings.Count(v, ".") == 2 {
		minor = v[:i]
	}
	args := append([]string{}, c.APIServerArgs[minor]...)
	if minor != v {
		args = append(args, c.APIServerArgs[v]...)
	}
	return args
}
