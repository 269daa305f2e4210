package main

import (
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vmatrix/vmatrix/internal/k8sdist"
	"github.com/vmatrix/vmatrix/internal/supervisor"
)

// Shell completion: cobra's `vmatrix completion bash|zsh|fish|powershell`
// scripts call the hidden `vmatrix __complete`, which asks these functions.
// They read only local state (no proxy round trip): a completion must be
// quick.

// completeClusters completes the names of the state directory's clusters,
// up to max of them per command line (-1: any number), each once.
func completeClusters(manager func() *supervisor.Manager, max int) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		if max >= 0 && len(args) >= max {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		recs, err := manager().List()
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		var names []string
		for _, r := range recs {
			if strings.HasPrefix(r.Name, toComplete) && !slices.Contains(args, r.Name) {
				names = append(names, r.Name+"\t"+r.Version)
			}
		}
		return names, cobra.ShellCompDirectiveNoFileComp
	}
}

// versionCandidates lists what a version can be written as, with a
// description: the minors vmatrix knows and every cached release.
func versionCandidates() []string {
	var out []string
	seen := map[string]bool{}
	add := func(s, desc string) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s+"\t"+desc)
		}
	}
	cached, _ := k8sdist.Source{}.Cached()
	for _, v := range slices.Backward(k8sdist.BuiltinReleases()) {
		add(v.MinorString(), "newest "+v.MinorString()+" patch")
	}
	for _, v := range slices.Backward(cached) {
		add(strings.TrimPrefix(v.String(), "v"), "cached")
	}
	return out
}

// completeVersions completes a version (--version, versions pull), or with
// list a comma-separated spec (--versions): the part after the last comma.
func completeVersions(list bool) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		prefix, last := "", toComplete
		if list {
			if i := strings.LastIndex(toComplete, ","); i >= 0 {
				prefix, last = toComplete[:i+1], toComplete[i+1:]
			}
		}
		var out []string
		given := strings.Split(prefix, ",")
		for _, c := range versionCandidates() {
			if strings.HasPrefix(c, last) && !slices.Contains(given, strings.Split(c, "\t")[0]) {
				out = append(out, prefix+c)
			}
		}
		if list {
			// latest-N stands for the newest N minors.
			if strings.HasPrefix("latest-", last) {
				out = append(out, prefix+"latest-3\tthe newest 3 minors")
			}
			return out, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveNoSpace
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}
