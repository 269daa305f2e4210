// Package state records the virtual clusters and the embedded host that vmatrix
// commands started, one folder each under a state directory, so later commands
// (list, delete, cleanup) find them and the processes behind them.
package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vmatrix/vmatrix/internal/controlplane"
	"github.com/vmatrix/vmatrix/internal/proc"
)

// Root is a state directory.
type Root string

// DefaultRoot is $VMATRIX_STATE_DIR, else $XDG_STATE_HOME/vmatrix, else
// ~/.local/state/vmatrix.
func DefaultRoot() Root {
	if d := os.Getenv("VMATRIX_STATE_DIR"); d != "" {
		return Root(d)
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return Root(filepath.Join(d, "vmatrix"))
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return Root(filepath.Join(os.TempDir(), "vmatrix-state"))
	}
	return Root(filepath.Join(home, ".local", "state", "vmatrix"))
}

// ClusterDir is the folder of the virtual cluster name.
func (r Root) ClusterDir(name string) string { return filepath.Join(string(r), "clusters", name) }

// HostDir is the folder of the embedded host.
func (r Root) HostDir() string { return filepath.Join(string(r), "host") }

// Record is what a state folder says about the cluster in it.
type Record struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	// Host is "embedded" or the path of the host's kubeconfig.
	Host        string    `json:"host"`
	HostContext string    `json:"hostContext,omitempty"`
	Created     time.Time `json:"created"`
	// Supervisor is the PID of the background process that owns the cluster's
	// processes; they die with it.
	Supervisor int            `json:"supervisor,omitempty"`
	Port       int            `json:"port,omitempty"`
	PIDs       map[string]int `json:"pids,omitempty"`
	Ready      bool           `json:"ready"`
	// Owner is the PID of the `vmatrix run` that made the cluster for itself;
	// the cluster is an orphan once that process is gone.
	Owner int `json:"owner,omitempty"`
	// Up marks the clusters of `vmatrix up`, which `run` attaches to.
	Up bool `json:"up,omitempty"`
	// Health is the supervisor's word on its components once ready:
	// running, restarting or failed; Restarts counts their restarts, and
	// Failure says what could not be kept up.
	Health   string         `json:"health,omitempty"`
	Restarts map[string]int `json:"restarts,omitempty"`
	Failure  string         `json:"failure,omitempty"`
	// Flags are the extra component flags the cluster was created with.
	Flags controlplane.Flags `json:"flags,omitempty"`
	// Backend is the storage backend's kind, and BackendDSN how to reach it:
	// the file is readable by its owner only, and nothing prints the DSN.
	Backend string `json:"backend,omitempty"`
	// Sync names the optional kinds its syncer syncs as well.
	Sync       []string `json:"sync,omitempty"`
	BackendDSN string   `json:"backendDSN,omitempty"`
	// Control is the supervisor's control socket (vmatrix upgrade).
	Control string `json:"control,omitempty"`
}

// EmbeddedHost is the Host value of clusters on the embedded host.
const EmbeddedHost = "embedded"

const recordFile = "cluster.json"

// Read reads the record in dir.
func Read(dir string) (Record, error) {
	var r Record
	data, err := os.ReadFile(filepath.Join(dir, recordFile))
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return r, fmt.Errorf("%s: %w", filepath.Join(dir, recordFile), err)
	}
	return r, nil
}

// Write writes the record into dir atomically.
func Write(dir string, r Record) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, recordFile+".tmp")
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, recordFile))
}

// Running reports whether the record's supervisor is alive.
func (r Record) Running() bool { return proc.Alive(r.Supervisor) }

// Failed reports whether the cluster's control plane has failed for good.
func (r Record) Failed() bool { return r.Health == controlplane.StateFailed }

// FailureLine is the first line of Failure: which component failed, and how.
func (r Record) FailureLine() string { return strings.SplitN(r.Failure, "\n", 2)[0] }

// Clusters lists the records of all virtual clusters, by name.
func (r Root) Clusters() ([]Record, error) {
	entries, err := os.ReadDir(filepath.Join(string(r), "clusters"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Record
	for _, e := range entries {
		rec, err := Read(r.ClusterDir(e.Name()))
		if err != nil {
			// A folder without a readable record is a create that died early.
			rec = Record{Name: e.Name()}
		}
		out = append(out, rec)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Lock takes the state directory's lock, which serialises creating and
// deleting clusters and the embedded host between vmatrix processes.
func (r Root) Lock(ctx context.Context) (unlock func(), err error) {
	if err := os.MkdirAll(string(r), 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(string(r), "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", f.Name(), err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("waiting for another vmatrix command: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// TestRootPattern is the name pattern of the state folders that test
// processes make in the temporary directory (framework Environments without
// WithStateDir).
const TestRootPattern = "vmatrix-*"

// ownerFile names, in such a folder, the PID of the process it belongs to.
const ownerFile = "owner"

// MarkOwner records this process as the owner of a test state folder, so
// that `vmatrix cleanup` knows it for an orphan once the process is gone.
func MarkOwner(root string) error {
	return os.WriteFile(filepath.Join(root, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o600)
}

// OrphanTestRoots lists the test state folders in tmp whose owning process
// is gone (a test binary killed before it could tear down).
func OrphanTestRoots(tmp string) []string {
	matches, _ := filepath.Glob(filepath.Join(tmp, TestRootPattern))
	var orphans []string
	for _, m := range matches {
		data, err := os.ReadFile(filepath.Join(m, ownerFile))
		if err != nil {
			continue // not a test state folder, or not one that says whose
		}
		if pid, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil && !proc.Alive(pid) {
			orphans = append(orphans, m)
		}
	}
	return orphans
}
