package syncer_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"

	"github.com/vmatrix/vmatrix/syncer"
)

func TestHostName(t *testing.T) {
	hashed := func(full string) string {
		sum := sha256.Sum256([]byte(full))
		return full[:52] + "-" + hex.EncodeToString(sum[:])[:10]
	}
	// "-x-" twice and a vcluster name of 2 leave 55 characters for name and namespace.
	at63 := strings.Repeat("a", 50) + "-x-" + "nspce" + "-x-" + "vc"
	at64 := strings.Repeat("a", 51) + "-x-" + "nspce" + "-x-" + "vc"
	long := strings.Repeat("b", 253) + "-x-" + "default" + "-x-" + "vc"
	for _, tc := range []struct {
		name, namespace, vcluster, want string
	}{
		{"web", "default", "a", "web-x-default-x-a"},
		{"web-7d4b9c-xk2p", "apps", "v135", "web-7d4b9c-xk2p-x-apps-x-v135"},
		{"kube-root-ca.crt", "default", "vc", "kube-root-ca.crt-x-default-x-vc"},
		{strings.Repeat("a", 50), "nspce", "vc", at63},                                               // exactly 63: unchanged
		{strings.Repeat("a", 51), "nspce", "vc", hashed(at64)},                                       // 64: hashed
		{strings.Repeat("b", 253), "default", "vc", hashed(long)},                                    // a maximal pod name
		{strings.Repeat("a", 51), "nspcf", "vc", hashed(strings.Replace(at64, "nspce", "nspcf", 1))}, // same prefix, other hash
	} {
		got := syncer.HostName(tc.name, tc.namespace, tc.vcluster)
		if got != tc.want {
			t.Errorf("HostName(%q, %q, %q) = %q, want %q", tc.name, tc.namespace, tc.vcluster, got, tc.want)
		}
		if len(got) > 63 {
			t.Errorf("HostName(%q, %q, %q) has %d characters", tc.name, tc.namespace, tc.vcluster, len(got))
		}
		// Back again where the name is whole; a shortened one stays as it is.
		back, want := syncer.VirtualName(got, tc.namespace, tc.vcluster), tc.name
		if got != tc.name+"-x-"+tc.namespace+"-x-"+tc.vcluster {
			want = got
		}
		if back != want {
			t.Errorf("VirtualName(%q) = %q, want %q", got, back, want)
		}
	}
	if len(at63) != 63 || len(at64) != 64 {
		t.Fatalf("test table is off: %d, %d", len(at63), len(at64))
	}
	a := syncer.HostName(strings.Repeat("a", 51), "nspce", "vc")
	b := syncer.HostName(strings.Repeat("a", 51), "nspcf", "vc")
	if a == b || len(a) != 63 {
		t.Errorf("hashed names %q and %q: want distinct names of 63 characters", a, b)
	}
}

func ExampleHostName() {
	fmt.Println(syncer.HostName("web-0", "shop", "v137"))
	// web-0-x-shop-x-v137
}
