package k8sdist

import (
	"slices"
	"strings"
	"testing"
)

func TestGoCommandEnvironment(t *testing.T) {
	t.Setenv("GOFLAGS", "-tags=netgo -mod=vendor --modfile=/elsewhere/go.mod")
	g, err := newGoCommand(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// The last assignment wins, as in the go command's own environment.
	var flags, work string
	for _, kv := range g.env {
		if v, ok := strings.CutPrefix(kv, "GOFLAGS="); ok {
			flags = v
		}
		if v, ok := strings.CutPrefix(kv, "GOWORK="); ok {
			work = v
		}
	}
	if flags != "-tags=netgo -mod=mod" {
		t.Errorf("GOFLAGS = %q, want the user's flags with -mod=mod instead of theirs", flags)
	}
	if work != "off" {
		t.Errorf("GOWORK = %q, want off", work)
	}
}

func TestGoCommandErrorKeepsOutput(t *testing.T) {
	g, err := newGoCommand(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	err = g.run(t.Context(), t.TempDir(), nil, "build", "vmatrix.invalid/no/such/package")
	if err == nil {
		t.Fatal("building a missing package succeeded")
	}
	msg := err.Error()
	if !strings.Contains(msg, "build vmatrix.invalid/no/such/package: exit status 1\n") || !strings.Contains(msg, "vmatrix.invalid") {
		t.Errorf("error does not show the command and its output:\n%s", msg)
	}
	t.Log(msg)
}

func TestTail(t *testing.T) {
	var lines []string
	for i := range 100 {
		lines = append(lines, strings.Repeat("x", i))
	}
	out := []byte(strings.Join(lines, "\n") + "\n")
	got := strings.Split(tail(out, 3, 10000), "\n")
	if !slices.Equal(got, lines[97:]) {
		t.Errorf("tail by lines = %q", got)
	}
	// Cut by bytes at a line boundary: no partial first line.
	got = strings.Split(tail(out, 100, 250), "\n")
	if len(got) != 2 || got[1] != lines[99] || got[0] != lines[98] {
		t.Errorf("tail by bytes = %d lines", len(got))
	}
	if tail(nil, 3, 100) != "" {
		t.Error("tail of nothing is not empty")
	}
}
