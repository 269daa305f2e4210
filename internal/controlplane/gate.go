package controlplane

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// bootstrapHooks are the apiserver's post-start hooks that make the RBAC
// bootstrap roles and the system PriorityClasses. Each waits a whole second
// before its first look (wait.Poll, not PollImmediate), so no apiserver is
// healthy, nor ready, sooner than a second after it starts serving; on a
// store from a template what they make is there already and that second is
// idle. The controller manager and the syncer start in it instead of after
// it: they act as cluster admins, whom RBAC does not hold back.
var bootstrapHooks = []string{
	"poststarthook/rbac/bootstrap-roles",
	"poststarthook/scheduling/bootstrap-system-priority-classes",
}

// gatedKubeconfig is the controller manager's kubeconfig, held back until
// the apiserver is healthy. The controller manager checks the apiserver's
// health once when it has read its kubeconfig and then only once a second;
// started early against a regular file it would mostly look too soon and
// lose up to a second, started late its own start-up (0.2-0.4 s) comes
// after the apiserver's. So its kubeconfig is a FIFO: the process starts
// during the apiserver's idle second and blocks reading it, and release
// hands it the kubeconfig the moment the apiserver is healthy.
//
// The FIFO stays open read-write here, so that opening it never blocks and
// no reader sees its end before release. release first puts a regular file
// in its place, so that whatever opens the path later (a controller
// manager started again) reads the kubeconfig at once.
type gatedKubeconfig struct {
	path string
	fifo *os.File
}

// maxGatedSize is what a FIFO holds without a reader (a Linux pipe holds
// 64 KiB): release writes before the controller manager may have opened it.
const maxGatedSize = 64 << 10

func newGatedKubeconfig(path string) (*gatedKubeconfig, error) {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		return nil, fmt.Errorf("the controller manager's kubeconfig: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		os.Remove(path)
		return nil, err
	}
	return &gatedKubeconfig{path: path, fifo: f}, nil
}

// release gives the kubeconfig to whoever reads the path, now or later.
func (g *gatedKubeconfig) release(kubeconfig []byte) error {
	if len(kubeconfig) > maxGatedSize {
		return fmt.Errorf("a kubeconfig of %d bytes does not fit a FIFO", len(kubeconfig))
	}
	tmp := g.path + ".tmp"
	err := os.WriteFile(tmp, kubeconfig, 0o600)
	if err == nil {
		err = os.Rename(tmp, g.path)
	}
	if err == nil {
		_, err = g.fifo.Write(kubeconfig)
	}
	// A reader gets what was written, then the end of it.
	err = errors.Join(err, g.fifo.Close())
	g.fifo = nil
	return err
}

// close gives up the gate unreleased: a reader waiting at the FIFO reads
// nothing, and the path goes, so that nothing opens a FIFO no one writes.
func (g *gatedKubeconfig) close() error {
	if g.fifo == nil {
		return nil
	}
	err := errors.Join(os.Remove(g.path), g.fifo.Close())
	g.fifo = nil
	return err
}
