package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/vmatrix/vmatrix/internal/k8sdist"
	"github.com/vmatrix/vmatrix/internal/state"
	"github.com/vmatrix/vmatrix/internal/storage"
	"github.com/vmatrix/vmatrix/internal/supervisor"
	"github.com/vmatrix/vmatrix/matrix"
)

// The clusters of `vmatrix up` and `vmatrix run`: the matrix runner's
// Clusters made of the local Manager's.

// up creates the clusters of `vmatrix up` in parallel; running ones of the
// same name and version are kept, failed ones made anew.
func up(ctx context.Context, m *supervisor.Manager, versions []k8sdist.Version, cfg matrix.Config) ([]state.Record, error) {
	backend, err := configBackend(cfg)
	if err != nil {
		return nil, err
	}
	recs := make([]state.Record, len(versions))
	g, ctx := errgroup.WithContext(ctx)
	for i, v := range versions {
		g.Go(func() error {
			if rec, ok := m.Running(supervisor.UpName(v), v); ok {
				recs[i] = rec
				return nil
			} else if rec.Failed() && rec.Running() {
				fmt.Fprintf(os.Stderr, "%s failed (%s): making it anew\n", rec.Name, rec.FailureLine())
				if err := m.Delete(ctx, rec.Name); err != nil {
					return err
				}
			}
			rec, err := m.Create(ctx, supervisor.CreateOptions{Name: supervisor.UpName(v), Version: v.String(), Up: true, HostNodes: cfg.Nodes, Flags: cfg.FlagsFor(v.String()), Backend: backend})
			recs[i] = rec
			return err
		})
	}
	return recs, g.Wait()
}

// matrixClusters gives `vmatrix run` its clusters: those of `vmatrix up` when
// they run, else clusters of its own, owned by this process and deleted after.
type matrixClusters struct {
	M *supervisor.Manager
	// Config gives the node count of a host this run starts and per-version
	// apiserver flags.
	Config matrix.Config
	// Fresh makes a new cluster even where `vmatrix up` left one (a run
	// along an upgrade path changes its cluster's version).
	Fresh bool
}

var _ matrix.Upgrader = matrixClusters{}

// Upgrade upgrades a cluster of the run in place.
func (c matrixClusters) Upgrade(ctx context.Context, cl matrix.Cluster, v k8sdist.Version) (matrix.Cluster, error) {
	if _, _, err := c.M.Upgrade(ctx, cl.Name, v.String()); err != nil {
		return cl, err
	}
	cl.Version = v
	return cl, nil
}

var _ interface {
	matrix.Clusters
	matrix.Exporter
} = matrixClusters{}

var _ matrix.Attacher = matrixClusters{}

// Running names the cluster of `vmatrix up` that Acquire would use for v.
func (c matrixClusters) Running(v k8sdist.Version) (string, bool) {
	if c.Fresh {
		return "", false
	}
	rec, ok := c.M.Running(supervisor.UpName(v), v)
	return rec.Name, ok
}

func (c matrixClusters) Acquire(ctx context.Context, v k8sdist.Version) (matrix.Cluster, error) {
	if name, ok := c.Running(v); ok {
		return matrix.Cluster{Name: name, Version: v, Kubeconfig: filepath.Join(c.M.Root.ClusterDir(name), "kubeconfig")}, nil
	}
	name := fmt.Sprintf("run-%d-%s", os.Getpid(), strings.TrimPrefix(supervisor.UpName(v), "up-"))
	backend, err := configBackend(c.Config)
	if err != nil {
		return matrix.Cluster{}, err
	}
	rec, err := c.M.Create(ctx, supervisor.CreateOptions{Name: name, Version: v.String(), Owner: os.Getpid(), HostNodes: c.Config.Nodes, Flags: c.Config.FlagsFor(v.String()), Backend: backend})
	if err != nil {
		return matrix.Cluster{}, err
	}
	return matrix.Cluster{Name: rec.Name, Version: v, Kubeconfig: filepath.Join(c.M.Root.ClusterDir(rec.Name), "kubeconfig")}, nil
}

func (c matrixClusters) Release(ctx context.Context, cl matrix.Cluster) error {
	rec, err := state.Read(c.M.Root.ClusterDir(cl.Name))
	if err != nil || rec.Up {
		return nil // attached, not ours
	}
	return c.M.Delete(ctx, cl.Name)
}

// Export writes what `vmatrix export logs` writes for the cluster into dir.
func (c matrixClusters) Export(ctx context.Context, cl matrix.Cluster, dir string) error {
	return c.M.ExportLogs(ctx, cl.Name, dir)
}

// configBackend is the backend vmatrix.yaml names, reached through
// $VMATRIX_BACKEND_DSN: a DSN with a password has no place in a file that is
// committed next to a suite.
func configBackend(cfg matrix.Config) (storage.Backend, error) {
	return storage.ParseBackend(cfg.Backend, os.Getenv("VMATRIX_BACKEND_DSN"))
}
