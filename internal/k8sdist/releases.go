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
	"sync"
	"time"
)

// builtinReleases is what the module proxy listed when this table was last
// updated: the newest patch of each supported minor. It is used only when the
// proxy cannot be asked (no go command, offline, GOPROXY=off).
var builtinReleases = []Version{
	{1, 33, 13},
	{1, 34, 4},
	{1, 35, 4},
	{1, 36, 3},
	{1, 37, 2},
}

// OldestSupported is the oldest minor vmatrix runs: older releases lack
// flags and APIs the control plane relies on, and their go.mod predates the
// staging layout the build from the module proxy needs.
var OldestSupported = Version{1, 31, 0}

// listTimeout bounds the proxy listing: when offline the go command can hang
// on a connection attempt, and a built-in table beats a stuck test run.
const listTimeout = 20 * time.Second

// releases memoizes the listing: Resolve is called for every cluster, and a
// proxy round trip each time would add up.
var releases struct {
	mu   sync.Mutex
	list []Version
}

// releasesFresh is how long a listing kept on disk answers without asking
// the proxy again: every command and test process would otherwise pay a
// round trip (about 0.1 s on a local proxy, more across the internet), and a
// new patch release still shows within the hour.
const releasesFresh = time.Hour

// savedReleases is the listing kept on disk (releases.json in the cache).
type savedReleases struct {
	// Source is the proxy configuration it was listed with.
	Source   string    `json:"source"`
	At       time.Time `json:"at"`
	Versions []Version `json:"versions"`
}

func releasesFile() string { return filepath.Join(DefaultCacheDir(), "releases.json") }

// releasesSource names the proxy configuration a listing depends on.
func releasesSource() string {
	return "GOPROXY=" + os.Getenv("GOPROXY") + " GOFLAGS=" + os.Getenv("GOFLAGS") + " GONOPROXY=" + os.Getenv("GONOPROXY")
}

// Releases lists the stable Kubernetes releases (major 1, no pre-releases)
// that the Go module proxy knows, oldest first, asking
// `go list -m -versions k8s.io/kubernetes` with the user's GOPROXY and GOFLAGS.
// A listing of the last hour, kept in the cache folder, answers instead.
// When the go command or the proxy is unavailable it returns the last
// listing kept, or else a built-in table. The result is computed once per
// process. The error is non-nil only when ctx ended before an answer.
func Releases(ctx context.Context) ([]Version, error) {
	releases.mu.Lock()
	defer releases.mu.Unlock()
	if releases.list == nil {
		var saved savedReleases
		if b, err := os.ReadFile(releasesFile()); err == nil && json.Unmarshal(b, &saved) == nil && len(saved.Versions) > 0 &&
			saved.Source == releasesSource() && time.Since(saved.At) < releasesFresh && !saved.At.After(time.Now()) {
			releases.list = saved.Versions
			return slices.Clone(releases.list), nil
		}
		list, err := listReleases(ctx)
		switch {
		case err != nil && ctx.Err() != nil:
			// Not the proxy's fault: do not memoize the fallback.
			return nil, ctx.Err()
		case err != nil && len(saved.Versions) > 0:
			list = saved.Versions
		case err != nil:
			list = builtinReleases
		default:
			saveReleases(list)
		}
		releases.list = list
	}
	return slices.Clone(releases.list), nil
}

// saveReleases keeps a listing for other processes; one that cannot be kept
// is asked for again next time.
func saveReleases(list []Version) {
	b, err := json.Marshal(savedReleases{Source: releasesSource(), At: time.Now(), Versions: list})
	if err != nil || os.MkdirAll(DefaultCacheDir(), 0o755) != nil {
		return
	}
	tmp, err := os.CreateTemp(DefaultCacheDir(), ".releases-*.json")
	if err != nil {
		return
	}
	_, err = tmp.Write(b)
	if err = errors.Join(err, tmp.Close()); err == nil {
		err = os.Rename(tmp.Name(), releasesFile())
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
}

// listReleases asks the module proxy through the go command.
func listReleases(ctx context.Context) ([]Version, error) {
	ctx, cancel := context.WithTimeout(ctx, listTimeout)
	defer cancel()
	g, err := newGoCommand(ctx)
	if err != nil {
		return nil, err
	}
	// Run outside any module so that the caller's go.mod cannot interfere.
	out, err := g.output(ctx, os.TempDir(), "list", "-m", "-json", "-versions", "k8s.io/kubernetes")
	if err != nil {
		return nil, err
	}
	var m struct{ Versions []string }
	if err := json.Unmarshal(out, &m); err != nil {
		return nil, fmt.Errorf("parsing go list output: %w", err)
	}
	var list []Version
	for _, s := range m.Versions {
		v, exact, err := ParseVersion(s)
		if err != nil || !exact || v.Major != 1 || !strings.HasPrefix(s, "v") {
			continue // pre-releases and odd tags
		}
		if v.Less(OldestSupported) {
			continue
		}
		list = append(list, v)
	}
	if len(list) == 0 {
		return nil, fmt.Errorf("the module proxy lists no stable k8s.io/kubernetes release")
	}
	slices.SortFunc(list, Compare)
	return slices.Compact(list), nil
}

// Resolve turns a user's request into a known release: "1.36" gives the newest
// patch of 1.36, "1.36.3" or "v1.36.3" gives itself if it exists.
func Resolve(ctx context.Context, s string) (Version, error) {
	if _, _, err := ParseVersion(s); err != nil {
		return Version{}, err // before asking the proxy anything
	}
	list, err := Releases(ctx)
	if err != nil {
		return Version{}, err
	}
	return ResolveIn(s, list)
}

// ResolveIn is Resolve against a given list of releases, sorted oldest first.
func ResolveIn(s string, list []Version) (Version, error) {
	want, exact, err := ParseVersion(s)
	if err != nil {
		return Version{}, err
	}
	if want.Major == 1 && want.Minor < OldestSupported.Minor {
		return Version{}, fmt.Errorf("Kubernetes version %q is not supported (vmatrix runs %s and newer)", s, OldestSupported.MinorString())
	}
	var found, sameMinor []Version
	for _, v := range list {
		if v.Major != want.Major || v.Minor != want.Minor {
			continue
		}
		sameMinor = append(sameMinor, v)
		if !exact || v == want {
			found = append(found, v)
		}
	}
	if len(found) > 0 {
		return found[len(found)-1], nil // list is sorted: the newest patch
	}
	if len(sameMinor) > 0 {
		return Version{}, fmt.Errorf("unknown Kubernetes version %q (known %s releases: %s)", s, want.MinorString(), joinVersions(sameMinor, Version.String))
	}
	return Version{}, fmt.Errorf("unknown Kubernetes version %q (known minors: %s)", s, joinVersions(list, Version.MinorString))
}

// joinVersions formats versions for error messages, without repeats.
func joinVersions(list []Version, format func(Version) string) string {
	var out []string
	for _, v := range list {
		if s := format(v); len(out) == 0 || out[len(out)-1] != s {
			out = append(out, s)
		}
	}
	return strings.Join(out, ", ")
}

// Newest returns the newest known release, the version of the embedded host.
func Newest(ctx context.Context) (Version, error) {
	list, err := Releases(ctx)
	if err != nil {
		return Version{}, err
	}
	return list[len(list)-1], nil
}

// BuiltinReleases is the table Releases falls back on: the newest patch of
// each supported minor when this vmatrix was made.
func BuiltinReleases() []Version { return slices.Clone(builtinReleases) }
