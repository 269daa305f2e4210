package k8sdist

import (
	"fmt"
	"strconv"
	"strings"
)

// Version is a Kubernetes release, e.g. v1.36.3.
type Version struct{ Major, Minor, Patch int }

// String returns the release tag, e.g. "v1.36.3", the form used by
// dl.k8s.io, the module proxy and kube-apiserver --version.
func (v Version) String() string {
	return fmt.Sprintf("v%d.%d.%d", v.Major, v.Minor, v.Patch)
}

// MinorString returns "1.36": the form users write in version matrices.
func (v Version) MinorString() string {
	return fmt.Sprintf("%d.%d", v.Major, v.Minor)
}

// SemVer returns "1.36.3", as semantic-version libraries expect it.
func (v Version) SemVer() string {
	return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch)
}

// Less orders versions by major, minor, then patch.
func (v Version) Less(o Version) bool {
	if v.Major != o.Major {
		return v.Major < o.Major
	}
	if v.Minor != o.Minor {
		return v.Minor < o.Minor
	}
	return v.Patch < o.Patch
}

// Compare orders versions as Less does, for slices.SortFunc: -1, 0 or 1.
func Compare(a, b Version) int {
	switch {
	case a.Less(b):
		return -1
	case b.Less(a):
		return 1
	}
	return 0
}

// ParseVersion accepts "1.36", "1.36.3" and "v1.36.3". exact is false when no
// patch was given, so that the caller can pick the newest patch of that minor.
// Pre-release and build suffixes ("v1.36.0-rc.1") are rejected: only stable
// releases are supported.
func ParseVersion(s string) (v Version, exact bool, err error) {
	bad := func() (Version, bool, error) {
		return Version{}, false, fmt.Errorf("invalid Kubernetes version %q: want MAJOR.MINOR or MAJOR.MINOR.PATCH, e.g. 1.36 or v1.36.3", s)
	}
	parts := strings.Split(strings.TrimPrefix(s, "v"), ".")
	if len(parts) != 2 && len(parts) != 3 {
		return bad()
	}
	nums := make([]int, 3)
	for i, p := range parts {
		n, ok := parseNumber(p)
		if !ok {
			return bad()
		}
		nums[i] = n
	}
	return Version{Major: nums[0], Minor: nums[1], Patch: nums[2]}, len(parts) == 3, nil
}

// parseNumber accepts only plain decimal digits without a leading zero, as in
// semantic versions; strconv.Atoi alone would also take "+1" and "-0".
func parseNumber(p string) (int, bool) {
	if p == "" || len(p) > 9 || (len(p) > 1 && p[0] == '0') {
		return 0, false
	}
	for _, c := range p {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.Atoi(p)
	return n, err == nil
}

// CheckUpgrade says whether a cluster at from may be upgraded in place to
// to: one minor at a time, or a newer patch of the same minor, as kubeadm
// allows. The error is one line that names both versions.
func CheckUpgrade(from, to Version) error {
	switch {
	case to == from:
		return fmt.Errorf("the cluster runs %s already", from)
	case to.Less(from):
		return fmt.Errorf("%s is older than %s: a cluster is not downgraded", to, from)
	case to.Major != from.Major || to.Minor > from.Minor+1:
		return fmt.Errorf("%s to %s skips a minor: upgrade one minor at a time (to %d.%d first)", from, to, from.Major, from.Minor+1)
	}
	return nil
}
