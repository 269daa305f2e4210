// Package charts holds the Helm charts of vmatrix, embedded so that the CLI
// can install and render them without a checkout or a chart repository.
package charts

import "embed"

// FS holds the chart folders; "vmatrix" is the chart that deploys one
// virtual cluster into a host namespace.
//
//go:embed all:vmatrix
var FS embed.FS
