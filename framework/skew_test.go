package framework_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/vmatrix/vmatrix/fixtures"
	"github.com/vmatrix/vmatrix/framework"
	"github.com/vmatrix/vmatrix/internal/k8sdist"
)

// TestVersionSkew runs every supported virtual minor older than the host on
// the newest host: a Deployment becomes Available and a Job Complete, which
// an older virtual cluster on a newer host must see (vCluster's known
// failure is pods that never turn Ready there). `make skew` runs it, with the
// binaries of the older minors that `make test` does not build.
func TestVersionSkew(t *testing.T) {
	if os.Getenv("VMATRIX_SKEW") == "" {
		t.Skip("make skew runs it: it needs the binaries of every supported minor")
	}
	ctx := context.Background()
	host, err := k8sdist.Newest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// VMATRIX_SKEW names the releases of the older minors ("1.31.0,1.32,
	// 1.33,1.34"); the package's own clusters are the newer ones.
	minors := strings.Split(os.Getenv("VMATRIX_SKEW"), ",")
	have := map[int]bool{}
	for _, m := range minors {
		v, err := k8sdist.Resolve(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		have[v.Minor] = true
	}
	for _, vc := range clusters {
		v := vc.Version()
		if v.Minor < host.Minor {
			have[v.Minor] = true
			minors = append(minors, vc.Version().SemVer())
		}
	}
	for m := k8sdist.OldestSupported.Minor; m < host.Minor; m++ {
		if !have[m] {
			t.Errorf("minor 1.%d is supported and older than the host, and VMATRIX_SKEW does not name it", m)
		}
	}
	e, err := framework.New(sharedHost(t), framework.WithStateDir(t.TempDir()), framework.WithLog(testLog{t}))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Destroy(ctx)
	for _, minor := range minors {
		t.Run(minor, func(t *testing.T) {
			vc, err := e.Create(ctx, minor, framework.WithName("skew-"+strings.ReplaceAll(minor, ".", "-")))
			if err != nil {
				t.Fatal(err)
			}
			defer vc.Destroy(ctx)
			ns, err := vc.NewNamespace(ctx, "skew")
			if err == nil {
				err = fixtures.Apply(ctx, vc, ns, fixtures.DeploymentWithService, fixtures.Job)
			}
			if err != nil {
				t.Fatal(err)
			}
			if _, err := fixtures.WaitFor(ctx, vc, fixtures.Deployment(ns, "web"), fixtures.DeploymentAvailable()); err != nil {
				t.Fatalf("%s on a %s host: %v", vc, host, err)
			}
			if _, err := fixtures.WaitFor(ctx, vc, fixtures.JobObject(ns, "compute"), fixtures.JobComplete()); err != nil {
				t.Fatalf("%s on a %s host: %v", vc, host, err)
			}
			t.Logf("%s on a %s host: Deployment Available, Job Complete", vc, host)
		})
	}
}
