package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tandemdb/tandem/engine"
)

var _ engine.Capturer = Engine{}

// Capture on PostgreSQL. The triggers read the setting tandem.capture:
// "on" in a transaction of tandem's that captures (CaptureOn, SET LOCAL),
// "off" on every other connection of tandem's (set when it connects), and
// unset on any other connection, whose writes to a captured table are
// refused with an error that says so. An operator's emergency fix of one
// database runs `SET tandem.capture = 'bypass'` first: the triggers then
// let it through, uncaptured.
//
// The triggers are statement triggers with transition tables: one call
// per statement, one INSERT ... SELECT of its keys, however many rows it
// changed. The capture table is UNLOGGED: it is empty whenever a
// transaction commits, so there is nothing in it to keep through a crash,
// and its rows cost no WAL.

// captureSession is what tandem's connections set when they connect:
// their writes are tandem's own (model writes, catch-up, repair), not
// captured, and not refused.
var captureSession = map[string]string{"tandem.capture": "off"}

// touchedSep separates the table names in the setting tandem.touched.
const touchedSep = "\x1f"

// InstallCapture implements engine.Capturer.
func (e Engine) InstallCapture(t engine.TableInfo) []string {
	stmts := e.RemoveCapture(t.Name)
	table := e.Quote(t.Name)
	key := t.Key()
	if len(key) == 0 {
		fn := e.Quote(engine.CaptureObject("nk", t.Name))
		stmts = append(stmts,
			fmt.Sprintf(`CREATE OR REPLACE FUNCTION %s() RETURNS trigger LANGUAGE plpgsql AS $tandem$
BEGIN
	IF current_setting('tandem.capture', true) IN ('off', 'bypass') THEN
		RETURN NULL;
	END IF;
	RAISE EXCEPTION 'tandem: table %% has no primary key; tandem mirrors rows by key, so it refuses writes to it', TG_TABLE_NAME
		USING HINT = 'Give the table a primary key.';
END $tandem$`, fn),
			fmt.Sprintf("CREATE TRIGGER _tandem_nokey BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON %s FOR EACH STATEMENT EXECUTE FUNCTION %s()", table, fn))
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
	list := strings.Join(cols, ", ")
	fn := e.Quote(engine.CaptureObject("cf", t.Name))
	name := quoteLiteral(t.Name)
	stmts = append(stmts,
		fmt.Sprintf("CREATE UNLOGGED TABLE %s (%s, PRIMARY KEY (%s))", capt, strings.Join(defs, ", "), list),
		fmt.Sprintf(`CREATE OR REPLACE FUNCTION %[1]s() RETURNS trigger LANGUAGE plpgsql AS $tandem$
DECLARE
	mode text := current_setting('tandem.capture', true);
	touched text := coalesce(current_setting('tandem.touched', true), '');
BEGIN
	IF mode IN ('off', 'bypass') THEN
		RETURN NULL;
	ELSIF mode IS DISTINCT FROM 'on' THEN
		RAISE EXCEPTION 'tandem: %% on table %% bypasses tandem, and the other databases would not get it', TG_OP, TG_TABLE_NAME
			USING HINT = 'Write through tandem; for an emergency fix of this database alone, SET tandem.capture = ''bypass'' first.';
	END IF;
	IF TG_OP IN ('INSERT', 'UPDATE') THEN
		INSERT INTO %[2]s (%[3]s) SELECT %[3]s FROM tandem_new ON CONFLICT DO NOTHING;
	END IF;
	IF TG_OP IN ('DELETE', 'UPDATE') THEN
		INSERT INTO %[2]s (%[3]s) SELECT %[3]s FROM tandem_old ON CONFLICT DO NOTHING;
	END IF;
	IF TG_OP = 'TRUNCATE' THEN
		INSERT INTO %[2]s (%[3]s) SELECT %[3]s FROM %[4]s ON CONFLICT DO NOTHING;
	END IF;
	IF position(chr(31) || %[5]s || chr(31) IN chr(31) || touched) = 0 THEN
		PERFORM set_config('tandem.touched', touched || %[5]s || chr(31), true);
	END IF;
	RETURN NULL;
END $tandem$`, fn, capt, list, table, name),
		fmt.Sprintf("CREATE TRIGGER _tandem_insert AFTER INSERT ON %s REFERENCING NEW TABLE AS tandem_new FOR EACH STATEMENT EXECUTE FUNCTION %s()", table, fn),
		fmt.Sprintf("CREATE TRIGGER _tandem_update AFTER UPDATE ON %s REFERENCING OLD TABLE AS tandem_old NEW TABLE AS tandem_new FOR EACH STATEMENT EXECUTE FUNCTION %s()", table, fn),
		fmt.Sprintf("CREATE TRIGGER _tandem_delete AFTER DELETE ON %s REFERENCING OLD TABLE AS tandem_old FOR EACH STATEMENT EXECUTE FUNCTION %s()", table, fn),
		// Before: the rows are still there to name.
		fmt.Sprintf("CREATE TRIGGER _tandem_truncate BEFORE TRUNCATE ON %s FOR EACH STATEMENT EXECUTE FUNCTION %s()", table, fn),
	)
	return stmts
}

// RemoveCapture implements engine.Capturer. The triggers go with the
// functions they call (CASCADE); the table may be gone already.
func (e Engine) RemoveCapture(name string) []string {
	return []string{
		"DROP FUNCTION IF EXISTS " + e.Quote(engine.CaptureObject("cf", name)) + "() CASCADE",
		"DROP FUNCTION IF EXISTS " + e.Quote(engine.CaptureObject("nk", name)) + "() CASCADE",
		"DROP TABLE IF EXISTS " + e.Quote(engine.CaptureName(name)),
	}
}

// CaptureOn implements engine.Capturer.
func (Engine) CaptureOn() string {
	return "SELECT set_config('tandem.capture', 'on', true), set_config('tandem.touched', '', true)"
}

// ApplyOn implements engine.Capturer: what logical replication's apply
// workers do. It needs a superuser, or a role granted SET on
// session_replication_role (PostgreSQL 15).
func (Engine) ApplyOn() string {
	return "SELECT set_config('session_replication_role', 'replica', true)"
}

// Touched implements engine.Capturer.
func (Engine) Touched(ctx context.Context, q engine.QueryExecer) ([]string, error) {
	list, err := engine.QueryStrings(ctx, q, "SELECT coalesce(current_setting('tandem.touched', true), '') || set_config('tandem.touched', '', true)")
	if err != nil || len(list) == 0 || list[0] == "" {
		return nil, err
	}
	return strings.Split(strings.TrimSuffix(list[0], touchedSep), touchedSep), nil
}

// Captured implements engine.Capturer.
func (Engine) Captured(ctx context.Context, q engine.Querier) (captured, refused []string, err error) {
	const query = `SELECT c.relname FROM pg_trigger tg
		JOIN pg_class c ON c.oid = tg.tgrelid
		JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = current_schema()
		WHERE tg.tgname = $1 ORDER BY c.relname`
	if captured, err = engine.QueryStrings(ctx, q, query, "_tandem_insert"); err != nil {
		return nil, nil, err
	}
	refused, err = engine.QueryStrings(ctx, q, query, "_tandem_nokey")
	return captured, refused, err
}

// quoteLiteral quotes s as a SQL string literal.
func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// ReadOnly implements engine.Capturer: SQLSTATE 25006,
// read_only_sql_transaction (the read pool's transactions are read-only).
func (Engine) ReadOnly(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "25006"
}

// SyncSequences implements engine.Capturer: every sequence owned by a
// column of a table of the current schema (serial, identity), moved to the
// column's largest value where that is past it.
func (Engine) SyncSequences(ctx context.Context, q engine.Execer) error {
	_, err := q.ExecContext(ctx, `DO $tandem$
DECLARE
	r record;
	m bigint;
BEGIN
	FOR r IN
		SELECT s.oid::regclass AS seq, c.oid::regclass AS tbl, a.attname AS col
		FROM pg_class s
		JOIN pg_depend d ON d.objid = s.oid AND d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
		JOIN pg_class c ON c.oid = d.refobjid
		JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = current_schema()
		JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = d.refobjsubid
		WHERE s.relkind = 'S' AND c.relname NOT LIKE '\_tandem\_%'
	LOOP
		EXECUTE format('SELECT max(%I)::bigint FROM %s', r.col, r.tbl) INTO m;
		IF m IS NOT NULL AND m > coalesce(pg_sequence_last_value(r.seq), 0) THEN
			PERFORM setval(r.seq, m);
		END IF;
	END LOOP;
END $tandem$`)
	return err
}

// SchemaVersion implements engine.Capturer: PostgreSQL keeps no such
// number (an event trigger could, but needs a superuser to install).
func (Engine) SchemaVersion(context.Context, engine.Querier) (int64, error) { return 0, nil }

// CaptureOff implements engine.Capturer: capture ends with the transaction.
func (Engine) CaptureOff() string { return "" }

// CaptureOwner implements engine.Capturer: a transaction sees no other's
// captured keys.
func (Engine) CaptureOwner() (column, value string) { return "", "" }

// TransactionalDDL implements engine.Capturer.
func (Engine) TransactionalDDL() bool { return true }

// Refuse implements engine.Capturer: the triggers see every statement.
func (Engine) Refuse(string) string { return "" }

// VacuumCapture implements engine.CaptureVacuumer.
func (e Engine) VacuumCapture(name string) string {
	return "VACUUM " + e.Quote(engine.CaptureName(name))
}
