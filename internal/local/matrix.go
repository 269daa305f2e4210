package local

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sync/errgroup"

	"github.com/vmatrix/vmatrix/internal/k8sdist"
	"github.com/vmatrix/vmatrix/internal/proc"
	"github.com/vmatrix/vmatrix/internal/state"
	"github.com/vmatrix/vmatrix/internal/storage"
	"github.com/vmatrix/vmatrix/matrix"
)

// UpName is the name `vmatrix up` gives the cluster of version v; `run`
// attaches to a running cluster of that name and version.
func UpName(v k8sdist.Version) string {
	return "up-" + strings.ReplaceAll(strings.TrimPrefix(v.String(), "v"), ".", "-")
}

// Up creates the clusters of `vmatrix up` in parallel; running ones of the
// same name and version are kept.
func (m *Manager) Up(ctx context.Context, versions []k8sdist.Version, cfg matrix.Config) ([]state.Record, error) {
	backend, err := configBackend(cfg)
	if err != nil {
		return nil, err
	}
	recs := make([]state.Record, len(versions))
	g, ctx := errgroup.WithContext(ctx)
	for i, v := range versions {
		g.Go(func() error {
			if rec, ok := m.running(UpName(v), v); ok {
				recs[i] = rec
				return nil
			}
			rec, err := m.Create(ctx, CreateOptions{Name: UpName(v), Version: v.String(), Up: true, HostNodes: cfg.Nodes, Flags: cfg.FlagsFor(v.String()), Backend: backend})
			recs[i] = rec
			return err
		})
	}
	return recs, g.Wait()
}

// Down deletes the clusters of `vmatrix up`.
func (m *Manager) Down(ctx context.Context) ([]string, error) {
	recs, err := m.List()
	if err != nil {
		return nil, err
	}
	var deleted []string
	var errs []error
	for _, r := range recs {
		if r.Up {
			if err := m.Delete(ctx, r.Name); err != nil {
				errs = append(errs, err)
				continue
			}
			deleted = append(deleted, r.Name)
		}
	}
	return deleted, errors.Join(errs...)
}

// running returns the record of a running, ready cluster of that name and version.
func (m *Manager) running(name string, v k8sdist.Version) (state.Record, bool) {
	rec, err := state.Read(m.Root.ClusterDir(name))
	return rec, err == nil && rec.Ready && rec.Running() && rec.Version == v.String()
}

// MatrixClusters gives `vmatrix run` its clusters: those of `vmatrix up` when
// they run, else clusters of its own, owned by this process and deleted after.
type MatrixClusters struct {
	M *Manager
	// Config gives the node count of a host this run starts and per-version
	// apiserver flags.
	Config matrix.Config
	// Fresh makes a new cluster even where `vmatrix up` left one (a run
	// along an upgrade path changes its cluster's version).
	Fresh bool
}

var _ matrix.Upgrader = MatrixClusters{}

// Upgrade upgrades a cluster of the run in place.
func (c MatrixClusters) Upgrade(ctx context.Context, cl matrix.Cluster, v k8sdist.Version) (matrix.Cluster, error) {
	if _, _, err := c.M.Upgrade(ctx, cl.Name, v.String()); err != nil {
		return cl, err
	}
	cl.Version = v
	return cl, nil
}

var _ interface {
	matrix.Clusters
	matrix.Exporter
} = MatrixClusters{}

func (c MatrixClusters) Acquire(ctx context.Context, v k8sdist.Version) (matrix.Cluster, error) {
	if rec, ok := c.M.running(UpName(v), v); ok && !c.Fresh {
		return matrix.Cluster{Name: rec.Name, Version: v, Kubeconfig: filepath.Join(c.M.Root.ClusterDir(rec.Name), "kubeconfig")}, nil
	}
	name := fmt.Sprintf("run-%d-%s", os.Getpid(), strings.TrimPrefix(UpName(v), "up-"))
	backend, err := configBackend(c.Config)
	if err != nil {
		return matrix.Cluster{}, err
	}
	rec, err := c.M.Create(ctx, CreateOptions{Name: name, Version: v.String(), Owner: os.Getpid(), HostNodes: c.Config.Nodes, Flags: c.Config.FlagsFor(v.String()), Backend: backend})
	if err != nil {
		return matrix.Cluster{}, err
	}
	return matrix.Cluster{Name: rec.Name, Version: v, Kubeconfig: filepath.Join(c.M.Root.ClusterDir(rec.Name), "kubeconfig")}, nil
}

func (c MatrixClusters) Release(ctx context.Context, cl matrix.Cluster) error {
	rec, err := state.Read(c.M.Root.ClusterDir(cl.Name))
	if err != nil || rec.Up {
		return nil // attached, not ours
	}
	return c.M.Delete(ctx, cl.Name)
}

// Export writes what `vmatrix export logs` writes for the cluster into dir.
func (c MatrixClusters) Export(ctx context.Context, cl matrix.Cluster, dir string) error {
	return c.M.ExportLogs(ctx, cl.Name, dir)
}

// Cleanup removes what killed runs left: clusters whose supervisor is dead,
// clusters of a `vmatrix run` that is gone, and the embedded host when nothing
// uses it any more (or its supervisor is dead). With dryRun it only says what
// it would remove. It returns one line per thing removed.
func (m *Manager) Cleanup(ctx context.Context, dryRun bool) ([]string, error) {
	recs, err := m.List()
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	remaining := 0
	for _, r := range recs {
		why := ""
		switch {
		case !r.Running():
			why = "its supervisor is gone"
		case r.Owner != 0 && !proc.Alive(r.Owner):
			why = fmt.Sprintf("the vmatrix run (pid %d) that owned it is gone", r.Owner)
		}
		if why == "" {
			if r.Host == state.EmbeddedHost {
				remaining++
			}
			continue
		}
		removed = append(removed, fmt.Sprintf("virtual cluster %s (%s): %s", r.Name, r.Version, why))
		if !dryRun {
			errs = append(errs, m.remove(ctx, r.Name))
		}
	}
	if host, err := state.Read(m.Root.HostDir()); err == nil || !errors.Is(err, os.ErrNotExist) {
		switch {
		case !host.Running():
			removed = append(removed, "embedded host: its supervisor is gone")
			if !dryRun {
				errs = append(errs, stopSupervised(m.Root.HostDir()))
			}
		case remaining == 0:
			removed = append(removed, "embedded host: no virtual cluster uses it")
			if !dryRun {
				errs = append(errs, m.stopHostIfUnused(ctx, true))
			}
		}
	}
	// The state folders of test processes killed before their teardown:
	// their clusters died with them; the folders and any process left stay.
	for _, root := range state.OrphanTestRoots(os.TempDir()) {
		removed = append(removed, "test state folder "+root+": the test process that owned it is gone")
		if !dryRun {
			for _, pid := range proc.WithArg(root) {
				syscall.Kill(-pid, syscall.SIGKILL)
				syscall.Kill(pid, syscall.SIGKILL)
			}
			errs = append(errs, os.RemoveAll(root))
		}
	}
	return removed, errors.Join(errs...)
}

// configBackend is the backend vmatrix.yaml names, reached through
// $VMATRIX_BACKEND_DSN: a DSN with a password has no place in a file that is
// committed next to a suite.
func configBackend(cfg matrix.Config) (storage.Backend, error) {
	return storage.ParseBackend(cfg.Backend, os.Getenv("VMATRIX_BACKEND_DSN"))
}
