package vmatrixtest

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/vmatrix/vmatrix/framework"
	"github.com/vmatrix/vmatrix/internal/kubeconfig"
	"github.com/vmatrix/vmatrix/internal/virtual"
)

// shared is the Environment of Main, and the creates of versions asked for
// later by ForEachVersion.
var shared struct {
	mu       sync.Mutex
	env      *framework.Environment
	creating map[string]*pending
}

type pending struct {
	done chan struct{}
	vc   *framework.VirtualCluster
	err  error
}

// Main is a TestMain body: it creates one Environment for the package with
// opts, starts the clusters of versions in parallel, runs the tests, and
// tears everything down (with artifacts, and kept up with
// WithKeepOnFailure, when a test failed). It returns the exit code:
//
//	func TestMain(m *testing.M) { os.Exit(vmatrixtest.Main(m, []string{"1.35", "1.36", "1.37"})) }
func Main(m *testing.M, versions []string, opts ...framework.Option) int {
	env, err := framework.New(append([]framework.Option{framework.WithRunClusters()}, opts...)...)
	if err != nil {
		fmt.Fprintln(os.Stderr, "vmatrixtest:", err)
		return 1
	}
	ctx := context.Background()
	if _, err := env.CreateMany(ctx, framework.Versions(versions...)...); err != nil {
		fmt.Fprintln(os.Stderr, "vmatrixtest:", err)
		if derr := env.Destroy(ctx); derr != nil {
			fmt.Fprintln(os.Stderr, "vmatrixtest:", derr)
		}
		return 1
	}
	shared.mu.Lock()
	shared.env = env
	shared.mu.Unlock()
	code := m.Run()
	shared.mu.Lock()
	shared.env = nil
	shared.mu.Unlock()
	if err := env.Finish(ctx, code != 0); err != nil {
		fmt.Fprintln(os.Stderr, "vmatrixtest: FAIL:", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// Env is the package's Environment of Main, or nil without Main.
func Env() *framework.Environment {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	return shared.env
}

// ForEachVersion runs f once per version, each as a parallel subtest named by
// the version ("1.36"), against a virtual cluster of that version. Clusters
// come from Main's Environment (those it lacks are created there once, for
// the whole package); without Main, from an Environment made for this test
// and destroyed by t.Cleanup, all versions created in parallel.
func ForEachVersion(t *testing.T, versions []string, f func(t *testing.T, vc *framework.VirtualCluster)) {
	t.Helper()
	tested := framework.Versions(versions...)
	for _, v := range versions {
		if !slices.Contains(tested, v) {
			t.Run(v, func(t *testing.T) { t.Skip("vmatrix run gave this process another version") })
		}
	}
	versions = tested
	env := Env()
	var clusters []*framework.VirtualCluster
	if env == nil {
		var err error
		env, err = framework.New(framework.WithRunClusters())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := env.Finish(context.Background(), t.Failed()); err != nil {
				t.Error(err)
			}
		})
		if clusters, err = env.CreateMany(context.Background(), versions...); err != nil {
			t.Fatal(err)
		}
	} else {
		for _, v := range versions {
			vc, err := sharedCluster(env, v)
			if err != nil {
				t.Fatal(err)
			}
			clusters = append(clusters, vc)
		}
	}
	for i, v := range versions {
		vc := clusters[i]
		t.Run(v, func(t *testing.T) {
			t.Parallel()
			t.Cleanup(func() { exportOnFailure(t, vc) })
			f(t, vc)
			// A cluster whose component could not be kept up fails the test
			// that ran on it, whatever the test saw.
			if err := vc.Err(); err != nil {
				t.Errorf("%s failed during the test: %v", vc, err)
			}
		})
	}
}

// sharedCluster returns the shared Environment's cluster of version v,
// creating it once if Main did not.
func sharedCluster(env *framework.Environment, v string) (*framework.VirtualCluster, error) {
	for _, vc := range env.Clusters() {
		if vc.Name() == virtual.DefaultName(v) {
			return vc, nil
		}
	}
	shared.mu.Lock()
	if shared.creating == nil {
		shared.creating = map[string]*pending{}
	}
	p, ok := shared.creating[v]
	if !ok {
		p = &pending{done: make(chan struct{})}
		shared.creating[v] = p
		go func() {
			p.vc, p.err = env.Create(context.Background(), v)
			close(p.done)
		}()
	}
	shared.mu.Unlock()
	<-p.done
	return p.vc, p.err
}

// exportOnFailure writes the cluster's artifacts into a folder named after
// the failed test.
func exportOnFailure(t *testing.T, vc *framework.VirtualCluster) {
	if !t.Failed() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir, err := vc.ExportForTest(ctx, t.Name())
	if err != nil {
		t.Errorf("artifacts: %v", err)
	}
	if dir != "" {
		t.Logf("artifacts of %s: %s; reach it with: %s", vc, dir, kubeconfig.KubectlCommand(vc.KubeconfigPath()))
	}
}

// Namespace creates a test namespace in vc for t and deletes it when t ends,
// unless t failed: then it stays for the artifacts and for inspection (a
// reused cluster's next run removes it).
func Namespace(t testing.TB, vc *framework.VirtualCluster) string {
	t.Helper()
	ns, err := vc.NewNamespace(context.Background(), "test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			return
		}
		if err := vc.DeleteNamespace(context.Background(), ns); err != nil {
			t.Error(err)
		}
	})
	return ns
}
