package k8sdist

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"
)

// fallbackGo is where the official Go tarball installs, for environments
// (IDE test runners, systemd units) whose PATH lacks it. A variable so that
// a test can take it away.
var fallbackGo = "/usr/local/go/bin/go"

// goCommand is the go command the module-proxy paths use.
type goCommand struct {
	path string
	env  []string // the user's environment, adjusted by newGoCommand
}

// findGo locates the go command.
func findGo() (string, error) {
	if p, err := exec.LookPath("go"); err == nil {
		return p, nil
	}
	if fi, err := os.Stat(fallbackGo); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
		return fallbackGo, nil
	}
	return "", fmt.Errorf("no go command in PATH or at %s", fallbackGo)
}

// newGoCommand returns a go command that runs with the user's environment
// (GOPROXY, GOFLAGS, GOCACHE, CGO_ENABLED... as they set them, so the user's
// Go build cache is reused), except that it never uses a go.work file, which
// would pull the user's modules into our wrapper modules, and that it lets the
// go command update go.mod and go.sum (-mod=mod) of the wrapper module
// whatever the user's -mod or -modfile say.
func newGoCommand(ctx context.Context) (*goCommand, error) {
	p, err := findGo()
	if err != nil {
		return nil, err
	}
	g := &goCommand{path: p, env: os.Environ()}
	// GOFLAGS may come from the go env file rather than the environment; ask
	// the go command for the effective value so that setting it keeps it.
	out, err := g.output(ctx, os.TempDir(), "env", "GOFLAGS")
	if err != nil {
		return nil, err
	}
	var flags []string
	for _, f := range strings.Fields(string(out)) {
		name, _, _ := strings.Cut(strings.TrimLeft(f, "-"), "=")
		if name != "mod" && name != "modfile" {
			flags = append(flags, f)
		}
	}
	flags = append(flags, "-mod=mod")
	g.env = append(g.env, "GOFLAGS="+strings.Join(flags, " "), "GOWORK=off")
	return g, nil
}

// cmd prepares a go command in dir ("" = the current directory).
func (g *goCommand) cmd(ctx context.Context, dir string, args ...string) *exec.Cmd {
	c := exec.CommandContext(ctx, g.path, args...)
	c.Dir = dir
	c.Env = g.env
	// On cancellation, interrupt rather than kill: the go command then stops
	// its compiler processes and removes its temporary files.
	c.Cancel = func() error { return c.Process.Signal(os.Interrupt) }
	c.WaitDelay = 10 * time.Second
	return c
}

// output runs the go command and returns its stdout; the error carries the
// tail of its stderr, which is where the go command explains failures.
func (g *goCommand) output(ctx context.Context, dir string, args ...string) ([]byte, error) {
	c := g.cmd(ctx, dir, args...)
	var stderr bytes.Buffer
	c.Stderr = &stderr
	out, err := c.Output()
	if err != nil {
		return out, commandError(ctx, c, err, stderr.Bytes())
	}
	return out, nil
}

// commandError describes a failed go command with the end of its output.
// When ctx ended, that is the cause rather than the "signal: killed" exec reports.
func commandError(ctx context.Context, c *exec.Cmd, err error, output []byte) error {
	if ctxErr := context.Cause(ctx); ctxErr != nil {
		err = ctxErr
	}
	msg := fmt.Sprintf("%s: %v", strings.Join(c.Args, " "), err)
	if t := tail(output, 40, 4000); t != "" {
		msg += "\n" + t
	}
	return errors.New(msg)
}

// tail returns the last lines of out, at most maxLines lines and maxBytes
// bytes, for error messages that must stay readable.
func tail(out []byte, maxLines, maxBytes int) string {
	s := strings.TrimRight(string(out), "\n")
	if len(s) > maxBytes {
		s = s[len(s)-maxBytes:]
		if i := strings.IndexByte(s, '\n'); i >= 0 {
			s = s[i+1:]
		}
	}
	lines := strings.Split(s, "\n")
	if len(lines) > maxLines {
		lines = lines[len(lines)-maxLines:]
	}
	return strings.Join(lines, "\n")
}

// run runs the go command with extra environment variables and keeps its
// combined output for the error message.
func (g *goCommand) run(ctx context.Context, dir string, extraEnv []string, args ...string) error {
	c := g.cmd(ctx, dir, args...)
	c.Env = append(slices.Clip(c.Env), extraEnv...)
	var out bytes.Buffer
	c.Stdout = &out
	c.Stderr = &out
	if err := c.Run(); err != nil {
		return commandError(ctx, c, err, out.Bytes())
	}
	return nil
}
