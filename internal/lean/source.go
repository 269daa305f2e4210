package lean

import _ "embed"

// Source is lean.go, which internal/k8sdist builds into kube-control-plane.
//
//go:embed lean.go
var Source string
