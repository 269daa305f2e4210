package k8sdist

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// unsetOverrides clears the binary overrides a developer may have exported,
// which would otherwise short-circuit what a test means to exercise.
func unsetOverrides(t *testing.T) {
	for _, c := range components {
		t.Setenv(c.env, "")
	}
	t.Setenv("VMATRIX_KWOK", "")
}

// writeExecutable writes a shell script that prints out.
func writeExecutable(t *testing.T, path, out string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("#!/bin/sh\necho "+out+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
}

func TestDefaultCacheDir(t *testing.T) {
	t.Setenv("VMATRIX_CACHE_DIR", "")
	t.Setenv("XDG_CACHE_HOME", "/xdg")
	if got := DefaultCacheDir(); got != "/xdg/vmatrix" {
		t.Errorf("with XDG_CACHE_HOME: %q", got)
	}
	t.Setenv("XDG_CACHE_HOME", "")
	t.Setenv("HOME", "/home/u")
	if got := DefaultCacheDir(); got != "/home/u/.cache/vmatrix" {
		t.Errorf("with HOME only: %q", got)
	}
	t.Setenv("VMATRIX_CACHE_DIR", "/override")
	if got := DefaultCacheDir(); got != "/override" {
		t.Errorf("with VMATRIX_CACHE_DIR: %q", got)
	}
}

func TestKubernetesEnvOverrideErrors(t *testing.T) {
	unsetOverrides(t)
	dir := t.TempDir()
	notExec := filepath.Join(dir, "kube-apiserver")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing", "kube-apiserver")

	for _, tc := range []struct{ value, want string }{
		{missing, "no such file or directory"},
		{notExec, "not executable"},
		{dir, "not a regular file"},
	} {
		t.Setenv("VMATRIX_KUBE_APISERVER", tc.value)
		s := Source{CacheDir: t.TempDir()}
		_, err := s.Kubernetes(t.Context(), Version{1, 36, 3})
		if err == nil {
			t.Errorf("VMATRIX_KUBE_APISERVER=%s: no error", tc.value)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, "VMATRIX_KUBE_APISERVER") || !strings.Contains(msg, tc.value) || !strings.Contains(msg, tc.want) {
			t.Errorf("VMATRIX_KUBE_APISERVER=%s: error %q should name the variable, the path and say %q", tc.value, msg, tc.want)
		}
		t.Logf("%v", err)
	}
}

func TestKubernetesEnvOverridesWin(t *testing.T) {
	unsetOverrides(t)
	dir := t.TempDir()
	var want Binaries
	for _, c := range components {
		p := filepath.Join(dir, c.name)
		writeExecutable(t, p, c.name)
		t.Setenv(c.env, p)
		*want.field(c.name) = p
	}
	cache := t.TempDir()
	got, err := Source{CacheDir: cache}.Kubernetes(t.Context(), Version{1, 99, 0})
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("Kubernetes = %+v, want the overrides %+v", got, want)
	}
	if entries, _ := os.ReadDir(cache); len(entries) != 0 {
		t.Errorf("the cache was touched although every binary is overridden: %v", entries)
	}
}

func TestKWOKEnvOverride(t *testing.T) {
	p := filepath.Join(t.TempDir(), "kwok")
	writeExecutable(t, p, "kwok")
	t.Setenv("VMATRIX_KWOK", p)
	if got, err := (Source{CacheDir: t.TempDir()}).KWOK(t.Context()); err != nil || got != p {
		t.Errorf("KWOK = %q, %v; want %q", got, err, p)
	}
	t.Setenv("VMATRIX_KWOK", p+".missing")
	if _, err := (Source{CacheDir: t.TempDir()}).KWOK(t.Context()); err == nil || !strings.Contains(err.Error(), "VMATRIX_KWOK") {
		t.Errorf("KWOK with a missing override: %v", err)
	}
}

func TestCached(t *testing.T) {
	cache := t.TempDir()
	s := Source{CacheDir: cache}
	if got, err := s.Cached(); err != nil || len(got) != 0 {
		t.Fatalf("Cached of an empty cache = %v, %v", got, err)
	}
	complete := func(v string) {
		for _, c := range components {
			writeExecutable(t, filepath.Join(cache, "k8s", v, c.name), v)
		}
	}
	complete("v1.36.3")
	complete("v1.9.0")
	complete("1.35.0") // not a directory name the cache uses
	writeExecutable(t, filepath.Join(cache, "k8s", "v1.37.2", "kube-apiserver"), "partial")
	if err := os.WriteFile(filepath.Join(cache, "k8s", "v1.37.2.lock"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := s.Cached()
	if err != nil {
		t.Fatal(err)
	}
	if want := []Version{{1, 9, 0}, {1, 36, 3}}; !slices.Equal(got, want) {
		t.Errorf("Cached = %v, want %v", got, want)
	}
}

func TestKubernetesWithoutGo(t *testing.T) {
	unsetOverrides(t)
	offline(t)
	t.Setenv("PATH", t.TempDir())
	old := fallbackGo
	fallbackGo = filepath.Join(t.TempDir(), "go")
	t.Cleanup(func() { fallbackGo = old })

	cache := t.TempDir()
	// A cached version needs no go command.
	for _, c := range components {
		writeExecutable(t, filepath.Join(cache, "k8s", "v1.36.3", c.name), c.name)
	}
	s := Source{CacheDir: cache}
	if _, err := s.Kubernetes(t.Context(), Version{1, 36, 3}); err != nil {
		t.Errorf("cached version without a go command: %v", err)
	}

	// A partly cached one names what is missing and how to provide it.
	if err := os.Remove(filepath.Join(cache, "k8s", "v1.36.3", "kube-scheduler")); err != nil {
		t.Fatal(err)
	}
	_, err := s.Kubernetes(t.Context(), Version{1, 36, 3})
	if err == nil {
		t.Fatal("no error without binaries and without go")
	}
	msg := err.Error()
	for _, want := range []string{"kube-scheduler v1.36.3", "no go command", "VMATRIX_KUBE_SCHEDULER"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not contain %q", msg, want)
		}
	}
	if strings.Contains(msg, "VMATRIX_KUBE_APISERVER") {
		t.Errorf("error %q asks for a binary that is cached", msg)
	}
	t.Log(msg)

	if _, err := s.KWOK(t.Context()); err == nil || !strings.Contains(err.Error(), "VMATRIX_KWOK") {
		t.Errorf("KWOK without go: %v", err)
	}
}
