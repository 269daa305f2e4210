package controlplane

import (
	"context"
	"fmt"

	"github.com/vmatrix/vmatrix/internal/k8sdist"
)

// Upgrade replaces the apiserver and controller manager by those of version
// v, on the same store, PKI, port and flags, and returns once the control
// plane is ready again: its objects, their UIDs and resourceVersions are
// the store's and so stay. A version that is no in-place upgrade of the
// running one (k8sdist.CheckUpgrade) is refused before anything stops. If
// the new version does not come up, the old one is started again and the
// error says so. Not to be called concurrently with Stop.
func (cp *ControlPlane) Upgrade(ctx context.Context, v k8sdist.Version, bins k8sdist.Binaries) error {
	old, oldBins := cp.Version(), cp.cfg.Binaries
	if err := k8sdist.CheckUpgrade(old, v); err != nil {
		return err
	}
	err := cp.replaceComponents(ctx, v, bins)
	if err == nil {
		return nil
	}
	if back := cp.replaceComponents(context.WithoutCancel(ctx), old, oldBins); back != nil {
		return fmt.Errorf("upgrading to %s: %w; starting %s again failed too: %v", v, err, old, back)
	}
	return fmt.Errorf("upgrading to %s: %w; running %s again", v, err, old)
}

// replaceComponents stops the components and starts those of v in their
// place, on the port they had, and supervises them once they are ready.
func (cp *ControlPlane) replaceComponents(ctx context.Context, v k8sdist.Version, bins k8sdist.Binaries) error {
	cp.stopSupervising()
	if err := cp.stopProcesses(); err != nil {
		return err
	}
	cp.mu.Lock()
	cp.cfg.Version, cp.cfg.Binaries, cp.cfg.Port = v, bins, cp.port
	cp.mu.Unlock()
	controllers := make(chan controllerList, 1)
	if !cp.cfg.APIServerOnly {
		names, err := knownControllers(bins.ControllerManager)
		controllers <- controllerList{names, err}
	}
	err := cp.startProcesses(ctx, cp.PKI(), controllers)
	if err == nil {
		err = cp.waitReady(ctx)
	}
	if err != nil {
		cp.stopProcesses()
		return err
	}
	cp.supervise()
	return nil
}
