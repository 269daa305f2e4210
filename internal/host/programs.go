package host

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"mvdan.cc/sh/v3/interp"
)

// The file programs a simulated script may run, as busybox's do, on the
// files it can know (simShell): what they change is recorded with the
// script's clock, so that a probe later in the run sees it.

// eachPath runs do on each path named, from the script's folder, and tells
// the complaints do returns on stderr; its status 1 if there was one.
func eachPath(hc interp.HandlerContext, names []string, do func(p, name string) string) error {
	status := 0
	for _, name := range names {
		if msg := do(abs(hc.Dir, name), name); msg != "" {
			io.WriteString(hc.Stderr, msg)
			status = 1
		}
	}
	return exitStatus(status)
}

// touch makes each file that is not there, empty; a file the image may hold
// is taken to be made, as one under /tmp is.
func (sh *simShell) touch(hc interp.HandlerContext, names []string) error {
	if slices.ContainsFunc(names, func(n string) bool { return strings.HasPrefix(n, "-") }) {
		return errUnreadable // an option: a time of its own
	}
	return eachPath(hc, names, func(p, name string) string {
		sh.mu.Lock()
		defer sh.mu.Unlock()
		switch m := sh.mountOf(p); {
		case sh.isFile(p) || sh.isDir(p):
			return "" // there already: only its time changes
		case m != nil && m.readOnly:
			return fmt.Sprintf("touch: %s: Read-only file system\n", name)
		}
		sh.written[p] = &strings.Builder{}
		sh.changed(p)
		return ""
	})
}

// rm removes files (-f: without a word for those not there; -r: folders
// too, with all below them). A path of the image, which the simulation
// cannot know, is not there afterwards either.
func (sh *simShell) rm(ctx context.Context, args []string) error {
	force, recursive := false, false
	var names []string
	for _, a := range args {
		switch {
		case a == "--":
		case len(a) > 1 && a[0] == '-' && strings.Trim(a[1:], "frR") == "":
			force = force || strings.Contains(a, "f")
			recursive = recursive || strings.ContainsAny(a, "rR")
		case strings.HasPrefix(a, "-"):
			return errUnreadable
		default:
			names = append(names, a)
		}
	}
	return eachPath(interp.HandlerCtx(ctx), names, func(p, name string) string {
		sh.mu.Lock()
		before := sh.unknown
		sh.mu.Unlock()
		info, err := sh.stat(ctx, p, true)
		sh.mu.Lock()
		defer sh.mu.Unlock()
		if sh.unknown && !before {
			sh.unknown, err = false, nil // of the image: taken as there
		}
		switch m := sh.mountOf(p); {
		case errors.Is(err, fs.ErrNotExist) && force:
			return ""
		case errors.Is(err, fs.ErrNotExist):
			return fmt.Sprintf("rm: can't remove '%s': No such file or directory\n", name)
		case m != nil && m.readOnly:
			return fmt.Sprintf("rm: can't remove '%s': Read-only file system\n", name)
		case info != nil && info.IsDir() && !recursive:
			return fmt.Sprintf("rm: '%s' is a directory\n", name)
		}
		sh.remove(p)
		return ""
	})
}

// remove takes away p and all below it; sh.mu held.
func (sh *simShell) remove(p string) {
	in := func(q string) bool { return q == p || strings.HasPrefix(q, strings.TrimSuffix(p, "/")+"/") }
	gone := []string{p}
	for q := range sh.box.files {
		if in(q) {
			gone = append(gone, q)
		}
	}
	for q, b := range sh.written {
		if b != nil && in(q) {
			gone = append(gone, q)
		}
	}
	for q := range sh.dirs {
		if in(q) {
			delete(sh.dirs, q)
		}
	}
	for _, q := range gone {
		if b, ok := sh.written[q]; !ok || b != nil {
			sh.written[q] = nil
			sh.changed(q)
		}
	}
}

// mkdir makes folders (-p: with their parents, and no word for those there).
func (sh *simShell) mkdir(hc interp.HandlerContext, args []string) error {
	var names []string
	parents := false
	for _, a := range args {
		switch {
		case a == "--":
		case a == "-p":
			parents = true
		case strings.HasPrefix(a, "-"):
			return errUnreadable // a mode of its own
		default:
			names = append(names, a)
		}
	}
	return eachPath(hc, names, func(p, name string) string {
		sh.mu.Lock()
		defer sh.mu.Unlock()
		switch m := sh.mountOf(p); {
		case m != nil && m.readOnly:
			return fmt.Sprintf("mkdir: can't create directory '%s': Read-only file system\n", name)
		case sh.isDir(p) && parents:
			return ""
		case sh.isDir(p) || sh.isFile(p):
			return fmt.Sprintf("mkdir: can't create directory '%s': File exists\n", name)
		}
		sh.dirs[p] = true
		if b, ok := sh.written[p]; ok && b == nil {
			delete(sh.written, p) // removed before, there again
		}
		sh.madeDir(p)
		return ""
	})
}

// The text programs a simulated script may run, as busybox's do, on the
// files it can know and on their input. An option they do not have here
// makes the command unreadable.

// inputs is the text of each file named (its input without any, or for
// "-"), the program's complaint told to complain about those not there;
// missing says whether one was not.
func (sh *simShell) inputs(hc interp.HandlerContext, complain io.Writer, program string, names []string) (texts []string, missing bool, err error) {
	if len(names) == 0 {
		names = []string{"-"}
	}
	for _, name := range names {
		if name == "-" {
			if hc.Stdin == nil {
				continue
			}
			b, _ := io.ReadAll(hc.Stdin)
			texts = append(texts, string(b))
			continue
		}
		text, err := sh.read(hc.Dir, name)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			fmt.Fprintf(complain, "%s: %s: No such file or directory\n", program, name)
			missing = true
		case err != nil:
			return nil, false, err
		default:
			texts = append(texts, text)
		}
	}
	return texts, missing, nil
}

// missingStatus is the status of a program that did its work on the files
// that are there: 1 if one was not.
func missingStatus(missing bool) error {
	if missing {
		return interp.ExitStatus(1)
	}
	return nil
}

// lines splits a text into its lines, without their ends.
func lines(text string) []string {
	if text == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(text, "\n"), "\n")
}

// grep prints the lines that match a pattern (-E extended, -F fixed, basic
// otherwise; several with -e), or with -q only says whether one does; -v,
// -i, -c, -x, -n and -s as usual, each line or count after its file's name
// when there are several files. Its status: 0 when a line matched, 1 when
// none, 2 when a file was not there.
func (sh *simShell) grep(hc interp.HandlerContext, args []string) error {
	var quiet, silent, invert, count, whole, number, fixed, extended, fold bool
	var patterns, files []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-e" && i+1 < len(args):
			patterns = append(patterns, args[i+1])
			i++
		case len(a) > 1 && a[0] == '-' && len(patterns) == 0:
			for _, o := range a[1:] {
				switch o {
				case 'q':
					quiet = true
				case 's':
					silent = true
				case 'v':
					invert = true
				case 'i':
					fold = true
				case 'c':
					count = true
				case 'x':
					whole = true
				case 'n':
					number = true
				case 'F':
					fixed = true
				case 'E':
					extended = true
				default:
					return errUnreadable
				}
			}
		case len(patterns) == 0:
			patterns = []string{a}
		default:
			files = append(files, a)
		}
	}
	if len(patterns) == 0 {
		return errUnreadable
	}
	var exprs []string
	for _, pattern := range patterns {
		expr := pattern
		switch {
		case fixed:
			expr = regexp.QuoteMeta(pattern)
		case !extended:
			expr = basicToExtended(pattern)
		}
		if whole {
			expr = "^(?:" + expr + ")$"
		}
		exprs = append(exprs, "(?:"+expr+")")
	}
	expr := strings.Join(exprs, "|")
	if fold {
		expr = "(?i)" + expr
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		return errUnreadable
	}
	complain := hc.Stderr
	if silent {
		complain = io.Discard
	}
	names := files
	if len(names) == 0 {
		names = []string{"-"}
	}
	matched, missing := 0, false
	for _, name := range names {
		texts, gone, err := sh.inputs(hc, complain, "grep", []string{name})
		if err != nil {
			return err
		}
		missing = missing || gone
		prefix := ""
		if len(files) > 1 {
			prefix = name + ":"
		}
		inFile := 0
		for _, text := range texts {
			for n, line := range lines(text) {
				if re.MatchString(line) == invert {
					continue
				}
				inFile++
				switch {
				case quiet:
					return nil
				case count:
				case number:
					fmt.Fprintf(hc.Stdout, "%s%d:%s\n", prefix, n+1, line)
				default:
					fmt.Fprintf(hc.Stdout, "%s%s\n", prefix, line)
				}
			}
		}
		if count && !gone {
			fmt.Fprintf(hc.Stdout, "%s%d\n", prefix, inFile)
		}
		matched += inFile
	}
	switch {
	case missing:
		return interp.ExitStatus(2)
	case matched == 0:
		return interp.ExitStatus(1)
	}
	return nil
}

// basicToExtended turns a basic regular expression into the extended form
// Go reads: \( \) \{ \} \| \+ \? are operators in it, their bare forms
// literal.
func basicToExtended(basic string) string {
	var b strings.Builder
	for i := 0; i < len(basic); i++ {
		c := basic[i]
		switch {
		case c == '\\' && i+1 < len(basic) && strings.IndexByte("(){}|+?", basic[i+1]) >= 0:
			b.WriteByte(basic[i+1])
			i++
		case c == '\\' && i+1 < len(basic):
			b.WriteString(basic[i : i+2])
			i++
		case strings.IndexByte("(){}|+?", c) >= 0:
			b.WriteByte('\\')
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// headTail prints the first (head) or last (tail) lines of its input, 10
// or -n N (-N); tail -f follows its file for ever, as `tail -f /dev/null`
// is run to keep a container up.
func (sh *simShell) headTail(hc interp.HandlerContext, program string, args []string) error {
	n, follow, from := 10, false, false
	var files []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-n" && i+1 < len(args):
			i++
			a = "-" + args[i]
			fallthrough
		case len(a) > 1 && a[0] == '-' && a[1] >= '0' && a[1] <= '9' || strings.HasPrefix(a, "-+"):
			// tail -n +N: from line N on. A negative count (all but the
			// last N) it does not follow.
			from = program == "tail" && strings.HasPrefix(a, "-+")
			v, err := strconv.Atoi(strings.TrimPrefix(a[1:], "+"))
			if err != nil || v < 0 || strings.HasPrefix(a, "-+") && !from {
				return errUnreadable
			}
			n = v
		case program == "tail" && (a == "-f" || a == "-F"):
			follow = true
		case len(a) > 1 && a[0] == '-':
			return errUnreadable
		default:
			files = append(files, a)
		}
	}
	if follow {
		if len(files) != 1 || files[0] != "/dev/null" {
			return errUnreadable // what another file gets later is unknown
		}
		return errForever
	}
	texts, missing, err := sh.inputs(hc, hc.Stderr, program, files)
	if err != nil {
		return err
	}
	for _, text := range texts {
		ls := lines(text)
		switch {
		case program == "head":
			ls = ls[:min(n, len(ls))]
		case from:
			ls = ls[min(max(n-1, 0), len(ls)):]
		default:
			ls = ls[max(len(ls)-n, 0):]
		}
		for _, l := range ls {
			fmt.Fprintln(hc.Stdout, l)
		}
	}
	return missingStatus(missing)
}

// wc counts the lines (-l), words (-w) or bytes (-c) of its input: the
// number alone, with the file's name after it for a file.
func (sh *simShell) wc(hc interp.HandlerContext, args []string) error {
	if len(args) == 0 || len(args[0]) != 2 || strings.IndexByte("lwc", args[0][1]) < 0 || args[0][0] != '-' {
		return errUnreadable // all three at once: widths of busybox's own
	}
	names := args[1:]
	if len(names) == 0 {
		names = []string{""} // its input
	}
	missing := false
	for _, name := range names {
		texts, gone, err := sh.inputs(hc, hc.Stderr, "wc", slices.DeleteFunc([]string{name}, func(n string) bool { return n == "" }))
		if err != nil {
			return err
		}
		missing = missing || gone
		for _, text := range texts {
			n := len(text)
			switch args[0][1] {
			case 'l':
				n = strings.Count(text, "\n")
			case 'w':
				n = len(strings.Fields(text))
			}
			if name != "" {
				fmt.Fprintf(hc.Stdout, "%d %s\n", n, name)
			} else {
				fmt.Fprintln(hc.Stdout, n)
			}
		}
	}
	return missingStatus(missing)
}

// sort prints the lines of its input in order: -n by number, -r reversed,
// -u each once.
func (sh *simShell) sort(hc interp.HandlerContext, args []string) error {
	var numeric, reverse, unique bool
	var files []string
	for _, a := range args {
		switch {
		case len(a) > 1 && a[0] == '-' && strings.Trim(a[1:], "nru") == "":
			numeric = numeric || strings.Contains(a, "n")
			reverse = reverse || strings.Contains(a, "r")
			unique = unique || strings.Contains(a, "u")
		case len(a) > 1 && a[0] == '-':
			return errUnreadable
		default:
			files = append(files, a)
		}
	}
	texts, missing, err := sh.inputs(hc, hc.Stderr, "sort", files)
	switch {
	case err != nil:
		return err
	case missing:
		return interp.ExitStatus(2)
	}
	var all []string
	for _, text := range texts {
		all = append(all, lines(text)...)
	}
	number := func(s string) float64 { // its leading number; 0 for none
		f, _ := strconv.ParseFloat(strings.TrimSpace(leadingNumber.FindString(s)), 64)
		return f
	}
	slices.SortStableFunc(all, func(a, b string) int {
		if numeric {
			if c := cmp.Compare(number(a), number(b)); c != 0 {
				return c
			}
		}
		return strings.Compare(a, b)
	})
	if unique {
		all = slices.Compact(all)
	}
	if reverse {
		slices.Reverse(all)
	}
	for _, l := range all {
		fmt.Fprintln(hc.Stdout, l)
	}
	return nil
}

var leadingNumber = regexp.MustCompile(`^\s*-?[0-9]*\.?[0-9]*`)

// seq prints the integers from first (1) to last, by step (1).
func seq(hc interp.HandlerContext, args []string) error {
	nums := make([]int, len(args))
	for i, a := range args {
		n, err := strconv.Atoi(a)
		if err != nil || n > 1e12 || n < -1e12 {
			return errUnreadable // a format, a fraction, or past what it follows
		}
		nums[i] = n
	}
	first, step, last := 1, 1, 0
	switch len(nums) {
	case 1:
		last = nums[0]
	case 2:
		first, last = nums[0], nums[1]
	case 3:
		first, step, last = nums[0], nums[1], nums[2]
	default:
		return errUnreadable
	}
	if step == 0 || (last-first)/step > 100000 {
		return errUnreadable
	}
	for i := first; step > 0 && i <= last || step < 0 && i >= last; i += step {
		fmt.Fprintln(hc.Stdout, i)
	}
	return nil
}

// ls lists folders of the mounts and /tmp, one name a line as to a pipe or
// a log, and names the files given; -1 and -a as usual.
func (sh *simShell) ls(ctx context.Context, args []string) error {
	hc := interp.HandlerCtx(ctx)
	var names []string
	all := false
	for _, a := range args {
		switch {
		case a == "-1":
		case a == "-a" || a == "-A":
			all = true
		case len(a) > 1 && a[0] == '-':
			return errUnreadable // long listings: owners and times it cannot know
		default:
			names = append(names, a)
		}
	}
	if len(names) == 0 {
		names = []string{"."}
	}
	status := 0
	for i, name := range names {
		p := abs(hc.Dir, name)
		if !sh.knows(p) {
			return errUnreadable // a folder of the image, which it knows only in part
		}
		info, err := sh.stat(ctx, p, true)
		switch {
		case err != nil:
			if sh.isUnknown() {
				return errUnreadable
			}
			fmt.Fprintf(hc.Stderr, "ls: %s: No such file or directory\n", name)
			status = 1
		case !info.IsDir():
			fmt.Fprintln(hc.Stdout, name)
		default:
			entries, err := sh.readDir(ctx, p)
			if err != nil || sh.isUnknown() {
				return errUnreadable
			}
			if len(names) > 1 {
				if i > 0 {
					fmt.Fprintln(hc.Stdout)
				}
				fmt.Fprintf(hc.Stdout, "%s:\n", name)
			}
			for _, e := range entries {
				if all || !strings.HasPrefix(e.Name(), ".") {
					fmt.Fprintln(hc.Stdout, e.Name())
				}
			}
		}
	}
	return exitStatus(status)
}

func (sh *simShell) isUnknown() bool {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.unknown
}

// tee copies its input to its output and to files (-a: appended to them).
func (sh *simShell) tee(ctx context.Context, args []string) error {
	hc := interp.HandlerCtx(ctx)
	flag := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	var files []io.Writer
	for _, a := range args {
		switch {
		case a == "-a":
			flag = os.O_WRONLY | os.O_CREATE | os.O_APPEND
		case len(a) > 1 && a[0] == '-':
			return errUnreadable
		default:
			f, err := sh.open(ctx, a, flag, 0o644)
			if err != nil {
				return err
			}
			defer f.Close()
			files = append(files, f)
		}
	}
	if hc.Stdin != nil {
		io.Copy(io.MultiWriter(append(files, hc.Stdout)...), hc.Stdin)
	}
	return nil
}
