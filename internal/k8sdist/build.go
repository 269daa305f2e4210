package k8sdist

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/mod/modfile"
)

// buildModule is the path of the wrapper module that builds Kubernetes. It
// never leaves the cache directory; keeping it constant keeps builds of the
// same release identical, so the Go build cache serves them.
const buildModule = "vmatrix.local/k8sbuild"

// toolsGo makes `go mod tidy` record everything the commands import. The
// build tag keeps it out of any build.
const toolsGo = `//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
)
`

// buildTarget is the package that builds the command name.
func buildTarget(name string) string {
	if name == ControlPlaneProgram {
		return buildModule + "/cmd/" + name
	}
	return "k8s.io/kubernetes/cmd/" + name
}

// versionLDFlags stamps v into the binaries, as the Kubernetes release build
// does; otherwise /version reports v0.0.0-master and tools that pick flags by
// version (kwokctl does) go wrong. -s -w drop debug information, which
// halves the size and the link time.
func versionLDFlags(v Version) string {
	flags := []string{"-s", "-w"}
	for _, pkg := range []string{"k8s.io/component-base/version", "k8s.io/client-go/pkg/version"} {
		flags = append(flags,
			"-X", pkg+".gitVersion="+v.String(),
			"-X", fmt.Sprintf("%s.gitMajor=%d", pkg, v.Major),
			"-X", fmt.Sprintf("%s.gitMinor=%d", pkg, v.Minor),
		)
	}
	return strings.Join(flags, " ")
}

// build compiles the named commands of k8s.io/kubernetes v into dir from the
// Go module proxy. k8s.io/kubernetes cannot be required as is: its go.mod
// replaces the k8s.io/* staging modules with directories of its own
// repository, which a dependency's replace directives cannot reach, so the
// wrapper module pins each of them to the matching published v0.MINOR.PATCH.
func (s Source) build(ctx context.Context, g *goCommand, v Version, cache, dir string, names []string) (err error) {
	times := buildTimes{path: filepath.Join(cache, "build-times.json")}
	whole := slices.Contains(names, "kube-apiserver") // the estimate is for a whole build
	estimate := time.Duration(0)
	if whole {
		estimate = times.estimate(v)
	}
	how := "a cold build takes several minutes"
	if estimate > 0 {
		how = fmt.Sprintf("the last build on this machine took %s", estimate.Round(time.Second))
	}
	logf(s.Log, "building %s %s from the Go module proxy; %s", strings.Join(names, ", "), v, how)
	start := time.Now()
	defer func() {
		elapsed := time.Since(start)
		if err != nil {
			logf(s.Log, "building %s failed after %s", v, elapsed.Round(time.Second))
		} else {
			logf(s.Log, "built %s %s in %s", strings.Join(names, ", "), v, elapsed.Round(time.Second))
			if whole {
				times.record(v, elapsed)
			}
		}
	}()
	progress := func(what string) {
		if s.Progress != nil {
			s.Progress(v, what)
		}
	}
	progress("downloading modules")

	work := filepath.Join(cache, "build", v.String())
	if err := writeBuildModule(ctx, g, work, v, toolsGo); err != nil {
		return fmt.Errorf("building Kubernetes %s: %w", v, err)
	}
	// ControlPlaneProgram's source is in the module only when it is built:
	// nothing of it may fail the build of the upstream commands.
	if err := writeControlPlaneMain(work, slices.Contains(names, ControlPlaneProgram)); err != nil {
		return fmt.Errorf("building Kubernetes %s: %w", v, err)
	}
	if err := g.run(ctx, work, nil, "mod", "tidy"); err != nil {
		return fmt.Errorf("building Kubernetes %s: %w", v, err)
	}

	// Build next to dir so that the final renames stay on one file system.
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".build-"+v.String()+"-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	// One go build for all commands: they share most packages, and the go
	// command then compiles each once.
	var targets []string
	for _, n := range names {
		targets = append(targets, buildTarget(n))
	}
	// -v names each package as it is compiled; go list -deps says how many
	// there are (cached ones are not compiled again: the count is a bound).
	counted := &buildCount{}
	if deps, err := g.output(ctx, work, append([]string{"list", "-deps"}, targets...)...); err == nil {
		counted.total = strings.Count(string(deps), "\n")
	}
	c := g.cmd(ctx, work, append([]string{"build", "-v", "-trimpath", "-ldflags", versionLDFlags(v), "-o", tmp + string(filepath.Separator)}, targets...)...)
	c.Stdout, c.Stderr = counted, counted
	stop := followBuild(s.Log, progress, v, counted, estimate, 2*time.Second, progressEvery)
	err = c.Run()
	stop()
	if err != nil {
		return fmt.Errorf("building Kubernetes %s: %w", v, commandError(ctx, c, err, []byte(counted.output.String())))
	}
	for _, n := range names {
		if err := os.Rename(filepath.Join(tmp, n), filepath.Join(dir, cachedName(n))); err != nil {
			return err
		}
	}
	if whole {
		return os.WriteFile(filepath.Join(dir, builtHere), nil, 0o644)
	}
	return nil
}

// writeBuildModule writes the wrapper module for v into work, with tools
// (a tools.go) naming what it builds.
func writeBuildModule(ctx context.Context, g *goCommand, work string, v Version, tools string) error {
	if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}
	// Start afresh: an interrupted earlier attempt may have left a go.mod,
	// and the download below must not run inside it.
	for _, f := range []string{"go.mod", "go.sum", "tools.go"} {
		if err := os.Remove(filepath.Join(work, f)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	upstream, err := upstreamGoMod(ctx, g, work, v)
	if err != nil {
		return err
	}

	mf := new(modfile.File)
	if err := mf.AddModuleStmt(buildModule); err != nil {
		return err
	}
	if upstream.Go != nil {
		if err := mf.AddGoStmt(upstream.Go.Version); err != nil {
			return err
		}
	}
	mf.AddNewRequire("k8s.io/kubernetes", v.String(), false)
	staging := fmt.Sprintf("v0.%d.%d", v.Minor, v.Patch)
	pinned := 0
	for _, r := range upstream.Replace {
		name, ok := strings.CutPrefix(r.New.Path, "./staging/src/")
		if !ok || r.New.Version != "" || name != r.Old.Path {
			continue
		}
		if err := mf.AddReplace(r.Old.Path, "", r.Old.Path, staging); err != nil {
			return err
		}
		pinned++
	}
	if pinned == 0 {
		return fmt.Errorf("the go.mod of k8s.io/kubernetes %s replaces no staging module; releases this old cannot be built from the module proxy", v)
	}
	data, err := mf.Format()
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(work, "go.mod"), data, 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(work, "tools.go"), []byte(tools), 0o644)
}

// upstreamGoMod downloads k8s.io/kubernetes v and parses its go.mod.
func upstreamGoMod(ctx context.Context, g *goCommand, dir string, v Version) (*modfile.File, error) {
	out, err := g.output(ctx, dir, "mod", "download", "-json", "k8s.io/kubernetes@"+v.String())
	var info struct{ GoMod, Error string }
	if jerr := json.Unmarshal(out, &info); jerr == nil && info.Error != "" {
		return nil, fmt.Errorf("downloading k8s.io/kubernetes %s: %s", v, info.Error)
	}
	if err != nil {
		return nil, err
	}
	if info.GoMod == "" {
		return nil, fmt.Errorf("go mod download named no go.mod for k8s.io/kubernetes %s", v)
	}
	data, err := os.ReadFile(info.GoMod)
	if err != nil {
		return nil, err
	}
	return modfile.Parse(info.GoMod, data, nil)
}
