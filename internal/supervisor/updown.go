package supervisor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"

	"github.com/vmatrix/vmatrix/internal/k8sdist"
	"github.com/vmatrix/vmatrix/internal/proc"
	"github.com/vmatrix/vmatrix/internal/state"
)

// UpName is the name `vmatrix up` gives the cluster of version v; `run`
// attaches to a running cluster of that name and version.
func UpName(v k8sdist.Version) string {
	return "up-" + strings.ReplaceAll(strings.TrimPrefix(v.String(), "v"), ".", "-")
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

// Running returns the record of a running, ready cluster of that name and
// version; a failed one is not.
func (m *Manager) Running(name string, v k8sdist.Version) (state.Record, bool) {
	rec, err := state.Read(m.Root.ClusterDir(name))
	return rec, err == nil && rec.Ready && rec.Running() && !rec.Failed() && rec.Version == v.String()
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
			for _, pid := range proc.WithArg(root + "/") { // inside it: not a root that merely starts the same
				syscall.Kill(-pid, syscall.SIGKILL)
				syscall.Kill(pid, syscall.SIGKILL)
			}
			errs = append(errs, os.RemoveAll(root))
		}
	}
	return removed, errors.Join(errs...)
}
