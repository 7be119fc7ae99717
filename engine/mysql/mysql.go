// Package mysql is tandem's engine for MariaDB (10.5 and later) and MySQL,
// through github.com/go-sql-driver/mysql.
//
// # Types
//
//	Integer  BIGINT (Auto: BIGINT NOT NULL AUTO_INCREMENT)
//	Real     DOUBLE; NaN and ±Inf are refused, -0.0 is stored as 0.0
//	Text     VARCHAR(Size), or LONGTEXT without a size; utf8mb4_nopad_bin
//	Blob     VARBINARY(Size), or LONGBLOB without a size
//	Bool     BOOLEAN (TINYINT(1)), 0 or 1
//	Time     DATETIME(6) holding UTC; years 1000 to 9999
//
// Text compares byte by byte, trailing spaces included (utf8mb4_nopad_bin):
// keys order as on SQLite and on PostgreSQL's "C" collation, and 'a' and
// 'a ' are two keys. Reading a database tandem did not create, DECIMAL
// columns read as Text (the exact digits), FLOAT and DOUBLE as Real.
//
// # Connections
//
// Every connection runs with time_zone '+00:00', READ COMMITTED and a
// strict sql_mode: a value that does not fit is an error, not a
// truncation; an explicit id 0 stays 0; a backslash in a string literal is
// a backslash, as in standard SQL. See ResolveDSN for the DSN parameters.
//
// tandem's database-wide lock (engine.Locker) is a row of _tandem_lock,
// read FOR UPDATE (exclusive) or LOCK IN SHARE MODE (shared). There is no
// engine.AutoSyncer: InnoDB moves an AUTO_INCREMENT counter past every id
// written explicitly, and persists it across restarts (MariaDB 10.2.4 and
// later, MySQL 8).
//
// # Upsert and secondary unique indexes
//
// INSERT ... ON DUPLICATE KEY UPDATE fires on any unique index, not only
// on the primary key: a row whose unique column collides with another
// row's would silently update that other row. Upsert therefore guards its
// update: when the colliding row's primary key differs from the new row's,
// it sets the first key column to NULL, which the strict sql_mode refuses
// with error 1048 (SQLSTATE 23000, "Column 'id' cannot be null"). A unique
// violation on another row is thus an error, as on the other engines, if
// one whose text names the key column rather than the index.
//
// # MySQL 8
//
// Written and tested against MariaDB 10.11. MySQL 8 would need:
// utf8mb4_0900_bin instead of utf8mb4_nopad_bin (both NO PAD, byte order);
// the session variable transaction_isolation instead of tx_isolation;
// CREATE INDEX without IF NOT EXISTS (look the index up first); defaults
// of TEXT and BLOB columns as expressions, DEFAULT ('x'); and, from 8.0.20,
// a row alias in Upsert instead of the deprecated VALUES(). Tables expects
// MariaDB's quoting of defaults ('text', not text).
package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-sql-driver/mysql"

	"github.com/tandemdb/tandem/engine"
)

// Engine is the MySQL/MariaDB engine. Its zero value is ready to use.
type Engine struct{}

var (
	_ engine.Engine       = Engine{}
	_ engine.StallBounder = Engine{}
	_ engine.Locker       = Engine{}
	_ engine.TableChecker = Engine{}
)

// init registers the engine under its name, so that a program that imports
// this package can open datasources with driver "mysql".
func init() { engine.Register("mysql", Engine{}) }

// Name implements engine.Engine.
func (Engine) Name() string { return "mysql" }

// ResolveDSN implements engine.Engine. It takes the driver's form,
// user:password@tcp(host:port)/dbname?param=value, requires a database name,
// and returns the DSN with tandem's settings: parseTime=true, UTC,
// interpolateParams=true (one round trip per statement), the utf8mb4
// collation and the session variables of the package doc. A DSN may set
// the driver's connection options (timeout, readTimeout, writeTimeout,
// tls, compress, rejectReadOnly, ...) and the session
// timeouts innodb_lock_wait_timeout, lock_wait_timeout, max_statement_time,
// net_read_timeout, net_write_timeout and wait_timeout; other parameters
// are refused with the reason, as is a different value for a setting tandem
// makes. It connects to nothing.
func (Engine) ResolveDSN(dsn, _ string) (string, error) {
	cfg, err := config(dsn)
	if err != nil {
		return "", err
	}
	return cfg.FormatDSN(), nil
}

// Redact implements engine.Engine: the DSN with its password replaced by
// xxxxx. Text that is no DSN (an error message) comes back unchanged.
func (Engine) Redact(dsn string) string { return redact(dsn) }

// lockTable holds the row whose lock is tandem's database-wide lock.
const lockTable = "_tandem_lock"

// openDB opens a pool whose connections set, besides tandem's session
// variables, those of extra.
func openDB(dsn string, extra map[string]string) (*sql.DB, error) {
	cfg, err := config(dsn)
	if err != nil {
		return nil, err
	}
	for k, v := range extra {
		cfg.Params[k] = v
	}
	c, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("%s", scrub(err.Error(), cfg.Passwd))
	}
	db := sql.OpenDB(c)
	db.SetMaxOpenConns(32)
	db.SetMaxIdleConns(16)
	// Connections end before a server's wait_timeout or a proxy's idle
	// timeout would cut them.
	db.SetConnMaxLifetime(3 * time.Minute)
	return db, nil
}

// BoundStalls implements engine.StallBounder: the driver's readTimeout and
// writeTimeout, which close a connection that waits longer than d for the
// server (go-sql-driver/mysql interrupts a query when its context ends, but
// not a commit).
func (Engine) BoundStalls(dsn string, d time.Duration) (string, error) {
	cfg, err := parse(dsn)
	if err != nil {
		return "", parseError(dsn)
	}
	if cfg.ReadTimeout == 0 {
		cfg.ReadTimeout = d
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = d
	}
	return cfg.FormatDSN(), nil
}

// readSession is the read pool's (Open): its transactions are read-only,
// so a statement sent as a read that writes is refused, not written on
// one database.
var readSession = map[string]string{captureVar: "'off'", "tx_read_only": "1"}

// Open implements engine.Engine. Reads have a pool of their own, whose
// sessions are read-only. Open creates tandem's lock table: DDL commits
// implicitly, so it cannot wait for the first transaction.
func (Engine) Open(ctx context.Context, dsn string) (*engine.Conn, error) {
	db, err := openDB(dsn, captureSession)
	if err != nil {
		return nil, err
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect: %w", err)
	}
	if err := createLock(ctx, db); err != nil {
		db.Close()
		return nil, fmt.Errorf("create %s: %w", lockTable, err)
	}
	r, err := openDB(dsn, readSession)
	if err != nil {
		db.Close()
		return nil, err
	}
	r.SetMaxOpenConns(16)
	r.SetMaxIdleConns(8)
	return &engine.Conn{Write: db, Read: r}, nil
}

// createLock makes the lock table and its row unless they are there. It
// looks first, with a read that takes no lock: INSERT IGNORE of the row
// would wait for every holder of the lock.
func createLock(ctx context.Context, db *sql.DB) error {
	var id int
	err := db.QueryRowContext(ctx, "SELECT id FROM "+lockTable+" WHERE id = 1").Scan(&id)
	var me *mysql.MySQLError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, sql.ErrNoRows), errors.As(err, &me) && me.Number == 1146: // no such table
	default:
		return err
	}
	if _, err := db.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS "+lockTable+
		" (id INT NOT NULL PRIMARY KEY) ENGINE=InnoDB"); err != nil {
		return err
	}
	_, err = db.ExecContext(ctx, "INSERT IGNORE INTO "+lockTable+" (id) VALUES (1)")
	return err
}

// OpenPlain implements engine.Engine. The session variables it sets last
// as long as the connection.
func (Engine) OpenPlain(ctx context.Context, dsn string) (*sql.DB, error) {
	// Repair writes rows as tandem does: not captured, not refused.
	db, err := openDB(dsn, captureSession)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(8)
	db.SetMaxIdleConns(8)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect: %w", err)
	}
	return db, nil
}

// Lock implements engine.Locker: a locking read of _tandem_lock's row.
// InnoDB's lock waits end after innodb_lock_wait_timeout (50 s unless the
// DSN sets it) if ctx does not end them first.
func (Engine) Lock(ctx context.Context, tx *sql.Tx, exclusive bool) error {
	q := "SELECT id FROM " + lockTable + " WHERE id = 1 LOCK IN SHARE MODE"
	if exclusive {
		q = "SELECT id FROM " + lockTable + " WHERE id = 1 FOR UPDATE"
	}
	var id int
	err := tx.QueryRowContext(ctx, q).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s has lost its row: open the database with tandem to restore it", lockTable)
	}
	return err
}

// RowLock implements engine.Locker. MySQL takes it after LIMIT, as tandem
// appends it.
func (Engine) RowLock() string { return " FOR UPDATE" }

// Retryable implements engine.Locker: a deadlock victim (error 1213,
// SQLSTATE 40001), whose transaction InnoDB has rolled back. A lock wait
// timeout (1205) is not: it undoes the statement only, and the
// transaction stays open.
func (Engine) Retryable(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && (me.Number == 1213 || string(me.SQLState[:]) == "40001")
}

// Constraint implements engine.Engine: SQLSTATE class 23 (a duplicate
// entry, a foreign key, a NULL refused: 1062, 1451, 1452, 1048) and
// MariaDB's failed CHECK (4025, SQLSTATE 23000 too).
func (Engine) Constraint(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && string(me.SQLState[:2]) == "23"
}

// Quote implements engine.Engine.
func (Engine) Quote(ident string) string {
	return "`" + strings.ReplaceAll(ident, "`", "``") + "`"
}

// Placeholder implements engine.Engine.
func (Engine) Placeholder(int) string { return "?" }

// textType is the character set and collation of every text column.
const textType = " CHARACTER SET utf8mb4 COLLATE " + collation

func sqlType(c *engine.Column) string {
	switch c.Type {
	case engine.Integer:
		return "BIGINT"
	case engine.Real:
		return "DOUBLE"
	case engine.Text:
		if c.Size > 0 {
			return fmt.Sprintf("VARCHAR(%d)", c.Size) + textType
		}
		return "LONGTEXT" + textType
	case engine.Blob:
		if c.Size > 0 {
			return fmt.Sprintf("VARBINARY(%d)", c.Size)
		}
		return "LONGBLOB"
	case engine.Bool:
		return "BOOLEAN"
	case engine.Time:
		return "DATETIME(6)"
	}
	panic(fmt.Sprintf("mysql: no SQL type for %v", c.Type))
}

// UpgradeTable implements engine.TableUpgrader: each text column that t
// gives a size and the live table holds as unbounded text (TEXT,
// LONGTEXT: _tandem_pending's key before it was indexed) becomes t's
// VARCHAR. A table already in that form is left as it is.
func (e Engine) UpgradeTable(ctx context.Context, db interface {
	engine.Querier
	engine.Execer
}, t *engine.Table) error {
	names, err := engine.QueryStrings(ctx, db, "SELECT COLUMN_NAME FROM information_schema.COLUMNS"+
		" WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND DATA_TYPE IN ('tinytext', 'text', 'mediumtext', 'longtext')", t.Name)
	if err != nil {
		return fmt.Errorf("read the columns of %s: %w", t.Name, err)
	}
	for _, name := range names {
		c := t.Column(name)
		if c == nil || c.Type != engine.Text || c.Size == 0 {
			continue
		}
		stmt := fmt.Sprintf("ALTER TABLE %s MODIFY %s %s", e.Quote(t.Name), e.Quote(c.Name), sqlType(c))
		if c.NotNull {
			stmt += " NOT NULL"
		}
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("%s: %w", stmt, err)
		}
	}
	return nil
}

// CreateTable implements engine.Engine.
func (e Engine) CreateTable(t *engine.Table) []string {
	var b strings.Builder
	fmt.Fprintf(&b, "CREATE TABLE IF NOT EXISTS %s (", e.Quote(t.Name))
	for i := range t.Columns {
		c := &t.Columns[i]
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %s", e.Quote(c.Name), sqlType(c))
		if c.NotNull || c.Auto {
			b.WriteString(" NOT NULL")
		}
		if c.Auto {
			b.WriteString(" AUTO_INCREMENT")
		}
		if c.Default != "" {
			b.WriteString(" DEFAULT " + c.Default)
		}
	}
	if len(t.PK) > 0 {
		fmt.Fprintf(&b, ", PRIMARY KEY (%s)", e.list(t.PK))
	}
	b.WriteString(") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=" + collation)
	return append([]string{b.String()}, engine.IndexStatements(t, e.Quote)...)
}

func (e Engine) list(names []string) string { return engine.QuoteList(e.Quote, names) }

// Upsert implements engine.Engine. The first assignment of ON DUPLICATE KEY
// UPDATE keeps the row's key when the row it collided with has the new
// row's primary key, and sets it to NULL (an error) when the collision was
// on a secondary unique index with another row; see the package doc.
// Assignments run left to right, so the guard sees the old row.
func (e Engine) Upsert(t *engine.Table) string {
	names := make([]string, len(t.Columns))
	for i := range t.Columns {
		names[i] = t.Columns[i].Name
	}
	var b strings.Builder
	fmt.Fprintf(&b, "INSERT INTO %s (%s) VALUES (%s)", e.Quote(t.Name), e.list(names), marks(len(names)))
	if len(t.PK) == 0 {
		return b.String() // no key, nothing to replace
	}
	b.WriteString(" ON DUPLICATE KEY UPDATE ")
	same := make([]string, len(t.PK))
	for i, k := range t.PK {
		same[i] = fmt.Sprintf("%s <=> VALUES(%s)", e.Quote(k), e.Quote(k))
	}
	first := e.Quote(t.PK[0])
	fmt.Fprintf(&b, "%s = IF(%s, %s, NULL)", first, strings.Join(same, " AND "), first)
	for _, n := range names {
		if !contains(t.PK, n) {
			fmt.Fprintf(&b, ", %s = VALUES(%s)", e.Quote(n), e.Quote(n))
		}
	}
	return b.String()
}

// InsertAuto implements engine.Engine: the id comes back through
// LastInsertId.
func (e Engine) InsertAuto(t *engine.Table) (string, bool) {
	var names []string
	for i := range t.Columns {
		if !t.Columns[i].Auto {
			names = append(names, t.Columns[i].Name)
		}
	}
	return fmt.Sprintf("INSERT INTO %s (%s) VALUES (%s)", e.Quote(t.Name), e.list(names), marks(len(names))), false
}

func marks(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TimeFormat is how times are sent: UTC, to the microsecond, in the form
// DATETIME(6) parses, so that no driver setting can shift them.
const TimeFormat = "2006-01-02 15:04:05.000000"

// Value implements engine.Engine. It goes by the Go type of v (query
// arguments come with no column type), and refuses, with the reason, what
// MySQL cannot store exactly.
func (Engine) Value(c *engine.Column, v any) (any, error) {
	switch x := v.(type) {
	case bool:
		if x {
			return int64(1), nil
		}
		return int64(0), nil
	case float64:
		switch {
		case math.IsNaN(x):
			return nil, fmt.Errorf("NaN cannot be stored: MySQL's DOUBLE holds finite numbers only")
		case math.IsInf(x, 0):
			return nil, fmt.Errorf("%v cannot be stored: MySQL's DOUBLE holds finite numbers only", x)
		case x == 0:
			return 0.0, nil // -0.0: MySQL drops the sign; send what it stores
		}
	case string:
		if !utf8.ValidString(x) {
			return nil, fmt.Errorf("text is not valid UTF-8: MySQL's utf8mb4 columns hold UTF-8 only (store bytes as a blob)")
		}
	case time.Time:
		t := x.UTC()
		if y := t.Year(); y < 1000 || y > 9999 {
			return nil, fmt.Errorf("year %d cannot be stored: MySQL's DATETIME holds years 1000 to 9999", y)
		}
		return t.Format(TimeFormat), nil
	}
	return v, nil
}

// Scan implements engine.Engine.
func (Engine) Scan(c *engine.Column, v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch c.Type {
	case engine.Integer:
		switch x := v.(type) {
		case int64:
			return x, nil
		case uint64: // BIGINT UNSIGNED
			if x <= math.MaxInt64 {
				return int64(x), nil
			}
		case []byte: // BIGINT UNSIGNED beyond int64, in text results
			if i, err := strconv.ParseInt(string(x), 10, 64); err == nil {
				return i, nil
			}
		}
	case engine.Real:
		switch x := v.(type) {
		case float64:
			return x, nil
		case float32:
			return float64(x), nil
		}
	case engine.Text:
		switch x := v.(type) {
		case []byte:
			return string(x), nil
		case string:
			return x, nil
		}
	case engine.Blob:
		switch x := v.(type) {
		case []byte:
			return x, nil
		case string:
			return []byte(x), nil
		}
	case engine.Bool:
		switch x := v.(type) {
		case int64:
			if x == 0 || x == 1 {
				return x == 1, nil
			}
		case bool:
			return x, nil
		}
	case engine.Time:
		switch x := v.(type) {
		case time.Time:
			return x.UTC(), nil
		case []byte: // a connection without parseTime
			if t, err := time.Parse("2006-01-02 15:04:05.999999", string(x)); err == nil {
				return t, nil
			}
		}
	}
	return nil, fmt.Errorf("column %s (%v): cannot read a %T value %v", c.Name, c.Type, v, v)
}

// LimitClause implements engine.Engine. MySQL has no OFFSET without LIMIT;
// the largest BIGINT UNSIGNED stands for none.
func (Engine) LimitClause(limit, offset int) string {
	switch {
	case limit < 0 && offset <= 0:
		return ""
	case limit < 0:
		return fmt.Sprintf(" LIMIT 18446744073709551615 OFFSET %d", offset)
	case offset <= 0:
		return fmt.Sprintf(" LIMIT %d", limit)
	}
	return fmt.Sprintf(" LIMIT %d OFFSET %d", limit, offset)
}
