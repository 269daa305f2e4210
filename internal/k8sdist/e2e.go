package k8sdist

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// E2E is the upstream end-to-end suite of one Kubernetes version: its test
// binary (e2e.test, whose [Conformance] specs are the conformance suite)
// and the ginkgo command of the same Ginkgo release, which runs it in
// parallel.
type E2E struct{ Test, Ginkgo string }

// e2eToolsGo names what the suite's wrapper module builds.
const e2eToolsGo = `//go:build tools

package tools

import (
	_ "github.com/onsi/ginkgo/v2/ginkgo"
	_ "k8s.io/kubernetes/test/e2e"
)
`

// E2E returns the end-to-end suite of version v, built from the Go module
// proxy into the cache on first use (about 11 minutes cold on two cores),
// under the same lock as the version's other binaries.
func (s Source) E2E(ctx context.Context, v Version) (E2E, error) {
	cache, err := s.cacheDir()
	if err != nil {
		return E2E{}, err
	}
	dir := filepath.Join(cache, "k8s", v.String())
	e := E2E{Test: filepath.Join(dir, "e2e.test"), Ginkgo: filepath.Join(dir, "ginkgo")}
	if isExecutable(e.Test) && isExecutable(e.Ginkgo) {
		return e, nil
	}
	unlock, err := lockFile(ctx, dir+".lock", func(bool) { logf(s.Log, "waiting for another build of %s", v) })
	if err != nil {
		return E2E{}, fmt.Errorf("the e2e suite of %s: %w", v, err)
	}
	defer unlock()
	if isExecutable(e.Test) && isExecutable(e.Ginkgo) {
		return e, nil
	}
	g, err := newGoCommand(ctx)
	if err != nil {
		return E2E{}, fmt.Errorf("the e2e suite of %s is built from the Go module proxy: %w", v, err)
	}
	if err := s.buildE2E(ctx, g, v, cache, dir); err != nil {
		return E2E{}, fmt.Errorf("building the e2e suite of %s: %w", v, err)
	}
	return e, nil
}

func (s Source) buildE2E(ctx context.Context, g *goCommand, v Version, cache, dir string) (err error) {
	logf(s.Log, "building e2e.test %s from the Go module proxy; a cold build takes about 11 minutes", v)
	stop := startProgress(s.Log, "building e2e.test "+v.String())
	defer func() {
		if err == nil {
			logf(s.Log, "built e2e.test %s in %s", v, stop().Round(time.Second))
		} else {
			stop()
		}
	}()
	work := filepath.Join(cache, "build", v.String()+"-e2e")
	if err := writeBuildModule(ctx, g, work, v, e2eToolsGo); err != nil {
		return err
	}
	if err := g.run(ctx, work, nil, "mod", "tidy"); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".build-e2e-"+v.String()+"-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	// vet would take minutes over the whole suite and checks nothing of ours.
	if err := g.run(ctx, work, nil, "test", "-c", "-vet=off", "-trimpath", "-ldflags", versionLDFlags(v),
		"-o", filepath.Join(tmp, "e2e.test"), "k8s.io/kubernetes/test/e2e"); err != nil {
		return err
	}
	if err := g.run(ctx, work, nil, "build", "-trimpath", "-o", filepath.Join(tmp, "ginkgo"), "github.com/onsi/ginkgo/v2/ginkgo"); err != nil {
		return err
	}
	for _, n := range []string{"ginkgo", "e2e.test"} { // e2e.test last: it marks the pair complete
		if err := os.Rename(filepath.Join(tmp, n), filepath.Join(dir, n)); err != nil {
			return err
		}
	}
	return nil
}
