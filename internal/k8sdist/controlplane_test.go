package k8sdist

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestControlPlaneMain: the program vmatrix builds beside each version is
// written without the constraint that keeps it out of vmatrix's build, as
// a main package of the two upstream commands, and cached under a name
// that changes with its source.
func TestControlPlaneMain(t *testing.T) {
	work := t.TempDir()
	if err := writeControlPlaneMain(work, true); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(work, "cmd", ControlPlaneProgram, "main.go")
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(src), "//go:build") {
		t.Error("the written program keeps a build constraint: go build would skip it")
	}
	f, err := parser.ParseFile(token.NewFileSet(), path, src, parser.ImportsOnly)
	if err != nil {
		t.Fatal(err)
	}
	var imports []string
	for _, i := range f.Imports {
		p, _ := strconv.Unquote(i.Path.Value)
		imports = append(imports, p)
	}
	if f.Name.Name != "main" || !slices.Contains(imports, "k8s.io/kubernetes/cmd/kube-apiserver/app") || !slices.Contains(imports, "k8s.io/kubernetes/cmd/kube-controller-manager/app") {
		t.Errorf("package %s importing %v", f.Name.Name, imports)
	}
	if !strings.Contains(string(src), strconv.Quote(ControllerManagerFlags)) {
		t.Errorf("the program does not split its flags at %s", ControllerManagerFlags)
	}
	if !strings.Contains(string(src), strconv.Quote(ControllerManagerEnded)) && !strings.Contains(string(src), "\""+ControllerManagerEnded) {
		t.Errorf("the program never writes %q", ControllerManagerEnded)
	}
	// main.go starts lean.go's Run, written beside it into package main:
	// the two declare no name twice, and lean.go needs no module but Go's.
	leanPath := filepath.Join(work, "cmd", ControlPlaneProgram, "lean.go")
	lf, err := parser.ParseFile(token.NewFileSet(), leanPath, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	mf, err := parser.ParseFile(token.NewFileSet(), path, src, 0)
	if err != nil {
		t.Fatal(err)
	}
	if lf.Name.Name != "main" || lf.Scope.Lookup("Run") == nil || !strings.Contains(string(src), "go Run()") {
		t.Errorf("lean.go is package %s, declares Run: %v; main.go starts it: %v", lf.Name.Name, lf.Scope.Lookup("Run") != nil, strings.Contains(string(src), "go Run()"))
	}
	for name := range lf.Scope.Objects {
		if mf.Scope.Lookup(name) != nil {
			t.Errorf("main.go and lean.go both declare %s", name)
		}
	}
	for _, i := range lf.Imports {
		p, _ := strconv.Unquote(i.Path.Value)
		if first, _, _ := strings.Cut(p, "/"); strings.Contains(first, ".") {
			t.Errorf("lean.go imports %s, which the wrapper module may not have", p)
		}
	}
	if buildTarget(ControlPlaneProgram) != buildModule+"/cmd/"+ControlPlaneProgram || buildTarget("kube-apiserver") != "k8s.io/kubernetes/cmd/kube-apiserver" {
		t.Errorf("build targets %s, %s", buildTarget(ControlPlaneProgram), buildTarget("kube-apiserver"))
	}

	// The upstream commands' build leaves it out: it cannot fail theirs.
	if err := writeControlPlaneMain(work, false); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("the program stays in the module: %v", err)
	}

	name := cachedName(ControlPlaneProgram)
	defer func(s string) { controlPlaneMain = s }(controlPlaneMain)
	controlPlaneMain += "\n// changed\n"
	if other := cachedName(ControlPlaneProgram); other == name || !strings.HasPrefix(other, ControlPlaneProgram+"-") {
		t.Errorf("cached names %s and %s for two sources", name, other)
	}
	if cachedName("kube-apiserver") != "kube-apiserver" {
		t.Error("an upstream binary is cached under another name")
	}
}

// TestControlPlaneBuilds: the program is built only beside binaries built
// here, and builds of other sources go once old and unused.
func TestControlPlaneBuilds(t *testing.T) {
	dir := t.TempDir()
	if builtFromSource(dir) {
		t.Error("an empty folder counts as built here")
	}
	old, recent, keep := filepath.Join(dir, ControlPlaneProgram+"-00000000"), filepath.Join(dir, ControlPlaneProgram+"-11111111"), filepath.Join(dir, cachedName(ControlPlaneProgram))
	for _, p := range []string{old, recent, keep} {
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if !builtFromSource(dir) {
		t.Error("a folder with a build of another source does not count as built here")
	}
	weekAgo := time.Now().Add(-keepOtherBuilds - time.Hour)
	if err := os.Chtimes(old, weekAgo, weekAgo); err != nil {
		t.Fatal(err)
	}
	removeUnused(dir, keep)
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Errorf("an old build of another source stays: %v", err)
	}
	for _, p := range []string{recent, keep} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("removed: %v", err)
		}
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if !running(self) || running(recent) {
		t.Errorf("running: this test binary %v, a file no process runs %v", running(self), running(recent))
	}
	marked := t.TempDir()
	if err := os.WriteFile(filepath.Join(marked, builtHere), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if !builtFromSource(marked) {
		t.Error("a folder marked as built here does not count")
	}
}
