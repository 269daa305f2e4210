package controlplane

import (
	"slices"
	"testing"
)

// TestRuntimeEnv: the apiserver gets a lower GC target unless the user set
// GOGC or GOMEMLIMIT; the other components run with the user's environment.
func TestRuntimeEnv(t *testing.T) {
	base := []string{"PATH=/bin"}
	if got := runtimeEnv("kube-apiserver", base); !slices.Contains(got, "GOGC="+apiserverGOGC) {
		t.Errorf("apiserver: %v", got)
	}
	if len(base) != 1 {
		t.Errorf("the caller's environment was changed: %v", base)
	}
	for _, user := range []string{"GOGC=200", "GOMEMLIMIT=1GiB"} {
		env := []string{"PATH=/bin", user}
		if got := runtimeEnv("kube-apiserver", env); !slices.Equal(got, env) {
			t.Errorf("with %s: %v", user, got)
		}
	}
	if got := runtimeEnv("kube-controller-manager", base); !slices.Equal(got, base) {
		t.Errorf("controller manager: %v", got)
	}
}
