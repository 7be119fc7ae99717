package tandem

import (
	"errors"
	"fmt"
	"strings"

	"github.com/tandemdb/tandem/engine"
)

// Sentinel errors; test for them with errors.Is.
var (
	// ErrConfig: the configuration is invalid. Nothing was opened or written.
	ErrConfig = errors.New("invalid configuration")
	// ErrNotFound: no row has the given primary key.
	ErrNotFound = errors.New("not found")
	// ErrSchemaMismatch: the datasources' structures differ, so tandem
	// refuses to mirror writes onto them.
	ErrSchemaMismatch = errors.New("datasource structures differ")
	// ErrInvalidValue: a value does not fit its column. Nothing was written.
	ErrInvalidValue = errors.New("value does not fit column")
	// ErrInvalidModel: a Go type cannot be used as a model.
	ErrInvalidModel = errors.New("invalid model")
	// ErrNodeDown: a datasource could not be reached, or (for writes) no
	// datasource that may take writes could.
	ErrNodeDown = errors.New("datasource unreachable")
	// ErrOutdated: the datasource missed writes it has not received yet, so
	// it may not take writes unless an operator forces it.
	ErrOutdated = errors.New("datasource outdated")
	// ErrIdentityClash: two datasources carry the same node identity but are
	// different databases (one was copied from the other).
	ErrIdentityClash = errors.New("two databases share one identity")
	// ErrNotCommitted: the write was not committed: a write grouped into
	// the same transaction failed in a way that ended it, or the commit
	// failed on every database. It may be retried.
	ErrNotCommitted = errors.New("write not committed")
	// ErrClosed: the cluster was closed.
	ErrClosed = errors.New("cluster closed")
	// ErrBusy: a database answered reads but its lock stayed held by other
	// writers (another process, another connection) for longer than the
	// write may wait. Nothing was written; the write may be retried. A busy
	// database is not down: the view does not change.
	ErrBusy = errors.New("datasource busy")
	// ErrOutcomeUnknown: the write may have been committed on some
	// databases; tandem could not learn which. Read before retrying a write
	// that must not happen twice. The databases converge either way. A
	// Save of a new row keeps the id the write used, so it can be read.
	ErrOutcomeUnknown = errors.New("write outcome unknown")
	// ErrRefused: a SQL statement tandem cannot mirror (several statements
	// in one string, a session setting, a table without a primary key, a
	// statement that cannot run in a transaction); nothing was written.
	ErrRefused = errors.New("statement refused")
	// ErrDuplicateKey: a write would give a row a primary key or a unique
	// value another row has. Nothing was written. The error is a
	// *ConstraintError naming the table and columns where the engine says.
	ErrDuplicateKey = errors.New("duplicate key")
	// ErrForeignKey: a write would leave a row referencing a missing row,
	// or delete a row others reference. Nothing was written
	// (*ConstraintError).
	ErrForeignKey = errors.New("foreign key violated")
	// ErrNotNull: a write gave a NOT NULL column no value. Nothing was
	// written (*ConstraintError).
	ErrNotNull = errors.New("NOT NULL column without a value")
)

// ConstraintError is a write the primary refused because it broke a
// constraint, alike on every engine: errors.Is(err, ErrDuplicateKey) (or
// ErrForeignKey, ErrNotNull) tells the kind, and errors.As reaches both
// this and the engine's own error (*pgconn.PgError, *mysql.MySQLError,
// *sqlite3.Error), which it wraps.
type ConstraintError struct {
	Kind       error    // ErrDuplicateKey, ErrForeignKey or ErrNotNull
	Table      string   // the table, where the engine names it
	Columns    []string // the columns, where the engine names them
	Constraint string   // the constraint's or index's name, where the engine names it
	Err        error    // the engine's error
}

func (e *ConstraintError) Error() string {
	var b strings.Builder
	b.WriteString(e.Kind.Error())
	if e.Table != "" {
		b.WriteString(" in " + e.Table)
	}
	if len(e.Columns) > 0 {
		b.WriteString(" (" + strings.Join(e.Columns, ", ") + ")")
	}
	if e.Constraint != "" {
		b.WriteString(", constraint " + e.Constraint)
	}
	return b.String() + ": " + e.Err.Error()
}

// Is reports whether target is e's kind.
func (e *ConstraintError) Is(target error) bool { return target == e.Kind }

// Unwrap returns the engine's error.
func (e *ConstraintError) Unwrap() error { return e.Err }

// violation returns err as a *ConstraintError when n's engine says it
// broke a constraint, and err otherwise.
func (n *Node) violation(err error) error {
	if err == nil || n.caps.Violator == nil {
		return err
	}
	v, ok := n.caps.Violator.Violation(err)
	if !ok {
		return err
	}
	ce := &ConstraintError{Table: v.Table, Columns: v.Columns, Constraint: v.Constraint, Err: err}
	switch v.Kind {
	case engine.Unique:
		ce.Kind = ErrDuplicateKey
	case engine.ForeignKey:
		ce.Kind = ErrForeignKey
	default:
		ce.Kind = ErrNotNull
	}
	return ce
}

// Errors that stay inside the package: each marks why a step failed, so
// that the step's caller can tell busy from down, or retry.
var (
	// errNotOpen stands for the (already recorded) reason a datasource could
	// not be opened, when a check does not try again.
	errNotOpen = errors.New("not open")

	// errTimeout marks a datasource that did not answer within Config.Timeout.
	errTimeout = errors.New("no answer within the timeout")

	// errFenced: a database took part in a newer view than the write's
	// (another process changed the view): the write runs again under it.
	errFenced = errors.New("the cluster's view changed: the database refuses writes made under the old one")

	// errPrimaryBehind: a database the write reaches holds writes that the
	// primary missed (another process wrote around it). The write is refused
	// before it commits; Save and Delete run again on the next primary.
	errPrimaryBehind = errors.New("the primary misses writes another database holds")

	// errGroupFailed ends a group whose every member failed; each member
	// returns its own error.
	errGroupFailed = errors.New("every write of the group failed")
)

// ConfigError is a configuration problem, located by file, line and field.
type ConfigError struct {
	File  string // the config file, if loaded from one
	Line  int    // 1-based line in File; 0 when unknown
	Field string // e.g. "datasources[1].driver"; "" for the whole file
	Msg   string
}

func (e *ConfigError) Error() string {
	var s string
	switch {
	case e.File != "" && e.Line > 0:
		s = fmt.Sprintf("%s:%d: ", e.File, e.Line)
	case e.File != "":
		s = e.File + ": "
	}
	if e.Field != "" {
		s += e.Field + ": "
	}
	return s + e.Msg
}

// Is makes errors.Is(err, ErrConfig) true for every ConfigError.
func (e *ConfigError) Is(target error) bool { return target == ErrConfig }

// ConfigErrors is every problem of a configuration at once, by line:
// errors.Is(err, ErrConfig) holds, and errors.As finds the first
// *ConfigError.
type ConfigErrors struct {
	Errors []*ConfigError
}

func (e *ConfigErrors) Error() string {
	lines := make([]string, len(e.Errors))
	for i, ce := range e.Errors {
		lines[i] = ce.Error()
	}
	return fmt.Sprintf("%d problems:\n", len(lines)) + strings.Join(lines, "\n")
}

// Unwrap returns each problem.
func (e *ConfigErrors) Unwrap() []error {
	out := make([]error, len(e.Errors))
	for i, ce := range e.Errors {
		out[i] = ce
	}
	return out
}

// ValueError says which value of which row does not fit its column.
type ValueError struct {
	Table  string
	Column string
	Msg    string
}

func (e *ValueError) Error() string {
	return fmt.Sprintf("%s.%s: %s", e.Table, e.Column, e.Msg)
}

// Is makes errors.Is(err, ErrInvalidValue) true for every ValueError.
func (e *ValueError) Is(target error) bool { return target == ErrInvalidValue }
