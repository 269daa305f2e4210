// Command vmatrix creates virtual Kubernetes clusters of any version on one host
// cluster, for tests.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/vmatrix/vmatrix/internal/proc"
)

func main() {
	if err := proc.Supported(); err != nil {
		fmt.Fprintln(os.Stderr, "vmatrix: "+err.Error())
		os.Exit(1)
	}
	cmd, err := newRootCommand().ExecuteC()
	if err == nil {
		return
	}
	code := exitCode(err)
	msg := err.Error()
	if code == exitUsage {
		// The command line is wrong: say where the usage is.
		msg += fmt.Sprintf(" (see '%s --help')", cmd.CommandPath())
	}
	fmt.Fprintln(os.Stderr, "vmatrix: "+msg)
	os.Exit(code)
}

// Exit codes, as `vmatrix --help` lists them.
const (
	exitFailure = 1
	exitUsage   = 2
)

// usageError makes vmatrix exit with 2: the command line itself is wrong.
type usageError struct{ error }

// commandRan is set once a command's own code runs: an error before that is
// cobra's about the command line (unknown command or flag, a bad flag value,
// a wrong number of arguments, a missing required flag).
var commandRan bool

// markRuns makes every command of the tree set commandRan as it starts.
func markRuns(cmd *cobra.Command) {
	if run := cmd.RunE; run != nil {
		cmd.RunE = func(c *cobra.Command, args []string) error {
			commandRan = true
			return run(c, args)
		}
	}
	for _, sub := range cmd.Commands() {
		markRuns(sub)
	}
}

func exitCode(err error) int {
	if !commandRan || errors.As(err, new(usageError)) {
		return exitUsage
	}
	return exitFailure
}
