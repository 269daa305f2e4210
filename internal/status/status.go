// Package status shows where each of several tasks stands (a cluster being
// created, a version being run or built): on a terminal, one line per task
// updated in place (spinner, phase, elapsed time), drawn by mpb; otherwise
// (CI set, not a terminal, or asked for) the same events as plain
// timestamped lines.
package status

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
)

// Modes of --progress.
const (
	Auto  = "auto"
	Plain = "plain"
	TTY   = "tty"
)

// Modes lists the values --progress takes.
var Modes = []string{Auto, Plain, TTY}

// Board is the status of a command's tasks.
type Board struct {
	out   io.Writer
	live  *mpb.Progress
	mu    sync.Mutex
	tasks []*Task
	start time.Time
}

// Task is one line of a Board.
type Task struct {
	board *Board
	name  string
	start time.Time
	phase atomic.Value // string
	bar   *mpb.Bar
	done  atomic.Bool
	mu    sync.Mutex // guards ok and end
	ok    bool
	end   time.Time
}

// Live reports whether mode, for a command writing to stdout and stderr,
// means lines updated in place: a terminal on both, CI unset, a TERM that can.
func Live(mode string) bool {
	switch mode {
	case TTY:
		return true
	case Plain:
		return false
	}
	if os.Getenv("CI") != "" || os.Getenv("TERM") == "dumb" {
		return false
	}
	return isatty.IsTerminal(os.Stdout.Fd()) && isatty.IsTerminal(os.Stderr.Fd())
}

// New starts a board on out; live draws it in place.
func New(out io.Writer, live bool) *Board {
	b := &Board{out: out, start: time.Now()}
	if live {
		b.live = mpb.New(mpb.WithOutput(out), mpb.WithWidth(1), mpb.WithRefreshRate(150*time.Millisecond), mpb.ForceTTY())
	}
	return b
}

// IsLive reports whether the board draws in place.
func (b *Board) IsLive() bool { return b.live != nil }

var spinner = []string{"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"}

// Task adds a line for name, in phase.
func (b *Board) Task(name, phase string) *Task {
	t := &Task{board: b, name: name, start: time.Now()}
	t.phase.Store(phase)
	b.mu.Lock()
	b.tasks = append(b.tasks, t)
	width := 0
	for _, o := range b.tasks {
		width = max(width, len(o.name))
	}
	b.mu.Unlock()
	if b.live == nil {
		b.Printf("%s: %s", name, phase)
		return t
	}
	t.bar = b.live.New(1,
		mpb.SpinnerStyle(spinner...).PositionLeft(),
		mpb.BarFillerOnComplete("✓"),
		mpb.BarFillerOnAbort("✗"),
		mpb.PrependDecorators(decor.Name(" "+name, decor.WC{C: decor.DindentRight | decor.DextraSpace, W: width + 1})),
		mpb.AppendDecorators(
			decor.Any(func(decor.Statistics) string { return t.phase.Load().(string) }, decor.WC{C: decor.DindentRight | decor.DextraSpace, W: 24}),
			decor.Any(func(decor.Statistics) string { return t.elapsed().String() }),
		),
	)
	return t
}

// Printf writes a line: above the live lines on a terminal, timestamped
// otherwise.
func (b *Board) Printf(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	if b.live != nil {
		fmt.Fprintln(b.live, line)
		return
	}
	fmt.Fprintf(b.out, "%s %s\n", time.Now().Format("15:04:05"), line)
}

// Writer is an io.Writer whose lines Printf writes.
func (b *Board) Writer() io.Writer { return lineWriter{b} }

type lineWriter struct{ b *Board }

func (w lineWriter) Write(p []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		w.b.Printf("%s", line)
	}
	return len(p), nil
}

// Phase says where the task stands now.
func (t *Task) Phase(phase string) {
	if t.done.Load() || t.phase.Load() == phase {
		return
	}
	t.phase.Store(phase)
	if t.bar == nil {
		t.board.Printf("%s: %s", t.name, phase)
	}
}

// Done ends the task: ok or failed, with a last phase.
func (t *Task) Done(ok bool, phase string) {
	if t.done.Swap(true) {
		return
	}
	t.mu.Lock()
	t.ok, t.end = ok, time.Now()
	t.mu.Unlock()
	t.phase.Store(phase)
	if t.bar == nil {
		t.board.Printf("%s: %s (%s)", t.name, phase, t.elapsed())
		return
	}
	if ok {
		t.bar.SetCurrent(1)
	} else {
		t.bar.Abort(false)
	}
}

func (t *Task) elapsed() time.Duration {
	t.mu.Lock()
	end := t.end
	t.mu.Unlock()
	if end.IsZero() {
		end = time.Now()
	}
	return end.Sub(t.start).Round(100 * time.Millisecond)
}

// Close ends the tasks still open (as failed: the command gave up on
// them), stops drawing and writes the summary line: how many of the tasks
// ended well, and in how long.
func (b *Board) Close(what string) {
	b.mu.Lock()
	tasks := append([]*Task(nil), b.tasks...)
	b.mu.Unlock()
	ok := 0
	for _, t := range tasks {
		t.Done(false, t.phase.Load().(string)+", stopped")
		t.mu.Lock()
		if t.ok {
			ok++
		}
		t.mu.Unlock()
	}
	if b.live != nil {
		b.live.Wait()
	}
	if len(tasks) > 1 || b.live != nil {
		line := fmt.Sprintf("%d of %d %s in %s", ok, len(tasks), what, time.Since(b.start).Round(100*time.Millisecond))
		if b.live != nil {
			fmt.Fprintln(b.out, line)
		} else {
			b.Printf("%s", line)
		}
	}
}
