package k8sdist

import (
	"fmt"
	"strings"
	"testing"
)

func TestParseVersion(t *testing.T) {
	good := []struct {
		in    string
		want  Version
		exact bool
	}{
		{"1.36", Version{1, 36, 0}, false},
		{"v1.36", Version{1, 36, 0}, false},
		{"1.36.3", Version{1, 36, 3}, true},
		{"v1.36.3", Version{1, 36, 3}, true},
		{"1.0", Version{1, 0, 0}, false},
		{"1.36.0", Version{1, 36, 0}, true},
		{"0.0.0", Version{0, 0, 0}, true},
		{"2.10.100", Version{2, 10, 100}, true},
		{"1.999999999.0", Version{1, 999999999, 0}, true},
	}
	for _, tc := range good {
		got, exact, err := ParseVersion(tc.in)
		if err != nil || got != tc.want || exact != tc.exact {
			t.Errorf("ParseVersion(%q) = %v, %v, %v; want %v, %v, nil", tc.in, got, exact, err, tc.want, tc.exact)
		}
	}

	bad := []string{
		"", "v", "1", "v1", "one.two", "1.36.3.4", "1..3", "1.36.", ".36",
		"1.36.x", "1.-3", "1.+3", "-1.36", " 1.36", "1.36 ", "1.36.3-rc.1",
		"v1.36.0-alpha.1", "1.36.3+build", "vv1.36", "V1.36", "1.036", "01.36",
		"1.9999999999", "1,36", "1.36\n",
	}
	for _, in := range bad {
		got, _, err := ParseVersion(in)
		if err == nil {
			t.Errorf("ParseVersion(%q) = %v, want an error", in, got)
			continue
		}
		if !strings.Contains(err.Error(), fmt.Sprintf("%q", in)) {
			t.Errorf("ParseVersion(%q) error %q does not name the input", in, err)
		}
	}
}

func TestVersionFormatsAndOrder(t *testing.T) {
	v := Version{1, 36, 3}
	if got := v.String(); got != "v1.36.3" {
		t.Errorf("String() = %q", got)
	}
	if got := v.MinorString(); got != "1.36" {
		t.Errorf("MinorString() = %q", got)
	}
	// Every version round-trips through its String.
	if got, exact, err := ParseVersion(v.String()); err != nil || !exact || got != v {
		t.Errorf("ParseVersion(%q) = %v, %v, %v", v.String(), got, exact, err)
	}

	ordered := []Version{{0, 99, 99}, {1, 9, 9}, {1, 10, 0}, {1, 36, 2}, {1, 36, 3}, {1, 37, 0}, {2, 0, 0}}
	for i, a := range ordered {
		for j, b := range ordered {
			if got, want := a.Less(b), i < j; got != want {
				t.Errorf("%v.Less(%v) = %v, want %v", a, b, got, want)
			}
		}
	}
}

func ExampleParseVersion() {
	for _, s := range []string{"1.36", "v1.36.3", "1.36.3.4"} {
		v, exact, err := ParseVersion(s)
		fmt.Println(v, exact, err)
	}
	// Output:
	// v1.36.0 false <nil>
	// v1.36.3 true <nil>
	// v0.0.0 false invalid Kubernetes version "1.36.3.4": want MAJOR.MINOR or MAJOR.MINOR.PATCH, e.g. 1.36 or v1.36.3
}

func TestCheckUpgrade(t *testing.T) {
	v := func(minor, patch int) Version { return Version{1, minor, patch} }
	for _, c := range []struct {
		from, to Version
		err      string
	}{
		{v(35, 4), v(36, 3), ""},
		{v(35, 1), v(35, 4), ""},
		{v(36, 3), v(37, 0), ""},
		{v(35, 4), v(37, 2), "skips a minor: upgrade one minor at a time (to 1.36 first)"},
		{v(35, 4), v(34, 4), "v1.34.4 is older than v1.35.4: a cluster is not downgraded"},
		{v(35, 4), v(35, 1), "is older than"},
		{v(35, 4), v(35, 4), "runs v1.35.4 already"},
		{v(35, 4), Version{2, 0, 0}, "skips a minor"},
	} {
		err := CheckUpgrade(c.from, c.to)
		if (c.err == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), c.err) {
			t.Errorf("CheckUpgrade(%s, %s) = %v, want %q", c.from, c.to, err, c.err)
		}
	}
}
