package postgres

import (
	"errors"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tandemdb/tandem/engine"
)

var _ engine.Violator = Engine{}

// Violation implements engine.Violator from the SQLSTATE (23505, 23503,
// 23502) and the error's fields; a unique violation's columns come from
// its detail, "Key (a, b)=(...) already exists.".
func (Engine) Violation(err error) (engine.Violation, bool) {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return engine.Violation{}, false
	}
	v := engine.Violation{Table: pe.TableName, Constraint: pe.ConstraintName}
	switch pe.Code {
	case "23505":
		v.Kind = engine.Unique
		v.Columns = keyColumns(pe.Detail)
	case "23503":
		v.Kind = engine.ForeignKey
		v.Columns = keyColumns(pe.Detail)
	case "23502":
		v.Kind = engine.NotNull
		if pe.ColumnName != "" {
			v.Columns = []string{pe.ColumnName}
		}
	default:
		return engine.Violation{}, false
	}
	return v, true
}

// keyColumns reads the columns of a detail "Key (a, b)=(1, 2) ...".
func keyColumns(detail string) []string {
	rest, ok := strings.CutPrefix(detail, "Key (")
	if !ok {
		return nil
	}
	list, _, ok := strings.Cut(rest, ")=(")
	if !ok {
		return nil
	}
	return engine.SplitColumns(list)
}
