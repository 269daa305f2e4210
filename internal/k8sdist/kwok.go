package k8sdist

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// KWOKVersion is the KWOK release that KWOK provides. Pinned: the embedded
// host depends on its flags and behaviour.
const KWOKVersion = "v0.7.0"

// KWOK returns the path of the kwok controller binary: $VMATRIX_KWOK if set,
// else <CacheDir>/kwok/<KWOKVersion>/kwok, else one built from the Go module
// proxy into that cache (under the same kind of lock as Kubernetes).
func (s Source) KWOK(ctx context.Context) (string, error) {
	if p, ok, err := envOverride("VMATRIX_KWOK"); err != nil || ok {
		return p, err
	}
	cache, err := s.cacheDir()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(cache, "kwok", KWOKVersion)
	path := filepath.Join(dir, "kwok")
	if isExecutable(path) {
		return path, nil
	}
	unlock, err := lockFile(ctx, dir+".lock", func(otherProcess bool) {
		if otherProcess {
			logf(s.Log, "waiting for another vmatrix process building kwok %s", KWOKVersion)
		} else {
			logf(s.Log, "waiting for the build of kwok %s already running in this process", KWOKVersion)
		}
	})
	if err != nil {
		return "", fmt.Errorf("kwok %s: %w", KWOKVersion, err)
	}
	defer unlock()
	if isExecutable(path) {
		return path, nil
	}
	g, err := newGoCommand(ctx)
	if err != nil {
		return "", fmt.Errorf("kwok %s: not in the cache (%s) and it cannot be built (%v); install Go, or set VMATRIX_KWOK to a kwok binary", KWOKVersion, dir, err)
	}
	if err := s.buildKWOK(ctx, g, dir); err != nil {
		return "", err
	}
	return path, nil
}

// buildKWOK installs kwok into a temporary GOBIN next to dir and moves it in.
func (s Source) buildKWOK(ctx context.Context, g *goCommand, dir string) (err error) {
	logf(s.Log, "building kwok %s from the Go module proxy", KWOKVersion)
	stop := startProgress(s.Log, "building kwok "+KWOKVersion)
	defer func() {
		elapsed := stop().Round(time.Second)
		if err != nil {
			logf(s.Log, "building kwok %s failed after %s", KWOKVersion, elapsed)
		} else {
			logf(s.Log, "built kwok %s in %s", KWOKVersion, elapsed)
		}
	}()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".build-kwok-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	// The release build stamps the version the same way; kwok reports it in
	// --version and in its User-Agent.
	ldflags := "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=" + KWOKVersion
	// `go install pkg@version` builds with kwok's own go.mod and requirements,
	// whatever module the current directory belongs to.
	err = g.run(ctx, tmp, []string{"GOBIN=" + tmp},
		"install", "-trimpath", "-ldflags", ldflags, "sigs.k8s.io/kwok/cmd/kwok@"+KWOKVersion)
	if err != nil {
		return fmt.Errorf("building kwok %s: %w", KWOKVersion, err)
	}
	return os.Rename(filepath.Join(tmp, "kwok"), filepath.Join(dir, "kwok"))
}
