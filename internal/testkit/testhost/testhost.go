// Package testhost starts the embedded host for a package's TestMain. It is
// apart from testkit, which the packages the host is made of use in their
// own tests.
package testhost

import (
	"context"
	"os"
	"path/filepath"

	"github.com/vmatrix/vmatrix/internal/host"
	"github.com/vmatrix/vmatrix/internal/k8sdist"
)

// Start starts an embedded host of the newest version with nodes
// simulated nodes, for a package's TestMain, in dir/host, dir being a new
// temporary folder (pattern as in os.MkdirTemp) that the caller may use too.
// stop stops the host and removes the folder.
func Start(ctx context.Context, pattern string, nodes int) (h *host.Embedded, dir string, stop func(), err error) {
	if dir, err = os.MkdirTemp("", pattern); err != nil {
		return nil, "", nil, err
	}
	if h, err = host.StartNewest(ctx, k8sdist.Source{Log: os.Stderr}, host.EmbeddedConfig{Dir: filepath.Join(dir, "host"), Nodes: nodes}); err != nil {
		os.RemoveAll(dir)
		return nil, "", nil, err
	}
	return h, dir, func() { h.Stop(); os.RemoveAll(dir) }, nil
}
