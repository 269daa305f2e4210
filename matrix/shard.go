package matrix

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vmatrix/vmatrix/internal/k8sdist"
)

// ParseShard reads "K/N": the K-th of N shards, 1 ≤ K ≤ N.
func ParseShard(s string) (k, n int, err error) {
	bad := fmt.Errorf("shard %q: want K/N with 1 ≤ K ≤ N, e.g. 2/4", s)
	ks, ns, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok {
		return 0, 0, bad
	}
	k, errK := strconv.Atoi(ks)
	n, errN := strconv.Atoi(ns)
	// Atoi takes "+2" and "02" too: only plain numbers.
	if errK != nil || errN != nil || strconv.Itoa(k) != ks || strconv.Itoa(n) != ns {
		return 0, 0, bad
	}
	if k < 1 || n < 1 || k > n {
		return 0, 0, bad
	}
	return k, n, nil
}

// Shard is the K-th of N shares of versions (K from 1): those whose index in
// the versions sorted oldest first is K-1 modulo N.
//
// By index rather than by a hash of the version: the shares differ in size
// by one at most (a hash puts two of six versions on one shard as often as
// not, and leaves another idle), and each shard gets old and new minors
// alike rather than a run of neighbours. The assignment depends only on the
// set of versions, not on the order of the spec, so every job of a CI
// matrix that resolves the same spec takes a different share and together
// they take each version once.
func Shard(versions []Version, k, n int) []Version {
	sorted := slices.Clone(versions)
	slices.SortFunc(sorted, k8sdist.Compare)
	sorted = slices.Compact(sorted)
	var out []Version
	for i, v := range sorted {
		if i%n == k-1 {
			out = append(out, v)
		}
	}
	return out
}

// ErrNoReport is the error of a folder without report.json.
var ErrNoReport = errors.New("no report.json in it")

// ReadReport reads the report.json of a report folder.
func ReadReport(dir string) (*Report, error) {
	data, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", dir, ErrNoReport)
	}
	if err != nil {
		return nil, err
	}
	var r Report
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, "report.json"), err)
	}
	return &r, nil
}

// MergeReports joins the reports of the folders, each of a shard of one
// matrix, into one, as a single run of the whole matrix would have written
// it: the versions in version order, Passed if all of them passed, Started
// the earliest start and Duration from there to the latest end (the wall
// time the sharded matrix took; a folder with no version counts for
// neither). The logs and exports the versions name are looked for in the
// folder they came with (a CI job's paths mean nothing after a download). A
// version in two folders, folders of different commands, or no version at
// all are errors.
func MergeReports(dirs ...string) (*Report, error) {
	if len(dirs) == 0 {
		return nil, errors.New("no report folder to merge")
	}
	merged := &Report{Passed: true}
	var end time.Time
	from := map[string]string{} // version: the folder it came from
	commandFrom := ""
	for _, dir := range dirs {
		r, err := ReadReport(dir)
		if err != nil {
			return nil, err
		}
		if commandFrom != "" && r.Command != merged.Command {
			return nil, fmt.Errorf("%s and %s are reports of different commands (%q, %q)", commandFrom, dir, merged.Command, r.Command)
		}
		merged.Command, commandFrom = r.Command, dir
		if len(r.Versions) == 0 {
			continue // a shard that had no version
		}
		if merged.Started.IsZero() || r.Started.Before(merged.Started) {
			merged.Started = r.Started
		}
		if e := r.Started.Add(r.Duration); e.After(end) {
			end = e
		}
		for _, v := range r.Versions {
			if other, ok := from[v.Version]; ok {
				return nil, fmt.Errorf("version %s is in both %s and %s", v.Version, other, dir)
			}
			from[v.Version] = dir
			v.LogPath = movedTo(v.LogPath, dir, "logs")
			v.Export = movedTo(v.Export, dir, "exports")
			merged.Passed = merged.Passed && v.Passed
			merged.Versions = append(merged.Versions, v)
		}
	}
	if len(merged.Versions) == 0 {
		return nil, fmt.Errorf("no version in %s", strings.Join(dirs, ", "))
	}
	merged.Duration = end.Sub(merged.Started)
	slices.SortStableFunc(merged.Versions, func(a, b *VersionResult) int {
		va, _, errA := k8sdist.ParseVersion(a.Version)
		vb, _, errB := k8sdist.ParseVersion(b.Version)
		if errA != nil || errB != nil {
			return strings.Compare(a.Version, b.Version)
		}
		return k8sdist.Compare(va, vb)
	})
	return merged, nil
}

// movedTo is where path, written by a run into its report folder's sub
// folder (logs, exports), is now that the folder is dir; path itself when
// it is not there.
func movedTo(path, dir, sub string) string {
	if path == "" {
		return ""
	}
	moved := filepath.Join(dir, sub, filepath.Base(path))
	if _, err := os.Stat(moved); err != nil {
		return path
	}
	return moved
}
