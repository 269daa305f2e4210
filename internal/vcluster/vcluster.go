// Package vcluster runs one virtual cluster: a control plane of its own version
// whose workloads run on a host cluster. The framework and the CLI's background
// supervisor both start virtual clusters through here.
package vcluster

import (
	"context"
	"fmt"

	"k8s.io/client-go/rest"

	"github.com/vmatrix/vmatrix/internal/controlplane"
	"github.com/vmatrix/vmatrix/internal/host"
	"github.com/vmatrix/vmatrix/internal/k8sdist"
)

// Config describes one virtual cluster.
type Config struct {
	Name     string
	Dir      string
	Version  k8sdist.Version
	Binaries k8sdist.Binaries
	Host     host.Host
}

// VCluster is a running virtual cluster.
type VCluster struct {
	cfg Config
	cp  *controlplane.ControlPlane
}

// Start starts a virtual cluster and returns once it is ready.
func Start(ctx context.Context, cfg Config) (*VCluster, error) {
	cp, err := controlplane.Start(ctx, controlplane.Config{
		Name: cfg.Name, Dir: cfg.Dir, Version: cfg.Version, Binaries: cfg.Binaries,
		// The host's range, so a Service can carry the host's cluster IP.
		ServiceCIDR: cfg.Host.ServiceCIDR(),
	})
	if err != nil {
		return nil, fmt.Errorf("virtual cluster %s (%s): %w", cfg.Name, cfg.Version, err)
	}
	return &VCluster{cfg: cfg, cp: cp}, nil
}

func (v *VCluster) Name() string             { return v.cfg.Name }
func (v *VCluster) Version() k8sdist.Version { return v.cfg.Version }
func (v *VCluster) KubeconfigPath() string   { return v.cp.KubeconfigPath() }
func (v *VCluster) RESTConfig() *rest.Config { return v.cp.RESTConfig() }
func (v *VCluster) Port() int                { return v.cp.Port() }
func (v *VCluster) PIDs() map[string]int     { return v.cp.PIDs() }

// Stop stops the virtual cluster: its control plane, then its store. It is
// idempotent.
func (v *VCluster) Stop() error { return v.cp.Stop() }
