package sqlite

import (
	"errors"
	"strings"

	"github.com/ncruces/go-sqlite3"

	"github.com/tandemdb/tandem/engine"
)

var _ engine.Violator = Engine{}

// Violation implements engine.Violator from SQLite's extended codes. Its
// message names "table.column" pairs for UNIQUE, PRIMARY KEY and NOT NULL
// ("UNIQUE constraint failed: book.isbn"), and nothing for a foreign key.
func (Engine) Violation(err error) (engine.Violation, bool) {
	var e *sqlite3.Error
	if !errors.As(err, &e) {
		return engine.Violation{}, false
	}
	var v engine.Violation
	switch e.ExtendedCode() {
	case sqlite3.CONSTRAINT_UNIQUE, sqlite3.CONSTRAINT_PRIMARYKEY:
		v.Kind = engine.Unique
	case sqlite3.CONSTRAINT_FOREIGNKEY:
		v.Kind = engine.ForeignKey
		return v, true
	case sqlite3.CONSTRAINT_NOTNULL:
		v.Kind = engine.NotNull
	default:
		return engine.Violation{}, false
	}
	msg := e.Error()
	const failed = "constraint failed: "
	i := strings.LastIndex(msg, failed)
	if i < 0 {
		return v, true
	}
	for _, tc := range strings.Split(msg[i+len(failed):], ",") {
		table, col, ok := strings.Cut(strings.TrimSpace(tc), ".")
		if !ok {
			continue
		}
		v.Table = table
		v.Columns = append(v.Columns, col)
	}
	return v, true
}
