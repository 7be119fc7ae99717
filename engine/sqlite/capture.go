package sqlite

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/ncruces/go-sqlite3"

	"github.com/tandemdb/tandem/engine"
)

var _ engine.Capturer = Engine{}

// Capture on SQLite. A file has no session settings a trigger can read,
// so the triggers ask a function, tandem_capture(table), that tandem's
// connections define (defineCapture): it answers 1 while the connection's
// transaction captures (and notes the table), 0 otherwise. A connection
// that lacks it (the sqlite3 shell, another program) cannot write a
// captured table at all: SQLite refuses the statement with "no such
// function: tandem_capture". An operator's emergency fix goes through
// tandem (`tandem exec`), or drops the triggers, which tandem installs
// again when told to (`tandem capture`).

// captureState is one connection's: whether its transaction captures,
// and the tables it touched since Touched last ran.
type captureState struct {
	on      bool
	touched []string
}

func (s *captureState) reset() {
	s.on = false
	s.touched = s.touched[:0]
}

// defineCapture defines tandem's capture functions on a connection. Its
// state ends with each transaction (commit and rollback hooks), so a
// transaction never inherits capture from the one before.
func defineCapture(c *sqlite3.Conn) error {
	st := &captureState{}
	// INNOCUOUS: triggers may call them whatever trusted_schema says; not
	// DETERMINISTIC: each call must run.
	if err := c.CreateFunction("tandem_capture", 1, sqlite3.INNOCUOUS, func(ctx sqlite3.Context, arg ...sqlite3.Value) {
		if !st.on {
			ctx.ResultInt(0)
			return
		}
		if t := arg[0].Text(); t != "" && !contains(st.touched, t) {
			st.touched = append(st.touched, t)
		}
		ctx.ResultInt(1)
	}); err != nil {
		return err
	}
	if err := c.CreateFunction("tandem_capture_on", 0, sqlite3.DIRECTONLY, func(ctx sqlite3.Context, _ ...sqlite3.Value) {
		st.on = true
		ctx.ResultInt(1)
	}); err != nil {
		return err
	}
	if err := c.CreateFunction("tandem_touched", 0, sqlite3.DIRECTONLY, func(ctx sqlite3.Context, _ ...sqlite3.Value) {
		b, _ := json.Marshal(st.touched)
		st.touched = st.touched[:0]
		ctx.ResultText(string(b))
	}); err != nil {
		return err
	}
	c.CommitHook(func() bool { st.reset(); return true })
	c.RollbackHook(st.reset)
	return nil
}

// InstallCapture implements engine.Capturer: row triggers that, when
// tandem_capture says so, insert the row's key into the capture table
// unless it is there (NOT EXISTS rather than OR IGNORE: an outer INSERT OR
// ROLLBACK would turn a trigger's OR IGNORE into its own).
func (e Engine) InstallCapture(t engine.TableInfo) []string {
	stmts := e.RemoveCapture(t.Name)
	table := e.Quote(t.Name)
	name := quoteText(t.Name)
	key := t.Key()
	if len(key) == 0 {
		msg := quoteText(fmt.Sprintf("tandem: table %s has no primary key; tandem mirrors rows by key, so it refuses writes to it: give it a primary key", t.Name))
		for _, ev := range []struct{ kind, event string }{{"ni", "INSERT"}, {"nu", "UPDATE"}, {"nd", "DELETE"}} {
			stmts = append(stmts, fmt.Sprintf("CREATE TRIGGER %s BEFORE %s ON %s WHEN tandem_capture('') BEGIN SELECT RAISE(ABORT, %s); END",
				e.Quote(engine.CaptureObject(ev.kind, t.Name)), ev.event, table, msg))
		}
		return stmts
	}
	capt := e.Quote(engine.CaptureName(t.Name))
	cols := make([]string, len(key))
	defs := make([]string, len(key))
	for i, ci := range key {
		c := t.Columns[ci]
		cols[i] = e.Quote(c.Name)
		defs[i] = cols[i] + " " + c.Type
	}
	stmts = append(stmts, fmt.Sprintf("CREATE TABLE %s (%s, PRIMARY KEY (%s)) WITHOUT ROWID", capt, strings.Join(defs, ", "), strings.Join(cols, ", ")))
	insert := func(row string) string {
		vals := make([]string, len(cols))
		conds := make([]string, len(cols))
		for i, c := range cols {
			vals[i] = row + "." + c
			conds[i] = c + " IS " + vals[i]
		}
		return fmt.Sprintf("INSERT INTO %s (%s) SELECT %s WHERE NOT EXISTS (SELECT 1 FROM %s WHERE %s);",
			capt, strings.Join(cols, ", "), strings.Join(vals, ", "), capt, strings.Join(conds, " AND "))
	}
	when := "tandem_capture(" + name + ")"
	stmts = append(stmts,
		fmt.Sprintf("CREATE TRIGGER %s AFTER INSERT ON %s WHEN %s BEGIN %s END", e.Quote(engine.CaptureObject("ai", t.Name)), table, when, insert("NEW")),
		fmt.Sprintf("CREATE TRIGGER %s AFTER UPDATE ON %s WHEN %s BEGIN %s %s END", e.Quote(engine.CaptureObject("au", t.Name)), table, when, insert("OLD"), insert("NEW")),
		fmt.Sprintf("CREATE TRIGGER %s AFTER DELETE ON %s WHEN %s BEGIN %s END", e.Quote(engine.CaptureObject("ad", t.Name)), table, when, insert("OLD")),
	)
	return stmts
}

// RemoveCapture implements engine.Capturer.
func (e Engine) RemoveCapture(name string) []string {
	var stmts []string
	for _, kind := range []string{"ai", "au", "ad", "ni", "nu", "nd"} {
		stmts = append(stmts, "DROP TRIGGER IF EXISTS "+e.Quote(engine.CaptureObject(kind, name)))
	}
	return append(stmts, "DROP TABLE IF EXISTS "+e.Quote(engine.CaptureName(name)))
}

// CaptureOn implements engine.Capturer.
func (Engine) CaptureOn() string { return "SELECT tandem_capture_on()" }

// ApplyOn implements engine.Capturer: SQLite cannot switch a connection's
// triggers off, and foreign_keys cannot change inside a transaction.
func (Engine) ApplyOn() string { return "" }

// Touched implements engine.Capturer.
func (Engine) Touched(ctx context.Context, q engine.QueryExecer) ([]string, error) {
	list, err := engine.QueryStrings(ctx, q, "SELECT tandem_touched()")
	if err != nil || len(list) == 0 {
		return nil, err
	}
	var out []string
	if err := json.Unmarshal([]byte(list[0]), &out); err != nil {
		return nil, fmt.Errorf("tables touched: %w", err)
	}
	return out, nil
}

// Captured implements engine.Capturer.
func (Engine) Captured(ctx context.Context, q engine.Querier) (captured, refused []string, err error) {
	if captured, err = engine.QueryStrings(ctx, q, `SELECT tbl_name FROM sqlite_schema WHERE type = 'trigger' AND name LIKE '\_tandem\_ai\_%' ESCAPE '\' ORDER BY tbl_name`); err != nil {
		return nil, nil, err
	}
	refused, err = engine.QueryStrings(ctx, q, `SELECT tbl_name FROM sqlite_schema WHERE type = 'trigger' AND name LIKE '\_tandem\_ni\_%' ESCAPE '\' ORDER BY tbl_name`)
	return captured, refused, err
}

// quoteText quotes s as a SQL string literal.
func quoteText(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// ReadOnly implements engine.Capturer: the read pool is query_only.
func (Engine) ReadOnly(err error) bool {
	var e *sqlite3.Error
	return errors.As(err, &e) && e.Code() == sqlite3.READONLY
}

// SyncSequences implements engine.Capturer: nothing to do. A rowid is one
// more than the largest the table holds, and AUTOINCREMENT's counter
// (sqlite_sequence) follows every rowid inserted, explicit ones too.
func (Engine) SyncSequences(context.Context, engine.Execer) error { return nil }

// SchemaVersion implements engine.Capturer: PRAGMA schema_version, which
// SQLite bumps on every change of the schema, whoever makes it.
func (Engine) SchemaVersion(ctx context.Context, q engine.Querier) (int64, error) {
	rows, err := q.QueryContext(ctx, "PRAGMA schema_version")
	if err != nil {
		return 0, err
	}
	var v int64
	if rows.Next() {
		err = rows.Scan(&v)
	}
	if cerr := engine.CloseRows(rows); err == nil {
		err = cerr
	}
	return v, err
}

// CaptureOff implements engine.Capturer: capture ends with the transaction.
func (Engine) CaptureOff() string { return "" }

// CaptureOwner implements engine.Capturer: a transaction sees no other's
// captured keys.
func (Engine) CaptureOwner() (column, value string) { return "", "" }

// TransactionalDDL implements engine.Capturer.
func (Engine) TransactionalDDL() bool { return true }

// Refuse implements engine.Capturer: the triggers see every statement.
func (Engine) Refuse(string) string { return "" }
