package mysql

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/go-sql-driver/mysql"

	"github.com/tandemdb/tandem/engine"
)

var _ engine.Capturer = Engine{}

// Capture on MySQL and MariaDB. The triggers read the session variable
// @tandem_capture: 'on' in a transaction of tandem's that captures
// (CaptureOn), 'off' on every other connection of tandem's (set when it
// connects, and again when a capturing transaction ends: a session
// variable outlives the transaction), and unset on any other connection,
// whose writes to a captured table are refused with an error that says
// so. An operator's emergency fix of one database runs
// `SET @tandem_capture = 'bypass'` first: the triggers then let it
// through, uncaptured.
//
// MySQL has row triggers only: each changed row costs one insert into the
// capture table. A capture table's rows are tagged with the connection
// that captured them (CONNECTION_ID()), so that emptying it after a
// statement touches this transaction's rows only: InnoDB's DELETE would
// otherwise wait for every other writer's uncommitted keys.
//
// What MySQL's triggers do not see, and tandem therefore refuses or
// leaves to the secondaries' own definitions:
//   - TRUNCATE fires no trigger: refused (Refuse); DELETE FROM t instead.
//   - Cascaded foreign-key actions fire no trigger: a secondary's own
//     foreign keys repeat them when it applies the parent's row (so a
//     secondary must have them, as tandem's structure check requires).
//   - A change of structure commits the transaction it runs in
//     (TransactionalDDL): tandem runs it beside its lock, not inside it,
//     and refuses it inside a Tx.
//
// A secondary cannot switch the application's triggers off (ApplyOn):
// they fire as rows arrive, and the rows they wrote on the primary
// arrive after them and overwrite theirs by key.

// captureVar is the session variable the triggers read.
const captureVar = "@tandem_capture"

// ownerColumn tags a capture table's rows with the connection that
// captured them.
const ownerColumn = "tandem_conn"

// captureSession is what tandem's connections set when they connect (a
// user variable, which the driver's SET takes like a system variable).
var captureSession = map[string]string{captureVar: "'off'"}

// stripType removes from a declared type what a capture table's copy of a
// key column must not have.
var stripType = regexp.MustCompile(` AUTO_INCREMENT| ON UPDATE .*$`)

// sqlString quotes s as a SQL string literal (NO_BACKSLASH_ESCAPES is in
// tandem's sql_mode, which the triggers keep).
func sqlString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// InstallCapture implements engine.Capturer.
func (e Engine) InstallCapture(t engine.TableInfo) []string {
	stmts := e.RemoveCapture(t.Name)
	table := e.Quote(t.Name)
	key := t.Key()
	if len(key) == 0 {
		msg := sqlString(truncate("tandem: table " + t.Name + " has no primary key; tandem refuses writes to it"))
		for _, ev := range []struct{ kind, event string }{{"ni", "INSERT"}, {"nu", "UPDATE"}, {"nd", "DELETE"}} {
			stmts = append(stmts, fmt.Sprintf(`CREATE TRIGGER %s BEFORE %s ON %s FOR EACH ROW
BEGIN
	IF %s IS NULL OR %s NOT IN ('off', 'bypass') THEN
		SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = %s;
	END IF;
END`, e.Quote(engine.CaptureObject(ev.kind, t.Name)), ev.event, table, captureVar, captureVar, msg))
		}
		return stmts
	}
	capt := e.Quote(engine.CaptureName(t.Name))
	cols := make([]string, len(key))
	defs := []string{ownerColumn + " BIGINT UNSIGNED NOT NULL"}
	for i, ci := range key {
		c := t.Columns[ci]
		cols[i] = e.Quote(c.Name)
		defs = append(defs, cols[i]+" "+stripType.ReplaceAllString(c.Type, "")+" NOT NULL")
	}
	stmts = append(stmts, fmt.Sprintf("CREATE TABLE %s (%s, PRIMARY KEY (%s, %s)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=%s",
		capt, strings.Join(defs, ", "), ownerColumn, strings.Join(cols, ", "), collation))
	name := sqlString(t.Name)
	sep := "CHAR(31 USING utf8mb4)"
	note := func(row string) string {
		vals := make([]string, len(cols))
		for i, c := range cols {
			vals[i] = row + "." + c
		}
		return fmt.Sprintf("INSERT INTO %s (%s, %s) VALUES (CONNECTION_ID(), %s) ON DUPLICATE KEY UPDATE %s = %s;",
			capt, ownerColumn, strings.Join(cols, ", "), strings.Join(vals, ", "), ownerColumn, ownerColumn)
	}
	// Before each row: refuse a write around tandem, and note the table
	// as touched. Before, so that a table is touched ahead of the tables
	// its application's after triggers write: a secondary applies the
	// tables in that order, and the rows those triggers write there are
	// then overwritten by the primary's.
	before := func(op string) string {
		refusal := sqlString(truncate("tandem: " + op + " on table " + t.Name + " bypasses tandem; SET @tandem_capture = 'bypass' for a fix of this database alone"))
		return fmt.Sprintf(`BEGIN
	IF %[1]s = 'on' THEN
		IF LOCATE(CONCAT(%[2]s, %[3]s, %[2]s), CONCAT(%[2]s, IFNULL(@tandem_touched, ''))) = 0 THEN
			SET @tandem_touched = CONCAT(IFNULL(@tandem_touched, ''), %[3]s, %[2]s);
		END IF;
	ELSEIF %[1]s IS NULL OR %[1]s NOT IN ('off', 'bypass') THEN
		SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = %[4]s;
	END IF;
END`, captureVar, sep, name, refusal)
	}
	// After each row: its key (an auto-increment id is known only then).
	after := func(body string) string {
		return fmt.Sprintf("BEGIN\n\tIF %s = 'on' THEN\n\t\t%s\n\tEND IF;\nEND", captureVar, body)
	}
	same := make([]string, len(cols))
	for i, c := range cols {
		same[i] = "OLD." + c + " <=> NEW." + c
	}
	update := note("OLD") + fmt.Sprintf("\n\t\tIF NOT (%s) THEN %s END IF;", strings.Join(same, " AND "), note("NEW"))
	for _, ev := range []struct{ b, a, event, body string }{
		{"bi", "ai", "INSERT", note("NEW")},
		{"bu", "au", "UPDATE", update},
		{"bd", "ad", "DELETE", note("OLD")},
	} {
		stmts = append(stmts,
			fmt.Sprintf("CREATE TRIGGER %s BEFORE %s ON %s FOR EACH ROW\n%s", e.Quote(engine.CaptureObject(ev.b, t.Name)), ev.event, table, before(ev.event)),
			fmt.Sprintf("CREATE TRIGGER %s AFTER %s ON %s FOR EACH ROW\n%s", e.Quote(engine.CaptureObject(ev.a, t.Name)), ev.event, table, after(ev.body)))
	}
	return stmts
}

// truncate cuts a trigger's message to SIGNAL's 128 characters.
func truncate(s string) string {
	r := []rune(s)
	if len(r) <= 128 {
		return s
	}
	return string(r[:125]) + "..."
}

// RemoveCapture implements engine.Capturer.
func (e Engine) RemoveCapture(name string) []string {
	var stmts []string
	for _, kind := range []string{"bi", "bu", "bd", "ai", "au", "ad", "ni", "nu", "nd"} {
		stmts = append(stmts, "DROP TRIGGER IF EXISTS "+e.Quote(engine.CaptureObject(kind, name)))
	}
	return append(stmts, "DROP TABLE IF EXISTS "+e.Quote(engine.CaptureName(name)))
}

// CaptureOn implements engine.Capturer.
func (Engine) CaptureOn() string { return "SET " + captureVar + " = 'on', @tandem_touched = ''" }

// CaptureOff implements engine.Capturer: a session variable outlives the
// transaction that set it.
func (Engine) CaptureOff() string { return "SET " + captureVar + " = 'off', @tandem_touched = ''" }

// CaptureOwner implements engine.Capturer: the connection's id.
func (Engine) CaptureOwner() (column, value string) { return ownerColumn, "CONNECTION_ID()" }

// TransactionalDDL implements engine.Capturer: MySQL commits the
// transaction a change of structure runs in.
func (Engine) TransactionalDDL() bool { return false }

// Refuse implements engine.Capturer.
func (Engine) Refuse(words string) string {
	if strings.HasPrefix(words, "TRUNCATE") {
		return "TRUNCATE fires no trigger on MySQL, so tandem would not see the rows it deletes: use DELETE FROM"
	}
	return ""
}

// ApplyOn implements engine.Capturer: MySQL cannot switch a session's
// triggers off.
func (Engine) ApplyOn() string { return "" }

// Touched implements engine.Capturer. The variable is read, then emptied:
// MySQL leaves undefined the order in which one statement's expressions
// read and assign a variable.
func (Engine) Touched(ctx context.Context, q engine.QueryExecer) ([]string, error) {
	list, err := engine.QueryStrings(ctx, q, "SELECT IFNULL(@tandem_touched, '')")
	if err != nil || len(list) == 0 || list[0] == "" {
		return nil, err
	}
	if _, err := q.ExecContext(ctx, "SET @tandem_touched = ''"); err != nil {
		return nil, err
	}
	return strings.Split(strings.TrimSuffix(list[0], "\x1f"), "\x1f"), nil
}

// Captured implements engine.Capturer.
func (Engine) Captured(ctx context.Context, q engine.Querier) (captured, refused []string, err error) {
	const query = `SELECT DISTINCT event_object_table FROM information_schema.triggers
		WHERE trigger_schema = DATABASE() AND CAST(trigger_name AS BINARY) LIKE ? ESCAPE '!' ORDER BY 1`
	if captured, err = strings1(ctx, q, query, "!_tandem!_ai!_%"); err != nil {
		return nil, nil, err
	}
	refused, err = strings1(ctx, q, query, "!_tandem!_ni!_%")
	return captured, refused, err
}

// ReadOnly implements engine.Capturer: error 1792, a write in a read-only
// transaction (the read pool's sessions are tx_read_only).
func (Engine) ReadOnly(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && me.Number == 1792
}

// SyncSequences implements engine.Capturer: nothing to do. InnoDB moves
// an AUTO_INCREMENT counter past every id written explicitly.
func (Engine) SyncSequences(context.Context, engine.Execer) error { return nil }

// SchemaVersion implements engine.Capturer: MySQL keeps no such number;
// a table created around tandem is seen at the next structure check.
func (Engine) SchemaVersion(context.Context, engine.Querier) (int64, error) { return 0, nil }
