package controlplane

import (
	"net"
	"slices"
	"testing"
)

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
