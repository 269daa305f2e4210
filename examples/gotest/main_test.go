// Package gotest is the vmatrix example for plain go test: the same scenario
// (deploy, expose, scale, read status) against Kubernetes 1.35, 1.36 and 1.37,
// on virtual clusters created once for the package, in parallel.
package gotest

import (
	"os"
	"testing"

	"github.com/vmatrix/vmatrix/framework/vmatrixtest"
)

var versions = []string{"1.35", "1.36", "1.37"}

func TestMain(m *testing.M) {
	os.Exit(vmatrixtest.Main(m, versions))
}
