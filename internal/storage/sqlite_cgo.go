//go:build cgo

package storage

import _ "github.com/mattn/go-sqlite3" // kine's SQLite driver with cgo

// sqliteDriver and sqliteBusyTimeout open an SQLite file as kine does in a
// build with cgo.
const (
	sqliteDriver      = "sqlite3"
	sqliteBusyTimeout = "?_busy_timeout=30000"
)
