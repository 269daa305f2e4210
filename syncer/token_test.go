package syncer_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/vmatrix/vmatrix/syncer"
)

// TestTokenRenewedOnTime: a pod's service account token is requested again
// once 80% of its life has passed, on a schedule of its own, not when a
// resync happens to come by (the resync here is an hour away). It lives in
// an annotation of the host pod, never in the virtual pod; with TokenSecrets
// in a host Secret instead, which, deleted, is made again at once and goes
// with the pod.
func TestTokenRenewedOnTime(t *testing.T) {
	needsHost(t)
	t.Run("annotation", func(t *testing.T) { testTokenRenewal(t, "tok", false) })
	t.Run("secret", func(t *testing.T) { testTokenRenewal(t, "toks", true) })
}

func testTokenRenewal(t *testing.T, name string, secrets bool) {
	vs := versions()
	version := vs[len(vs)-1]
	cp := startControlPlane(t, name, version)
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
	s := startSyncerWith(t, syncer.Options{Name: name, Virtual: cp.RESTConfig(), Host: testHost.RESTConfig(), MirrorAllNodes: true, Clock: clock, Resync: time.Hour, TokenSecrets: secrets})
	defer teardown(t, s)

	v := clientFor(cp.RESTConfig())
	waitServiceAccount(t, v, "default")
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "holder", Namespace: "default"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1"}}}}
	if _, err := v.CoreV1().Pods("default").Create(context.Background(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	secret := syncer.HostName("holder-sa-token", "default", name)
	// token reads the token the host side holds, and when it is due.
	token := func(ctx context.Context) (tok, refresh string, err error) {
		if secrets {
			sec, err := hostClient.CoreV1().Secrets(s.HostNamespace()).Get(ctx, secret, metav1.GetOptions{})
			if err != nil {
				return "", "", err
			}
			return string(sec.Data["token"]), sec.Annotations["vmatrix.io/token-refresh"], nil
		}
		h, err := hostClient.CoreV1().Pods(s.HostNamespace()).Get(ctx, syncer.HostName("holder", "default", name), metav1.GetOptions{})
		if err != nil {
			return "", "", err
		}
		return h.Annotations["vmatrix.io/token"], h.Annotations["vmatrix.io/token-refresh"], nil
	}
	var first string
	eventually(t, 60*time.Second, "the pod's token on the host", func(ctx context.Context) (bool, string) {
		tok, _, err := token(ctx)
		if err != nil {
			return false, err.Error()
		}
		first = tok
		return len(first) > 0, "no token yet"
	})
	// The default projected token lives 3607 s; 80% of it is 2886 s.
	time.Sleep(2 * time.Second) // still the first token: nothing is due yet
	if tok, _, err := token(context.Background()); err != nil || tok != first {
		t.Fatalf("the token changed before it was due (%v)", err)
	}
	clock.Step(2890 * time.Second)
	var renewed string
	eventually(t, 30*time.Second, "a new token once 80% of the first one's life has passed", func(ctx context.Context) (bool, string) {
		tok, refresh, err := token(ctx)
		if err != nil {
			return false, err.Error()
		}
		renewed = tok
		return tok != "" && tok != first, fmt.Sprintf("still the first token (refresh at %s)", refresh)
	})
	review, err := v.AuthenticationV1().TokenReviews().Create(context.Background(), &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: renewed}}, metav1.CreateOptions{})
	if err != nil || !review.Status.Authenticated || review.Status.User.Username != "system:serviceaccount:default:default" {
		t.Errorf("the renewed token is no token of the pod's service account: %v %+v", err, review.Status)
	}

	if !secrets {
		vp, err := v.CoreV1().Pods("default").Get(context.Background(), "holder", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for k := range vp.Annotations {
			if strings.HasPrefix(k, "vmatrix.io/token") {
				t.Errorf("the virtual pod carries %s", k)
			}
		}
		if _, err := hostClient.CoreV1().Secrets(s.HostNamespace()).Get(context.Background(), secret, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("a token Secret besides the annotation: %v", err)
		}
		return
	}
	if err := hostClient.CoreV1().Secrets(s.HostNamespace()).Delete(context.Background(), secret, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the deleted token Secret made again", func(ctx context.Context) (bool, string) {
		tok, _, err := token(ctx)
		if err != nil {
			return false, err.Error()
		}
		return tok != "", "no token in it"
	})
	if err := v.CoreV1().Pods("default").Delete(context.Background(), "holder", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "the token Secret gone with the pod", func(ctx context.Context) (bool, string) {
		_, err := hostClient.CoreV1().Secrets(s.HostNamespace()).Get(ctx, secret, metav1.GetOptions{})
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
}
