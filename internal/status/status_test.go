package status

import (
	"bytes"
	"strings"
	"testing"
)

func TestPlainBoard(t *testing.T) {
	var out bytes.Buffer
	b := New(&out, false)
	a := b.Task("v1.35.4", "creating")
	c := b.Task("v1.36.3", "creating")
	a.Phase("running")
	a.Phase("running") // said once
	a.Done(true, "passed")
	c.Done(false, "failed")
	c.Phase("late") // after Done: nothing
	b.Close("passed")
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	want := []string{"v1.35.4: creating", "v1.36.3: creating", "v1.35.4: running", "v1.35.4: passed (", "v1.36.3: failed (", "1 of 2 passed in "}
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), out.String())
	}
	for i, w := range want {
		if !strings.Contains(lines[i], w) || len(lines[i]) < 9 || lines[i][2] != ':' {
			t.Errorf("line %d %q, want a timestamp and %q", i, lines[i], w)
		}
	}
	if strings.ContainsAny(out.String(), "\x1b\r") {
		t.Errorf("escape codes in plain output: %q", out.String())
	}
}

// The live board is tested on a terminal: TestUpShowsLiveStatusOnATerminal
// in cmd/vmatrix (mpb draws only to one).
