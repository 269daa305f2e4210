package conformance

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Markdown writes the results of a run over versions: a summary, then per
// version a table per SIG, the failures with their reasons, and the specs
// skipped on purpose with why. command is how to make it again.
func Markdown(results []*Result, command string) string {
	var b strings.Builder
	b.WriteString("# Conformance\n\n")
	fmt.Fprintf(&b, "The `[Conformance]` specs of each version's upstream `e2e.test`, run against a virtual cluster of that version on the embedded host (KWOK-simulated nodes, no containers). Made with `%s` on %s.\n\n", command, time.Now().UTC().Format("2006-01-02"))
	b.WriteString("| version | passed | failed | skipped on purpose | skipped by the suite | time |\n|---|---|---|---|---|---|\n")
	for _, r := range results {
		p, f, o, s := r.Counts("")
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %s |\n", r.Version, p, f, o, s, r.Duration.Round(time.Second))
	}
	for _, r := range results {
		fmt.Fprintf(&b, "\n## %s\n\n", r.Version)
		if len(r.Updates) > 0 {
			fmt.Fprintf(&b, "After the full run, these specs ran again, with `vmatrix conformance --versions %s --report-dir DIR --update --focus F`; their outcome here is the later one:\n\n", strings.TrimPrefix(r.Version, "v"))
			for _, f := range r.Updates {
				fmt.Fprintf(&b, "- `%s`\n", escape(f))
			}
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "| SIG | passed | failed | skipped on purpose | skipped by the suite |\n|---|---|---|---|---|\n")
		var sigs []string
		for _, s := range r.Specs {
			if !slices.Contains(sigs, s.SIG) {
				sigs = append(sigs, s.SIG)
			}
		}
		slices.Sort(sigs)
		for _, sig := range sigs {
			p, f, o, s := r.Counts(sig)
			fmt.Fprintf(&b, "| %s | %d | %d | %d | %d |\n", sig, p, f, o, s)
		}
		list := func(title string, keep func(Spec) bool, detail func(Spec) string) {
			var lines []string
			for _, s := range r.Specs {
				if keep(s) {
					lines = append(lines, fmt.Sprintf("- %s: %s", escape(s.Name), detail(s)))
				}
			}
			if len(lines) > 0 {
				slices.Sort(lines)
				fmt.Fprintf(&b, "\n### %s (%d)\n\n%s\n", title, len(lines), strings.Join(lines, "\n"))
			}
		}
		list("Failed", func(s Spec) bool { return s.State == "failed" }, func(s Spec) string {
			if why := whyFailed(s.Name); why != "" {
				return escape(s.Reason) + " (why: " + why + ")"
			}
			return escape(s.Reason) + " (why: not known yet)"
		})
		list("Skipped by the suite", func(s Spec) bool { return s.State == "skipped" && s.Why == "" }, func(s Spec) string { return escape(s.Reason) })
	}
	b.WriteString("\n## Skipped on purpose\n\nWhat these check happens in a real node, which the embedded host simulates. On a real host cluster the same virtual clusters run real containers.\n\n| specs | why |")
	if len(results) > 0 {
		for _, r := range results {
			b.WriteString(" " + r.Version + " |")
		}
	}
	b.WriteString("\n|---|---|" + strings.Repeat("---|", len(results)) + "\n")
	for _, sk := range SkippedOnPurpose {
		fmt.Fprintf(&b, "| `%s` | %s |", strings.ReplaceAll(sk.Pattern, "|", `\|`), sk.Why) // a | would end the cell
		for _, r := range results {
			n := 0
			for _, s := range r.Specs {
				if s.Why == sk.Why {
					n++
				}
			}
			fmt.Fprintf(&b, " %d |", n)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// escape keeps a spec's text from breaking the Markdown it goes in.
func escape(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ", "`", "'").Replace(s)
}
