// Package k8sdist knows which Kubernetes releases exist and provides the
// control-plane binaries of any of them, plus the KWOK controller.
//
// Binaries come from, in order: environment overrides, a per-user cache, the
// official release download (checksum verified) and, when that is unreachable,
// a build from the Go module proxy. A build of k8s.io/kubernetes takes minutes
// when the Go build cache is cold, so results are cached per machine and
// concurrent callers, in this process or in others, share one build through a
// file lock.
//
// The package uses flock(2) and therefore builds on Unix systems only.
package k8sdist
