package framework_test

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/vmatrix/vmatrix/fixtures"
	"github.com/vmatrix/vmatrix/framework"
	"github.com/vmatrix/vmatrix/internal/load"
)

// TestCreateOnABusyMachine: with twice as many busy loops as cores, three
// versions created in parallel come up, round after round, and run the
// Deployment scenario.
func TestCreateOnABusyMachine(t *testing.T) {
	if testing.Short() {
		t.Skip("minutes on a saturated machine")
	}
	fault(t, "twice as many busy loops as cores during 5 rounds of 3 creates in parallel")
	stop, err := load.Spin(2*runtime.NumCPU(), 15*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	ctx := context.Background()
	const rounds = 5
	for round := 1; round <= rounds; round++ {
		e, err := framework.New(sharedHost(t), framework.WithStateDir(t.TempDir()), framework.WithLog(testLog{t}))
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		// Full versions: names of their own beside the package's clusters.
		vcs, err := e.CreateMany(ctx, clusters[0].Version().SemVer(), clusters[1].Version().SemVer(), clusters[2].Version().SemVer())
		if err != nil {
			e.Destroy(ctx)
			t.Fatalf("round %d of %d: %v", round, rounds, err)
		}
		t.Logf("round %d: 3 versions in parallel on a saturated machine in %s", round, time.Since(start).Round(10*time.Millisecond))
		for _, vc := range vcs {
			ns, err := vc.NewNamespace(ctx, "busy")
			if err == nil {
				err = fixtures.Apply(ctx, vc, ns, fixtures.DeploymentWithService)
			}
			if err == nil {
				_, err = fixtures.WaitFor(ctx, vc, fixtures.Deployment(ns, "web"), fixtures.DeploymentAvailable())
			}
			if err != nil {
				e.Destroy(ctx)
				t.Fatalf("round %d, %s: %v", round, vc, err)
			}
		}
		if err := e.Destroy(ctx); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
	}
}
