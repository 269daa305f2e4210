package image

import (
	"debug/elf"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// Where the dynamic loader looks without an ld.so.cache, by architecture:
// the Debian multiarch folder, then the classic ones.
var libDirs = map[elf.Machine][]string{
	elf.EM_X86_64:  {"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib"},
	elf.EM_AARCH64: {"/lib/aarch64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib"},
}

var goarch = map[elf.Machine]string{elf.EM_X86_64: "amd64", elf.EM_AARCH64: "arm64"}

// sharedLibraries checks that the binaries (image path → file) are Linux
// executables of one architecture, and returns that architecture and the
// entries for the dynamic loader and libraries they need, copied from this
// machine at the paths where the loader will look. Static binaries need none.
func sharedLibraries(bins map[string]string) (arch string, libs []entry, err error) {
	var machine elf.Machine
	need := map[string]bool{}  // library names
	files := map[string]bool{} // loader and libraries, by path
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for n := range bins {
			if !yield(n) {
				return
			}
		}
	}) {
		src := bins[name]
		interp, needed, m, err := readELF(src)
		if err != nil {
			return "", nil, fmt.Errorf("%s (for %s): %w", src, path.Base(name), err)
		}
		if machine != 0 && m != machine {
			return "", nil, fmt.Errorf("%s is for %s, the other binaries for %s", src, m, machine)
		}
		machine = m
		if interp != "" {
			files[interp] = true
		}
		for _, n := range needed {
			need[n] = true
		}
	}
	if goarch[machine] == "" {
		return "", nil, fmt.Errorf("binaries for %s: only amd64 and arm64 are supported", machine)
	}
	// Libraries need libraries: resolve until nothing new comes up. The
	// loader, which libc names too, is loaded already.
	done := map[string]bool{}
	for interp := range files {
		done[path.Base(interp)] = true
	}
	for len(need) > 0 {
		for n := range need {
			delete(need, n)
			if done[n] {
				continue
			}
			done[n] = true
			p, err := findLibrary(n, libDirs[machine])
			if err != nil {
				return "", nil, err
			}
			files[p] = true
			_, more, _, err := readELF(p)
			if err != nil {
				return "", nil, fmt.Errorf("%s: %w", p, err)
			}
			for _, m := range more {
				need[m] = true
			}
		}
	}
	for p := range files {
		// The loader and libraries are often symbolic links: the image gets
		// the file they point to, under the name the binaries ask for.
		real, err := filepath.EvalSymlinks(p)
		if err != nil {
			return "", nil, err
		}
		libs = append(libs, entry{name: p, mode: 0o755, src: real})
	}
	slices.SortFunc(libs, func(a, b entry) int { return strings.Compare(a.name, b.name) })
	return goarch[machine], libs, nil
}

// readELF returns the program interpreter and the needed libraries of an
// ELF file.
func readELF(p string) (interp string, needed []string, m elf.Machine, err error) {
	f, err := elf.Open(p)
	if err != nil {
		return "", nil, 0, fmt.Errorf("not a Linux binary: %w", err)
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			b := make([]byte, prog.Filesz)
			if _, err := prog.ReadAt(b, 0); err != nil {
				return "", nil, 0, err
			}
			interp = strings.TrimRight(string(b), "\x00")
		}
	}
	needed, err = f.ImportedLibraries()
	return interp, needed, f.Machine, err
}

func findLibrary(name string, dirs []string) (string, error) {
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p, nil
		}
	}
	return "", fmt.Errorf("shared library %s: not found in %s", name, strings.Join(dirs, ", "))
}
