package matrix

import (
	"context"
	"strings"
	"testing"

	"github.com/vmatrix/vmatrix/internal/k8sdist"
)

// releases is a fixed list, so the expectations below do not move when the
// proxy lists a new patch.
var releases = mustParse("1.33.6", "1.33.13", "1.34.4", "1.35.4", "1.36.1", "1.36.3", "1.37.2")

func mustParse(versions ...string) []k8sdist.Version {
	var out []k8sdist.Version
	for _, s := range versions {
		v, _, err := k8sdist.ParseVersion(s)
		if err != nil {
			panic(err)
		}
		out = append(out, v)
	}
	return out
}

func TestResolveSpec(t *testing.T) {
	for _, tc := range []struct{ spec, want string }{
		{"1.35,1.36,1.37", "v1.35.4 v1.36.3 v1.37.2"},
		{"1.37, 1.35", "v1.35.4 v1.37.2"},
		{"1.33-1.37", "v1.33.13 v1.34.4 v1.35.4 v1.36.3 v1.37.2"},
		{"1.35-1.35", "v1.35.4"},
		{"latest-3", "v1.35.4 v1.36.3 v1.37.2"},
		{"latest", "v1.37.2"},
		{"latest-3,-1.36", "v1.35.4 v1.37.2"},
		{"latest-3,-1.36,+1.34", "v1.34.4 v1.35.4 v1.37.2"},
		{"1.36.1", "v1.36.1"},
		{"v1.36.1,1.36", "v1.36.1 v1.36.3"},
		{"1.36.1,1.36,-1.36.3", "v1.36.1"},
		{"1.35,1.35", "v1.35.4"},
	} {
		got, err := resolve(tc.spec, releases)
		if err != nil {
			t.Errorf("%q: %v", tc.spec, err)
			continue
		}
		var s []string
		for _, v := range got {
			s = append(s, v.String())
		}
		if strings.Join(s, " ") != tc.want {
			t.Errorf("%q = %s, want %s", tc.spec, strings.Join(s, " "), tc.want)
		}
	}
}

func TestResolveBadSpec(t *testing.T) {
	for _, tc := range []struct{ spec, want string }{
		{"", "empty version spec"},
		{"  ", "empty version spec"},
		{"1.99", `unknown Kubernetes version "1.99"`},
		{"1.37-1.33", `range "1.37-1.33" runs backwards`},
		{"latest-0", `"latest-0": want latest-N`},
		{"latest-9", "only 5 minors"},
		{"one.two", `"one.two"`},
		{"1.35,,1.36", "empty term"},
		{"1.35,-1.35", "selects no version"},
		{"1.20", "not supported"},
	} {
		_, err := resolve(tc.spec, releases)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: error %v, want one line containing %q", tc.spec, err, tc.want)
		}
	}
}

func TestResolveAgainstTheProxy(t *testing.T) {
	got, err := Resolve(context.Background(), "latest-3")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].Minor+2 != got[2].Minor {
		t.Errorf("latest-3 = %v", got)
	}
}
