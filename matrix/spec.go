package matrix

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/vmatrix/vmatrix/internal/k8sdist"
)

// Resolve turns a version spec into releases, oldest first, using the releases
// the module proxy lists. A spec is a comma-separated list of terms:
//
//	1.36        the newest 1.36 patch
//	1.36.3      that patch
//	1.33-1.37   every minor from 1.33 to 1.37, newest patch of each
//	latest-3    the three newest minors ("latest" alone: the newest)
//	+1.34       add (the same as 1.34)
//	-1.36       remove what the terms before it selected of 1.36
func Resolve(ctx context.Context, spec string) ([]Version, error) {
	releases, err := k8sdist.Releases(ctx)
	if err != nil {
		return nil, err
	}
	return resolve(spec, releases)
}

// resolve is Resolve against a given list of releases.
func resolve(spec string, releases []Version) ([]Version, error) {
	if strings.TrimSpace(spec) == "" {
		return nil, errors.New("empty version spec: want e.g. 1.35,1.36,1.37 or 1.33-1.37 or latest-3")
	}
	newest := newestPatches(releases)
	var out []Version
	for _, term := range strings.Split(spec, ",") {
		term = strings.TrimSpace(term)
		remove := strings.HasPrefix(term, "-")
		vs, err := resolveTerm(strings.TrimLeft(term, "+-"), releases, newest)
		if err != nil {
			return nil, fmt.Errorf("version spec %q: %w", spec, err)
		}
		if remove {
			out = slices.DeleteFunc(out, func(v Version) bool {
				return slices.ContainsFunc(vs, func(r Version) bool { return sameRelease(term[1:], r, v) })
			})
			continue
		}
		out = append(out, vs...)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("version spec %q selects no version", spec)
	}
	slices.SortFunc(out, k8sdist.Compare)
	return slices.Compact(out), nil
}

// sameRelease reports whether v is what a removal term written as term means
// by r: the whole minor when the term names no patch.
func sameRelease(term string, r, v Version) bool {
	if strings.Count(strings.TrimPrefix(term, "v"), ".") == 2 {
		return r == v
	}
	return r.Major == v.Major && r.Minor == v.Minor
}

func resolveTerm(term string, releases, newest []Version) ([]Version, error) {
	switch {
	case term == "":
		return nil, errors.New("empty term")
	case term == "latest" || strings.HasPrefix(term, "latest-"):
		n := 1
		if term != "latest" {
			var err error
			if n, err = strconv.Atoi(strings.TrimPrefix(term, "latest-")); err != nil || n < 1 {
				return nil, fmt.Errorf("%q: want latest-N with N of 1 or more", term)
			}
		}
		if n > len(newest) {
			return nil, fmt.Errorf("%q: only %d minors are known", term, len(newest))
		}
		return slices.Clone(newest[len(newest)-n:]), nil
	case strings.Contains(term, "-"):
		lo, hi, _ := strings.Cut(term, "-")
		from, err := k8sdist.ResolveIn(lo, releases)
		if err != nil {
			return nil, err
		}
		to, err := k8sdist.ResolveIn(hi, releases)
		if err != nil {
			return nil, err
		}
		if to.Less(from) {
			return nil, fmt.Errorf("range %q runs backwards", term)
		}
		var out []Version
		for _, v := range newest {
			if v.Major == from.Major && v.Minor >= from.Minor && v.Minor <= to.Minor {
				out = append(out, v)
			}
		}
		return out, nil
	default:
		v, err := k8sdist.ResolveIn(term, releases)
		if err != nil {
			return nil, err
		}
		return []Version{v}, nil
	}
}

// newestPatches is the newest patch of every minor, oldest minor first.
func newestPatches(releases []Version) []Version {
	var out []Version
	for _, v := range releases {
		if n := len(out); n > 0 && out[n-1].Major == v.Major && out[n-1].Minor == v.Minor {
			out[n-1] = v
			continue
		}
		out = append(out, v)
	}
	return out
}
