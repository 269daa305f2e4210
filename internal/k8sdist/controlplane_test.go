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
)

// TestControlPlaneMain: the program vmatrix builds beside each version is
// written without the constraint that keeps it out of vmatrix's build, as
// a main package of the two upstream commands, and cached under a name
// that changes with its source.
func TestControlPlaneMain(t *testing.T) {
	work := t.TempDir()
	if err := writeControlPlaneMain(work); err != nil {
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
	if buildTarget(ControlPlaneProgram) != buildModule+"/cmd/"+ControlPlaneProgram || buildTarget("kube-apiserver") != "k8s.io/kubernetes/cmd/kube-apiserver" {
		t.Errorf("build targets %s, %s", buildTarget(ControlPlaneProgram), buildTarget("kube-apiserver"))
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
