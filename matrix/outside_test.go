package matrix_test

// A program outside this module implements Clusters with matrix's own
// names: this file imports nothing of vmatrix but matrix.

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmatrix/vmatrix/matrix"
)

// fileClusters "provides" a cluster per version as a kubeconfig file of its own.
type fileClusters struct{ dir string }

func (f fileClusters) Acquire(ctx context.Context, v matrix.Version) (matrix.Cluster, error) {
	path := filepath.Join(f.dir, v.String()+".kubeconfig")
	return matrix.Cluster{Name: "c" + v.String(), Version: v, Kubeconfig: path}, os.WriteFile(path, []byte("{}"), 0o600)
}

func (f fileClusters) Release(ctx context.Context, c matrix.Cluster) error {
	return os.Remove(c.Kubeconfig)
}

func TestClustersFromOutside(t *testing.T) {
	dir := t.TempDir()
	var out strings.Builder
	report, err := matrix.Run(context.Background(), fileClusters{dir}, matrix.RunOptions{
		Versions: []matrix.Version{{Major: 1, Minor: 36, Patch: 3}, {Major: 1, Minor: 37, Patch: 2}},
		Command:  []string{"sh", "-c", `test -f "$KUBECONFIG" && echo "on $VMATRIX_KUBERNETES_VERSION"`},
		LogDir:   filepath.Join(dir, "logs"), Out: &out,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !report.Passed {
		t.Errorf("the run failed:\n%s", out.String())
	}
	for _, want := range []string{"on v1.36.3", "on v1.37.2"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the output lacks %q:\n%s", want, out.String())
		}
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*.kubeconfig")); len(left) > 0 {
		t.Errorf("clusters not released: %v", left)
	}
}
