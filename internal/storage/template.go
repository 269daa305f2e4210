package storage

import (
	"bytes"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/google/uuid"
)

// A template is the SQLite store of a control plane taken as it became ready:
// namespaces, default ServiceAccounts, RBAC bootstrap policy, priority
// classes, flow-control settings, API services. A new control plane of the
// same kind starts on a copy of it, so its apiserver finds its bootstrap
// done.
//
// What depends on the cluster that made it is taken out or made anew:
//   - keys whose value embeds that cluster's CA, addresses or ports, or that
//     name its processes (the kube-root-ca.crt ConfigMaps, ClusterTrustBundles,
//     the apiserver's authentication ConfigMap, the "kubernetes" Service's
//     Endpoints and EndpointSlice, leases, events): the new cluster's
//     components write their own (the Service's target port is the control
//     plane's to set);
//   - the default namespace's default ServiceAccount, so that a control plane
//     is ready only once its controller manager has made it, as on a fresh
//     store: before, a pod in a new namespace could find no ServiceAccount;
//   - every UID: each copy gets new ones, consistently, so that references
//     between objects hold and no two clusters share one (the kube-system
//     namespace's UID is a common cluster ID);
//   - every time the maker's bootstrap wrote (creation times, managed
//     fields' times, conditions' transitions): each copy moves them by the
//     time since the template was taken, so that a namespace's age is the
//     cluster's, as on a fresh store, never the template's, and none is in
//     the future.
//
// Certificates and service-account keys are never in the store: they are
// made per cluster, so a token of one cluster is refused by another.

// templateOmits are the keys (SQL LIKE patterns) a template leaves out.
var templateOmits = []string{
	"/registry/configmaps/%/kube-root-ca.crt",
	"/registry/configmaps/kube-system/extension-apiserver-authentication",
	"/registry/clustertrustbundles/%",
	"/registry/leases/%",
	"/registry/masterleases/%",
	"/registry/peerserverleases/%",
	// Nodes: a virtual cluster's are its syncer's, naming that cluster and
	// the port of its kubelet API; a host's are made at its start.
	"/registry/minions/%",
	"/registry/events/%",
	"/registry/services/endpoints/default/kubernetes",
	"/registry/endpointslices/default/kubernetes",
	"/registry/serviceaccounts/default/default",
}

// sqliteFile is the store's file in a data directory (StartSQLite's).
func sqliteFile(dataDir string) string { return filepath.Join(dataDir, "state.db") }

// HasSQLite reports whether dataDir holds an SQLite store already: a cluster
// started again keeps its objects and is never seeded.
func HasSQLite(dataDir string) bool {
	_, err := os.Stat(sqliteFile(dataDir))
	return err == nil
}

// SaveTemplate writes the SQLite store in dataDir, which a running kine may
// be writing, to path as a template: a consistent snapshot with the
// cluster's own keys left out. The file appears whole or not at all, so
// concurrent saves and seeds of one template are safe.
func SaveTemplate(dataDir, path string) error {
	// Every time in the snapshot is at or before this second.
	taken := time.Now().Unix()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".template-*.db")
	if err != nil {
		return err
	}
	tmp.Close()
	os.Remove(tmp.Name()) // VACUUM INTO wants to create the file itself
	defer os.Remove(tmp.Name())

	live, err := openSQLite(sqliteFile(dataDir))
	if err != nil {
		return err
	}
	// A read transaction of its own: the snapshot is one revision of the
	// store, whatever kine writes meanwhile.
	_, err = live.Exec(`VACUUM INTO ?`, tmp.Name())
	live.Close()
	if err != nil {
		return fmt.Errorf("snapshot of %s: %w", sqliteFile(dataDir), err)
	}

	db, err := openSQLite(tmp.Name())
	if err != nil {
		return err
	}
	err = omitOwnKeys(db)
	if err == nil {
		err = recordTaken(db, taken)
	}
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("template from %s: %w", sqliteFile(dataDir), err)
	}
	if err := os.Chmod(tmp.Name(), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func omitOwnKeys(db *sql.DB) error {
	for _, pattern := range templateOmits {
		if _, err := db.Exec(`DELETE FROM kine WHERE name LIKE ?`, pattern); err != nil {
			return err
		}
	}
	// kine takes a revision that skips ahead for a write it has not seen
	// yet: the next one must follow the last kept.
	if _, err := db.Exec(`UPDATE sqlite_sequence SET seq = (SELECT MAX(id) FROM kine) WHERE name = 'kine'`); err != nil {
		return err
	}
	_, err := db.Exec(`VACUUM`)
	return err
}

// takenTable holds the second a template was taken at, in the template
// only: kine reads its own table and no other.
const takenTable = "vmatrix_template_taken"

func recordTaken(db *sql.DB, taken int64) error {
	if _, err := db.Exec(`CREATE TABLE ` + takenTable + ` (unix INTEGER NOT NULL)`); err != nil {
		return err
	}
	_, err := db.Exec(`INSERT INTO `+takenTable+` (unix) VALUES (?)`, taken)
	return err
}

// ErrBadTemplate marks a template that cannot be read as a store: the caller
// removes it. Any other error of SeedFromTemplate (a full disk, say) leaves
// the template be.
var ErrBadTemplate = errors.New("unusable store template")

// SeedFromTemplate makes the SQLite store of dataDir a copy of the template
// at path, with new UIDs and its times moved to now. It reports false, and
// does nothing, when there is no such template.
func SeedFromTemplate(path, dataDir string) (bool, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	tmp := sqliteFile(dataDir) + ".seed"
	// What a copy cut short left must not be replayed onto this one.
	for _, f := range []string{tmp, tmp + "-journal", tmp + "-wal", tmp + "-shm"} {
		defer os.Remove(f)
		os.Remove(f)
	}
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return false, err
	}
	db, err := openSQLite(tmp)
	if err == nil {
		err = renew(db, time.Now().Unix())
		if cerr := db.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return false, fmt.Errorf("store from template %s: %w: %w", path, ErrBadTemplate, err)
	}
	if err := os.Rename(tmp, sqliteFile(dataDir)); err != nil {
		return false, err
	}
	return true, nil
}

// uidPattern matches a UID as the apiserver makes them (RFC 4122, lower
// case). In a stored value it is a string of fixed length, protobuf or
// JSON, so one can stand in for another without re-encoding anything. It
// is not anchored: in protobuf the byte after a UID is the next field's tag,
// which may be a hex digit.
var uidPattern = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)

// renew gives every UID in the store's values a new one, the same new one
// wherever the old one stands, and moves every time of the template's
// making so that the last is now.
func renew(db *sql.DB, now int64) error {
	var taken int64
	if err := db.QueryRow(`SELECT unix FROM ` + takenTable).Scan(&taken); err != nil {
		return fmt.Errorf("the time it was taken: %w", err)
	}
	if _, err := db.Exec(`DROP TABLE ` + takenTable); err != nil {
		return err
	}
	// The maker's store was fresh: all its times fall within its start, a
	// few seconds before it was taken. A time outside this span is no time
	// of the bootstrap and stays as it is.
	shift := timeShift{from: taken - 600, to: taken, by: now - taken}

	rows, err := db.Query(`SELECT id, value, old_value FROM kine`)
	if err != nil {
		return err
	}
	type row struct {
		id              int64
		value, oldValue []byte
	}
	var all []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.id, &r.value, &r.oldValue); err != nil {
			rows.Close()
			return err
		}
		all = append(all, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	renewed := map[string][]byte{}
	replace := func(b []byte) []byte {
		b = uidPattern.ReplaceAllFunc(b, func(old []byte) []byte {
			n, ok := renewed[string(old)]
			if !ok {
				n = []byte(uuid.NewString())
				renewed[string(old)] = n
			}
			return n
		})
		return shift.apply(b)
	}
	tx, err := db.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, r := range all {
		v, ov := replace(r.value), replace(r.oldValue)
		if bytes.Equal(v, r.value) && bytes.Equal(ov, r.oldValue) {
			continue
		}
		if _, err := tx.Exec(`UPDATE kine SET value = ?, old_value = ? WHERE id = ?`, v, ov, r.id); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// timeShift moves the times in stored values that fall within [from, to]
// (Unix seconds) by a number of seconds. Like a UID, a time is of fixed
// length in either encoding, so the new one takes the old one's place:
//   - JSON (the API services): "2006-01-02T15:04:05Z", as metav1.Time
//     writes it;
//   - protobuf (every built-in kind): a metav1.Time is a message of 8 bytes,
//     its seconds (field 1, a varint of 5 bytes for any time from 1978 to
//     3058) and its nanoseconds (field 2), always 0.
//
// A match that is no time would have to fall within these ten minutes too.
type timeShift struct{ from, to, by int64 }

var jsonTime = regexp.MustCompile(`"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"`)

func (s timeShift) apply(b []byte) []byte {
	if s.by == 0 || len(b) == 0 {
		return b
	}
	if bytes.HasPrefix(b, []byte("{")) {
		return jsonTime.ReplaceAllFunc(b, func(old []byte) []byte {
			t, err := time.Parse(`"`+time.RFC3339+`"`, string(old))
			if err != nil || !s.covers(t.Unix()) {
				return old
			}
			return []byte(t.Add(time.Duration(s.by) * time.Second).UTC().Format(`"` + time.RFC3339 + `"`))
		})
	}
	// length 8, field 1 varint: seconds (5 bytes), field 2 varint: 0
	const size = 9
	out, cloned := b, false
	for i := 0; i+size <= len(b); i++ {
		if b[i] != 8 || b[i+1] != 0x08 || b[i+7] != 0x10 || b[i+8] != 0 {
			continue
		}
		secs, n := binary.Uvarint(b[i+2 : i+7])
		if n != 5 || !s.covers(int64(secs)) {
			continue
		}
		var moved [binary.MaxVarintLen64]byte
		if binary.PutUvarint(moved[:], uint64(int64(secs)+s.by)) != 5 {
			continue
		}
		if !cloned {
			out, cloned = bytes.Clone(b), true
		}
		copy(out[i+2:i+7], moved[:5])
		i += size - 1
	}
	return out
}

func (s timeShift) covers(unix int64) bool { return unix >= s.from && unix <= s.to }

// openSQLite opens an SQLite file with the driver kine uses in this build.
func openSQLite(path string) (*sql.DB, error) {
	db, err := sql.Open(sqliteDriver, path+sqliteBusyTimeout)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	return db, db.Ping()
}
