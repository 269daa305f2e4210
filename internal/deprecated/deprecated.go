// Package deprecated finds which deprecated APIs a test suite called in a
// cluster. The apiserver counts them (apiserver_requested_deprecated_apis),
// but for every client alike, and the cluster's own controller manager
// calls some (v1 Endpoints) on the suite's behalf; its audit log says who
// asked, so that is what is read.
package deprecated

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// API is one deprecated API that was requested.
type API struct {
	Group       string `json:"group"`
	Version     string `json:"version"`
	Resource    string `json:"resource"`
	Subresource string `json:"subresource,omitempty"`
	// RemovedRelease is the release that no longer serves it ("" if none
	// is planned yet).
	RemovedRelease string `json:"removedRelease,omitempty"`
	// Clients are the user agents that requested it, when known.
	Clients []string `json:"clients,omitempty"`
}

// String is e.g. "policy/v1beta1 podsecuritypolicies (removed in 1.25)".
func (a API) String() string {
	gv := a.Version
	if a.Group != "" {
		gv = a.Group + "/" + a.Version
	}
	res := a.Resource
	if a.Subresource != "" {
		res += "/" + a.Subresource
	}
	removed := "no removal planned"
	if a.RemovedRelease != "" {
		removed = "removed in " + a.RemovedRelease
	}
	return fmt.Sprintf("%s %s (%s)", gv, res, removed)
}

func sortAPIs(apis []API) {
	slices.SortFunc(apis, func(a, b API) int {
		return cmp.Or(strings.Compare(a.Group, b.Group), strings.Compare(a.Version, b.Version),
			strings.Compare(a.Resource, b.Resource), strings.Compare(a.Subresource, b.Subresource))
	})
}

// AuditPolicy is the audit policy under which an apiserver writes what
// FromAuditLog reads: one line per finished resource request, without
// bodies. The apiserver marks a request to a deprecated API with the
// annotation k8s.io/deprecated (and k8s.io/removed-release); the policy
// cannot select by it, so every request is written and the reader picks.
const AuditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived, ResponseStarted, Panic]
rules:
- level: None
  nonResourceURLs: ["*"]
- level: None
  users: ["system:apiserver"]
- level: Metadata
`

// ownAgents are the user agents of the cluster's own components, whose
// requests are not the suite's.
var ownAgents = []string{"kube-controller-manager/", "kube-apiserver/", "vmatrix-syncer/"}

// auditEvent is the part of an audit.k8s.io/v1 Event the reader needs.
type auditEvent struct {
	StageTimestamp time.Time `json:"stageTimestamp"`
	UserAgent      string    `json:"userAgent"`
	ObjectRef      *struct {
		Resource    string `json:"resource"`
		Subresource string `json:"subresource"`
		APIGroup    string `json:"apiGroup"`
		APIVersion  string `json:"apiVersion"`
	} `json:"objectRef"`
	Annotations map[string]string `json:"annotations"`
}

// FromAuditLog lists the deprecated APIs that clients other than the
// cluster's own components requested from since on, from the audit log at
// path (and its rotated files beside it), with the user agents that asked
// for each.
func FromAuditLog(path string, since time.Time) ([]API, error) {
	files, _ := filepath.Glob(strings.TrimSuffix(path, ".log") + "-*.log")
	files = append(files, path)
	found := map[string]*seen{}
	for _, f := range files {
		if err := readAudit(f, since, found); err != nil {
			return nil, err
		}
	}
	var apis []API
	for _, s := range found {
		s.api.Clients = slices.Sorted(maps.Keys(s.agents))
		apis = append(apis, s.api)
	}
	sortAPIs(apis)
	return apis, nil
}

// seen is one deprecated API found in an audit log, and who asked for it.
type seen struct {
	api    API
	agents map[string]bool
}

func readAudit(path string, since time.Time, found map[string]*seen) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	lines := bufio.NewScanner(f)
	lines.Buffer(make([]byte, 64*1024), 4*1024*1024)
	mark := []byte(`"k8s.io/deprecated":"true"`)
	for lines.Scan() {
		line := lines.Bytes()
		if !bytes.Contains(line, mark) { // most lines: not worth decoding
			continue
		}
		var e auditEvent
		if json.Unmarshal(line, &e) != nil || e.ObjectRef == nil || e.StageTimestamp.Before(since) || slices.ContainsFunc(ownAgents, func(a string) bool { return strings.HasPrefix(e.UserAgent, a) }) {
			continue
		}
		api := API{Group: e.ObjectRef.APIGroup, Version: e.ObjectRef.APIVersion, Resource: e.ObjectRef.Resource,
			Subresource: e.ObjectRef.Subresource, RemovedRelease: e.Annotations["k8s.io/removed-release"]}
		key := api.String() + " " + api.Subresource
		if found[key] == nil {
			found[key] = &seen{api: api, agents: map[string]bool{}}
		}
		found[key].agents[agentName(e.UserAgent)] = true
	}
	return lines.Err()
}

// agentName shortens "kubectl/v1.37.2 (linux/amd64) kubernetes/abc" to
// "kubectl/v1.37.2".
func agentName(ua string) string {
	if i := strings.IndexByte(ua, ' '); i > 0 {
		return ua[:i]
	}
	return ua
}
