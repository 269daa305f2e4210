package supervisor

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/vmatrix/vmatrix/internal/host"
	"github.com/vmatrix/vmatrix/internal/k8sdist"
	"github.com/vmatrix/vmatrix/internal/lean"
	"github.com/vmatrix/vmatrix/internal/state"
	"github.com/vmatrix/vmatrix/internal/storage"
	"github.com/vmatrix/vmatrix/internal/virtual"
	"github.com/vmatrix/vmatrix/syncer"
)

// The supervisors: each runs in its own background process, started by spawn,
// keeps that process lean while idle (internal/lean), brings its cluster up,
// reports on the readiness pipe, and stops the cluster when ctx ends (SIGTERM
// from delete).

// ReadyPipe is the readiness pipe a supervisor inherits from spawn. It is
// marked close-on-exec at once: a cluster process that inherited it would hold
// it open after the supervisor reported.
func ReadyPipe() io.WriteCloser {
	syscall.CloseOnExec(3)
	return os.NewFile(3, "ready")
}

// ServeCluster runs the virtual cluster recorded in dir until ctx ends.
func ServeCluster(ctx context.Context, root state.Root, dir string, ready io.WriteCloser) error {
	go lean.Run()
	rec, v, bins, err := begin(ctx, dir)
	if err != nil {
		return report(ready, err)
	}
	hostConfig, hostContext := rec.Host, rec.HostContext
	if rec.Host == state.EmbeddedHost {
		hostConfig, hostContext = filepath.Join(root.HostDir(), "kubeconfig"), ""
	}
	h, err := host.Connect(ctx, hostConfig, hostContext)
	if err != nil {
		return report(ready, err)
	}
	cfg := virtual.Config{Name: rec.Name, Dir: dir, Version: v, Binaries: bins, Host: h, Flags: rec.Flags,
		Backend: storage.Backend{Kind: rec.Backend, DSN: rec.BackendDSN}}
	cfg.Syncer = func(o *syncer.Options) {
		// Reached through its kubeconfig here, the embedded host is still the
		// embedded host, whose simulated nodes every virtual cluster shows.
		o.MirrorAllNodes = rec.Host == state.EmbeddedHost
		o.Sync = rec.Sync
	}
	vc, err := virtual.Start(ctx, cfg)
	if err != nil {
		return report(ready, err)
	}
	control, removeControl, err := controlSocketPath(dir)
	if err != nil {
		return report(ready, fmt.Errorf("%w (and stopping: %v)", err, vc.Delete()))
	}
	defer removeControl()
	upgrades := make(chan upgradeRequest)
	stopControl, err := serveControl(ctx, control, upgrades)
	if err != nil {
		return report(ready, fmt.Errorf("%w (and stopping: %v)", err, vc.Delete()))
	}
	defer stopControl()
	rec.Port, rec.PIDs, rec.Ready, rec.Control = vc.Port(), vc.PIDs(), true, control
	if err := state.Write(dir, rec); err != nil {
		return report(ready, fmt.Errorf("%w (and stopping: %v)", err, vc.Delete()))
	}
	report(ready, nil)
	// The record follows the components: restarted ones have new PIDs, and
	// list shows what is restarting or failed.
	for {
		select {
		case <-ctx.Done():
			return vc.Delete()
		case <-vc.Changed():
		case up := <-upgrades:
			err := upgrade(ctx, vc, up.version)
			rec.Version = vc.Version().String()
			up.done <- err
		}
		h := vc.Health()
		rec.PIDs, rec.Health, rec.Restarts, rec.Failure = vc.PIDs(), h.State, h.Restarts, ""
		if h.Err != nil {
			rec.Failure = h.Err.Error()
		}
		if err := state.Write(dir, rec); err != nil {
			fmt.Fprintln(os.Stderr, "writing the cluster's record:", err)
		}
	}
}

// upgrade runs vc at version v; the binaries are in the cache already.
func upgrade(ctx context.Context, vc *virtual.Cluster, v k8sdist.Version) error {
	bins, err := k8sdist.Source{}.Kubernetes(ctx, v)
	if err != nil {
		return err
	}
	return vc.Upgrade(ctx, v, bins)
}

// ServeHost runs the embedded host recorded in dir until ctx ends.
func ServeHost(ctx context.Context, dir string, nodes int, ready io.WriteCloser) error {
	go lean.Run()
	rec, v, bins, err := begin(ctx, dir)
	if err != nil {
		return report(ready, err)
	}
	kwok, err := k8sdist.Source{}.KWOK(ctx)
	if err != nil {
		return report(ready, err)
	}
	h, err := host.StartEmbedded(ctx, host.EmbeddedConfig{Dir: dir, Version: v, Binaries: bins, KWOK: kwok, Nodes: nodes})
	if err != nil {
		return report(ready, err)
	}
	rec.Port, rec.PIDs, rec.Ready = h.ControlPlane().Port(), h.PIDs(), true
	if err := state.Write(dir, rec); err != nil {
		return report(ready, fmt.Errorf("%w (and stopping: %v)", err, h.Stop()))
	}
	report(ready, nil)
	<-ctx.Done()
	return h.Stop()
}

// begin reads a supervisor's record, records the supervisor's PID at once (so
// a delete during start-up finds whom to stop) and finds its binaries.
func begin(ctx context.Context, dir string) (state.Record, k8sdist.Version, k8sdist.Binaries, error) {
	rec, err := state.Read(dir)
	if err != nil {
		return rec, k8sdist.Version{}, k8sdist.Binaries{}, err
	}
	rec.Supervisor = os.Getpid()
	if err := state.Write(dir, rec); err != nil {
		return rec, k8sdist.Version{}, k8sdist.Binaries{}, err
	}
	v, _, err := k8sdist.ParseVersion(rec.Version)
	if err != nil {
		return rec, v, k8sdist.Binaries{}, err
	}
	bins, err := k8sdist.Source{}.Kubernetes(ctx, v)
	return rec, v, bins, err
}

// report writes the outcome on the readiness pipe and closes it.
func report(ready io.WriteCloser, err error) error {
	msg := ReadyMessage
	if err != nil {
		// One line: the reader takes one, and a user reads one.
		msg = strings.Join(strings.Fields(err.Error()), " ")
	}
	fmt.Fprintln(ready, msg)
	ready.Close()
	return err
}
