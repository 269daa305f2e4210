package host

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"mvdan.cc/sh/v3/expand"
	"mvdan.cc/sh/v3/interp"
	"mvdan.cc/sh/v3/syntax"

	"github.com/vmatrix/vmatrix/syncer"
)

// A run is what one start of a simulated container does: how long it runs
// (forever, for a server), how it exits, and what it prints when.
type run struct {
	forever  bool
	duration time.Duration
	exitCode int32
	output   []outputLine
	files    []fileChange // what it writes and removes, in order
	// guessed: not read from its command (which the simulation cannot
	// follow, or which an annotation overrides), so what it does to files
	// is unknown.
	guessed bool
}

// fileChange is a file a script writes (its content then), a folder it
// makes, or a path it removes, at a time into its run: what a probe of the
// container finds then (sandbox.at).
type fileChange struct {
	at   time.Duration
	path string
	text string
	gone bool
	dir  bool
}

// outputLine is a line a command prints, at a time into its run, and
// whether on stderr (a container's log holds both streams; exec parts them)
// and without an end (the last, printf x).
type outputLine struct {
	at         time.Duration
	text       string
	stderr     bool
	unfinished bool
}

// timedOutput collects what a script prints on one of its streams, each
// line with the script's clock when the line ended, into the lines of both.
type timedOutput struct {
	mu      *sync.Mutex // the script's: a pipeline's commands write at once
	clock   *time.Duration
	lines   *[]outputLine
	stderr  bool
	partial []byte
}

func (o *timedOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, b := range p {
		if b != '\n' {
			o.partial = append(o.partial, b)
			continue
		}
		*o.lines = append(*o.lines, outputLine{*o.clock, string(o.partial), o.stderr, false})
		o.partial = o.partial[:0]
	}
	return len(p), nil
}

// done adds an unfinished last line.
func (o *timedOutput) done() {
	if len(o.partial) > 0 {
		*o.lines = append(*o.lines, outputLine{*o.clock, string(o.partial), o.stderr, true})
		o.partial = nil
	}
}

// longest is the run past which a container counts as running forever.
const longest = 24 * time.Hour

// errUnreadable is a container command the simulation cannot follow.
var errUnreadable = errors.New("a command the simulation cannot follow")

// sandbox is what a container's command finds around it: its environment,
// the files of its volumes that the simulation knows (containerFiles), its
// working folder and the time it starts at.
type sandbox struct {
	env    map[string]string
	files  map[string]string
	gone   map[string]bool // paths removed, which the image may have held
	dirs   map[string]bool // folders made
	mounts []mount
	dir    string
	start  time.Time
}

// at is the sandbox a command finds d into a run that began in b and made
// changes: the files written and folders made by then, without those
// removed.
func (b sandbox) at(changes []fileChange, d time.Duration) sandbox {
	b.files, b.gone, b.dirs = maps.Clone(b.files), maps.Clone(b.gone), maps.Clone(b.dirs)
	if b.gone == nil {
		b.gone = map[string]bool{}
	}
	if b.dirs == nil {
		b.dirs = map[string]bool{}
	}
	for _, ch := range changes {
		if ch.at > d {
			break
		}
		switch {
		case ch.gone:
			delete(b.files, ch.path)
			for dir := range b.dirs {
				if dir == ch.path || strings.HasPrefix(dir, ch.path+"/") {
					delete(b.dirs, dir)
				}
			}
			b.gone[ch.path] = true
		case ch.dir:
			b.dirs[ch.path] = true
			delete(b.gone, ch.path)
		default:
			b.files[ch.path] = ch.text
			delete(b.gone, ch.path)
		}
	}
	b.start = b.start.Add(d)
	return b
}

// readCommand works out what a container's command does, for the forms tests
// use: sleep N (and sleep infinity), true, false, and sh -c (or bash -c)
// scripts of those with exit, echo, tests and arithmetic on the
// environment; on the files of its volumes and those it writes itself, cat,
// touch, rm, mkdir, ls, grep, head, tail, wc, sort and tee (programs.go);
// seq, date, hostname, printenv, basename and dirname. The script runs in a
// shell interpreter in this process on a clock of its own: sleep advances
// the clock, and any other program, or a file the simulation cannot know,
// makes the command unreadable.
func readCommand(argv []string, box sandbox) (run, error) {
	if len(argv) == 0 {
		return run{}, errUnreadable
	}
	script := ""
	switch name := path.Base(argv[0]); {
	case shells[name] && len(argv) >= 3 && argv[1] == "-c":
		script = argv[2]
	case shells[name]:
		return run{}, errUnreadable // a script file in the image
	default:
		script = shellQuote(argv)
	}
	file, err := syntax.NewParser().Parse(strings.NewReader(script), "")
	if err != nil {
		return run{}, errUnreadable
	}
	sh := &simShell{box: box, written: map[string]*strings.Builder{}, dirs: maps.Clone(box.dirs)}
	if sh.dirs == nil {
		sh.dirs = map[string]bool{}
	}
	for p := range box.gone {
		sh.written[p] = nil
	}
	var lines []outputLine
	out := &timedOutput{mu: &sh.mu, clock: &sh.clock, lines: &lines}
	errOut := &timedOutput{mu: &sh.mu, clock: &sh.clock, lines: &lines, stderr: true}
	pairs := []string{"HOME=/root", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	for k, v := range box.env {
		pairs = append(pairs, k+"="+v)
	}
	// A busy loop without sleep never advances the clock: real time bounds
	// it, with room for a machine that CPU-bound work keeps busy.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	runner, err := interp.New(
		interp.Env(expand.ListEnviron(pairs...)),
		interp.StdIO(strings.NewReader(""), out, errOut),
		interp.ExecHandlers(func(interp.ExecHandlerFunc) interp.ExecHandlerFunc { return sh.exec }),
		interp.OpenHandler(sh.open),
		interp.StatHandler(sh.stat),
		interp.AccessHandler(sh.access),
		interp.ReadDirHandler2(sh.readDir),
	)
	if err != nil {
		return run{}, err
	}
	// The container's working folder, which need not exist on this machine
	// (interp.Dir would look): relative paths resolve against it.
	runner.Dir = cmp.Or(box.dir, "/")
	err = runner.Run(ctx, file)
	if sh.unknown {
		return run{}, errUnreadable // it looked at a file the simulation cannot know
	}
	out.done()
	errOut.done()
	r := run{duration: sh.clock, output: lines, files: sh.changes}
	var status interp.ExitStatus
	switch {
	case errors.Is(err, errForever) || ctx.Err() != nil:
		return run{forever: true, output: r.output, files: r.files}, nil
	case errors.As(err, &status):
		r.exitCode = int32(status)
	case err != nil:
		return run{}, errUnreadable
	}
	return r, nil
}

// simShell is one run of a script: its clock, the programs it may run and
// the files it sees.
type simShell struct {
	box     sandbox
	clock   time.Duration
	mu      sync.Mutex                  // a pipeline's commands run at once
	written map[string]*strings.Builder // nil: removed
	dirs    map[string]bool             // made by mkdir
	changes []fileChange
	unknown bool // the script tested or listed a path outside what it can know
}

// changed records what is at p now, written or removed; sh.mu held.
func (sh *simShell) changed(p string) {
	ch := fileChange{at: sh.clock, path: p, gone: sh.written[p] == nil}
	if !ch.gone {
		ch.text = sh.written[p].String()
	}
	sh.record(ch)
}

// madeDir records a folder made at p now; sh.mu held.
func (sh *simShell) madeDir(p string) {
	sh.record(fileChange{at: sh.clock, path: p, dir: true})
}

func (sh *simShell) record(ch fileChange) {
	if n := len(sh.changes); n > 0 && sh.changes[n-1].path == ch.path && sh.changes[n-1].at == ch.at {
		sh.changes[n-1] = ch // a write in pieces at one moment: what it comes to
		return
	}
	sh.changes = append(sh.changes, ch)
}

// exec runs the programs a script may run, as busybox's would; any other is
// errUnreadable.
func (sh *simShell) exec(ctx context.Context, args []string) error {
	hc := interp.HandlerCtx(ctx)
	switch path.Base(args[0]) {
	case "sleep":
		d, err := sleepDuration(args[1:])
		if err != nil {
			return errUnreadable
		}
		sh.mu.Lock()
		defer sh.mu.Unlock()
		if sh.clock += d; sh.clock > longest {
			return errForever
		}
		return nil
	case "expr":
		out, err := expr(args[1:])
		if err != nil {
			return errUnreadable
		}
		fmt.Fprintln(hc.Stdout, out)
		if out == "0" || out == "" {
			return interp.ExitStatus(1) // expr's way of saying null or zero
		}
		return nil
	case "cat":
		return sh.cat(hc, args[1:])
	case "date":
		if len(args) > 2 || len(args) == 2 && args[1] != "-u" {
			return errUnreadable // a format or a date of its own
		}
		sh.mu.Lock()
		now := sh.box.start.Add(sh.clock)
		sh.mu.Unlock()
		fmt.Fprintln(hc.Stdout, now.UTC().Format("Mon Jan _2 15:04:05 UTC 2006"))
		return nil
	case "hostname":
		if len(args) > 1 {
			return errUnreadable
		}
		fmt.Fprintln(hc.Stdout, sh.box.env["HOSTNAME"])
		return nil
	case "grep":
		return sh.grep(hc, args[1:])
	case "head", "tail":
		return sh.headTail(hc, path.Base(args[0]), args[1:])
	case "wc":
		return sh.wc(hc, args[1:])
	case "sort":
		return sh.sort(hc, args[1:])
	case "seq":
		return seq(hc, args[1:])
	case "ls":
		return sh.ls(ctx, args[1:])
	case "tee":
		return sh.tee(ctx, args[1:])
	case "basename", "dirname":
		if len(args) != 2 {
			return errUnreadable // a suffix to cut, or several names
		}
		f := path.Base
		if path.Base(args[0]) == "dirname" {
			f = path.Dir
		}
		fmt.Fprintln(hc.Stdout, f(strings.TrimSuffix(args[1], "/")))
		return nil
	case "touch":
		return sh.touch(hc, args[1:])
	case "rm":
		return sh.rm(ctx, args[1:])
	case "mkdir":
		return sh.mkdir(hc, args[1:])
	case "printenv", "env":
		if path.Base(args[0]) == "env" && len(args) > 1 {
			return errUnreadable // env VAR=value program
		}
		return printenv(hc, args[1:])
	}
	return errUnreadable
}

// exitStatus is a program's status as the interpreter takes it: nil for 0.
func exitStatus(status int) error {
	if status == 0 {
		return nil
	}
	return interp.ExitStatus(status)
}

// printenv prints the exported variables (all, sorted, as NAME=value), or
// the values of those named; status 1 if one of them is not set.
func printenv(hc interp.HandlerContext, names []string) error {
	if len(names) > 0 {
		status := 0
		for _, name := range names {
			if vr := hc.Env.Get(name); vr.Exported && vr.IsSet() {
				fmt.Fprintln(hc.Stdout, vr.String())
			} else {
				status = 1
			}
		}
		return exitStatus(status)
	}
	var lines []string
	hc.Env.Each(func(name string, vr expand.Variable) bool {
		if vr.Exported && vr.IsSet() {
			lines = append(lines, name+"="+vr.String())
		}
		return true
	})
	slices.Sort(lines)
	for _, l := range lines {
		fmt.Fprintln(hc.Stdout, l)
	}
	return nil
}

// cat prints files, or its input without any.
func (sh *simShell) cat(hc interp.HandlerContext, names []string) error {
	if len(names) == 0 {
		names = []string{"-"}
	}
	status := 0
	for _, name := range names {
		if name == "-" {
			if hc.Stdin != nil {
				io.Copy(hc.Stdout, hc.Stdin)
			}
			continue
		}
		if strings.HasPrefix(name, "-") {
			return errUnreadable // an option
		}
		text, err := sh.read(hc.Dir, name)
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			fmt.Fprintf(hc.Stderr, "cat: can't open '%s': No such file or directory\n", name)
			status = 1
			continue
		}
		io.WriteString(hc.Stdout, text)
	}
	return exitStatus(status)
}

// abs is a file's path in the container, from the script's working folder.
func abs(dir, name string) string {
	if path.IsAbs(name) {
		return path.Clean(name)
	}
	return path.Join(dir, name)
}

// mountOf is the mount a path lies in, the deepest; nil for none.
func (sh *simShell) mountOf(p string) *mount { return mountIn(sh.box.mounts, p) }

// knows reports whether p lies in a mount whose every file the script
// knows.
func (sh *simShell) knows(p string) bool {
	m := sh.mountOf(p)
	return m != nil && !m.opaque
}

// read is a file's content: what the script wrote there, else its volume's.
// A file the simulation cannot know (in the image) is errUnreadable; one
// below a mount that is not there does not exist.
func (sh *simShell) read(dir, name string) (string, error) {
	p := abs(dir, name)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if b, ok := sh.written[p]; ok {
		if b == nil {
			return "", &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
		}
		return b.String(), nil
	}
	if text, ok := sh.box.files[p]; ok {
		return text, nil
	}
	if sh.knows(p) {
		return "", &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return "", errUnreadable
}

// open serves the script's redirections: reads as read does, writes into
// memory for this run (a read-only volume refuses them), /dev/null as
// itself.
func (sh *simShell) open(ctx context.Context, name string, flag int, perm os.FileMode) (io.ReadWriteCloser, error) {
	hc := interp.HandlerCtx(ctx)
	switch name {
	case "/dev/null":
		return nopFile{}, nil
	case "/dev/stdout":
		return writeOnly{hc.Stdout}, nil
	case "/dev/stderr":
		return writeOnly{hc.Stderr}, nil
	}
	if strings.HasPrefix(name, "/dev/") || strings.HasPrefix(name, "/proc/") {
		return nil, errUnreadable
	}
	dir := hc.Dir
	if flag&(os.O_WRONLY|os.O_RDWR) == 0 {
		text, err := sh.read(dir, name)
		if err != nil {
			return nil, err
		}
		return readOnlyFile{strings.NewReader(text)}, nil
	}
	p := abs(dir, name)
	if m := sh.mountOf(p); m != nil && m.readOnly {
		return nil, &fs.PathError{Op: "open", Path: name, Err: syscall.EROFS}
	}
	old, err := sh.read(dir, name)
	if err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, errUnreadable) {
		return nil, err
	}
	b := &strings.Builder{}
	if flag&os.O_APPEND != 0 {
		b.WriteString(old) // what the image holds there, if anything, is unknown: taken as empty
	}
	sh.mu.Lock()
	sh.written[p] = b
	sh.changed(p)
	sh.mu.Unlock()
	return &memFile{sh: sh, p: p, b: b}, nil
}

// stat answers the script's tests of files ([ -f ], [ -d ], cd): the files
// it can read, the folders that hold them and the mounts; below a mount,
// nothing else exists. Any other path is the image's, which the simulation
// cannot know: the command becomes unreadable.
func (sh *simShell) stat(ctx context.Context, name string, followSymlinks bool) (fs.FileInfo, error) {
	p := path.Clean(name)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	b, ok := sh.written[p]
	switch {
	case ok && b == nil:
		return nil, &fs.PathError{Op: "stat", Path: name, Err: fs.ErrNotExist}
	case ok:
		return memInfo{name: path.Base(p), size: b.Len(), at: sh.box.start}, nil
	}
	if text, ok := sh.box.files[p]; ok {
		return memInfo{name: path.Base(p), size: len(text), at: sh.box.start}, nil
	}
	if sh.isDir(p) {
		return memInfo{name: path.Base(p), dir: true, at: sh.box.start}, nil
	}
	if !sh.knows(p) {
		sh.unknown = true
	}
	return nil, &fs.PathError{Op: "stat", Path: name, Err: fs.ErrNotExist}
}

// isFile reports whether p is a file the script knows; sh.mu held.
func (sh *simShell) isFile(p string) bool {
	if b, ok := sh.written[p]; ok {
		return b != nil
	}
	_, ok := sh.box.files[p]
	return ok
}

// isDir reports whether p is a folder the script knows: a mount, one made,
// or one that holds what it knows; sh.mu held.
func (sh *simShell) isDir(p string) bool {
	if b, ok := sh.written[p]; ok && b == nil {
		return false // removed
	}
	holds := func(file string) bool { return strings.HasPrefix(file, strings.TrimSuffix(p, "/")+"/") }
	folder := sh.dirs[p] || slices.ContainsFunc(sh.box.mounts, func(m mount) bool { return m.path == p || holds(m.path) })
	for file := range sh.box.files {
		folder = folder || holds(file)
	}
	for file, b := range sh.written {
		folder = folder || b != nil && holds(file)
	}
	for dir := range sh.dirs {
		folder = folder || holds(dir)
	}
	return folder
}

// access answers [ -r ], [ -w ] and [ -x ] as stat does, a read-only
// volume's files not writable, a volume's files not executable.
func (sh *simShell) access(ctx context.Context, name string, mode interp.AccessMode) error {
	info, err := sh.stat(ctx, name, true)
	switch {
	case err != nil:
		return err
	case mode&interp.AccessWrite != 0:
		if m := sh.mountOf(path.Clean(name)); m != nil && m.readOnly {
			return &fs.PathError{Op: "access", Path: name, Err: syscall.EROFS}
		}
	case mode&interp.AccessExec != 0 && !info.IsDir():
		return &fs.PathError{Op: "access", Path: name, Err: fs.ErrPermission}
	}
	return nil
}

// readDir lists a folder for the script's globs: below a mount, all it
// holds; above one (the glob of /etc/app/* reads /etc to find app), only the
// folders that lead to mounts and files it knows, since the image's own it
// cannot know; any other folder makes the command unreadable.
func (sh *simShell) readDir(ctx context.Context, name string) ([]fs.DirEntry, error) {
	p := path.Clean(name)
	info, err := sh.stat(ctx, p, true)
	if err != nil || !info.IsDir() {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: fs.ErrNotExist}
	}
	if m := sh.mountOf(p); m != nil && m.opaque {
		sh.mu.Lock()
		sh.unknown = true // a folder whose files it does not know
		sh.mu.Unlock()
		return nil, errUnreadable
	}
	names := map[string]bool{}
	sh.mu.Lock()
	// Every path the script can know of, to find those in p: files, the
	// folders it made and mounts (a removed file's stat leaves it out).
	known := slices.Concat(slices.Collect(maps.Keys(sh.box.files)), slices.Collect(maps.Keys(sh.written)), slices.Collect(maps.Keys(sh.dirs)))
	for _, m := range sh.box.mounts {
		known = append(known, m.path)
	}
	for _, file := range known {
		if rest, ok := strings.CutPrefix(file, strings.TrimSuffix(p, "/")+"/"); ok {
			names[strings.Split(rest, "/")[0]] = true
		}
	}
	sh.mu.Unlock()
	var entries []fs.DirEntry
	for _, n := range slices.Sorted(maps.Keys(names)) {
		info, err := sh.stat(ctx, path.Join(p, n), true)
		if err == nil {
			entries = append(entries, fs.FileInfoToDirEntry(info))
		}
	}
	return entries, nil
}

// memInfo is a file or folder the script sees.
type memInfo struct {
	name string
	size int
	dir  bool
	at   time.Time
}

func (i memInfo) Name() string       { return i.name }
func (i memInfo) Size() int64        { return int64(i.size) }
func (i memInfo) ModTime() time.Time { return i.at }
func (i memInfo) IsDir() bool        { return i.dir }
func (i memInfo) Sys() any           { return nil }
func (i memInfo) Mode() fs.FileMode {
	if i.dir {
		return fs.ModeDir | 0o755
	}
	return 0o644
}

// memFile is a file a script writes, in memory.
type memFile struct {
	sh *simShell
	p  string
	b  *strings.Builder
}

func (f *memFile) Read([]byte) (int, error) { return 0, io.EOF }
func (f *memFile) Write(p []byte) (int, error) {
	f.sh.mu.Lock()
	defer f.sh.mu.Unlock()
	if f.sh.written[f.p] != f.b {
		return len(p), nil // removed meanwhile: written to a file no longer there
	}
	n, err := f.b.Write(p)
	f.sh.changed(f.p)
	return n, err
}
func (f *memFile) Close() error { return nil }

// writeOnly is one of the script's own streams opened by name (/dev/stdout).
type writeOnly struct{ io.Writer }

func (writeOnly) Read([]byte) (int, error) { return 0, io.EOF }
func (writeOnly) Close() error             { return nil }

type readOnlyFile struct{ *strings.Reader }

func (readOnlyFile) Write([]byte) (int, error) { return 0, syscall.EBADF }
func (readOnlyFile) Close() error              { return nil }

var errForever = errors.New("runs forever")

// shells are the shells whose -c scripts the simulation reads.
var shells = map[string]bool{"sh": true, "bash": true, "ash": true, "dash": true}

// programs are those a script may run (simShell.exec) besides the shell's
// own builtins (echo, true, false, test, printf...).
var programs = map[string]bool{"sleep": true, "expr": true, "cat": true, "date": true, "hostname": true, "printenv": true, "env": true,
	"grep": true, "head": true, "tail": true, "wc": true, "sort": true, "seq": true, "ls": true, "tee": true, "basename": true, "dirname": true,
	"touch": true, "rm": true, "mkdir": true}

// expr evaluates the binary forms of expr(1) that scripts use: arithmetic
// (+ - * / %) and comparisons (= != < <= > >=) of integers, left to right.
func expr(args []string) (string, error) {
	if len(args) == 0 || len(args)%2 == 0 {
		return "", errUnreadable
	}
	acc, err := strconv.ParseInt(args[0], 10, 64)
	if err != nil {
		return "", errUnreadable
	}
	for i := 1; i < len(args); i += 2 {
		b, err := strconv.ParseInt(args[i+1], 10, 64)
		if err != nil {
			return "", errUnreadable
		}
		truth := func(ok bool) int64 {
			if ok {
				return 1
			}
			return 0
		}
		switch args[i] {
		case "+":
			acc += b
		case "-":
			acc -= b
		case "*":
			acc *= b
		case "/", "%":
			if b == 0 {
				return "", errUnreadable
			}
			if args[i] == "/" {
				acc /= b
			} else {
				acc %= b
			}
		case "=":
			acc = truth(acc == b)
		case "!=":
			acc = truth(acc != b)
		case "<":
			acc = truth(acc < b)
		case "<=":
			acc = truth(acc <= b)
		case ">":
			acc = truth(acc > b)
		case ">=":
			acc = truth(acc >= b)
		default:
			return "", errUnreadable
		}
	}
	return strconv.FormatInt(acc, 10), nil
}

// sleepDuration reads sleep's operands: seconds (fractions too), with an
// s, m, h or d suffix, or infinity; several add up.
func sleepDuration(args []string) (time.Duration, error) {
	if len(args) == 0 {
		return 0, errUnreadable
	}
	var total time.Duration
	for _, a := range args {
		if a == "infinity" || a == "inf" {
			return longest + time.Second, nil
		}
		if a == "" {
			return 0, errUnreadable
		}
		unit := time.Second
		switch a[len(a)-1] {
		case 's':
			a = a[:len(a)-1]
		case 'm':
			a, unit = a[:len(a)-1], time.Minute
		case 'h':
			a, unit = a[:len(a)-1], time.Hour
		case 'd':
			a, unit = a[:len(a)-1], 24*time.Hour
		}
		n, err := strconv.ParseFloat(a, 64)
		if err != nil || n < 0 {
			return 0, errUnreadable
		}
		total += time.Duration(n * float64(unit))
	}
	return total, nil
}

var safeWord = regexp.MustCompile(`^[A-Za-z0-9_./=:,+-]+$`)

// shellQuote turns an argv into a shell command line that runs it.
func shellQuote(argv []string) string {
	var b strings.Builder
	for i, a := range argv {
		if i > 0 {
			b.WriteByte(' ')
		}
		if safeWord.MatchString(a) {
			b.WriteString(a)
		} else {
			b.WriteString("'" + strings.ReplaceAll(a, "'", `'\''`) + "'")
		}
	}
	return b.String()
}

// containerEnv is a container's environment as far as the simulation can
// know it, built as a kubelet builds it: envFrom first, then env, each value
// of env able to refer to the variables before it. data gives the
// ConfigMaps and Secrets of the pod's namespace that the values come from.
// A ConfigMap, Secret or key that is not there and not optional is the
// kubelet's CreateContainerConfigError, in its words.
func containerEnv(p *corev1.Pod, c *corev1.Container, data objectData) (map[string]string, error) {
	env := map[string]string{"HOSTNAME": podHostname(p)}
	for _, from := range c.EnvFrom {
		kind, name, optional := kindConfigMap, "", false
		switch {
		case from.ConfigMapRef != nil:
			name, optional = from.ConfigMapRef.Name, isTrue(from.ConfigMapRef.Optional)
		case from.SecretRef != nil:
			kind, name, optional = kindSecret, from.SecretRef.Name, isTrue(from.SecretRef.Optional)
		default:
			continue
		}
		values, ok := data(kind, name)
		if !ok && !optional {
			return nil, notFound(p, kind, name)
		}
		for k, v := range values {
			env[from.Prefix+k] = v
		}
	}
	for _, e := range c.Env {
		from := e.ValueFrom
		kind, name, key, optional := kindConfigMap, "", "", false
		switch {
		case from == nil:
			env[e.Name] = expandRefs(e.Value, env)
			continue
		case from.FieldRef != nil:
			if v, ok := podField(p, from.FieldRef.FieldPath); ok {
				env[e.Name] = v
			}
			continue
		case from.ConfigMapKeyRef != nil:
			name, key, optional = from.ConfigMapKeyRef.Name, from.ConfigMapKeyRef.Key, isTrue(from.ConfigMapKeyRef.Optional)
		case from.SecretKeyRef != nil:
			kind, name, key, optional = kindSecret, from.SecretKeyRef.Name, from.SecretKeyRef.Key, isTrue(from.SecretKeyRef.Optional)
		default:
			continue
		}
		values, ok := data(kind, name)
		if !ok {
			if optional {
				continue
			}
			return nil, notFound(p, kind, name)
		}
		v, ok := values[key]
		if !ok {
			if optional {
				continue
			}
			namespace, refName := virtualNames(p)
			return nil, fmt.Errorf("couldn't find key %s in %s %s/%s", key, kind, namespace, refName(name))
		}
		env[e.Name] = v
	}
	return env, nil
}

// volumesMissing says which ConfigMap or Secret a pod's volumes need and
// cannot have, in the words of a kubelet's FailedMount event; "" when none.
func volumesMissing(p *corev1.Pod, data objectData) string {
	need := func(volume, kind, name string, optional *bool) string {
		if _, ok := data(kind, name); ok || isTrue(optional) {
			return ""
		}
		return fmt.Sprintf("MountVolume.SetUp failed for volume %q : %v", volume, notFound(p, kind, name))
	}
	for _, v := range p.Spec.Volumes {
		var why string
		switch {
		case v.ConfigMap != nil:
			why = need(v.Name, kindConfigMap, v.ConfigMap.Name, v.ConfigMap.Optional)
		case v.Secret != nil:
			why = need(v.Name, kindSecret, v.Secret.SecretName, v.Secret.Optional)
		case v.Projected != nil:
			for _, src := range v.Projected.Sources {
				if src.ConfigMap != nil {
					why = need(v.Name, kindConfigMap, src.ConfigMap.Name, src.ConfigMap.Optional)
				}
				if src.Secret != nil && why == "" {
					why = need(v.Name, kindSecret, src.Secret.Name, src.Secret.Optional)
				}
				if why != "" {
					break
				}
			}
		}
		if why != "" {
			return why
		}
	}
	return ""
}

func isTrue(b *bool) bool { return b != nil && *b }

// notFound is a kubelet's error for a ConfigMap or Secret it cannot get.
func notFound(p *corev1.Pod, kind, name string) error {
	_, refName := virtualNames(p)
	return fmt.Errorf("%s %q not found", strings.ToLower(kind), refName(name))
}

// virtualNames gives the namespace and the names of a pod's references as
// its user wrote them: for a pod a syncer put on the host, those of the
// virtual cluster (<name>-x-<namespace>-x-<vcluster> back to <name>).
func virtualNames(p *corev1.Pod) (string, func(string) string) {
	vns, vcluster := p.Annotations[syncer.AnnotationNS], p.Labels[syncer.LabelManagedBy]
	if vns == "" || vcluster == "" {
		return p.Namespace, func(name string) string { return name }
	}
	return vns, func(name string) string { return syncer.VirtualName(name, vns, vcluster) }
}

// objectData gives the data of a ConfigMap or a Secret (kind) of a pod's
// namespace, Secrets' values decoded; false when there is none to read.
type objectData func(kind, name string) (map[string]string, bool)

const (
	kindConfigMap = "ConfigMap"
	kindSecret    = "Secret"
)

// expandCommand expands $(VAR) references in a container's command and
// arguments, as a kubelet does before it runs them.
func expandCommand(argv []string, env map[string]string) []string {
	out := make([]string, len(argv))
	for i, a := range argv {
		out[i] = expandRefs(a, env)
	}
	return out
}

// podHostname is the hostname a kubelet gives a pod: spec.hostname (a synced
// pod's virtual name) or else its name, cut to 63 characters without a
// trailing '-' or '.'.
func podHostname(p *corev1.Pod) string {
	h := p.Name
	if p.Spec.Hostname != "" {
		h = p.Spec.Hostname
	}
	if len(h) > 63 {
		h = strings.TrimRight(h[:63], "-.")
	}
	return h
}

var envRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// expandRefs expands $(VAR) references to earlier variables, as the kubelet does.
func expandRefs(s string, env map[string]string) string {
	return envRef.ReplaceAllStringFunc(s, func(m string) string {
		if v, ok := env[m[2:len(m)-1]]; ok {
			return v
		}
		return m
	})
}

var fieldKey = regexp.MustCompile(`^metadata\.(annotations|labels)\['(.*)'\]$`)

func podField(p *corev1.Pod, fieldPath string) (string, bool) {
	if m := fieldKey.FindStringSubmatch(fieldPath); m != nil {
		if m[1] == "annotations" {
			v, ok := p.Annotations[m[2]]
			return v, ok
		}
		v, ok := p.Labels[m[2]]
		return v, ok
	}
	switch fieldPath {
	case "metadata.name":
		return p.Name, true
	case "metadata.namespace":
		return p.Namespace, true
	case "metadata.uid":
		return string(p.UID), true
	case "spec.nodeName":
		return p.Spec.NodeName, true
	case "spec.serviceAccountName":
		return p.Spec.ServiceAccountName, true
	case "status.podIP":
		return p.Status.PodIP, true
	case "status.hostIP":
		return p.Status.HostIP, true
	}
	return "", false
}

type nopFile struct{}

func (nopFile) Read([]byte) (int, error)    { return 0, io.EOF }
func (nopFile) Write(p []byte) (int, error) { return len(p), nil }
func (nopFile) Close() error                { return nil }
