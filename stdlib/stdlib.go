// Package stdlib is a database/sql driver over a tandem cluster, so that
// code written for database/sql (and sqlc, GORM, bun, sqlx, goose on top
// of it) keeps two or more databases identical with only its connection
// changed:
//
//	db := stdlib.OpenDB(cluster)              // over an open *tandem.Cluster
//	db, err := sql.Open("tandem", "tandem.yaml") // or from a config file
//
// Statements are the primary's dialect, with its placeholders ($1 on
// PostgreSQL, ? on SQLite and MySQL). Each statement outside a transaction
// is one write of its own (Cluster.Exec); a transaction (BeginTx) is one
// write on every database (Cluster.Begin). Reads come from the primary.
// What tandem refuses (several statements in one string, SET and PRAGMA,
// transaction control in SQL, writes to a table without a primary key) is
// refused with tandem.ErrRefused, nothing written. A transaction that
// committed nothing because the view changed or a database was left out
// fails with an error wrapping tandem.ErrNotCommitted: run it again.
//
// The package registers the driver "tandem" and links tandem's engines.
package stdlib

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/tandemdb/tandem"
	_ "github.com/tandemdb/tandem/engine/mysql"    // the engines a config may name
	_ "github.com/tandemdb/tandem/engine/postgres" //
	_ "github.com/tandemdb/tandem/engine/sqlite"   //
	"github.com/tandemdb/tandem/internal/sqltext"
)

func init() { sql.Register("tandem", Driver{}) }

// OpenDB returns a *sql.DB over c. Closing it does not close c.
func OpenDB(c *tandem.Cluster) *sql.DB {
	return sql.OpenDB(&Connector{c: c})
}

// Driver is the "tandem" driver: its name (sql.Open's second argument) is
// the path of a tandem config file. The cluster is opened once per
// sql.DB and closed with it.
type Driver struct{}

var (
	_ driver.Driver        = Driver{}
	_ driver.DriverContext = Driver{}
)

// Open implements driver.Driver; database/sql uses OpenConnector.
func (d Driver) Open(name string) (driver.Conn, error) {
	cn, err := d.OpenConnector(name)
	if err != nil {
		return nil, err
	}
	return cn.Connect(context.Background())
}

// OpenConnector implements driver.DriverContext: it loads the config and
// opens the cluster on first connect.
func (Driver) OpenConnector(name string) (driver.Connector, error) {
	cfg, err := tandem.LoadConfig(name)
	if err != nil {
		return nil, err
	}
	return &Connector{cfg: cfg}, nil
}

// Connector connects database/sql to a cluster.
type Connector struct {
	mu  sync.Mutex
	c   *tandem.Cluster
	cfg *tandem.Config // opened on first Connect, closed by Close
	own bool
}

var (
	_ driver.Connector = (*Connector)(nil)
	_ io.Closer        = (*Connector)(nil)
)

// Connect implements driver.Connector. A connection is a handle on the
// cluster: the cluster pools its own connections to each database.
func (cn *Connector) Connect(ctx context.Context) (driver.Conn, error) {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	if cn.c == nil {
		c, err := tandem.Open(ctx, cn.cfg)
		if err != nil {
			return nil, err
		}
		cn.c, cn.own = c, true
	}
	return &conn{c: cn.c}, nil
}

// Driver implements driver.Connector.
func (*Connector) Driver() driver.Driver { return Driver{} }

// Close closes the cluster the connector opened (sql.DB.Close calls it).
func (cn *Connector) Close() error {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	if cn.own && cn.c != nil {
		err := cn.c.Close()
		cn.c = nil
		return err
	}
	return nil
}

// conn is one database/sql connection: the cluster, and the transaction
// it is in, if any.
type conn struct {
	c  *tandem.Cluster
	tx *tandem.Tx
}

var (
	_ driver.Conn               = (*conn)(nil)
	_ driver.ConnBeginTx        = (*conn)(nil)
	_ driver.ConnPrepareContext = (*conn)(nil)
	_ driver.ExecerContext      = (*conn)(nil)
	_ driver.QueryerContext     = (*conn)(nil)
	_ driver.NamedValueChecker  = (*conn)(nil)
	_ driver.Pinger             = (*conn)(nil)
	_ driver.SessionResetter    = (*conn)(nil)
)

func (cn *conn) Prepare(query string) (driver.Stmt, error) {
	return cn.PrepareContext(context.Background(), query)
}

// PrepareContext implements driver.ConnPrepareContext. Nothing is
// prepared on the databases: the statement runs when executed, on the
// primary of that moment.
func (cn *conn) PrepareContext(_ context.Context, query string) (driver.Stmt, error) {
	return &stmt{cn: cn, query: query}, nil
}

func (cn *conn) Close() error {
	if cn.tx != nil {
		cn.tx.Rollback()
		cn.tx = nil
	}
	return nil
}

func (cn *conn) Begin() (driver.Tx, error) {
	return cn.BeginTx(context.Background(), driver.TxOptions{})
}

// BeginTx implements driver.ConnBeginTx. Only the default isolation
// level is offered: tandem orders writes by the primary's locks, at the
// engines' default levels.
func (cn *conn) BeginTx(ctx context.Context, opts driver.TxOptions) (_ driver.Tx, err error) {
	defer func() { err = notBadConn(err) }()
	if opts.Isolation != driver.IsolationLevel(sql.LevelDefault) {
		return nil, fmt.Errorf("%w: isolation level %v: tandem runs transactions at the engines' default level", tandem.ErrRefused, sql.IsolationLevel(opts.Isolation))
	}
	if cn.tx != nil {
		return nil, errors.New("tandem: a transaction is already open on this connection")
	}
	if err := cn.c.Capture(ctx); err != nil {
		return nil, err
	}
	tx, err := cn.c.Begin(ctx)
	if err != nil {
		return nil, err
	}
	cn.tx = tx
	return &txn{cn: cn}, nil
}

// CheckNamedValue implements driver.NamedValueChecker: arguments go to
// the primary's driver as they are, which converts them.
func (cn *conn) CheckNamedValue(nv *driver.NamedValue) error {
	if nv.Name != "" {
		return fmt.Errorf("tandem: named argument %q: use the primary's positional placeholders", nv.Name)
	}
	return nil
}

func args(named []driver.NamedValue) []any {
	out := make([]any, len(named))
	for i, nv := range named {
		out[i] = nv.Value
	}
	return out
}

// ExecContext implements driver.ExecerContext.
func (cn *conn) ExecContext(ctx context.Context, query string, named []driver.NamedValue) (_ driver.Result, err error) {
	defer func() { err = notBadConn(err) }()
	var res sql.Result
	if cn.tx != nil {
		res, err = cn.tx.Exec(ctx, query, args(named)...)
	} else {
		res, err = cn.c.Exec(ctx, query, args(named)...)
	}
	if err != nil {
		return nil, err
	}
	return result{res}, nil
}

// QueryContext implements driver.QueryerContext. Outside a transaction a
// statement that only reads runs on the primary's read-only connections;
// one that writes (INSERT ... RETURNING, a writable CTE, a function that
// writes) runs as a write of its own, and its rows are returned once it
// has committed everywhere.
func (cn *conn) QueryContext(ctx context.Context, query string, named []driver.NamedValue) (_ driver.Rows, err error) {
	defer func() { err = notBadConn(err) }()
	a := args(named)
	if cn.tx != nil {
		r, err := cn.tx.Query(ctx, query, a...)
		if err != nil {
			return nil, err
		}
		return newRows(r), nil
	}
	if !sqltext.Writes(query) {
		r, err := cn.c.Query(ctx, query, a...)
		if err == nil {
			return newRows(r), nil
		}
		if !errors.Is(err, tandem.ErrRefused) {
			return nil, err
		}
		// Refused (a SELECT of a function that writes, on the read-only
		// connection; or refused outright, which the write refuses too).
	}
	var out *bufferedRows
	err = cn.c.Tx(ctx, func(tx *tandem.Tx) error {
		r, err := tx.Query(ctx, query, a...)
		if err != nil {
			return err
		}
		out, err = buffer(r)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (cn *conn) Ping(ctx context.Context) error {
	_, err := cn.c.Status(ctx)
	return notBadConn(err)
}

// ResetSession implements driver.SessionResetter: a connection returned
// to the pool inside a transaction (a panic, a lost handle) ends it.
func (cn *conn) ResetSession(context.Context) error {
	if cn.tx != nil {
		cn.tx.Rollback()
		cn.tx = nil
	}
	return nil
}

// txn is database/sql's handle on the connection's transaction.
type txn struct{ cn *conn }

func (t *txn) Commit() error {
	tx := t.cn.tx
	t.cn.tx = nil
	if tx == nil {
		return sql.ErrTxDone
	}
	return notBadConn(tx.Commit())
}

func (t *txn) Rollback() error {
	tx := t.cn.tx
	t.cn.tx = nil
	if tx == nil {
		return sql.ErrTxDone
	}
	return notBadConn(tx.Rollback())
}

// stmt is a statement "prepared" on a connection: its text.
type stmt struct {
	cn    *conn
	query string
}

var (
	_ driver.StmtExecContext  = (*stmt)(nil)
	_ driver.StmtQueryContext = (*stmt)(nil)
)

func (s *stmt) Close() error  { return nil }
func (s *stmt) NumInput() int { return -1 }

func (s *stmt) Exec(vals []driver.Value) (driver.Result, error) {
	return s.ExecContext(context.Background(), namedOf(vals))
}

func (s *stmt) Query(vals []driver.Value) (driver.Rows, error) {
	return s.QueryContext(context.Background(), namedOf(vals))
}

func (s *stmt) ExecContext(ctx context.Context, named []driver.NamedValue) (driver.Result, error) {
	return s.cn.ExecContext(ctx, s.query, named)
}

func (s *stmt) QueryContext(ctx context.Context, named []driver.NamedValue) (driver.Rows, error) {
	return s.cn.QueryContext(ctx, s.query, named)
}

// CheckNamedValue lets the statement take what the connection takes.
func (s *stmt) CheckNamedValue(nv *driver.NamedValue) error { return s.cn.CheckNamedValue(nv) }

func namedOf(vals []driver.Value) []driver.NamedValue {
	out := make([]driver.NamedValue, len(vals))
	for i, v := range vals {
		out[i] = driver.NamedValue{Ordinal: i + 1, Value: v}
	}
	return out
}

// result is the primary's result.
type result struct{ r sql.Result }

func (r result) LastInsertId() (int64, error) { return r.r.LastInsertId() }
func (r result) RowsAffected() (int64, error) { return r.r.RowsAffected() }

// notBadConn keeps database/sql from taking err for a broken connection
// of its own (driver.ErrBadConn, which a database's driver may report
// under tandem's error): a connection of this driver is a handle on the
// cluster, which outlives any database's loss. database/sql would discard
// it, closing the sql.Conn (and the transaction) it serves, and outside a
// transaction would run the statement again on another connection, after
// tandem may have written it.
func notBadConn(err error) error {
	if err == nil || !errors.Is(err, driver.ErrBadConn) {
		return err
	}
	return &notBadConnErr{err}
}

// notBadConnErr is an error that is every error it holds but
// driver.ErrBadConn (it has no Unwrap, which would reach that).
type notBadConnErr struct{ err error }

func (e *notBadConnErr) Error() string { return e.err.Error() }

func (e *notBadConnErr) Is(target error) bool {
	if target == ErrLostConnection {
		return true
	}
	return target != driver.ErrBadConn && errors.Is(e.err, target)
}

// ErrLostConnection is what an error of this driver is (errors.Is) when a
// database's connection broke under it: the driver.ErrBadConn of the
// database's driver, which this driver does not hand database/sql.
var ErrLostConnection = errors.New("a database's connection broke")

func (e *notBadConnErr) As(target any) bool { return errors.As(e.err, target) }
