// Package versioned is a suite for `vmatrix run` tests: its outcome depends on
// the Kubernetes version it runs against.
package versioned

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

func TestServerAnswers(t *testing.T) {
	out, err := exec.Command("kubectl", "get", "--raw", "/version").Output()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), os.Getenv("VMATRIX_KUBERNETES_VERSION")) {
		t.Errorf("server says %s, want %s", out, os.Getenv("VMATRIX_KUBERNETES_VERSION"))
	}
}

func TestFailsOn136(t *testing.T) {
	if strings.HasPrefix(os.Getenv("VMATRIX_KUBERNETES_VERSION"), "v1.36.") {
		t.Fatal("this suite does not work on 1.36")
	}
}

func TestOnlyOn137(t *testing.T) {
	if !strings.HasPrefix(os.Getenv("VMATRIX_KUBERNETES_VERSION"), "v1.37.") {
		t.Skip("needs 1.37")
	}
}
