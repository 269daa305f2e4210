package main

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/spf13/cobra"

	"github.com/vmatrix/vmatrix/internal/k8sdist"
	"github.com/vmatrix/vmatrix/internal/status"
	"github.com/vmatrix/vmatrix/internal/supervisor"
)

// progressMode is --progress: auto, plain or tty.
var progressMode = status.Auto

func progressFlag(root *cobra.Command) {
	root.PersistentFlags().StringVar(&progressMode, "progress", status.Auto,
		"how create, up, run, delete, cleanup and versions pull show progress: auto (lines updated in place on a terminal unless $CI is set), plain (timestamped lines) or tty")
	_ = root.RegisterFlagCompletionFunc("progress", cobra.FixedCompletions(status.Modes, cobra.ShellCompDirectiveNoFileComp))
	root.PersistentPreRunE = func(cmd *cobra.Command, args []string) error {
		if !slices.Contains(status.Modes, progressMode) {
			return usageError{fmt.Errorf("unknown --progress %q: want %s", progressMode, strings.Join(status.Modes, "|"))}
		}
		return nil
	}
}

// newBoard starts the status board of a command, on stderr: stdout keeps
// what scripts read.
func newBoard() *status.Board { return status.New(os.Stderr, status.Live(progressMode)) }

// tasks is the board's lines by key (a cluster name, a version).
type tasks struct {
	board *status.Board
	mu    sync.Mutex
	byKey map[string]*status.Task
}

func newTasks(b *status.Board) *tasks { return &tasks{board: b, byKey: map[string]*status.Task{}} }

// add adds a line named name for key.
func (ts *tasks) add(key, name, phase string) *status.Task {
	t := ts.board.Task(name, phase)
	ts.mu.Lock()
	ts.byKey[key] = t
	ts.mu.Unlock()
	return t
}

func (ts *tasks) get(key string) *status.Task {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.byKey[key]
}

// follow sends the manager's progress to the board: its lines, the phases
// of the clusters it creates and how their binaries' builds stand, to their
// tasks (match maps a cluster name, byVersion a version, to a task key).
func (ts *tasks) follow(m *supervisor.Manager, match func(cluster string) string, byVersion func(v k8sdist.Version) string) {
	m.Log = ts.board.Writer()
	m.Source.Log = m.Log
	m.Phase = func(cluster, phase string) {
		if t := ts.get(match(cluster)); t != nil {
			t.Phase(phase)
		}
	}
	m.Source.Progress = func(v k8sdist.Version, what string) {
		if t := ts.get(byVersion(v)); t != nil {
			t.Phase(what)
		}
	}
}

func same(s string) string { return s }
