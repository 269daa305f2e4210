package k8sdist

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Binaries are the absolute paths of one version's control-plane binaries.
type Binaries struct {
	APIServer, ControllerManager, Scheduler string
	// ControlPlane runs the apiserver and the controller manager in one
	// process (ControlPlaneProgram); "" where they run as two: binaries
	// downloaded or named by their environment variables.
	ControlPlane string
}

// Source obtains binaries. The zero value is ready to use.
type Source struct {
	// CacheDir holds the binaries, shared by all vmatrix processes of a user;
	// "" means DefaultCacheDir().
	CacheDir string
	// Log receives progress lines, which matter when a build takes minutes;
	// nil discards them. Writes from concurrent calls are serialized.
	Log io.Writer
	// Progress, if set, hears every few seconds where a build from the
	// module proxy stands ("building: 812 of 1903 packages compiled, ...").
	Progress func(v Version, what string)
}

// component is one control-plane binary and the variable that overrides it.
type component struct{ name, env string }

var components = []component{
	{"kube-apiserver", "VMATRIX_KUBE_APISERVER"},
	{"kube-controller-manager", "VMATRIX_KUBE_CONTROLLER_MANAGER"},
	{"kube-scheduler", "VMATRIX_KUBE_SCHEDULER"},
}

// field maps a component to its place in Binaries.
func (b *Binaries) field(name string) *string {
	switch name {
	case "kube-apiserver":
		return &b.APIServer
	case "kube-controller-manager":
		return &b.ControllerManager
	case "kube-scheduler":
		return &b.Scheduler
	}
	panic("k8sdist: unknown component " + name)
}

// DefaultCacheDir is $VMATRIX_CACHE_DIR if set, else $XDG_CACHE_HOME/vmatrix,
// else ~/.cache/vmatrix: per user, so every test run on a machine shares one
// copy of each build.
func DefaultCacheDir() string {
	if d := os.Getenv("VMATRIX_CACHE_DIR"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_CACHE_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "vmatrix")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".cache", "vmatrix")
	}
	return filepath.Join(os.TempDir(), "vmatrix-cache-"+fmt.Sprint(os.Getuid()))
}

// cacheDir returns the absolute cache directory, so that returned paths stay
// valid when the caller changes directory or starts processes elsewhere.
func (s Source) cacheDir() (string, error) {
	d := s.CacheDir
	if d == "" {
		d = DefaultCacheDir()
	}
	return filepath.Abs(d)
}

// Kubernetes returns the binaries of version v. Each binary comes from the
// first of: its environment variable (VMATRIX_KUBE_APISERVER,
// VMATRIX_KUBE_CONTROLLER_MANAGER, VMATRIX_KUBE_SCHEDULER; the version is then
// the user's responsibility); <CacheDir>/k8s/<v>/; the official release
// download, checksum verified; a build from the Go module proxy. What is
// downloaded or built goes to the cache, under a lock that makes concurrent
// callers, in any process, wait for one another instead of repeating work.
func (s Source) Kubernetes(ctx context.Context, v Version) (Binaries, error) {
	b, err := s.binaries(ctx, v, components)
	if err != nil {
		return b, err
	}
	b.ControlPlane = s.controlPlane(ctx, v)
	return b, nil
}

// ControlPlane is Kubernetes without the kube-scheduler, which a virtual
// cluster does not run (the host schedules its pods): the in-cluster image
// holds only these two, and its pod must not go looking for a third.
func (s Source) ControlPlane(ctx context.Context, v Version) (Binaries, error) {
	return s.binaries(ctx, v, components[:2])
}

func (s Source) binaries(ctx context.Context, v Version, want []component) (Binaries, error) {
	var b Binaries
	var wanted []component
	for _, c := range want {
		p, ok, err := envOverride(c.env)
		if err != nil {
			return Binaries{}, err
		}
		if ok {
			*b.field(c.name) = p
			continue
		}
		wanted = append(wanted, c)
	}
	if len(wanted) == 0 {
		return b, nil
	}

	cache, err := s.cacheDir()
	if err != nil {
		return Binaries{}, err
	}
	dir := filepath.Join(cache, "k8s", v.String())
	if need := uncached(dir, wanted); len(need) > 0 {
		unlock, err := lockFile(ctx, dir+".lock", func(otherProcess bool) {
			if otherProcess {
				logf(s.Log, "waiting for another vmatrix process building %s", v)
			} else {
				logf(s.Log, "waiting for the build of %s already running in this process", v)
			}
		})
		if err != nil {
			return Binaries{}, fmt.Errorf("Kubernetes %s: %w", v, err)
		}
		defer unlock()
		// Whoever held the lock may have filled the cache meanwhile.
		if need := uncached(dir, wanted); len(need) > 0 {
			if err := s.obtain(ctx, v, cache, dir, need); err != nil {
				return Binaries{}, err
			}
		}
	}
	for _, c := range wanted {
		*b.field(c.name) = filepath.Join(dir, c.name)
	}
	return b, nil
}

// obtain puts the needed binaries of v into dir: downloaded if possible,
// else built.
func (s Source) obtain(ctx context.Context, v Version, cache, dir string, need []component) error {
	names := componentNames(need)
	dlErr := s.download(ctx, v, dir, names)
	if dlErr == nil {
		return nil
	}
	var sumErr *checksumError
	if errors.As(dlErr, &sumErr) {
		return fmt.Errorf("Kubernetes %s: %w", v, dlErr)
	}
	if err := context.Cause(ctx); err != nil {
		return err
	}
	logf(s.Log, "%s: official release download unavailable (%v); using the Go module proxy", v, dlErr)

	g, err := newGoCommand(ctx)
	if err != nil {
		var envs []string
		for _, c := range need {
			envs = append(envs, fmt.Sprintf("%s to the path of a %s %s binary", c.env, c.name, v))
		}
		return fmt.Errorf("%s %s: not in the cache (%s), the official download failed (%v), and it cannot be built (%v); install Go, or set %s",
			strings.Join(names, ", "), v, dir, dlErr, err, strings.Join(envs, " and "))
	}
	return s.build(ctx, g, v, cache, dir, names)
}

// envOverride reads a binary path from env. A set variable must name an
// executable file: silently falling back to another binary would hide typos.
func envOverride(env string) (path string, ok bool, err error) {
	p := os.Getenv(env)
	if p == "" {
		return "", false, nil
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", false, fmt.Errorf("%s=%q: %w", env, p, err)
	}
	fi, err := os.Stat(abs)
	switch {
	case err != nil:
		return "", false, fmt.Errorf("%s=%q: %w", env, p, err)
	case !fi.Mode().IsRegular():
		return "", false, fmt.Errorf("%s=%q: not a regular file", env, p)
	case fi.Mode().Perm()&0o111 == 0:
		return "", false, fmt.Errorf("%s=%q: not executable (mode %v)", env, p, fi.Mode().Perm())
	}
	return abs, true, nil
}

// isExecutable reports whether path is a regular executable file, which is
// what a cache entry must be: partial files never get the final name.
func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// uncached returns the components missing from dir.
func uncached(dir string, wanted []component) []component {
	var need []component
	for _, c := range wanted {
		if !isExecutable(filepath.Join(dir, c.name)) {
			need = append(need, c)
		}
	}
	return need
}

func componentNames(cs []component) []string {
	var names []string
	for _, c := range cs {
		names = append(names, c.name)
	}
	return names
}

// Cached lists, oldest first, the versions whose three binaries are all in
// the cache, i.e. those Kubernetes returns without downloading or building.
func (s Source) Cached() ([]Version, error) {
	cache, err := s.cacheDir()
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(filepath.Join(cache, "k8s"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var list []Version
	for _, e := range entries {
		v, exact, err := ParseVersion(e.Name())
		if err != nil || !exact || !e.IsDir() || e.Name() != v.String() {
			continue
		}
		if len(uncached(filepath.Join(cache, "k8s", e.Name()), components)) == 0 {
			list = append(list, v)
		}
	}
	slices.SortFunc(list, Compare)
	return list, nil
}

// Release resolves a request ("1.36", "v1.36.3") and obtains that release's
// binaries: what every caller that starts a control plane needs first.
func (s Source) Release(ctx context.Context, request string) (Version, Binaries, error) {
	v, err := Resolve(ctx, request)
	if err != nil {
		return v, Binaries{}, err
	}
	bins, err := s.Kubernetes(ctx, v)
	return v, bins, err
}
