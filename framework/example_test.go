package framework_test

import (
	"context"
	"fmt"
	"log"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vmatrix/vmatrix/framework"
)

// Start Kubernetes 1.35, 1.36 and 1.37 side by side on an embedded host, use
// each, and tear everything down.
func Example() {
	ctx := context.Background()
	env, err := framework.New()
	if err != nil {
		log.Fatal(err)
	}
	defer env.Destroy(ctx)

	clusters, err := env.CreateMany(ctx, "1.35", "1.36", "1.37")
	if err != nil {
		log.Fatal(err) // names the version and the step that failed
	}
	for _, vc := range clusters {
		nss, err := vc.Client().CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(vc.Version(), len(nss.Items), "namespaces; kubeconfig:", vc.KubeconfigPath())
	}
}

// Run on an existing cluster instead of the embedded host, and keep the
// clusters up for ten minutes when the run fails.
func ExampleNew() {
	env, err := framework.New(
		framework.WithHostKubeconfig("/path/to/kind.kubeconfig", ""),
		framework.WithKeepOnFailure(10*time.Minute),
		framework.WithArtifactsDir("artifacts"),
	)
	if err != nil {
		log.Fatal(err)
	}
	failed := runTests(env)
	// Artifacts on failure, then the one teardown path.
	if err := env.Finish(context.Background(), failed); err != nil {
		log.Fatal(err)
	}
}

func runTests(*framework.Environment) (failed bool) { return false }

func ExampleVirtualCluster_Apply() {
	ctx := context.Background()
	env, _ := framework.New()
	defer env.Destroy(ctx)
	vc, err := env.Create(ctx, "1.36")
	if err != nil {
		log.Fatal(err)
	}
	ns, _ := vc.NewNamespace(ctx, "demo")
	// Inline YAML, files and directories mix freely.
	err = vc.ApplyIn(ctx, ns, "testdata/crd.yaml", `
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {mode: fast}
`)
	if err != nil {
		log.Fatal(err)
	}
}
