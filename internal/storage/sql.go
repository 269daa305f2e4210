package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

// connectTimeout bounds every connection attempt of ours. kine itself retries
// an unreachable database for five minutes without a way to cancel it, so we
// connect first and fail in seconds with one clear line.
const connectTimeout = 5 * time.Second

// startSQL starts kine on the cluster's PostgreSQL or MySQL database, creating
// the database first when the DSN names none.
func (b Backend) startSQL(clusterName, dataDir, socketDir string) (_ Store, err error) {
	given := b.pgDatabase()
	if b.Kind == MySQL {
		cfg, err := b.mysqlConfig()
		if err != nil {
			return nil, err
		}
		given = cfg.DBName
	}
	rec, err := readRecord(dataDir)
	if err != nil {
		return nil, err
	}
	switch {
	case rec != nil && rec.Kind != b.Kind:
		return nil, fmt.Errorf("this cluster's objects are in a %s backend; it cannot start on %s", rec.Kind, b.Kind)
	case rec != nil && given != "" && rec.Database != given:
		return nil, fmt.Errorf("this cluster's objects are in database %q, not in %q", rec.Database, given)
	}

	ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
	defer cancel()
	fresh, created := rec == nil, false
	switch {
	case rec != nil: // a restart: the database exists, or the check below says it is gone
		if err := b.ping(ctx, rec.Database); err != nil {
			return nil, err
		}
	case given != "":
		if err := b.ping(ctx, given); err != nil {
			return nil, err
		}
		rec = &record{Kind: b.Kind, Database: given}
		if err := writeRecord(dataDir, rec); err != nil {
			return nil, err
		}
	default:
		name := storageName(clusterName)
		if err := b.createDatabase(ctx, name); err != nil {
			return nil, err
		}
		created = true
		rec = &record{Kind: b.Kind, Database: name, CreatedDatabase: name}
		if err := writeRecord(dataDir, rec); err != nil {
			_ = b.Drop(context.Background(), dataDir)
			return nil, err
		}
	}
	defer func() {
		switch {
		case err != nil && created:
			// A cluster that never started leaves no database behind.
			dctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
			defer cancel()
			_ = b.Drop(dctx, dataDir)
		case err != nil && fresh:
			_ = os.Remove(recordPath(dataDir))
		}
	}()

	var dsn string
	if b.Kind == Postgres {
		u, _ := url.Parse(b.DSN)
		u.Path = "/" + rec.Database
		dsn = u.String()
	} else {
		cfg, _ := b.mysqlConfig()
		cfg.DBName = rec.Database
		cfg.Timeout = connectTimeout
		dsn = "mysql://" + cfg.FormatDSN()
	}
	store, err := startKine(dsn, filepath.Join(socketDir, "kine.sock"))
	if err != nil {
		return nil, b.scrub(err, "starting kine on database "+rec.Database)
	}
	if b.Kind == MySQL {
		if err := b.binaryNames(rec.Database); err != nil {
			store.Stop()
			return nil, err
		}
	}
	return store, nil
}

// ping checks within ctx that the database answers and lets us in.
func (b Backend) ping(ctx context.Context, database string) error {
	db, err := b.open(database)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.PingContext(ctx); err != nil {
		return b.scrub(err, "connecting to "+b.redactedDSN()+" (database "+database+")")
	}
	return nil
}

// open returns a handle on database; "" means the server's maintenance
// database, where databases are created and dropped.
func (b Backend) open(database string) (*sql.DB, error) {
	if b.Kind == MySQL {
		cfg, err := b.mysqlConfig()
		if err != nil {
			return nil, err
		}
		cfg.DBName = database
		cfg.Timeout = connectTimeout
		conn, err := mysql.NewConnector(cfg)
		if err != nil {
			return nil, b.scrub(err, "connecting")
		}
		return sql.OpenDB(conn), nil
	}
	if database == "" {
		database = "postgres"
	}
	cfg, err := b.pgConfig(database)
	if err != nil {
		return nil, err
	}
	cfg.ConnectTimeout = connectTimeout
	return sql.OpenDB(stdlib.GetConnector(*cfg)), nil
}

func (b Backend) createDatabase(ctx context.Context, name string) error {
	db, err := b.open("")
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.PingContext(ctx); err != nil {
		return b.scrub(err, "connecting to "+b.redactedDSN())
	}
	// Names from storageName need no quoting beyond the identifier quotes.
	stmt := `CREATE DATABASE "` + name + `"`
	if b.Kind == MySQL {
		stmt = "CREATE DATABASE `" + name + "`"
	}
	if _, err := db.ExecContext(ctx, stmt); err != nil {
		hint := ""
		if isPermissionError(err) {
			hint = " (this user may not create databases: grant it that right, or give an existing database in the DSN)"
		}
		return b.scrub(err, "creating database "+name+hint)
	}
	return nil
}

func (b Backend) dropDatabase(ctx context.Context, name string) error {
	ctx, cancel := context.WithTimeout(ctx, 3*connectTimeout)
	defer cancel()
	db, err := b.open("")
	if err != nil {
		return err
	}
	defer db.Close()
	// A connection that breaks mid-statement (seen with MariaDB on a loaded
	// machine as "invalid connection") is worth another try: the statement is
	// idempotent. Errors of the server itself are final.
	for attempt := 1; ; attempt++ {
		err = b.dropStatement(ctx, db, name)
		if err == nil || isServerError(err) || ctx.Err() != nil || attempt == 3 {
			return b.scrub(err, "dropping database "+name)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (b Backend) dropStatement(ctx context.Context, db *sql.DB, name string) error {
	if b.Kind == MySQL {
		_, err := db.ExecContext(ctx, "DROP DATABASE IF EXISTS `"+name+"`")
		return err
	}
	// FORCE (PostgreSQL 13+) ends sessions a killed run may have left.
	_, err := db.ExecContext(ctx, `DROP DATABASE IF EXISTS "`+name+`" WITH (FORCE)`)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42601" {
		_, err = db.ExecContext(ctx, `DROP DATABASE IF EXISTS "`+name+`"`)
	}
	return err
}

func isServerError(err error) bool {
	var pgErr *pgconn.PgError
	var myErr *mysql.MySQLError
	return errors.As(err, &pgErr) || errors.As(err, &myErr)
}

func isPermissionError(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code == "42501"
	}
	var myErr *mysql.MySQLError
	if errors.As(err, &myErr) {
		return myErr.Number == 1044 || myErr.Number == 1227
	}
	return false
}

// binaryNames makes MySQL compare keys byte by byte. kine declares the key
// column CHARACTER SET ascii, whose default collation ascii_general_ci ignores
// case: lists then come back in case-insensitive order, not etcd's, and two
// names that differ only in case ("Admin", "admin", as RBAC objects may be
// named) collide in kine's unique index. ascii_bin is the byte order etcd
// uses. It runs before the apiserver starts, while the table is near empty.
func (b Backend) binaryNames(database string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 4*connectTimeout)
	defer cancel()
	db, err := b.open(database)
	if err != nil {
		return err
	}
	defer db.Close()
	var collation string
	err = db.QueryRowContext(ctx, `SELECT COLLATION_NAME FROM information_schema.COLUMNS
		WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'kine' AND COLUMN_NAME = 'name'`).Scan(&collation)
	if err != nil {
		return b.scrub(err, "reading the collation of kine's key column")
	}
	if collation == "ascii_bin" {
		return nil
	}
	_, err = db.ExecContext(ctx, "ALTER TABLE kine MODIFY name VARCHAR(630) CHARACTER SET ascii COLLATE ascii_bin")
	return b.scrub(err, "making kine's key column compare bytes (ascii_bin)")
}
