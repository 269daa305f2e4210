package k8sdist_test

import (
	"context"
	"fmt"
	"os"

	"github.com/vmatrix/vmatrix/internal/k8sdist"
)

// A user asks for "1.36"; the harness needs the binaries of its newest patch.
func ExampleSource_Kubernetes() {
	ctx := context.Background()
	v, err := k8sdist.Resolve(ctx, "1.36")
	if err != nil {
		fmt.Println(err)
		return
	}
	bins, err := k8sdist.Source{Log: os.Stderr}.Kubernetes(ctx, v)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(bins.APIServer)
}
