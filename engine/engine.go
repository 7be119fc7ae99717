// Package engine is the contract between tandem and one database engine.
//
// tandem's write path (package tandem) is engine-neutral: it asks an Engine
// for the SQL text of a statement, for the storage form of a value and for
// the structure of a database, and runs everything through database/sql.
// Adding an engine means implementing this interface in a sub-package of its
// own that registers itself (Register) from its init function, as
// database/sql drivers do; the write path does not change. A program links
// the engines it imports, and only those.
package engine

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Type is the logical type of a column, independent of any engine.
type Type int

// The logical column types tandem maps Go fields to.
const (
	Integer Type = iota + 1 // int64 and smaller integers
	Real                    // float64
	Text                    // string; Column.Size bounds it in characters
	Blob                    // []byte; Column.Size bounds it in bytes
	Bool                    // bool
	Time                    // time.Time, stored in UTC with microsecond precision
)

func (t Type) String() string {
	switch t {
	case Integer:
		return "integer"
	case Real:
		return "real"
	case Text:
		return "text"
	case Blob:
		return "blob"
	case Bool:
		return "bool"
	case Time:
		return "time"
	}
	return fmt.Sprintf("Type(%d)", int(t))
}

// Column describes one column of a table as tandem's models define it.
type Column struct {
	Name    string
	Type    Type
	Size    int  // maximum length for Text (characters) and Blob (bytes); 0: unbounded
	NotNull bool // the column refuses NULL
	Auto    bool // an integer primary key whose value the primary database assigns
	// Default is the column's default as a SQL literal ('' quoted text, a
	// number), or "" for none. tandem applies defaults in Go before writing,
	// so the literal only matters to writers other than tandem.
	Default string
}

// Index is a secondary index of a table.
type Index struct {
	Name    string
	Unique  bool
	Columns []string
}

// Table is a table as tandem's models define it.
type Table struct {
	Name    string
	Columns []Column
	PK      []string // primary key columns, in key order
	Indexes []Index
}

// Column returns the column called name, or nil.
func (t *Table) Column(name string) *Column {
	for i := range t.Columns {
		if t.Columns[i].Name == name {
			return &t.Columns[i]
		}
	}
	return nil
}

// TableInfo is the structure of a table as a live database reports it,
// normalised so that two databases of the same engine created from the same
// definitions report equal TableInfos.
type TableInfo struct {
	Name    string
	Columns []ColumnInfo // in table order
	Indexes []IndexInfo  // sorted by name
}

// Key returns the positions in t.Columns of the primary key's columns, in
// key order; none when the table has no primary key.
func (t TableInfo) Key() []int {
	var key []int
	for i, c := range t.Columns {
		if c.PK > 0 {
			key = append(key, i)
		}
	}
	slices.SortFunc(key, func(a, b int) int { return t.Columns[a].PK - t.Columns[b].PK })
	return key
}

// ColumnInfo is one column of a live table.
type ColumnInfo struct {
	Name    string
	Type    string // declared type, upper case
	Logical Type   // the logical type the declared type stores
	NotNull bool
	PK      int // 1-based position in the primary key; 0 when not part of it
	Default string
}

// IndexInfo is one index of a live table.
type IndexInfo struct {
	Name    string
	Unique  bool
	Columns []string
}

// String renders the column the way a diff message shows it.
func (c ColumnInfo) String() string {
	var b strings.Builder
	b.WriteString(c.Type)
	if c.NotNull {
		b.WriteString(" NOT NULL")
	}
	if c.PK > 0 {
		fmt.Fprintf(&b, " PRIMARY KEY(%d)", c.PK)
	}
	if c.Default != "" {
		b.WriteString(" DEFAULT " + c.Default)
	}
	return b.String()
}

// String renders the index the way a diff message shows it.
func (x IndexInfo) String() string {
	u := ""
	if x.Unique {
		u = "UNIQUE "
	}
	return u + "(" + strings.Join(x.Columns, ", ") + ")"
}

// Querier is what introspection needs: a *sql.DB, *sql.Conn or *sql.Tx.
type Querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// Engine is one database engine: SQLite, PostgreSQL, MySQL.
//
// Implementations hold no per-database state; a Conn holds that.
type Engine interface {
	// Name is the driver name used in configuration ("sqlite").
	Name() string

	// ResolveDSN checks a data source name from a configuration file and
	// returns it in the form Open takes. Relative file paths are resolved
	// against baseDir. It must not create or write anything. Errors must not
	// contain secrets such as passwords.
	ResolveDSN(dsn, baseDir string) (string, error)

	// Redact returns dsn with any password replaced, for logs and errors.
	Redact(dsn string) string

	// Open connects to the database.
	Open(ctx context.Context, dsn string) (*Conn, error)

	// OpenPlain connects to an existing database that tandem may never
	// have written (verify and repair take any two databases): it creates
	// nothing and changes none of the database's settings.
	OpenPlain(ctx context.Context, dsn string) (*sql.DB, error)

	// Quote quotes an identifier.
	Quote(ident string) string

	// Placeholder returns the bind placeholder for the n-th argument (1-based).
	Placeholder(n int) string

	// CreateTable returns the statements that create t and its indexes,
	// each doing nothing when its object already exists.
	CreateTable(t *Table) []string

	// Upsert returns a statement that writes a full row of t: it inserts
	// the row, or replaces every non-key column of the row with the same
	// primary key. Arguments are all columns in t.Columns order.
	Upsert(t *Table) string

	// InsertAuto returns a statement that inserts a row of t without its
	// Auto column, and whether the engine returns the assigned id as a
	// result row (RETURNING) rather than through sql.Result.LastInsertId.
	InsertAuto(t *Table) (query string, returning bool)

	// Value converts a Go value of a column's logical type (int64, float64,
	// string, []byte, bool, time.Time, or nil) to the argument this engine
	// stores, so that every database of the engine stores the same bytes.
	Value(c *Column, v any) (any, error)

	// Scan converts a value read from a column of logical type c.Type
	// (as database/sql returns it) back to the Go value Value took:
	// Scan(c, Value(c, v)) == v. Rows copied between databases, and
	// compared across engines, pass through this form.
	Scan(c *Column, v any) (any, error)

	// Tables reports the structure of every user table (tandem's own
	// bookkeeping tables excluded), sorted by name.
	Tables(ctx context.Context, q Querier) ([]TableInfo, error)

	// LimitClause renders LIMIT/OFFSET; limit < 0 means none.
	LimitClause(limit, offset int) string

	// Constraint reports whether err is a constraint violation (a unique
	// value taken, a foreign key, NOT NULL, CHECK): the statement was
	// refused for the values it wrote, not for the database's state.
	Constraint(err error) bool
}

// FileEngine is implemented by engines whose databases are files. tandem
// asks it before opening anything, so that one file is never opened under
// two names: SQLite keeps a WAL file per name, and two names of one file
// would each get their own WAL and corrupt it.
type FileEngine interface {
	// SameFile reports whether two resolved DSNs name one database file
	// (the same path, a symbolic link, or a hard link).
	SameFile(dsnA, dsnB string) bool

	// Path returns the database file a resolved DSN names.
	Path(dsn string) (string, error)
}

// SingleWriter is implemented by engines whose database admits one writer
// at a time (SQLite). tandem groups concurrent single-row writes on such a
// primary into one transaction per database: grouping costs no concurrency
// there, and saves a commit (an fsync) per write.
type SingleWriter interface {
	// StatementOnly reports whether err, returned by a statement, undid
	// that statement only and left its transaction open (a constraint
	// violation), rather than ending the transaction.
	StatementOnly(err error) bool
}

// TableChecker is implemented by engines that cannot hold every table
// tandem can define (MySQL cannot index text of unbounded length). Migrate
// asks every datasource's engine before it creates anything, so a table
// one engine of a mixed pair cannot hold exactly is refused up front rather
// than drifting apart later.
type TableChecker interface {
	// CheckTable returns an error naming the column and what to change.
	CheckTable(t *Table) error
}

// Locker is implemented by engines whose transactions take no
// database-wide lock when they begin (PostgreSQL, MySQL), where SQLite's
// BEGIN IMMEDIATE takes the file's write lock. tandem needs such a lock:
// every write takes it shared on each database it writes, so writes run
// concurrently; catch-up, the sweeper and changes of tandem's markers take
// it exclusive, so that no write reaches the database meanwhile. Taking it
// in one order (the primary's first) keeps the two from deadlocking.
type Locker interface {
	// Lock takes the lock inside tx, the transaction's first statement,
	// and holds it until tx ends. It waits while a conflicting holder
	// has it, until ctx ends.
	Lock(ctx context.Context, tx *sql.Tx, exclusive bool) error

	// RowLock is the clause (" FOR UPDATE") that makes a SELECT inside a
	// write transaction lock the rows it returns until the transaction
	// ends, so that a transaction reads what no other write can change
	// before it commits: what SQLite's write lock gives every read of a
	// write transaction.
	RowLock() string

	// Retryable reports whether err ended a transaction that can simply
	// run again: a deadlock victim, a serialization failure.
	Retryable(err error) bool
}

// AutoSyncer is implemented by engines whose auto-increment counter does
// not move when a row is written with an explicit id (PostgreSQL's
// sequences). Secondaries receive the primary's ids explicitly, so before a
// database takes auto-id inserts as the primary, tandem moves its counter
// past every id it holds.
type AutoSyncer interface {
	// SyncAuto makes the next id t's Auto column gets larger than every id
	// in the table.
	SyncAuto(ctx context.Context, q Execer, t *Table) error
}

// TableUpgrader is implemented by engines that must change the columns of
// a table made from an earlier form of its definition before CreateTable's
// index statements can run on it (MySQL indexes only bounded text: a
// tandem bookkeeping column made as LONGTEXT, now given a size, becomes
// VARCHAR). tandem runs it on its bookkeeping tables after CREATE TABLE
// IF NOT EXISTS and before their indexes.
type TableUpgrader interface {
	UpgradeTable(ctx context.Context, db interface {
		Querier
		Execer
	}, t *Table) error
}

// Execer is a *sql.DB, *sql.Conn or *sql.Tx.
type Execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// TwoPhaser is implemented by engines with a two-phase commit
// (PostgreSQL's PREPARE TRANSACTION). With Config.Commit "two-phase",
// tandem prepares a write on every secondary, commits it on the primary,
// and only then commits the prepared secondaries: no secondary ever holds
// a write its primary did not commit.
type TwoPhaser interface {
	// Prepare prepares tx, the transaction's last statement, under gid;
	// afterwards only CommitPrepared or RollbackPrepared, from any
	// connection, end the transaction.
	Prepare(ctx context.Context, tx Execer, gid string) error
	CommitPrepared(ctx context.Context, db Execer, gid string) error
	RollbackPrepared(ctx context.Context, db Execer, gid string) error
	// Prepared lists the gids, starting with prefix, of the database's
	// transactions prepared at least age ago and not ended since.
	Prepared(ctx context.Context, q Querier, prefix string, age time.Duration) ([]string, error)
}

// WithInserter is implemented by engines whose write statements can insert
// a row into another table along the way (PostgreSQL's data-modifying
// WITH). tandem then records each key a write touches, its intent record,
// in the statement that writes the key, instead of in one statement more
// per database when the write commits.
type WithInserter interface {
	// WithInsert returns stmt, an INSERT, UPDATE or DELETE with n
	// placeholders, made to also run insert, an INSERT whose placeholders
	// are numbered from n+1. The statement's result (rows affected, rows
	// returned) stays stmt's.
	WithInsert(stmt, insert string) string
}

// StallBounder is implemented by engines whose driver cannot interrupt
// every call when its context ends (go-sql-driver/mysql's Commit takes no
// context). tandem gives such an engine, when it opens a database, the time
// after which a connection whose server stops answering is to be closed.
type StallBounder interface {
	// BoundStalls returns dsn with reads and writes on its connections
	// bounded by d, unless the DSN sets bounds of its own.
	BoundStalls(dsn string, d time.Duration) (string, error)
}

// Checksummer is implemented by engines that checksum rows inside the
// database, so that comparing two databases of the engine moves a count
// and a sum per range of keys instead of the rows.
type Checksummer interface {
	// Checksum returns an aggregate SQL expression over the given quoted
	// columns, valid on connections OpenPlain returns, whose value is an
	// int64: the sum, wrapping at 2^64, of a 64-bit hash of each row's
	// stored values. The hash sees types: the integer 1, the real 1.0 and
	// the text '1' hash differently, as NULL and the empty string do.
	// Equal rows give equal sums on every database of the engine.
	Checksum(cols []string) string

	// Stored returns an expression that selects the column's stored value
	// so that the driver returns it as stored (int64, float64, string,
	// []byte or nil), converting nothing: what Checksum hashes.
	Stored(col string) string
}

// Conn is an open database: a pool for writes and one for reads.
//
// Engines whose database admits a single writer at a time (SQLite) give
// Write one connection, so that writers in one process queue in Go instead
// of polling the database's lock.
type Conn struct {
	Write *sql.DB
	Read  *sql.DB
}

// Close closes both pools.
func (c *Conn) Close() error {
	err := c.Write.Close()
	if c.Read != c.Write {
		if err2 := c.Read.Close(); err == nil {
			err = err2
		}
	}
	return err
}

// QuoteList quotes each name with quote and joins them with ", ".
func QuoteList(quote func(string) string, names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = quote(n)
	}
	return strings.Join(q, ", ")
}

// IndexStatements returns the statements that create t's indexes, each
// doing nothing when the index exists (the form every engine takes).
func IndexStatements(t *Table, quote func(string) string) []string {
	var stmts []string
	for _, x := range t.Indexes {
		u := ""
		if x.Unique {
			u = "UNIQUE "
		}
		stmts = append(stmts, fmt.Sprintf("CREATE %sINDEX IF NOT EXISTS %s ON %s (%s)", u, quote(x.Name), quote(t.Name), QuoteList(quote, x.Columns)))
	}
	return stmts
}

// CloseRows closes rows and returns the first error of iterating or
// closing them.
func CloseRows(rows *sql.Rows) error {
	err := rows.Err()
	if err2 := rows.Close(); err == nil {
		err = err2
	}
	return err
}

// QueryStrings runs a query whose rows hold one text column and returns
// the values.
func QueryStrings(ctx context.Context, q Querier, query string, args ...any) ([]string, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			rows.Close()
			return nil, err
		}
		out = append(out, s)
	}
	return out, CloseRows(rows)
}
