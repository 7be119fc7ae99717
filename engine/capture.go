package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
)

// Capturer is implemented by engines on which tandem captures, with
// triggers, the keys of the rows any SQL statement changes (Cluster.Exec
// and the database/sql driver run the application's SQL on the primary
// and ship the captured rows to the secondaries).
//
// Every replicated table gets a capture table (CaptureName) holding its
// key columns, and triggers that, in a transaction that turned capture on
// (CaptureOn), put the key of every row a statement inserts, updates
// (old and new key) or deletes into it; tandem reads the current rows of
// those keys, ships them, and empties the capture table before the
// transaction commits, so it is empty to every other transaction.
//
// tandem's own connections write with capture off (their writes are rows
// tandem already knows). Any other connection that writes a captured
// table is refused by the triggers, with an error that says so, unless
// the operator says the write is meant to bypass tandem (an emergency fix
// of one database; the engine's doc says how).
type Capturer interface {
	// InstallCapture returns the statements that install capture on t
	// (its capture table and triggers), replacing what an earlier
	// definition of t installed. A table without a primary key cannot be
	// mirrored by key: its triggers refuse every write made through
	// tandem or around it, naming the table.
	InstallCapture(t TableInfo) []string

	// RemoveCapture returns the statements that remove capture from the
	// table called name (before the table is dropped, or when capture is
	// turned off), each doing nothing when there is none.
	RemoveCapture(name string) []string

	// CaptureOn returns the statement that turns capture on until the
	// transaction it runs in ends (or CaptureOff runs).
	CaptureOn() string

	// CaptureOff returns the statement that turns capture off again on
	// the connection once a capturing transaction ended, where the
	// setting outlives the transaction; "" where it does not.
	CaptureOff() string

	// CaptureOwner returns the column of a capture table that names the
	// connection that captured a row, and the expression of the current
	// connection's; "" where a capture table's rows are the current
	// transaction's only (the others' are invisible to it, and emptying
	// it waits for none of them).
	CaptureOwner() (column, value string)

	// Touched returns, in the order first touched, the tables whose
	// capture tables the transaction (through q) filled since capture
	// was turned on or Touched last ran, and forgets them.
	Touched(ctx context.Context, q QueryExecer) ([]string, error)

	// TransactionalDDL reports whether a change of structure runs inside
	// a transaction, to be committed or rolled back with it; false where
	// it commits the transaction (MySQL).
	TransactionalDDL() bool

	// Refuse returns why the engine's triggers cannot capture what a
	// statement (its leading keywords, upper case) changes, or "".
	Refuse(words string) string

	// ApplyOn returns the statement that makes a transaction apply rows
	// read on another database: the application's triggers and foreign
	// key actions do not fire (the rows they wrote on the primary arrive
	// as rows of their own). "" where the engine cannot: then they fire.
	ApplyOn() string

	// Captured lists the tables that have capture installed, and those
	// whose triggers refuse writes (no primary key).
	Captured(ctx context.Context, q Querier) (captured, refused []string, err error)

	// SyncSequences moves every sequence that gives a column of a user
	// table its values past the largest value the column holds: rows a
	// database received as a secondary carry their ids explicitly, and
	// did not move its counters. tandem runs it through q, in the
	// database's first SQL write as the primary of a view.
	SyncSequences(ctx context.Context, q Execer) error

	// SchemaVersion returns a number that changes with every change of
	// the database's structure, read cheaply through q, or 0 where the
	// engine has none (then a change made around tandem is seen at the
	// next structure check).
	SchemaVersion(ctx context.Context, q Querier) (int64, error)

	// ReadOnly reports whether err is the refusal of a write on a
	// read-only connection (Conn.Read's, on engines that capture).
	ReadOnly(err error) bool
}

// QueryExecer runs queries and statements: a transaction, a connection.
type QueryExecer interface {
	Querier
	Execer
}

// CaptureName returns the name of the capture table of table: tandem's
// prefix (so introspection skips it), the table's name, and a short hash
// of it where the whole would be longer than every engine's identifiers
// may be (63 bytes, with room for CaptureObject's kinds).
func CaptureName(table string) string {
	const prefix = "_tandem_c_"
	if len(prefix)+len(table) <= 60 {
		return prefix + table
	}
	sum := sha256.Sum256([]byte(table))
	cut := table[:40]
	for len(cut) > 0 && cut[len(cut)-1]&0xC0 == 0x80 {
		cut = cut[:len(cut)-1] // do not split a UTF-8 sequence
	}
	return prefix + cut + "_" + hex.EncodeToString(sum[:4])
}

// CaptureObject returns the name of one of table's capture triggers or
// functions: tandem's prefix, kind (two letters), and the table's capture
// name's tail.
func CaptureObject(kind, table string) string {
	return "_tandem_" + kind + "_" + CaptureName(table)[len("_tandem_c_"):]
}

// CaptureVacuumer is implemented by engines on which the keys a drain
// deleted from a capture table keep their space until the table is
// vacuumed, and every later drain reads past them (PostgreSQL: after a
// statement of 100,000 rows, each drain of that table took 45 ms instead
// of 1 until autovacuum came by).
type CaptureVacuumer interface {
	// VacuumCapture returns the statement that vacuums the capture table
	// of table name; it runs outside a transaction.
	VacuumCapture(name string) string
}
