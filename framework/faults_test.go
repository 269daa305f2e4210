package framework_test

import (
	"context"
	"syscall"
	"testing"

	"github.com/vmatrix/vmatrix/fixtures"
	"github.com/vmatrix/vmatrix/framework"
)

// TestComponentKilledMidRollout: kill -9 of the virtual apiserver, then of
// the controller manager, in the middle of a 30-replica rollout; each is
// restarted, the cluster reports it, and the rollout completes.
func TestComponentKilledMidRollout(t *testing.T) {
	ctx := context.Background()
	e, err := framework.New(sharedHost(t), framework.WithStateDir(t.TempDir()), framework.WithLog(testLog{t}))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Destroy(ctx)
	vc, err := e.Create(ctx, "1.37", framework.WithName("faults"))
	if err != nil {
		t.Fatal(err)
	}
	for _, component := range []string{"kube-apiserver", "kube-controller-manager"} {
		ns, err := vc.NewNamespace(ctx, "rollout")
		if err != nil {
			t.Fatal(err)
		}
		if err := vc.ApplyIn(ctx, ns, `
apiVersion: apps/v1
kind: Deployment
metadata: {name: big}
spec:
  replicas: 30
  selector: {matchLabels: {app: big}}
  template:
    metadata: {labels: {app: big}}
    spec: {containers: [{name: app, image: registry.example/app:1}]}
`); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Kill(vc.PIDs()[component], syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		if _, err := fixtures.WaitFor(ctx, vc, fixtures.Deployment(ns, "big"), fixtures.DeploymentAvailable()); err != nil {
			t.Fatalf("rollout after kill -9 of %s: %v", component, err)
		}
		if n := vc.Restarts()[component]; n != 1 {
			t.Errorf("%s restarted %d times, want 1", component, n)
		}
		if err := vc.Err(); err != nil {
			t.Errorf("the cluster reports a failure: %v", err)
		}
	}
}
