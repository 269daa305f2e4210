package controlplane

import (
	"net"
	"slices"
	"testing"
)

// TestRuntimeEnv: the apiserver gets a lower GC target unless the user set
// GOGC or GOMEMLIMIT or it is a shared host's; the other components run with
// the user's environment.
func TestRuntimeEnv(t *testing.T) {
	base := []string{"PATH=/bin"}
	if got := runtimeEnv("kube-apiserver", false, base); !slices.Contains(got, "GOGC="+apiserverGOGC) {
		t.Errorf("apiserver: %v", got)
	}
	if len(base) != 1 {
		t.Errorf("the caller's environment was changed: %v", base)
	}
	for _, user := range []string{"GOGC=200", "GOMEMLIMIT=1GiB"} {
		env := []string{"PATH=/bin", user}
		if got := runtimeEnv("kube-apiserver", false, env); !slices.Equal(got, env) {
			t.Errorf("with %s: %v", user, got)
		}
	}
	if got := runtimeEnv("kube-controller-manager", false, base); !slices.Equal(got, base) {
		t.Errorf("controller manager: %v", got)
	}
	if got := runtimeEnv("kube-apiserver", true, base); !slices.Equal(got, base) {
		t.Errorf("a shared host's apiserver: %v", got)
	}
}

// TestAdvertiseArgs: the apiserver publishes an address of its Service
// range's family, or nothing at all.
func TestAdvertiseArgs(t *testing.T) {
	for cidrs, v6 := range map[string]bool{"10.96.0.0/12": false, "fd00::/108": true, "fd00::/108,10.96.0.0/12": true, " 10.0.0.0/16,fd00::/108": false, "": false} {
		if got := isIPv6Range(cidrs); got != v6 {
			t.Errorf("isIPv6Range(%q) = %v", cidrs, got)
		}
	}
	if got := advertiseArgs(""); !slices.Contains(got, "--endpoint-reconciler-type=none") {
		t.Errorf("no address: %v", got)
	}
	if got := advertiseArgs("192.0.2.2"); !slices.Equal(got, []string{"--advertise-address=192.0.2.2"}) {
		t.Errorf("an address: %v", got)
	}
	if a := machineAddress(false); a != "" && net.ParseIP(a).To4() == nil {
		t.Errorf("machineAddress(IPv4) = %q", a)
	}
	if a := machineAddress(true); a != "" && net.ParseIP(a).To4() != nil {
		t.Errorf("machineAddress(IPv6) = %q", a)
	}
}
