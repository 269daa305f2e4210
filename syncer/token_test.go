package syncer_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/vmatrix/vmatrix/syncer"
)

// TestTokenRenewedOnTime: a pod's service account token is requested again
// once 80% of its life has passed, on a schedule of its own, not when a
// resync happens to come by (the resync here is an hour away); a token
// Secret deleted on the host is made again as soon.
func TestTokenRenewedOnTime(t *testing.T) {
	needsHost(t)
	vs := versions()
	version := vs[len(vs)-1]
	cp := startControlPlane(t, "tok", version)
	// The fake clock keeps pace with real time, so that back-offs fire as
	// usual, until the test moves it on.
	clock := clocktesting.NewFakeClock(time.Now())
	ticking, stopTicking := context.WithCancel(context.Background())
	defer stopTicking()
	go func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ticking.Done():
				return
			case <-tick.C:
				clock.Step(20 * time.Millisecond)
			}
		}
	}()
	s := startSyncerWith(t, syncer.Options{Name: "tok", Virtual: cp.RESTConfig(), Host: testHost.RESTConfig(), MirrorAllNodes: true, Clock: clock, Resync: time.Hour})
	defer teardown(t, s)

	v := clientFor(cp.RESTConfig())
	waitServiceAccount(t, v, "default")
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "holder", Namespace: "default"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1"}}}}
	if _, err := v.CoreV1().Pods("default").Create(context.Background(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	secret := syncer.HostName("holder-sa-token", "default", "tok")
	var first []byte
	eventually(t, 60*time.Second, "the pod's token Secret on the host", func(ctx context.Context) (bool, string) {
		sec, err := hostClient.CoreV1().Secrets(s.HostNamespace()).Get(ctx, secret, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		first = sec.Data["token"]
		return len(first) > 0, "no token in it"
	})
	// The default projected token lives 3607 s; 80% of it is 2886 s.
	time.Sleep(2 * time.Second) // still the first token: nothing is due yet
	if sec, err := hostClient.CoreV1().Secrets(s.HostNamespace()).Get(context.Background(), secret, metav1.GetOptions{}); err != nil || !bytes.Equal(sec.Data["token"], first) {
		t.Fatalf("the token changed before it was due (%v)", err)
	}
	clock.Step(2890 * time.Second)
	eventually(t, 30*time.Second, "a new token once 80% of the first one's life has passed", func(ctx context.Context) (bool, string) {
		sec, err := hostClient.CoreV1().Secrets(s.HostNamespace()).Get(ctx, secret, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return !bytes.Equal(sec.Data["token"], first), fmt.Sprintf("still the first token (refresh at %s)", sec.Annotations["vmatrix.io/token-refresh"])
	})

	if err := hostClient.CoreV1().Secrets(s.HostNamespace()).Delete(context.Background(), secret, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the deleted token Secret made again", func(ctx context.Context) (bool, string) {
		sec, err := hostClient.CoreV1().Secrets(s.HostNamespace()).Get(ctx, secret, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return len(sec.Data["token"]) > 0, "no token in it"
	})
}
