package storage_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/vmatrix/vmatrix/internal/controlplane"
	"github.com/vmatrix/vmatrix/internal/proc"
)

// TestVirtualCluster runs a 1.36 control plane on each backend: it becomes
// ready, lists come back in lexical order through the apiserver, and after a
// restart on the same storage every object is still there, resourceVersions
// keep increasing, and lists read from the store itself (watch cache off) are
// in lexical order too. Unless -short, it measures create and list throughput
// (the lines starting BENCH).
func TestVirtualCluster(t *testing.T) {
	ctx := context.Background()
	v, bins := release(t, "1.36")
	for _, bc := range backends(t) {
		bc.run(t, func(t *testing.T) {
			dir := t.TempDir()
			cfg := controlplane.Config{
				Name: "vc-" + bc.name, Dir: dir, Version: v, Binaries: bins,
				Store: bc.backend.Starter("vc-" + bc.name),
			}
			start := time.Now()
			cp, err := controlplane.Start(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer cp.Stop()
			t.Logf("BENCH %s ready in %s", bc.name, time.Since(start).Round(10*time.Millisecond))
			client := unlimitedClient(cp)

			created := createScrambled(t, client)
			checkListOrder(t, client)
			if !testing.Short() {
				throughput(t, bc.name, cp.RESTConfig())
			}

			// Stop for a restart: the store stops, its data stays.
			if err := cp.Stop(); err != nil {
				t.Fatal(err)
			}
			cfg.Flags.APIServer = []string{"--watch-cache=false"}
			cp, err = controlplane.Start(ctx, cfg)
			if err != nil {
				t.Fatalf("restart: %v", err)
			}
			defer cp.Stop()
			client = unlimitedClient(cp)
			var maxRV int64
			for key, uid := range created {
				obj, err := getObject(ctx, client, key)
				if err != nil {
					t.Errorf("after restart: %s: %v", key, err)
					continue
				}
				if string(obj.UID) != uid {
					t.Errorf("after restart: %s has uid %s, want %s", key, obj.UID, uid)
				}
				rv, _ := strconv.ParseInt(obj.ResourceVersion, 10, 64)
				maxRV = max(maxRV, rv)
			}
			cm, err := client.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "after-restart"}}, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if rv, _ := strconv.ParseInt(cm.ResourceVersion, 10, 64); rv <= maxRV {
				t.Errorf("resourceVersion %d after restart, not above %d from before", rv, maxRV)
			}
			checkListOrder(t, client)

			if err := cp.Stop(); err != nil {
				t.Fatal(err)
			}
			dropAndCheck(t, bc, dir+"/data")
			if pids := proc.WithArg(dir); len(pids) > 0 {
				t.Errorf("processes %v left in %s", pids, dir)
			}
		})
	}
}

// unlimitedClient has no client-side rate limit: the default of 5 requests a
// second, not the store, would set the pace of the many small pages here.
func unlimitedClient(cp *controlplane.ControlPlane) kubernetes.Interface {
	rc := cp.RESTConfig()
	rc.QPS, rc.Burst = -1, 0
	return kubernetes.NewForConfigOrDie(rc)
}

// Names that a byte order and a case-insensitive or creation order tell
// apart. ConfigMaps take DNS names only; RBAC names may hold any case and "_".
var (
	orderNamespaces = []string{"order-b", "order-a", "order-10", "order-1"}
	cmNames         = []string{"cm-2", "cm-10", "b", "a.b", "a-b", "aa", "a", "9", "10", "z"}
	roleNames       = []string{"b", "B", "a", "A", "a_x", "aa", "_z", "Zz", "a.b", "a-b", "10", "9"}
)

// createScrambled creates the ordering test's objects in a random order and
// returns their UIDs by "kind/namespace/name".
func createScrambled(t *testing.T, client kubernetes.Interface) map[string]string {
	t.Helper()
	ctx := context.Background()
	var keys []string
	for _, ns := range orderNamespaces {
		if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		for _, n := range cmNames {
			keys = append(keys, "configmaps/"+ns+"/"+n)
		}
		for _, n := range roleNames {
			keys = append(keys, "roles/"+ns+"/"+n)
		}
	}
	rand.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
	uids := map[string]string{}
	for _, key := range keys {
		var kind, ns, name string
		splitKey(key, &kind, &ns, &name)
		meta := metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"vmatrix-test": "order"}}
		var uid string
		if kind == "configmaps" {
			obj, err := client.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: meta}, metav1.CreateOptions{})
			if err != nil {
				t.Fatalf("creating %s: %v", key, err)
			}
			uid = string(obj.UID)
		} else {
			obj, err := client.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{ObjectMeta: meta}, metav1.CreateOptions{})
			if err != nil {
				t.Fatalf("creating %s: %v", key, err)
			}
			uid = string(obj.UID)
		}
		uids[key] = uid
	}
	return uids
}

func splitKey(key string, kind, ns, name *string) {
	parts := bytes.SplitN([]byte(key), []byte("/"), 3)
	*kind, *ns, *name = string(parts[0]), string(parts[1]), string(parts[2])
}

func getObject(ctx context.Context, client kubernetes.Interface, key string) (*metav1.ObjectMeta, error) {
	var kind, ns, name string
	splitKey(key, &kind, &ns, &name)
	if kind == "configmaps" {
		obj, err := client.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		return &obj.ObjectMeta, nil
	}
	obj, err := client.RbacV1().Roles(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	return &obj.ObjectMeta, nil
}

// checkListOrder lists ConfigMaps and Roles whole and in pages of 2, in one
// namespace and across all, and compares with the sorted names.
func checkListOrder(t *testing.T, client kubernetes.Interface) {
	t.Helper()
	for _, kind := range []string{"configmaps", "roles"} {
		names := cmNames
		if kind == "roles" {
			names = roleNames
		}
		want := append([]string(nil), names...)
		sort.Strings(want)
		for _, limit := range []int64{0, 2} {
			got := listNames(t, client, kind, "order-a", limit)
			if !equal(ours(got, "order-a"), prefixed("order-a", want)) {
				t.Errorf("%s in order-a, limit %d:\n got %q\nwant %q", kind, limit, got, want)
			}
			// Across namespaces: etcd's key order is namespace, then name.
			all := listNames(t, client, kind, "", limit)
			if !sort.StringsAreSorted(all) {
				t.Errorf("%s in all namespaces, limit %d, not sorted: %q", kind, limit, all)
			}
			var wantAll []string
			nss := append([]string(nil), orderNamespaces...)
			sort.Strings(nss)
			for _, ns := range nss {
				wantAll = append(wantAll, prefixed(ns, want)...)
			}
			if got := ours(all, orderNamespaces...); !equal(got, wantAll) {
				t.Errorf("%s in all namespaces, limit %d:\n got %q\nwant %q", kind, limit, got, wantAll)
			}
		}
	}
}

// listNames lists "namespace/name" of every object of kind, in pages of limit.
func listNames(t *testing.T, client kubernetes.Interface, kind, ns string, limit int64) []string {
	t.Helper()
	ctx := context.Background()
	var names []string
	opts := metav1.ListOptions{Limit: limit}
	for {
		var items []metav1.ObjectMeta
		var cont string
		if kind == "configmaps" {
			l, err := client.CoreV1().ConfigMaps(ns).List(ctx, opts)
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range l.Items {
				items = append(items, o.ObjectMeta)
			}
			cont = l.Continue
		} else {
			l, err := client.RbacV1().Roles(ns).List(ctx, opts)
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range l.Items {
				items = append(items, o.ObjectMeta)
			}
			cont = l.Continue
		}
		if limit > 0 && int64(len(items)) > limit {
			t.Fatalf("page of %d items with limit %d", len(items), limit)
		}
		for _, o := range items {
			names = append(names, o.Namespace+"/"+o.Name)
		}
		if cont == "" {
			return names
		}
		opts.Continue = cont
	}
}

func ours(names []string, namespaces ...string) []string {
	var out []string
	for _, n := range names {
		for _, ns := range namespaces {
			if len(n) > len(ns) && n[:len(ns)+1] == ns+"/" && n[len(ns)+1:] != "kube-root-ca.crt" {
				out = append(out, n)
			}
		}
	}
	return out
}

func prefixed(ns string, names []string) []string {
	var out []string
	for _, n := range names {
		out = append(out, ns+"/"+n)
	}
	return out
}

// throughput creates 500 ConfigMaps with 8 clients and lists them, whole and
// in pages of 50, and logs the rates.
func throughput(t *testing.T, name string, rc *rest.Config) {
	t.Helper()
	ctx := context.Background()
	rc.QPS, rc.Burst = -1, 0 // no client-side limit: the store is measured
	client := kubernetes.NewForConfigOrDie(rc)
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "bench"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	const n, workers = 500, 8
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%03d", i)}, Data: map[string]string{"k": "v"}}
				if _, err := client.CoreV1().ConfigMaps("bench").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	create := time.Since(start)
	start = time.Now()
	const lists = 10
	for i := 0; i < lists; i++ {
		if got := len(listNames(t, client, "configmaps", "bench", 0)); got < n {
			t.Fatalf("listed %d ConfigMaps, want %d", got, n)
		}
	}
	whole := time.Since(start) / lists
	start = time.Now()
	for i := 0; i < lists; i++ {
		listNames(t, client, "configmaps", "bench", 50)
	}
	paged := time.Since(start) / lists
	t.Logf("BENCH %s create %d: %s (%.0f/s); list %d: %s whole, %s in pages of 50",
		name, n, create.Round(time.Millisecond), n/create.Seconds(), n, whole.Round(time.Millisecond), paged.Round(time.Millisecond))
}
