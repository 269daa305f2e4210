package storage_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/vmatrix/vmatrix/internal/proc"
	"github.com/vmatrix/vmatrix/internal/storage"
)

func openPgx(cfg *pgx.ConnConfig) *sql.DB { return sql.OpenDB(stdlib.GetConnector(*cfg)) }

func TestParseBackend(t *testing.T) {
	for _, tc := range []struct {
		kind, dsn string
		want      string // String(), "" when an error is wanted
	}{
		{"", "", "sqlite"},
		{"SQLite", "", "sqlite"},
		{"sqlite", "x", ""},
		{"postgres", "", ""},
		{"postgres", "mysql://a", ""},
		{"postgres", "postgres://u:" + testPassword + "@db:5432/?sslmode=disable", "postgres postgres://u:xxxxx@db:5432/?sslmode=disable"},
		{"postgresql", "postgres://u@db/x?password=" + testPassword, "postgres postgres://u@db/x?password=xxxxx"},
		{"mysql", "", ""},
		{"mysql", "u:" + testPassword + "@tcp(db:3306)/", "mysql u:xxxxx@tcp(db:3306)/"},
		{"mariadb", "mysql://u:" + testPassword + "@tcp(db:3306)/given", "mysql u:xxxxx@tcp(db:3306)/given"},
		{"mysql", "u:p@tcp(db", ""},
		{"etcd", "", "etcd"},
		{"etcd", "http://e1:2379,http://e2:2379", "etcd http://e1:2379,http://e2:2379"},
		{"etcd", "https://e1:2379", ""},
		{"etcd", "http://u:p@e1:2379", ""},
		{"cassandra", "", ""},
	} {
		b, err := storage.ParseBackend(tc.kind, tc.dsn)
		switch {
		case tc.want == "" && err == nil:
			t.Errorf("ParseBackend(%q, %q) = %v, want an error", tc.kind, tc.dsn, b)
		case tc.want != "" && err != nil:
			t.Errorf("ParseBackend(%q, %q): %v", tc.kind, tc.dsn, err)
		case tc.want != "" && b.String() != tc.want:
			t.Errorf("ParseBackend(%q, %q).String() = %q, want %q", tc.kind, tc.dsn, b.String(), tc.want)
		}
		if err != nil && strings.Contains(err.Error(), testPassword) {
			t.Errorf("error shows the password: %v", err)
		}
	}
}

// backendCase is one backend a test runs against, with its throwaway server,
// or the one-line reason it is skipped.
type backendCase struct {
	name    string
	backend storage.Backend
	srv     server
	skip    string
}

// run runs f as the subtest of this case, skipped when its server is missing.
func (bc backendCase) run(t *testing.T, f func(t *testing.T)) {
	t.Run(bc.name, func(t *testing.T) {
		if bc.skip != "" {
			t.Skip(bc.skip)
		}
		f(t)
	})
}

// backends starts one throwaway server per backend that needs one, stopped
// and removed when t ends.
func backends(t *testing.T) []backendCase {
	t.Helper()
	var cases []backendCase
	add := func(name, kind string, start func(*testing.T) (server, string)) {
		bc := backendCase{name: name}
		if start != nil {
			bc.srv, bc.skip = start(t)
		}
		if bc.skip == "" {
			bc.backend = mustParse(t, kind, bc.srv.DSN)
		}
		cases = append(cases, bc)
	}
	add("sqlite", storage.SQLite, nil)
	add("postgres", storage.Postgres, startPostgres)
	add("mysql", storage.MySQL, startMariaDB)
	add("etcd-process", storage.Etcd, func(*testing.T) (server, string) {
		_, skip := lookBinary("etcd-server", "etcd")
		return server{}, skip
	})
	add("etcd-external", storage.Etcd, startEtcdServer)
	return cases
}

// TestStoreOrder proves at the etcd API, under the apiserver, that every
// backend returns keys in byte order, whole and in pages of 2, within one
// "namespace" and across several, with names that differ only in case or in
// punctuation that case-insensitive collations order differently.
func TestStoreOrder(t *testing.T) {
	for _, bc := range backends(t) {
		bc.run(t, func(t *testing.T) {
			dataDir := t.TempDir()
			socketDir := shortDir(t)
			store, err := bc.backend.Starter("order-"+bc.name)(dataDir, socketDir)
			if err != nil {
				t.Fatal(err)
			}
			defer store.Stop()
			c := etcdClient(t, store)
			base := store.Prefix() + "/registry/roles/"
			names := []string{"b", "B", "a", "A", "a_x", "aa", "_z", "Zz", "a.b", "a-b", "10", "9", "cm-2", "cm-10"}
			var all []string
			for _, ns := range []string{"ns2", "ns10", "ns1"} {
				for _, n := range names {
					key := base + ns + "/" + n
					create(t, c, key)
					all = append(all, key)
				}
			}
			sort.Strings(all)
			checkOrder(t, c, base, all)
			var ns1 []string
			for _, k := range all {
				if strings.HasPrefix(k, base+"ns1/") {
					ns1 = append(ns1, k)
				}
			}
			checkOrder(t, c, base+"ns1/", ns1)

			if err := store.Stop(); err != nil {
				t.Fatal(err)
			}
			dropAndCheck(t, bc, dataDir)
		})
	}
}

func checkOrder(t *testing.T, c *clientv3.Client, prefix string, want []string) {
	t.Helper()
	ctx := context.Background()
	end := clientv3.GetPrefixRangeEnd(prefix)
	resp, err := c.Get(ctx, prefix, clientv3.WithRange(end))
	if err != nil {
		t.Fatal(err)
	}
	if got := keys(resp.Kvs); !equal(got, want) {
		t.Errorf("whole list of %s:\n got %q\nwant %q", prefix, got, want)
	}
	// Pages as the apiserver asks for them: from just after the last key, at
	// the revision of the first page.
	var got []string
	rev := resp.Header.Revision
	for from := prefix; ; {
		page, err := c.Get(ctx, from, clientv3.WithRange(end), clientv3.WithLimit(2), clientv3.WithRev(rev))
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, keys(page.Kvs)...)
		if !page.More || len(page.Kvs) == 0 {
			break
		}
		from = string(page.Kvs[len(page.Kvs)-1].Key) + "\x00"
	}
	if !equal(got, want) {
		t.Errorf("pages of 2 of %s:\n got %q\nwant %q", prefix, got, want)
	}
}

func keys(kvs []*mvccpb.KeyValue) []string {
	var s []string
	for _, kv := range kvs {
		s = append(s, string(kv.Key))
	}
	return s
}

func equal(a, b []string) bool { return strings.Join(a, "\n") == strings.Join(b, "\n") }

// create writes a key the way the apiserver creates objects (kine supports
// only the apiserver's transactions, not a bare Put).
func create(t *testing.T, c *clientv3.Client, key string) { t.Helper(); put(t, c, key, "v") }

func etcdClient(t *testing.T, store storage.Store) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{
		Endpoints:   strings.Split(store.Endpoint(), ","),
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// shortDir is a socket directory: unix socket paths are limited to 107 bytes.
func shortDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "vm-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// dropAndCheck drops the store of a deleted cluster and checks that nothing
// of it is left: no database, no keys, no process.
func dropAndCheck(t *testing.T, bc backendCase, dataDir string) {
	t.Helper()
	var rec struct{ Database, CreatedDatabase, EtcdPrefix string }
	data, _ := os.ReadFile(filepath.Join(dataDir, "storage.json"))
	_ = json.Unmarshal(data, &rec)
	if err := bc.backend.Drop(context.Background(), dataDir); err != nil {
		t.Fatal(err)
	}
	if err := bc.backend.Drop(context.Background(), dataDir); err != nil {
		t.Fatalf("second Drop: %v", err)
	}
	if rec.CreatedDatabase != "" && databaseExists(t, bc, rec.CreatedDatabase) {
		t.Errorf("database %s still exists after Drop", rec.CreatedDatabase)
	}
	if rec.EtcdPrefix != "" {
		c, err := clientv3.New(clientv3.Config{Endpoints: []string{bc.backend.DSN}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		resp, err := c.Get(context.Background(), rec.EtcdPrefix+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			t.Fatal(err)
		}
		if resp.Count != 0 {
			t.Errorf("%d keys under %s after Drop", resp.Count, rec.EtcdPrefix)
		}
	}
	if pids := proc.WithArg(dataDir); len(pids) > 0 {
		t.Errorf("processes %v still run in %s", pids, dataDir)
	}
}

// databaseExists asks the test server whether a database exists.
func databaseExists(t *testing.T, bc backendCase, name string) bool {
	t.Helper()
	db := adminDB(t, bc)
	defer db.Close()
	q := "SELECT COUNT(*) FROM pg_database WHERE datname = $1"
	if bc.backend.Kind == storage.MySQL {
		q = "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?"
	}
	var n int
	if err := db.QueryRow(q, name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n > 0
}

// vmatrixDatabases lists the databases vmatrix names, to prove that a failed
// start created none.
func vmatrixDatabases(t *testing.T, bc backendCase) []string {
	t.Helper()
	db := adminDB(t, bc)
	defer db.Close()
	q := "SELECT datname FROM pg_database WHERE datname LIKE 'vmatrix%'"
	if bc.backend.Kind == storage.MySQL {
		q = "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE 'vmatrix%'"
	}
	rows, err := db.Query(q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		_ = rows.Scan(&n)
		names = append(names, n)
	}
	return names
}

func adminDB(t *testing.T, bc backendCase) *sql.DB {
	t.Helper()
	if bc.backend.Kind == storage.MySQL {
		cfg, err := mysql.ParseDSN(strings.TrimPrefix(bc.srv.DSN, "mysql://"))
		if err != nil {
			t.Fatal(err)
		}
		cfg.DBName = ""
		conn, err := mysql.NewConnector(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return sql.OpenDB(conn)
	}
	cfg, err := pgx.ParseConfig(strings.Replace(bc.srv.DSN, "/?", "/postgres?", 1))
	if err != nil {
		t.Fatal(err)
	}
	return openPgx(cfg)
}

// TestUnreachable: a wrong password, a closed port or an unknown host fails the
// start in seconds with one line that does not show the password, and leaves
// no database and no record behind.
func TestUnreachable(t *testing.T) {
	for _, bc := range backends(t) {
		if bc.skip != "" {
			bc.run(t, nil)
			continue
		}
		var bad []storage.Backend
		switch bc.backend.Kind {
		case storage.Postgres:
			bad = append(bad,
				mustParse(t, storage.Postgres, strings.Replace(bc.srv.DSN, ":"+testPassword+"@", ":wrong-"+testPassword+"@", 1)),
				mustParse(t, storage.Postgres, "postgres://postgres:"+testPassword+"@127.0.0.1:1/?sslmode=disable"),
				mustParse(t, storage.Postgres, "postgres://postgres:"+testPassword+"@db.invalid:5432/?sslmode=disable"))
		case storage.MySQL:
			bad = append(bad,
				mustParse(t, storage.MySQL, strings.Replace(bc.srv.DSN, ":"+testPassword+"@", ":wrong-"+testPassword+"@", 1)),
				mustParse(t, storage.MySQL, "vmatrix:"+testPassword+"@tcp(127.0.0.1:1)/"),
				// A routable address that drops packets: the case that would hang.
				mustParse(t, storage.MySQL, "vmatrix:"+testPassword+"@tcp(10.255.255.1:3306)/"))
		case storage.Etcd:
			if bc.backend.DSN == "" {
				continue
			}
			bad = append(bad, mustParse(t, storage.Etcd, "http://127.0.0.1:1"))
		default:
			continue
		}
		bc.run(t, func(t *testing.T) {
			for _, b := range bad {
				dataDir := t.TempDir()
				start := time.Now()
				_, err := b.Starter("bad")(dataDir, shortDir(t))
				took := time.Since(start)
				if err == nil {
					t.Fatalf("%v: started", b)
				}
				t.Logf("%v: %v (%s)", b, err, took.Round(time.Millisecond))
				// It gives up by itself: the bound only tells that from a hang.
				if took > time.Minute {
					t.Errorf("%v: failed after %s, want a few seconds", b, took)
				}
				if strings.Contains(err.Error(), testPassword) {
					t.Errorf("the error shows the password: %v", err)
				}
				if strings.Count(strings.TrimSpace(err.Error()), "\n") > 0 {
					t.Errorf("error of more than one line: %q", err)
				}
				if entries, _ := os.ReadDir(dataDir); len(entries) > 0 {
					t.Errorf("a failed start left %v in its data dir", entries)
				}
			}
			if bc.backend.Kind != storage.Etcd {
				if dbs := vmatrixDatabases(t, bc); len(dbs) > 0 {
					t.Errorf("databases left behind: %v", dbs)
				}
			}
		})
	}
}

// TestGivenDatabase: a user that may not create databases gets a clear error
// without a database in the DSN, and with one works in it and never drops it.
func TestGivenDatabase(t *testing.T) {
	for _, bc := range backends(t) {
		if bc.skip == "" && bc.srv.Limited == "" {
			continue
		}
		bc.run(t, func(t *testing.T) {
			limited := mustParse(t, bc.backend.Kind, bc.srv.Limited)
			_, err := limited.Starter("nope")(t.TempDir(), shortDir(t))
			if err == nil || !strings.Contains(err.Error(), "may not create databases") {
				t.Fatalf("want a permission error with a hint, got %v", err)
			}
			t.Log(err)
			dsn := strings.Replace(bc.srv.Limited, "/?", "/given?", 1)
			if bc.backend.Kind == storage.MySQL {
				dsn += "given"
			}
			given := mustParse(t, bc.backend.Kind, dsn)
			dataDir := t.TempDir()
			store, err := given.Starter("given")(dataDir, shortDir(t))
			if err != nil {
				t.Fatal(err)
			}
			create(t, etcdClient(t, store), "/registry/configmaps/default/x")
			if err := store.Stop(); err != nil {
				t.Fatal(err)
			}
			if err := given.Drop(context.Background(), dataDir); err != nil {
				t.Fatal(err)
			}
			if !databaseExists(t, bc, "given") {
				t.Error("Drop dropped a database that vmatrix did not create")
			}
		})
	}
}

func mustParse(t *testing.T, kind, dsn string) storage.Backend {
	t.Helper()
	b, err := storage.ParseBackend(kind, dsn)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func ExampleParseBackend() {
	b, err := storage.ParseBackend("postgres", "postgres://vmatrix:secret@db.example:5432/?sslmode=disable")
	if err != nil {
		fmt.Println(err)
		return
	}
	// String never shows the password; pass b.Starter(name) to
	// controlplane.Config.Store, and call b.Drop when the cluster is deleted.
	fmt.Println(b)
	// Output: postgres postgres://vmatrix:xxxxx@db.example:5432/?sslmode=disable
}
