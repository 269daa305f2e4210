package controlplane

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestGatedKubeconfig: a reader that opens the gated path before release
// blocks until release and then reads the whole kubeconfig; one that opens
// it after release reads the regular file put in its place; close without
// release ends a waiting reader with nothing and removes the FIFO.
func TestGatedKubeconfig(t *testing.T) {
	kubeconfig := []byte("apiVersion: v1\nkind: Config\n")
	read := func(path string) <-chan string {
		got := make(chan string, 1)
		go func() {
			b, err := os.ReadFile(path)
			if err != nil {
				got <- "error: " + err.Error()
				return
			}
			got <- string(b)
		}()
		return got
	}

	path := filepath.Join(t.TempDir(), "kubeconfig")
	g, err := newGatedKubeconfig(path)
	if err != nil {
		t.Fatal(err)
	}
	early := read(path)
	select {
	case s := <-early:
		t.Fatalf("read %q before release", s)
	case <-time.After(200 * time.Millisecond):
	}
	if err := g.release(kubeconfig); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-early:
		if s != string(kubeconfig) {
			t.Errorf("the reader waiting at release read %q", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the reader waiting at release still waits")
	}
	if s := <-read(path); s != string(kubeconfig) {
		t.Errorf("a reader after release read %q", s)
	}
	if fi, err := os.Stat(path); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("after release the path is %v (%v), want a regular file", fi.Mode(), err)
	}

	closed := filepath.Join(t.TempDir(), "kubeconfig")
	g, err = newGatedKubeconfig(closed)
	if err != nil {
		t.Fatal(err)
	}
	waiting := read(closed)
	time.Sleep(100 * time.Millisecond)
	if err := g.close(); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-waiting:
		// A reader that had not opened the FIFO yet finds no file.
		if s != "" && !strings.Contains(s, "no such file") {
			t.Errorf("after close without release a reader read %q", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a reader still waits after close")
	}
	if _, err := os.Stat(closed); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the FIFO is left after close: %v", err)
	}
}
