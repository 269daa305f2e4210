package framework_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmatrix/vmatrix/framework"
	"github.com/vmatrix/vmatrix/internal/virtual"
	"github.com/vmatrix/vmatrix/syncer"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestComponentFlagsPerVersion: a feature gate and a --runtime-config given
// for one version are in force on that cluster only, as the API shows, with
// its apiserver and controller manager still one process; a flag
// the apiserver does not know fails the create in a line that says so.
func TestComponentFlagsPerVersion(t *testing.T) {
	ctx := context.Background()
	state := t.TempDir()
	e, err := framework.New(sharedHost(t), framework.WithStateDir(state), framework.WithLog(testLog{t}),
		framework.ForVersion("1.37", framework.WithFeatureGates("LoggingAlphaOptions=true"), framework.WithAPIServerArgs("--runtime-config=resource.k8s.io/v1beta1=true")))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Destroy(ctx)
	vcs, err := e.CreateMany(ctx, clusters[1].Version().SemVer(), clusters[2].Version().SemVer())
	if err != nil {
		t.Fatal(err)
	}
	built := false // 1.37 has kube-control-plane here: the package's 1.37 cluster, without flags, shows it
	for _, vc := range clusters {
		if vc.Version().MinorString() == "1.37" {
			built = framework.PIDs(vc)["kube-control-plane"] != 0
		}
	}
	for _, vc := range vcs {
		want := vc.Version().MinorString() == "1.37"
		// The same gates for both components keep them one process.
		if pids := framework.PIDs(vc); want && built && pids["kube-control-plane"] == 0 {
			t.Errorf("%s: processes %v; want the gates given to both to keep one process", vc, pids)
		}
		metrics, err := vc.Client().Discovery().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
		if err != nil {
			t.Fatal(err)
		}
		gate := strings.Contains(string(metrics), `kubernetes_feature_enabled{name="LoggingAlphaOptions",stage="ALPHA"} 1`)
		if gate != want {
			t.Errorf("%s: feature gate LoggingAlphaOptions on: %v, want %v", vc, gate, want)
		}
		groups, err := vc.Client().Discovery().ServerGroups()
		if err != nil {
			t.Fatal(err)
		}
		served := false
		for _, g := range groups.Groups {
			for _, v := range g.Versions {
				served = served || v.GroupVersion == "resource.k8s.io/v1beta1"
			}
		}
		if served != want {
			t.Errorf("%s: resource.k8s.io/v1beta1 served: %v, want %v", vc, served, want)
		}
	}

	// A gate under which the controller manager sets up the process's signal
	// handler, which the apiserver has set up already: two processes.
	lock, err := e.Create(ctx, "1.37", framework.WithName("lock-gate"), framework.WithFeatureGates("ControllerManagerReleaseLeaderElectionLockOnExit=true"))
	if err != nil {
		t.Fatalf("a cluster with the gate ControllerManagerReleaseLeaderElectionLockOnExit: %v", err)
	}
	if pids := framework.PIDs(lock); built && (pids["kube-apiserver"] == 0 || pids["kube-controller-manager"] == 0) {
		t.Errorf("%s: processes %v; want the gate to make two", lock, pids)
	}

	_, err = e.Create(ctx, clusters[0].Version().SemVer(), framework.WithAPIServerArgs("--no-such-flag=1"))
	if err == nil {
		t.Fatal("a cluster with an unknown apiserver flag was created")
	}
	first := strings.SplitN(err.Error(), "\n", 2)[0]
	t.Logf("error: %s", first)
	if !strings.Contains(first, "unknown flag: --no-such-flag") {
		t.Errorf("the first line of the error does not give the apiserver's words: %q", first)
	}
	name := virtual.DefaultName(clusters[0].Version().SemVer())
	if left := leftovers(filepath.Join(state, "clusters", name), nil); len(left) > 0 {
		t.Errorf("left after the failed create: %v", left)
	}
	if _, err := e.Create(ctx, "1.37", framework.WithName("bad-flag"), framework.WithAPIServerArgs("no-dashes")); err == nil || !strings.Contains(err.Error(), `"no-dashes"`) {
		t.Errorf("a flag without -- : %v", err)
	}

	// The syncer starts when the apiserver is ready, before the controller
	// manager is: one that cannot start fails the create after the syncer
	// has made the host namespace, and that goes too.
	_, err = e.Create(ctx, "1.37", framework.WithName("bad-cm-flag"), framework.WithControllerManagerArgs("--no-such-flag=1"))
	if err == nil {
		t.Fatal("a cluster with an unknown controller manager flag was created")
	}
	if first := strings.SplitN(err.Error(), "\n", 2)[0]; !strings.Contains(first, "kube-controller-manager") || !strings.Contains(err.Error(), "unknown flag: --no-such-flag") {
		t.Errorf("the error does not name the controller manager with its words: %v", err)
	}
	if left := leftovers(filepath.Join(state, "clusters", "bad-cm-flag"), nil); len(left) > 0 {
		t.Errorf("left after the failed create: %v", left)
	}
	if ns, err := hostClientset(t).CoreV1().Namespaces().Get(ctx, syncer.DefaultHostNamespace("bad-cm-flag"), metav1.GetOptions{}); err == nil && ns.DeletionTimestamp == nil {
		t.Errorf("host namespace %s left after the failed create", ns.Name)
	}
}
