// Command vmatrix creates virtual Kubernetes clusters of any version on one host
// cluster, for tests.
package main

import (
	"fmt"
	"os"
)

func main() {
	if err := newRootCommand().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "vmatrix: "+err.Error())
		os.Exit(1)
	}
}
