package framework

import (
	"context"
	"fmt"

	"github.com/vmatrix/vmatrix/internal/host"
	"github.com/vmatrix/vmatrix/internal/k8sdist"
	"github.com/vmatrix/vmatrix/syncer"
)

// ClusterInfo is what another process needs to use a virtual cluster: Ginkgo's
// parallel processes get it from the process that created the clusters. It
// marshals to JSON.
type ClusterInfo struct {
	Name           string `json:"name"`
	Version        string `json:"version"`
	KubeconfigPath string `json:"kubeconfig"`
	// Dir is the cluster's state folder (component logs for artifacts).
	Dir string `json:"dir"`
	// HostKubeconfigPath is the host's kubeconfig, "" if unknown.
	HostKubeconfigPath string `json:"hostKubeconfig,omitempty"`
	// HostNamespace is the host namespace that holds the cluster's synced
	// objects under their rewritten names.
	HostNamespace string `json:"hostNamespace,omitempty"`
	// ArtifactsDir is the creating Environment's WithArtifactsDir, if set.
	ArtifactsDir string `json:"artifactsDir,omitempty"`
}

// Info describes the cluster: for Connect in another process, and for a test
// that looks at what the syncer made on the host.
func (vc *VirtualCluster) Info() ClusterInfo {
	vc.env.mu.Lock()
	artifacts := vc.env.opts.artifactsDir
	vc.env.mu.Unlock()
	return ClusterInfo{
		Name: vc.name, Version: vc.Version().String(), KubeconfigPath: vc.KubeconfigPath(), Dir: vc.dir,
		HostKubeconfigPath: vc.env.hostKubeconfigPath(), HostNamespace: syncer.DefaultHostNamespace(vc.name),
		ArtifactsDir: artifacts,
	}
}

// Connect returns a handle on a cluster that another process (or
// Environment) owns. The handle's Destroy does nothing: the owner tears the
// cluster down.
func Connect(ctx context.Context, info ClusterInfo) (*VirtualCluster, error) {
	v, _, err := k8sdist.ParseVersion(info.Version)
	if err != nil {
		return nil, err
	}
	o := defaultOptions()
	o.signals = false
	o.artifactsDir = info.ArtifactsDir
	e := &Environment{opts: o, clusters: map[string]*VirtualCluster{}}
	e.ctx, e.cancel = context.WithCancel(context.Background())
	if info.HostKubeconfigPath != "" {
		h, err := host.Connect(ctx, info.HostKubeconfigPath, "")
		if err != nil {
			return nil, fmt.Errorf("virtual cluster %s: %w", info.Name, err)
		}
		e.host = h
	}
	vc := &VirtualCluster{env: e, name: info.Name, requested: info.Version, dir: info.Dir, version: v, attached: true, isReady: true}
	if err := vc.connect(info.KubeconfigPath); err != nil {
		return nil, fmt.Errorf("virtual cluster %s: %w", info.Name, err)
	}
	e.clusters[vc.name] = vc
	return vc, nil
}
