//go:build !linux

package proc

import (
	"fmt"
	"runtime"
	"syscall"
)

// Supported says whether vmatrix runs here: its clusters are Linux
// processes, watched through /proc.
func Supported() error {
	return fmt.Errorf("vmatrix runs on Linux only, not on %s (in CI, a Linux runner; locally, a Linux VM)", runtime.GOOS)
}

// DieWithParent does nothing: only Linux has a parent-death signal.
func DieWithParent(*syscall.SysProcAttr) {}
