package supervisor

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vmatrix/vmatrix/internal/k8sdist"
	"github.com/vmatrix/vmatrix/internal/state"
)

// A cluster's supervisor answers `vmatrix upgrade` on a Unix socket in the
// cluster's folder (or, when that path is too long for a socket, in a
// private temporary folder), which only the folder's owner can reach: POST
// /upgrade?version=v1.36.3, answered when the upgrade is done.

// upgradeRequest is one upgrade for the supervisor's loop to do.
type upgradeRequest struct {
	version k8sdist.Version
	done    chan error
}

// controlSocketPath is where a supervisor of dir listens; its folder is
// removed by the returned function ("" when it is dir itself).
func controlSocketPath(dir string) (string, func(), error) {
	path := filepath.Join(dir, "control.sock")
	if len(path) < 100 { // a socket path holds at most 107 bytes
		return path, func() {}, nil
	}
	tmp, err := os.MkdirTemp("", "vmatrix-ctl-")
	if err != nil {
		return "", nil, err
	}
	return filepath.Join(tmp, "control.sock"), func() { os.RemoveAll(tmp) }, nil
}

// serveControl listens on path and hands upgrades to the loop that owns the
// cluster, through requests.
func serveControl(ctx context.Context, path string, requests chan<- upgradeRequest) (func(), error) {
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("the control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /upgrade", func(w http.ResponseWriter, r *http.Request) {
		v, _, err := k8sdist.ParseVersion(r.URL.Query().Get("version"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		req := upgradeRequest{version: v, done: make(chan error, 1)}
		select {
		case requests <- req:
		case <-ctx.Done():
			http.Error(w, "the cluster is stopping", http.StatusServiceUnavailable)
			return
		}
		if err := <-req.done; err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
		}
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(l)
	return func() { srv.Close() }, nil
}

// Upgrade upgrades the running virtual cluster name in place to version
// (k8sdist.CheckUpgrade says which versions may follow which): it builds
// the new version's binaries if needed, then asks the cluster's supervisor.
// A refusal comes before anything stops.
func (m *Manager) Upgrade(ctx context.Context, name, version string) (from, to k8sdist.Version, err error) {
	dir := m.Root.ClusterDir(name)
	rec, err := state.Read(dir)
	if err != nil {
		return from, to, fmt.Errorf("no virtual cluster named %q", name)
	}
	if !rec.Ready || !rec.Running() || rec.Control == "" {
		return from, to, fmt.Errorf("virtual cluster %q is not running", name)
	}
	if from, _, err = k8sdist.ParseVersion(rec.Version); err != nil {
		return from, to, err
	}
	if to, err = k8sdist.Resolve(ctx, version); err != nil {
		return from, to, err
	}
	if err := k8sdist.CheckUpgrade(from, to); err != nil {
		return from, to, fmt.Errorf("virtual cluster %q: %w", name, err)
	}
	if _, err := m.Source.Kubernetes(ctx, to); err != nil {
		return from, to, err
	}
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", rec.Control)
	}}}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://supervisor/upgrade?version="+to.String(), nil)
	if err != nil {
		return from, to, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return from, to, fmt.Errorf("virtual cluster %q: asking its supervisor: %w", name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return from, to, fmt.Errorf("virtual cluster %q: %s", name, strings.Join(strings.Fields(string(body)), " "))
	}
	return from, to, nil
}
