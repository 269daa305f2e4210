package controlplane

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// TestStoreTemplate: the first control plane of its kind saves a template of
// its store, and the next one starts on a copy of it, with its own PKI,
// service-account keys and UIDs: a token one cluster mints is refused by the
// other, and the CA its pods are given is its own.
func TestStoreTemplate(t *testing.T) {
	v, bins := binaries(t, "1.37")
	ctx := context.Background()
	templates := t.TempDir()
	start := func(name string) (*ControlPlane, kubernetes.Interface) {
		cp, err := Start(ctx, Config{Name: name, Dir: t.TempDir(), Version: v, Binaries: bins, TemplateDir: templates})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cp.Stop() })
		return cp, kubernetes.NewForConfigOrDie(cp.RESTConfig())
	}
	a, clientA := start("a")
	saved, _ := filepath.Glob(filepath.Join(templates, v.String()+"-*.db"))
	if len(saved) != 1 {
		t.Fatalf("templates after the first control plane: %v", saved)
	}
	// A second later, so that a copy that kept a's times shows.
	time.Sleep(time.Second)
	bStart := time.Now()
	b, clientB := start("b")
	if a.seeded || !b.seeded {
		t.Fatalf("a seeded: %v, b seeded: %v; want b alone", a.seeded, b.seeded)
	}
	for _, cp := range []*ControlPlane{a, b} {
		if note, err := os.ReadFile(cp.path("logs", "vmatrix.log")); err == nil {
			t.Errorf("%s: %s", cp.cfg.Name, note)
		}
	}

	// Seeded: b's namespaces are a's, under UIDs of its own, and made, as
	// their age says, when b was, not when a was.
	nsA, err := clientA.CoreV1().Namespaces().Get(ctx, "kube-system", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	nsB, err := clientB.CoreV1().Namespaces().Get(ctx, "kube-system", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if nsA.UID == nsB.UID {
		t.Errorf("both clusters' kube-system have UID %s", nsA.UID)
	}
	created := nsB.CreationTimestamp.Time
	if !created.After(nsA.CreationTimestamp.Time) || created.Before(bStart.Add(-10*time.Second)) || created.After(time.Now()) {
		t.Errorf("b, started at %s, has a kube-system made at %s (a's at %s)", bStart, created, nsA.CreationTimestamp)
	}

	// The apiserver writes its own authentication ConfigMap, which the
	// template leaves out, for aggregated API servers.
	if err := waitFor(func() bool {
		_, err := clientB.CoreV1().ConfigMaps("kube-system").Get(ctx, "extension-apiserver-authentication", metav1.GetOptions{})
		return err == nil
	}); err != nil {
		t.Errorf("b has no extension-apiserver-authentication: %v", err)
	}

	// A token of a is good in a and refused by b.
	tr, err := clientA.CoreV1().ServiceAccounts("default").CreateToken(ctx, "default", &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	whoami := func(cp *ControlPlane) error {
		cfg := rest.AnonymousClientConfig(cp.RESTConfig())
		cfg.BearerToken = tr.Status.Token
		_, err := kubernetes.NewForConfigOrDie(cfg).AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
		return err
	}
	if err := whoami(a); err != nil {
		t.Errorf("a refused its own token: %v", err)
	}
	if err := whoami(b); !apierrors.IsUnauthorized(err) {
		t.Errorf("b answered a's token with %v, want Unauthorized", err)
	}

	// Ready means b's controller manager works: it made the default
	// ServiceAccount, which the template leaves out, and published b's CA.
	saA, err := clientA.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	saB, err := clientB.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("b is ready without a default ServiceAccount: %v", err)
	}
	if saB.CreationTimestamp.Equal(&saA.CreationTimestamp) && saB.UID == saA.UID {
		t.Errorf("b's default ServiceAccount is a's")
	}
	ca, err := os.ReadFile(b.PKI().CACert())
	if err != nil {
		t.Fatal(err)
	}
	cm, err := clientB.CoreV1().ConfigMaps("default").Get(ctx, "kube-root-ca.crt", metav1.GetOptions{})
	if err != nil {
		t.Errorf("b is ready without kube-root-ca.crt: %v", err)
	} else if cm.Data["ca.crt"] != string(ca) {
		t.Errorf("b's kube-root-ca.crt holds another CA")
	}
	// The "kubernetes" Service, its Endpoints and EndpointSlice name b's
	// port, not a's.
	checkAdvertised(t, clientB, b.Port())
}
