package sqlite

import (
	"net/url"
	"strings"

	_ "github.com/ncruces/go-sqlite3/driver" // database/sql driver "sqlite3"
)

// driverName is the database/sql driver behind this engine:
// github.com/ncruces/go-sqlite3, SQLite translated to pure Go. It was
// measured against mattn/go-sqlite3 (cgo) and modernc.org/sqlite: writes
// are within noise of both (the disk's fsync dominates), point reads match
// the cgo driver and are ~40% faster than modernc's, and it needs no C
// toolchain, so tandem cross-compiles anywhere Go does.
const driverName = "sqlite3"

// driverDSN spells d in the driver's own syntax. Writers begin with
// BEGIN IMMEDIATE; readers with a plain (deferred) BEGIN.
//
// _timefmt names tandem's own time layout: the driver then decodes
// TIMESTAMP columns with it, and no longer turns text that merely looks
// like an RFC 3339 time (in a VARCHAR column, say) into a time.Time.
func driverDSN(d dsn, writer bool) string {
	path := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(d.path)
	txlock := "deferred"
	if writer {
		txlock = "immediate"
	}
	return "file:" + path +
		"?_pragma=busy_timeout(" + d.opts["busy_timeout"] + ")" +
		"&_pragma=synchronous(" + d.opts["synchronous"] + ")" +
		"&_pragma=foreign_keys(1)" +
		"&_txlock=" + txlock +
		"&_timefmt=" + url.QueryEscape(TimeFormat)
}
