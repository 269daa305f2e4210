package storage_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vmatrix/vmatrix/internal/storage"
)

// TestTemplate: a template taken from a running kine store leaves out the
// keys that belong to the cluster that made it, and a store seeded from it
// has every other key, its UIDs new but consistent, its times moved to
// when it was seeded, and takes writes that follow its last revision.
func TestTemplate(t *testing.T) {
	ctx := context.Background()
	const uid, other = "0b6f1a7e-2c3d-4e5f-8a9b-0c1d2e3f4a5b", "11111111-2222-4333-8444-555555555555"
	made := time.Now().UTC().Truncate(time.Second)
	const apiService = "/registry/apiregistration.k8s.io/apiservices/v1."
	values := map[string]string{
		apiService:                         `{"metadata":{"creationTimestamp":"` + made.Format(time.RFC3339) + `"},"status":{"conditions":[{"lastTransitionTime":"2020-01-02T03:04:05Z"}]}}`,
		"/registry/namespaces/kube-system": `{"metadata":{"name":"kube-system","uid":"` + uid + `"}}`,
		"/registry/serviceaccounts/kube-system/default":                       `{"metadata":{"uid":"` + other + `","ownerNamespaceUID":"` + uid + `"}}`,
		"/registry/clusterroles/admin":                                        "no uid here",
		"/registry/configmaps/default/kube-root-ca.crt":                       "the old CA",
		"/registry/configmaps/kube-system/extension-apiserver-authentication": "the old client CA",
		"/registry/leases/kube-system/apiserver-abc":                          "a lease",
		"/registry/events/default/e1":                                         "an event",
		"/registry/minions/vmatrix-node-0":                                    "a node of the cluster's syncer",
		"/registry/peerserverleases/apiserver-abc":                            "the apiserver's peer address",
	}
	dataDir := t.TempDir()
	store, err := storage.StartSQLite(dataDir, shortDir(t))
	if err != nil {
		t.Fatal(err)
	}
	c := etcdClient(t, store)
	for k, v := range values {
		put(t, c, k, v)
	}
	template := filepath.Join(t.TempDir(), "templates", "t.db")
	// Taken while kine runs, as a control plane does.
	if err := storage.SaveTemplate(dataDir, template); err != nil {
		t.Fatal(err)
	}
	if err := store.Stop(); err != nil {
		t.Fatal(err)
	}

	// A second later, so that a copy that kept the template's times shows.
	time.Sleep(time.Second)
	seeded := t.TempDir()
	if ok, err := storage.SeedFromTemplate(template, seeded); err != nil || !ok {
		t.Fatalf("seed: %v, %v", ok, err)
	}
	seededBy := time.Now()
	if !storage.HasSQLite(seeded) {
		t.Fatal("the seeded folder has no store")
	}
	store2, err := storage.StartSQLite(seeded, shortDir(t))
	if err != nil {
		t.Fatal(err)
	}
	defer store2.Stop()
	c2 := etcdClient(t, store2)
	got := map[string]string{}
	resp, err := c2.Get(ctx, "/registry/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range resp.Kvs {
		got[string(kv.Key)] = string(kv.Value)
	}
	kept := []string{apiService, "/registry/namespaces/kube-system", "/registry/serviceaccounts/kube-system/default", "/registry/clusterroles/admin"}
	for k := range values {
		_, ok := got[k]
		if slices.Contains(kept, k) && !ok {
			t.Errorf("%s is not in the seeded store", k)
		}
		if !slices.Contains(kept, k) && ok {
			t.Errorf("%s, of the cluster that made the template, is in the seeded store", k)
		}
	}
	if got["/registry/clusterroles/admin"] != "no uid here" {
		t.Errorf("a value without UIDs changed: %q", got["/registry/clusterroles/admin"])
	}
	ns, sa := got["/registry/namespaces/kube-system"], got["/registry/serviceaccounts/kube-system/default"]
	if strings.Contains(ns+sa, uid) || strings.Contains(sa, other) {
		t.Errorf("old UIDs kept: %s %s", ns, sa)
	}
	uidIn := regexp.MustCompile(`"uid":"([^"]+)"`)
	newNS := uidIn.FindStringSubmatch(ns)[1]
	if !strings.Contains(sa, `"ownerNamespaceUID":"`+newNS+`"`) {
		t.Errorf("a reference to the namespace's UID %s was not renewed with it: %s", newNS, sa)
	}
	if newSA := uidIn.FindStringSubmatch(sa)[1]; newSA == newNS {
		t.Errorf("two UIDs became one: %s", newSA)
	}
	var api struct {
		Metadata metav1.ObjectMeta
		Status   struct {
			Conditions []struct{ LastTransitionTime metav1.Time }
		}
	}
	if err := json.Unmarshal([]byte(got[apiService]), &api); err != nil {
		t.Fatalf("%s: %v", got[apiService], err)
	}
	if created := api.Metadata.CreationTimestamp.Time; created.Before(made.Add(time.Second)) || created.After(seededBy) {
		t.Errorf("made at %s, taken into a template, seeded by %s: created at %s, want a time after the first second and not after the seeding", made, seededBy, created)
	}
	if c := api.Status.Conditions; len(c) != 1 || c[0].LastTransitionTime.Year() != 2020 {
		t.Errorf("a time from before the template's making moved: %s", got[apiService])
	}
	// Writes go on from the template's last revision.
	put(t, c2, "/registry/configmaps/default/after", "x")
	if r, err := c2.Get(ctx, "/registry/configmaps/default/after"); err != nil || len(r.Kvs) != 1 {
		t.Fatalf("a write after seeding: %v %v", r, err)
	}

	// No template: nothing happens.
	if ok, err := storage.SeedFromTemplate(filepath.Join(t.TempDir(), "none.db"), t.TempDir()); ok || err != nil {
		t.Errorf("seeding from a missing template: %v, %v", ok, err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(template)); len(entries) != 1 {
		t.Errorf("the template folder holds %d files, want the template alone", len(entries))
	}
}

// put creates key with value, as create does.
func put(t *testing.T, c *clientv3.Client, key, value string) {
	t.Helper()
	resp, err := c.Txn(context.Background()).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, value)).
		Commit()
	if err != nil {
		t.Fatalf("creating %s: %v", key, err)
	}
	if !resp.Succeeded {
		t.Fatalf("creating %s: it exists already", key)
	}
}
