// Package supervisor manages virtual clusters that outlive the command that created
// them, as `vmatrix create` makes them: each runs under a background supervisor
// process recorded in a state directory, and so does the embedded host, which
// starts with the first cluster that needs it and stops with the last.
package supervisor

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/vmatrix/vmatrix/internal/controlplane"
	"github.com/vmatrix/vmatrix/internal/export"
	"github.com/vmatrix/vmatrix/internal/k8sdist"
	"github.com/vmatrix/vmatrix/internal/kubeconfig"
	"github.com/vmatrix/vmatrix/internal/proc"
	"github.com/vmatrix/vmatrix/internal/state"
	"github.com/vmatrix/vmatrix/internal/storage"
	"github.com/vmatrix/vmatrix/syncer"
)

// Manager creates, lists and deletes the clusters of one state directory.
type Manager struct {
	Root state.Root
	// Self is the vmatrix executable that runs the supervisors; "" means this one.
	Self string
	// Log receives progress (binary builds, host start).
	Log    io.Writer
	Source k8sdist.Source
	// Phase, if set, hears where each cluster's create stands: "binaries",
	// "host", "starting".
	Phase func(cluster, phase string)
}

func (m *Manager) phase(cluster, phase string) {
	if m.Phase != nil {
		m.Phase(cluster, phase)
	}
}

// CreateOptions says what to create.
type CreateOptions struct {
	Name    string
	Version string
	// HostKubeconfig selects an existing host cluster; "" means the embedded host.
	HostKubeconfig string
	HostContext    string
	// HostNodes is the node count of the embedded host, if this create starts it.
	HostNodes int
	// Flags are extra flags of the cluster's components.
	Flags controlplane.Flags
	// Backend is the storage backend (zero: kine on SQLite).
	Backend storage.Backend
	// Sync names optional kinds the syncer syncs as well (syncer.OptionalKinds).
	Sync []string
	// Owner and Up are recorded; see state.Record.
	Owner int
	Up    bool
}

func (m *Manager) self() (string, error) {
	if m.Self != "" {
		return m.Self, nil
	}
	return os.Executable()
}

func (m *Manager) logf(format string, args ...any) {
	if m.Log != nil {
		fmt.Fprintf(m.Log, format+"\n", args...)
	}
}

// Create starts a virtual cluster under a supervisor and returns its record
// once it is ready. On failure nothing of it is left.
func (m *Manager) Create(ctx context.Context, opts CreateOptions) (rec state.Record, err error) {
	if err := syncer.ValidateName(opts.Name); err != nil {
		return rec, err
	}
	v, err := k8sdist.Resolve(ctx, opts.Version)
	if err != nil {
		return rec, err
	}
	hostName := state.EmbeddedHost
	if opts.HostKubeconfig != "" {
		if hostName, err = filepath.Abs(opts.HostKubeconfig); err != nil {
			return rec, err
		}
		// Checked here, before anything is created, so a bad kubeconfig costs nothing.
		if _, err := kubeconfig.Load(hostName, opts.HostContext); err != nil {
			return rec, fmt.Errorf("host: %w", err)
		}
	}
	dir := m.Root.ClusterDir(opts.Name)
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return rec, err
	}
	// Mkdir is the reservation of the name: it fails if another create has it.
	if err := os.Mkdir(dir, 0o700); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return rec, fmt.Errorf("a virtual cluster named %q already exists (vmatrix delete %s)", opts.Name, opts.Name)
		}
		return rec, err
	}
	defer func() {
		if err != nil {
			// Nothing half-created stays: the cluster's folder, and the
			// embedded host if this create started it for nothing.
			cleanup := context.WithoutCancel(ctx)
			if derr := errors.Join(m.remove(cleanup, opts.Name), m.stopHostIfUnused(cleanup, hostName == state.EmbeddedHost)); derr != nil {
				err = errors.Join(err, derr)
			}
		}
	}()
	rec = state.Record{Name: opts.Name, Version: v.String(), Host: hostName, HostContext: opts.HostContext, Created: time.Now(), Owner: opts.Owner, Up: opts.Up, Flags: opts.Flags,
		Backend: opts.Backend.Kind, BackendDSN: opts.Backend.DSN, Sync: opts.Sync}
	if err := state.Write(dir, rec); err != nil {
		return rec, err
	}
	m.phase(opts.Name, "binaries")
	if _, err := m.Source.Kubernetes(ctx, v); err != nil {
		return rec, err
	}
	if hostName == state.EmbeddedHost {
		m.phase(opts.Name, "embedded host")
		if err := m.ensureHost(ctx, opts.HostNodes); err != nil {
			return rec, err
		}
	}
	m.phase(opts.Name, "starting control plane")
	if err := m.spawn(ctx, dir, "serve-cluster"); err != nil {
		return rec, err // it names the cluster and version already
	}
	return state.Read(dir)
}

// Delete stops a virtual cluster and removes its state folder, then the
// embedded host if no other cluster uses it.
func (m *Manager) Delete(ctx context.Context, name string) error {
	rec, err := state.Read(m.Root.ClusterDir(name))
	if errors.Is(err, fs.ErrNotExist) {
		if _, serr := os.Stat(m.Root.ClusterDir(name)); serr != nil {
			return fmt.Errorf("no virtual cluster named %q", name)
		}
	}
	return errors.Join(m.remove(ctx, name), m.stopHostIfUnused(ctx, rec.Host == state.EmbeddedHost || err != nil))
}

func (m *Manager) remove(ctx context.Context, name string) error {
	dir := m.Root.ClusterDir(name)
	rec, recErr := state.Read(dir)
	err := stopSupervised(dir)
	if recErr == nil {
		err = errors.Join(err, m.removeHostObjects(ctx, rec))
	}
	return err
}

// removeHostObjects deletes the host namespace of a cluster whose supervisor
// died before its syncer could tear down (a live one has done it already):
// the namespace the syncer made, and only if its label says it is that
// cluster's.
func (m *Manager) removeHostObjects(ctx context.Context, rec state.Record) error {
	path, context := rec.Host, rec.HostContext
	if rec.Host == state.EmbeddedHost {
		path, context = filepath.Join(m.Root.HostDir(), "kubeconfig"), ""
		if host, err := state.Read(m.Root.HostDir()); err != nil || !host.Running() || !host.Ready {
			// Its objects went with it, or it never came up to hold any.
			return nil
		}
	}
	cfg, err := kubeconfig.Load(path, context)
	if err != nil {
		return nil // the host is gone or unreachable: nothing vmatrix can do there
	}
	cfg.Timeout = 5 * time.Second
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	return syncer.DeleteHostNamespace(ctx, client, rec.Name)
}

// List returns the records of all virtual clusters, by name.
func (m *Manager) List() ([]state.Record, error) { return m.Root.Clusters() }

// Kubeconfig returns the path of a virtual cluster's kubeconfig.
func (m *Manager) Kubeconfig(name string) (string, error) {
	rec, err := state.Read(m.Root.ClusterDir(name))
	if err != nil {
		return "", fmt.Errorf("no virtual cluster named %q", name)
	}
	if !rec.Ready || !rec.Running() {
		return "", fmt.Errorf("virtual cluster %q is not running", name)
	}
	return filepath.Join(m.Root.ClusterDir(name), "kubeconfig"), nil
}

// ExportLogs writes what `kind export logs` writes for a running virtual
// cluster into dir: its component logs, its objects, the logs of its pods'
// containers and its objects on the host.
func (m *Manager) ExportLogs(ctx context.Context, name, dir string) error {
	path, err := m.Kubeconfig(name)
	if err != nil {
		return err
	}
	rec, err := state.Read(m.Root.ClusterDir(name))
	if err != nil {
		return err
	}
	virtual, err := kubeconfig.Load(path, "")
	if err != nil {
		return err
	}
	c := export.Cluster{LogsDir: filepath.Join(m.Root.ClusterDir(name), "logs"), Virtual: virtual, HostNamespace: syncer.DefaultHostNamespace(name)}
	hostPath, hostContext := rec.Host, rec.HostContext
	if rec.Host == state.EmbeddedHost {
		if hostPath, err = m.HostKubeconfig(); err != nil {
			return err
		}
	}
	if c.Host, err = kubeconfig.Load(hostPath, hostContext); err != nil {
		return fmt.Errorf("host: %w", err)
	}
	return export.Write(ctx, dir, c)
}

// noteHostNodes says so when a node count is asked of an embedded host that
// runs already with another: it applies only as the host starts.
func (m *Manager) noteHostNodes(ctx context.Context, kubeconfigPath string, want int) {
	cfg, err := kubeconfig.Load(kubeconfigPath, "")
	if err != nil {
		return
	}
	cfg.Timeout = 5 * time.Second // a note is not worth a create that hangs
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return
	}
	nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err == nil && len(nodes.Items) != want {
		m.logf("the embedded host runs already, with %d nodes, not %d: a node count applies as it starts (after its last cluster is deleted)", len(nodes.Items), want)
	}
}

// HostKubeconfig returns the path of the embedded host's kubeconfig.
func (m *Manager) HostKubeconfig() (string, error) {
	rec, err := state.Read(m.Root.HostDir())
	if err != nil || !rec.Ready || !rec.Running() {
		return "", errors.New("the embedded host is not running (it starts with the first `vmatrix create`)")
	}
	return filepath.Join(m.Root.HostDir(), "kubeconfig"), nil
}

// HostDown stops the embedded host; it refuses while virtual clusters use it.
func (m *Manager) HostDown(ctx context.Context) error {
	unlock, err := m.Root.Lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	if users := m.hostUsers(); len(users) > 0 {
		return fmt.Errorf("the embedded host still runs virtual clusters: %s (delete them first)", strings.Join(users, ", "))
	}
	return stopSupervised(m.Root.HostDir())
}

func (m *Manager) hostUsers() []string {
	var users []string
	recs, _ := m.Root.Clusters()
	for _, r := range recs {
		// A folder whose record is unreadable may be a create in progress: count it.
		if r.Host == state.EmbeddedHost || r.Host == "" {
			users = append(users, r.Name)
		}
	}
	return users
}

func (m *Manager) stopHostIfUnused(ctx context.Context, usedIt bool) error {
	if !usedIt {
		return nil
	}
	unlock, err := m.Root.Lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	if len(m.hostUsers()) > 0 {
		return nil
	}
	return stopSupervised(m.Root.HostDir())
}

// ensureHost starts the embedded host unless it runs already.
func (m *Manager) ensureHost(ctx context.Context, nodes int) error {
	unlock, err := m.Root.Lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	dir := m.Root.HostDir()
	if rec, err := state.Read(dir); err == nil && rec.Ready && rec.Running() {
		if nodes > 0 {
			m.noteHostNodes(ctx, filepath.Join(dir, "kubeconfig"), nodes)
		}
		return nil
	}
	// What a killed host left behind goes first.
	if err := stopSupervised(dir); err != nil {
		return err
	}
	v, err := k8sdist.Newest(ctx)
	if err != nil {
		return err
	}
	if _, err := m.Source.Kubernetes(ctx, v); err != nil {
		return err
	}
	if _, err := m.Source.KWOK(ctx); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := state.Write(dir, state.Record{Name: "host", Version: v.String(), Host: state.EmbeddedHost, Created: time.Now()}); err != nil {
		return err
	}
	m.logf("starting the embedded host (%s)", v)
	args := []string{"serve-host"}
	if nodes > 0 {
		args = append(args, "--nodes="+strconv.Itoa(nodes))
	}
	if err := m.spawn(ctx, dir, args...); err != nil {
		return errors.Join(fmt.Errorf("embedded host: %w", err), stopSupervised(dir))
	}
	return nil
}

// spawn starts a supervisor (`vmatrix --state-dir ROOT args... --dir DIR`) detached from
// this process, and waits until it reports on its readiness pipe: "ready", or
// the error that stopped it.
func (m *Manager) spawn(ctx context.Context, dir string, args ...string) error {
	self, err := m.self()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o700); err != nil {
		return err
	}
	logPath := filepath.Join(dir, "logs", "supervisor.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close()
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer r.Close()
	cmd := exec.Command(self, append(append([]string{"--state-dir=" + string(m.Root)}, args...), "--dir="+dir)...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.ExtraFiles = []*os.File{w} // fd 3 in the supervisor
	// A session of its own: the supervisor outlives this command and is not hit
	// by the terminal's signals.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	w.Close()
	if err != nil {
		return fmt.Errorf("starting supervisor: %w", err)
	}
	go cmd.Wait() // reap it if it dies while this command still runs

	msg := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(r).ReadString('\n')
		msg <- strings.TrimSpace(line)
	}()
	select {
	case s := <-msg:
		if s == ReadyMessage {
			return nil
		}
		if s == "" {
			s = "supervisor exited; end of " + logPath + ":\n" + proc.TailFile(logPath, 15)
		}
		return errors.New(s)
	case <-ctx.Done():
		_ = cmd.Process.Signal(syscall.SIGTERM)
		return ctx.Err()
	}
}

// ReadyMessage is what a supervisor writes on its readiness pipe when its
// cluster is ready.
const ReadyMessage = "ready"

// stopSupervised stops the supervisor recorded in dir, makes sure none of the
// processes it recorded survive and their port is closed, and removes dir.
// Idempotent: a missing dir is nothing to do.
func stopSupervised(dir string) error {
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	rec, _ := state.Read(dir)
	// The recorded supervisor, and one whose spawner was killed before it
	// wrote its record: the folder on its command line names it.
	for _, pid := range append([]int{rec.Supervisor}, proc.WithArg("--dir="+dir)...) {
		if proc.Alive(pid) && ownedBy(pid, dir) {
			_ = syscall.Kill(pid, syscall.SIGTERM)
			if !waitGone(pid, 20*time.Second) {
				_ = syscall.Kill(pid, syscall.SIGKILL)
				waitGone(pid, 5*time.Second)
			}
		}
	}
	// Its children die with it; this is for a supervisor killed in a way that
	// left them (or a record from an older run).
	for name, pid := range rec.PIDs {
		if proc.Alive(pid) && ownedBy(pid, dir) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			if !waitGone(pid, 5*time.Second) {
				return fmt.Errorf("%s (pid %d) of %s does not stop", name, pid, dir)
			}
		}
	}
	// A supervisor that was killed did not drop its database; the record
	// knows where it is. Dropping twice is harmless.
	if rec.Backend != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := storage.Backend{Kind: rec.Backend, DSN: rec.BackendDSN}.Drop(ctx, filepath.Join(dir, "data"))
		cancel()
		if err != nil {
			return fmt.Errorf("dropping the storage of %s: %w", dir, err)
		}
	}
	if rec.Port != 0 {
		deadline := time.Now().Add(5 * time.Second)
		for proc.PortOpen(rec.Port) {
			if time.Now().After(deadline) {
				return fmt.Errorf("port %d of %s is still open", rec.Port, dir)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return os.RemoveAll(dir)
}

// ownedBy reports whether a process's command line names dir: every process
// vmatrix records is started with a path inside its state folder, so a PID
// reused by an unrelated process is never signalled.
func ownedBy(pid int, dir string) bool {
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	// Followed by a separator, so cluster "a" does not own the processes of "ab".
	return strings.Contains(string(cmdline), dir+"/") || strings.Contains(string(cmdline), dir+"\x00")
}

func waitGone(pid int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for proc.Alive(pid) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}
