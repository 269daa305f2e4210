// Package virtual runs one virtual cluster: a control plane of its own version
// whose workloads run on a host cluster. The framework and the CLI's background
// supervisor both start virtual clusters through here.
package virtual

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/client-go/rest"

	"github.com/vmatrix/vmatrix/internal/controlplane"
	"github.com/vmatrix/vmatrix/internal/host"
	"github.com/vmatrix/vmatrix/internal/k8sdist"
	"github.com/vmatrix/vmatrix/internal/pki"
	"github.com/vmatrix/vmatrix/internal/storage"
	"github.com/vmatrix/vmatrix/syncer"
)

// DefaultName is the name a virtual cluster of a version gets when none is
// given: "v1-36" for "1.36", "v1-36-3" for "1.36.3".
func DefaultName(version string) string {
	return "v" + strings.NewReplacer(".", "-").Replace(strings.TrimPrefix(version, "v"))
}

// Config describes one virtual cluster.
type Config struct {
	Name     string
	Dir      string
	Version  k8sdist.Version
	Binaries k8sdist.Binaries
	Host     host.Host
	// Syncer adjusts the syncer's options; Name, Virtual and Host are set by
	// Start. MirrorAllNodes is on by default for an embedded host.
	Syncer func(*syncer.Options)
	// Flags are extra flags of the kube-apiserver and kube-controller-manager
	// (feature gates, say).
	Flags controlplane.Flags
	// Backend is the storage backend; the zero value is kine on SQLite.
	Backend storage.Backend
	// ControlPlane adjusts the control plane's config before it starts (its
	// store, port and certificate names when it runs in a pod); nil leaves
	// the defaults.
	ControlPlane func(*controlplane.Config)
}

// Cluster is a running virtual cluster.
type Cluster struct {
	cfg    Config
	cp     *controlplane.ControlPlane
	syncer *syncer.Syncer
}

// Start starts a virtual cluster and returns once it is ready.
func Start(ctx context.Context, cfg Config) (*Cluster, error) {
	cpc := controlplane.Config{
		Name: cfg.Name, Dir: cfg.Dir, Version: cfg.Version, Binaries: cfg.Binaries,
		VerifyKubelets: true, AuditDeprecated: true,
		// The host's range, so a Service can carry the host's cluster IP.
		ServiceCIDR: cfg.Host.ServiceCIDR(),
		Flags:       cfg.Flags,
		Store:       cfg.Backend.Starter(cfg.Name),
	}
	if cfg.Backend.Kind == "" || cfg.Backend.Kind == storage.SQLite {
		cpc.TemplateDir = controlplane.DefaultTemplateDir()
	}
	if cfg.ControlPlane != nil {
		cfg.ControlPlane(&cpc)
	}
	// The syncer starts as soon as the apiserver is ready, while the
	// controller manager is still coming up: it needs nothing of it.
	started := make(chan syncerStart, 1)
	fired := false // set in controlplane.Start's goroutine, read after it returns
	cpc.APIServerReady = func(virtual *rest.Config, files pki.Files) {
		fired = true
		go func() {
			s, err := startSyncer(ctx, cfg, virtual, files)
			started <- syncerStart{s, err}
		}()
	}
	cp, err := controlplane.Start(ctx, cpc)
	if err != nil {
		err = fmt.Errorf("virtual cluster %s (%s): %w", cfg.Name, cfg.Version, err)
		if fired { // the syncer started, or is starting: what it wrote to the host goes too
			if st := <-started; st.s != nil {
				dctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				err = errors.Join(err, st.s.Delete(dctx))
				cancel()
			}
		}
		return nil, err
	}
	st := <-started
	if st.err != nil {
		return nil, errors.Join(fmt.Errorf("virtual cluster %s (%s): %w", cfg.Name, cfg.Version, st.err), cp.Stop())
	}
	return &Cluster{cfg: cfg, cp: cp, syncer: st.s}, nil
}

type syncerStart struct {
	s   *syncer.Syncer
	err error
}

// startSyncer starts the syncer of the cluster whose apiserver virtual
// reaches, with PKI files.
func startSyncer(ctx context.Context, cfg Config, virtual *rest.Config, files pki.Files) (*syncer.Syncer, error) {
	opts := syncer.Options{Name: cfg.Name, Virtual: virtual, Host: cfg.Host.RESTConfig(),
		Kubelet: &syncer.KubeletOptions{
			CertFile: files.KubeletServingCert(), KeyFile: files.KubeletServingKey(),
			ClientCAFile: files.CACert(), ClientName: pki.KubeletClientName,
		}}
	// Many suites wait for a Ready node before they start; the embedded host's
	// simulated nodes cost nothing to show.
	_, opts.MirrorAllNodes = cfg.Host.(*host.Embedded)
	if cfg.Syncer != nil {
		cfg.Syncer(&opts)
	}
	s, err := syncer.New(opts)
	if err != nil {
		return nil, err
	}
	if err := s.Start(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

func (v *Cluster) Name() string             { return v.cfg.Name }
func (v *Cluster) Version() k8sdist.Version { return v.cp.Version() }
func (v *Cluster) KubeconfigPath() string   { return v.cp.KubeconfigPath() }
func (v *Cluster) RESTConfig() *rest.Config { return v.cp.RESTConfig() }
func (v *Cluster) Port() int                { return v.cp.Port() }
func (v *Cluster) PIDs() map[string]int     { return v.cp.PIDs() }

// Health says whether the control plane's components are up; Changed is
// closed when that changes.
func (v *Cluster) Health() controlplane.Health { return v.cp.Health() }
func (v *Cluster) Changed() <-chan struct{}    { return v.cp.Changed() }

// Upgrade runs the cluster's control plane at version, on the same storage
// and PKI (controlplane.ControlPlane.Upgrade). The syncer keeps running, so
// the workloads on the host are not made again.
func (v *Cluster) Upgrade(ctx context.Context, version k8sdist.Version, bins k8sdist.Binaries) error {
	if err := v.cp.Upgrade(ctx, version, bins); err != nil {
		return err
	}
	v.syncer.Upgraded()
	return nil
}

// HostNamespace is the host namespace that holds the cluster's workloads.
func (v *Cluster) HostNamespace() string { return v.syncer.HostNamespace() }

// Delete stops the virtual cluster and removes it: the syncer, which removes
// everything of the cluster from the host and waits until it is gone, then
// the control plane and its store, and drops the database vmatrix made for
// it on an external backend. It is idempotent.
func (v *Cluster) Delete() error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	return errors.Join(v.syncer.Delete(ctx), v.cp.Stop(), v.cfg.Backend.Drop(ctx, filepath.Join(v.cfg.Dir, "data")))
}

// Stop stops the syncer and the control plane but leaves the host objects:
// a virtual cluster in a pod that restarts takes them over again, and only
// its uninstall removes them. It is idempotent.
func (v *Cluster) Stop() error {
	v.syncer.Stop()
	return v.cp.Stop()
}
