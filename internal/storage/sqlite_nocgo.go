//go:build !cgo

package storage

import _ "modernc.org/sqlite" // kine's SQLite driver without cgo

// sqliteDriver and sqliteBusyTimeout open an SQLite file as kine does in a
// build without cgo (the static binary of the image).
const (
	sqliteDriver      = "sqlite"
	sqliteBusyTimeout = "?_pragma=busy_timeout(30000)"
)
