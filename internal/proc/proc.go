// Package proc supervises the child processes of a control plane: each runs in its
// own process group with its output in a log file, dies with its parent, and is
// stopped with a bounded grace period.
package proc

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Process is one supervised child process.
type Process struct {
	Name    string
	LogPath string
	cmd     *exec.Cmd
	done    chan struct{}
	err     error // set before done is closed
}

// Start starts path with args, appending its output to logPath, as StartCmd
// does.
func Start(name, path string, args []string, env []string, logPath string) (*Process, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening log of %s: %w", name, err)
	}
	cmd := exec.Command(path, args...)
	cmd.Env = env
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	p, err := StartCmd(name, cmd)
	logFile.Close() // the child has its own copy
	if err != nil {
		return nil, err
	}
	p.LogPath = logPath
	return p, nil
}

// StartCmd starts cmd in a process group of its own, so a Ctrl-C in the
// user's terminal reaches only the parent, which then stops its children in
// the right order; and the child dies with the parent, as Started arranges.
func StartCmd(name string, cmd *exec.Cmd) (*Process, error) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	p := &Process{Name: name, cmd: cmd, done: make(chan struct{})}
	waited, err := Started(cmd)
	if err != nil {
		return nil, fmt.Errorf("starting %s (%s): %w", name, cmd.Path, err)
	}
	go func() {
		p.err = <-waited
		close(p.done)
	}()
	return p, nil
}

// Started starts cmd so that it gets SIGKILL when this process dies, and
// returns the result of its Wait. The kernel sends that signal when the
// thread that forked the child exits, not the process: so the fork happens on
// a goroutine that keeps its OS thread locked until the child is reaped, and
// the Go runtime can neither retire that thread early nor lend it to another
// goroutine whose own locked exit would take the child along. Every child
// that must die with vmatrix is started here. Use pipes as *os.File (not
// StdoutPipe): Wait runs on that goroutine while the caller reads.
func Started(cmd *exec.Cmd) (<-chan error, error) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	DieWithParent(cmd.SysProcAttr)
	started, waited := make(chan error, 1), make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// Never unlocked: the thread ends with this goroutine, after the child is reaped.
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		waited <- cmd.Wait()
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return waited, nil
}

// Restart starts the same command again, appending to the same log, for a
// child started by Start that has exited.
func (p *Process) Restart() (*Process, error) {
	if p.LogPath == "" {
		return nil, fmt.Errorf("%s was not started with a log and cannot be restarted", p.Name)
	}
	return Start(p.Name, p.cmd.Path, p.cmd.Args[1:], p.cmd.Env, p.LogPath)
}

// Pid is the child's process ID.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the child has exited and been reaped.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the child has exited, and how.
func (p *Process) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// Stop sends SIGTERM, waits up to grace, then kills the whole process group and
// waits for the child to be reaped; with no grace it kills at once. It is safe
// to call more than once.
func (p *Process) Stop(grace time.Duration) error {
	select {
	case <-p.done:
		return nil
	default:
	}
	if grace > 0 {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
			return nil
		case <-time.After(grace):
		}
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	// On a saturated machine a killed process can take seconds to be
	// reaped (three controller managers at once once took over 5 s).
	select {
	case <-p.done:
		return nil
	case <-time.After(30 * time.Second):
		return fmt.Errorf("%s (pid %d) did not exit after SIGKILL", p.Name, p.Pid())
	}
}

// Tail returns the last lines of the child's log, for error messages.
func (p *Process) Tail(lines int) string {
	return TailFile(p.LogPath, lines)
}

// TailFile returns the last lines of a log file.
func TailFile(path string, lines int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	all := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// Alive reports whether a process with this PID exists (and is not a zombie we
// could still reap: a zombie counts as gone).
func Alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state is the field after the parenthesised command name.
	s := string(stat)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}

// WithArg lists the processes whose command line contains s: a test's proof
// that nothing started under a state directory survived its teardown.
func WithArg(s string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && strings.Contains(string(cmdline), s) && Alive(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// PortOpen reports whether something still listens on a loopback port: what a
// teardown checks after its processes are gone.
func PortOpen(port int) bool {
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), 200*time.Millisecond)
	if err == nil {
		c.Close()
	}
	return err == nil
}
