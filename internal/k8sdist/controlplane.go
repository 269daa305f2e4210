package k8sdist

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vmatrix/vmatrix/internal/lean"
)

// ControlPlaneProgram is the program that runs a version's apiserver and
// controller manager in one process (kubecontrolplane/main.go), built
// beside them where they are built from the module proxy. A control plane
// of one process holds over 100 MB less than the two binaries: they share
// most of their code, and it gives its idle memory back.
const ControlPlaneProgram = "kube-control-plane"

// ControllerManagerFlags, among ControlPlaneProgram's arguments, ends the
// apiserver's flags and begins the controller manager's.
const ControllerManagerFlags = "--controller-manager"

// ControllerManagerEnded begins the line ControlPlaneProgram writes to its
// log when its controller manager has ended (and so the process): the
// apiserver did not fail.
const ControllerManagerEnded = "kube-control-plane: the controller manager ended"

//go:embed kubecontrolplane/main.go
var controlPlaneMain string

// builtHere marks a cache folder whose binaries were built here, from the
// module proxy, and not downloaded: only then is ControlPlaneProgram built
// beside them.
const builtHere = ".built-from-source"

// writeControlPlaneMain puts ControlPlaneProgram's source into the wrapper
// module in work, or, unless want, takes it out: main.go without the build
// constraint that keeps it out of vmatrix's own build, and lean.go
// (internal/lean) as part of package main.
func writeControlPlaneMain(work string, want bool) error {
	dir := filepath.Join(work, "cmd", ControlPlaneProgram)
	if !want {
		return os.RemoveAll(filepath.Join(work, "cmd"))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	main, ok := strings.CutPrefix(controlPlaneMain, "//go:build ignore\n")
	if !ok {
		return errors.New("kubecontrolplane/main.go lost its build constraint")
	}
	if !strings.Contains(lean.Source, "\npackage lean\n") {
		return errors.New("internal/lean/lean.go no longer declares package lean")
	}
	leanMain := strings.Replace(lean.Source, "\npackage lean\n", "\npackage main\n", 1)
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(main), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "lean.go"), []byte(leanMain), 0o644)
}

// cachedName is the file name in the cache of the command name. That of
// ControlPlaneProgram carries a hash of its source, so that a vmatrix with
// another source builds its own.
func cachedName(name string) string {
	if name != ControlPlaneProgram {
		return name
	}
	sum := sha256.Sum256([]byte(controlPlaneMain + lean.Source))
	return fmt.Sprintf("%s-%x", name, sum[:4])
}

// controlPlane returns the path of v's ControlPlaneProgram, building it if
// v's binaries were built here (by this vmatrix or another, which left its
// own program there) and this source's is missing; "" where the binaries
// came from elsewhere (downloaded, or the apiserver or controller manager
// named by its variable) or it cannot be built: the control plane then
// runs as two processes. A build that failed is not tried again for this
// source: its error stays beside the binaries.
func (s Source) controlPlane(ctx context.Context, v Version) string {
	if os.Getenv(components[0].env) != "" || os.Getenv(components[1].env) != "" {
		return "" // the user's own binaries
	}
	cache, err := s.cacheDir()
	if err != nil {
		return ""
	}
	dir := filepath.Join(cache, "k8s", v.String())
	path := filepath.Join(dir, cachedName(ControlPlaneProgram))
	failed := path + ".failed"
	switch {
	case isExecutable(path):
		return path
	case fileExists(failed) || !builtFromSource(dir):
		return ""
	}
	unlock, err := lockFile(ctx, dir+".lock", func(bool) { logf(s.Log, "waiting for another build of %s", v) })
	if err != nil {
		return ""
	}
	defer unlock()
	if isExecutable(path) {
		return path
	}
	g, err := newGoCommand(ctx)
	if err == nil {
		err = s.build(ctx, g, v, cache, dir, []string{ControlPlaneProgram})
	}
	if err != nil {
		logf(s.Log, "%s %s: %v; the apiserver and the controller manager run as two processes", ControlPlaneProgram, v, err)
		if ctx.Err() == nil {
			_ = os.WriteFile(failed, []byte(err.Error()+"\n"), 0o644)
		}
		return ""
	}
	removeUnused(dir, path)
	return path
}

// builtFromSource says whether the binaries in dir were built from the
// module proxy: marked so, or beside a ControlPlaneProgram of another source.
func builtFromSource(dir string) bool {
	if fileExists(filepath.Join(dir, builtHere)) {
		return true
	}
	others, _ := filepath.Glob(filepath.Join(dir, ControlPlaneProgram+"-*"))
	for _, o := range others {
		if isExecutable(o) {
			return true
		}
	}
	return false
}

// keepOtherBuilds is how long the ControlPlaneProgram of another source
// (another vmatrix release) stays in the cache after it was built: two
// releases used in turn on one machine do not remove each other's.
const keepOtherBuilds = 7 * 24 * time.Hour

// removeUnused removes the ControlPlaneProgram builds in dir of other
// sources that are older than keepOtherBuilds and that no process runs.
// One that runs stays: its control plane starts it again after a crash.
func removeUnused(dir, keep string) {
	others, _ := filepath.Glob(filepath.Join(dir, ControlPlaneProgram+"-*"))
	for _, o := range others {
		if fi, err := os.Stat(o); err == nil && o != keep && time.Since(fi.ModTime()) > keepOtherBuilds && !running(o) {
			os.Remove(o)
		}
	}
}

// running says whether a process of this machine runs the program at path.
func running(path string) bool {
	path, err := filepath.EvalSymlinks(path)
	if err != nil {
		return false
	}
	exes, _ := filepath.Glob("/proc/[0-9]*/exe")
	for _, e := range exes {
		if target, err := os.Readlink(e); err == nil && target == path {
			return true
		}
	}
	return false
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
