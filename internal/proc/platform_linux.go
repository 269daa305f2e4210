//go:build linux

package proc

import "syscall"

// Supported says whether vmatrix runs here: nil on Linux.
func Supported() error { return nil }

// DieWithParent has the kernel kill the process started with attr when the
// thread that started it exits (see Started for what that means in Go).
func DieWithParent(attr *syscall.SysProcAttr) { attr.Pdeathsig = syscall.SIGKILL }
