package storage

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
)

// The backend kinds.
const (
	SQLite   = "sqlite"
	Postgres = "postgres"
	MySQL    = "mysql"
	Etcd     = "etcd"
)

// Kinds lists the backend kinds, the default first.
var Kinds = []string{SQLite, Postgres, MySQL, Etcd}

// Backend says where a virtual cluster keeps its objects. It is chosen per
// cluster; the zero value is kine on an embedded SQLite file.
//
// DSN is empty for SQLite. For PostgreSQL it is a URL
// (postgres://user:password@host:5432/[database][?sslmode=disable]), for MySQL
// and MariaDB a Go MySQL DSN (user:password@tcp(host:3306)/[database], a
// leading mysql:// is accepted). Without a database vmatrix creates one per
// cluster and drops it when the cluster is deleted; with one it uses that
// database as it is and never drops it (a given database holds one cluster). For
// etcd an empty DSN starts an etcd process per cluster, and http://host:port
// (comma-separated for several members) uses that etcd under a key prefix of
// the cluster's own.
//
// DSN holds credentials: print the Backend itself (String), never DSN.
type Backend struct {
	Kind string
	DSN  string
}

// ParseBackend validates a backend kind and DSN; an empty kind means SQLite.
// It does not connect: Starter does, bounded in time.
func ParseBackend(kind, dsn string) (Backend, error) {
	b := Backend{Kind: strings.ToLower(strings.TrimSpace(kind)), DSN: strings.TrimSpace(dsn)}
	switch b.Kind {
	case "", SQLite:
		b.Kind = SQLite
		if b.DSN != "" {
			return Backend{}, errors.New("backend sqlite takes no DSN: its file lives in the cluster's state directory")
		}
	case Postgres, "postgresql":
		b.Kind = Postgres
		if b.DSN == "" {
			return Backend{}, errors.New("backend postgres needs a DSN: postgres://user:password@host:5432/[database]")
		}
		if _, err := b.pgConfig(""); err != nil {
			return Backend{}, err
		}
	case MySQL, "mariadb":
		b.Kind = MySQL
		if b.DSN == "" {
			return Backend{}, errors.New("backend mysql needs a DSN: user:password@tcp(host:3306)/[database]")
		}
		if _, err := b.mysqlConfig(); err != nil {
			return Backend{}, err
		}
	case Etcd:
		if _, err := b.etcdEndpoints(); err != nil {
			return Backend{}, err
		}
	default:
		return Backend{}, fmt.Errorf("unknown backend %q: want one of %s", kind, strings.Join(Kinds, ", "))
	}
	return b, nil
}

// String names the backend with its DSN's password replaced by "xxxxx": safe
// for logs and listings.
func (b Backend) String() string {
	kind := b.Kind
	if kind == "" {
		kind = SQLite
	}
	if b.DSN == "" {
		return kind
	}
	return kind + " " + b.redactedDSN()
}

func (b Backend) redactedDSN() string {
	switch b.Kind {
	case MySQL:
		cfg, err := b.mysqlConfig()
		if err != nil {
			return "(invalid DSN)"
		}
		if cfg.Passwd != "" {
			cfg.Passwd = "xxxxx"
		}
		return cfg.FormatDSN()
	case Etcd:
		eps, err := b.etcdEndpoints()
		if err != nil {
			return "(invalid DSN)"
		}
		return strings.Join(eps, ",")
	default:
		u, err := url.Parse(b.DSN)
		if err != nil {
			return "(invalid DSN)"
		}
		q := u.Query()
		if q.Has("password") {
			q.Set("password", "xxxxx")
			u.RawQuery = q.Encode()
		}
		return u.Redacted()
	}
}

// password is the DSN's password, so that errors can be scrubbed of it
// whatever a driver put in them.
func (b Backend) password() string {
	switch b.Kind {
	case MySQL:
		if cfg, err := b.mysqlConfig(); err == nil {
			return cfg.Passwd
		}
	case Postgres:
		if u, err := url.Parse(b.DSN); err == nil {
			if p, ok := u.User.Password(); ok {
				return p
			}
			return u.Query().Get("password")
		}
	}
	return ""
}

// scrub wraps err with what was being done, and removes the DSN and its
// password from the message: drivers quote connection strings in errors.
func (b Backend) scrub(err error, doing string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if b.DSN != "" {
		msg = strings.ReplaceAll(msg, b.DSN, b.redactedDSN())
	}
	if p := b.password(); p != "" {
		msg = strings.ReplaceAll(msg, p, "xxxxx")
		msg = strings.ReplaceAll(msg, url.QueryEscape(p), "xxxxx")
		msg = strings.ReplaceAll(msg, url.PathEscape(p), "xxxxx")
	}
	return &scrubbedError{msg: fmt.Sprintf("%s backend: %s: %s", b.Kind, doing, msg), err: err}
}

// scrubbedError keeps the cause for errors.Is (timeouts, cancellation) while
// its message is the cleaned one.
type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.err }

func (b Backend) pgConfig(database string) (*pgx.ConnConfig, error) {
	u, err := url.Parse(b.DSN)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") || u.Host == "" && u.Query().Get("host") == "" {
		return nil, errors.New("backend postgres: the DSN must be a URL postgres://user:password@host:port/[database]")
	}
	if database != "" {
		u.Path = "/" + database
	}
	cfg, err := pgx.ParseConfig(u.String())
	if err != nil {
		return nil, b.scrub(err, "parsing the DSN")
	}
	return cfg, nil
}

// pgDatabase is the database the DSN names, "" when vmatrix is to make one.
// kine folds it to lower case, as PostgreSQL does unquoted names; so do we, to
// check the database kine will use.
func (b Backend) pgDatabase() string {
	u, err := url.Parse(b.DSN)
	if err != nil {
		return ""
	}
	return strings.ToLower(strings.Trim(u.Path, "/"))
}

func (b Backend) mysqlConfig() (*mysql.Config, error) {
	cfg, err := mysql.ParseDSN(strings.TrimPrefix(b.DSN, "mysql://"))
	if err != nil {
		// The driver's parse errors are fixed texts that quote no part of the
		// DSN; scrub would parse it again.
		return nil, fmt.Errorf("mysql backend: parsing the DSN (want user:password@tcp(host:3306)/[database]): %w", err)
	}
	return cfg, nil
}

func (b Backend) etcdEndpoints() ([]string, error) {
	if b.DSN == "" {
		return nil, nil
	}
	var eps []string
	for _, s := range strings.Split(b.DSN, ",") {
		u, err := url.Parse(strings.TrimSpace(s))
		switch {
		case err != nil || u.Host == "":
			return nil, fmt.Errorf("backend etcd: endpoint %q is no URL http://host:port", s)
		case u.Scheme != "http":
			return nil, fmt.Errorf("backend etcd: endpoint %q: only http:// endpoints are supported (no client certificates)", u.Redacted())
		case u.User != nil:
			return nil, fmt.Errorf("backend etcd: endpoint %q: the apiserver cannot pass credentials to etcd", u.Redacted())
		}
		eps = append(eps, u.Scheme+"://"+u.Host)
	}
	return eps, nil
}

// Starter returns the function that controlplane.Config.Store wants: it starts
// the store of cluster clusterName with its local state in dataDir, or finds it
// again after a restart. Connecting is bounded to a few seconds, and a start
// that fails leaves nothing behind that it created.
func (b Backend) Starter(clusterName string) func(dataDir, socketDir string) (Store, error) {
	return func(dataDir, socketDir string) (Store, error) {
		switch b.Kind {
		case "", SQLite:
			if err := b.claim(dataDir, &record{Kind: SQLite}); err != nil {
				return nil, err
			}
			return StartSQLite(dataDir, socketDir)
		case Postgres, MySQL:
			return b.startSQL(clusterName, dataDir, socketDir)
		case Etcd:
			return b.startEtcd(clusterName, dataDir, socketDir)
		}
		return nil, fmt.Errorf("unknown backend %q", b.Kind)
	}
}

// Drop removes what the store of a deleted cluster holds outside dataDir: the
// database vmatrix created for it, or its keys in an external etcd. A given
// database and the files in dataDir are left alone (the caller removes the
// directory). Stopping a cluster for a restart must not call Drop. It is
// idempotent.
func (b Backend) Drop(ctx context.Context, dataDir string) error {
	rec, err := readRecord(dataDir)
	if err != nil || rec == nil {
		return err
	}
	switch {
	case rec.CreatedDatabase != "":
		if err := b.dropDatabase(ctx, rec.CreatedDatabase); err != nil {
			return err
		}
	case rec.EtcdPrefix != "":
		if err := b.deleteEtcdPrefix(ctx, rec.EtcdPrefix); err != nil {
			return err
		}
	}
	return os.Remove(recordPath(dataDir))
}

// record is what a store leaves in dataDir so that a restart finds the same
// storage and a delete knows what vmatrix made. It never holds credentials.
type record struct {
	Kind string `json:"kind"`
	// Database is the SQL database the cluster lives in; CreatedDatabase is
	// set too when vmatrix created it (and so drops it).
	Database        string `json:"database,omitempty"`
	CreatedDatabase string `json:"createdDatabase,omitempty"`
	// EtcdPrefix is the cluster's key prefix in an external etcd.
	EtcdPrefix string `json:"etcdPrefix,omitempty"`
}

func recordPath(dataDir string) string { return filepath.Join(dataDir, "storage.json") }

func readRecord(dataDir string) (*record, error) {
	data, err := os.ReadFile(recordPath(dataDir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	rec := &record{}
	if err := json.Unmarshal(data, rec); err != nil {
		return nil, fmt.Errorf("reading %s: %w", recordPath(dataDir), err)
	}
	return rec, nil
}

func writeRecord(dataDir string, rec *record) error {
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return err
	}
	tmp := recordPath(dataDir) + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, recordPath(dataDir))
}

// claim loads the record of a restarted cluster into rec, or writes rec for a
// new one. A cluster cannot move between backends: its objects would be gone.
func (b Backend) claim(dataDir string, rec *record) error {
	old, err := readRecord(dataDir)
	if err != nil {
		return err
	}
	if old == nil {
		return writeRecord(dataDir, rec)
	}
	if old.Kind != rec.Kind {
		return fmt.Errorf("this cluster's objects are in a %s backend; it cannot start on %s", old.Kind, rec.Kind)
	}
	*rec = *old
	return nil
}

// storageName names a cluster's database or key prefix: readable, and unique
// on a server shared by runs that use the same cluster names (CI jobs).
func storageName(clusterName string) string {
	var s strings.Builder
	for _, r := range strings.ToLower(clusterName) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			s.WriteRune(r)
		} else {
			s.WriteByte('_')
		}
		if s.Len() == 40 {
			break
		}
	}
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	return "vmatrix_" + s.String() + "_" + hex.EncodeToString(suffix)
}
