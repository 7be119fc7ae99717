package tandem

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tandemdb/tandem/engine"
)

// Node is one configured datasource.
type Node struct {
	cluster *Cluster
	name    string
	eng     engine.Engine
	caps    engine.Capabilities         // the optional interfaces eng implements
	dsn     string                      // never logged: may hold a password; use eng.Redact
	connp   atomic.Pointer[engine.Conn] // nil until opened
	id      string                      // node identity stored in the database; set before connp

	// sameAs is the earlier datasource that reaches the same database;
	// writes go to that one only.
	sameAs *Node

	texts sync.Map // model type -> *statements in this node's dialect

	mu   sync.Mutex
	prob error // a lasting reason the node takes no writes (an identity clash)
	live liveState
	// downc is closed when n is marked down, waking writes that wait for
	// it (see downSignal); nil until asked for.
	downc chan struct{}

	counters nodeCounters // for Metrics (metrics.go)
}

// liveState is what this process knows of a node now, guarded by Node.mu.
// The lasting part of it lives in the databases: the outdated marker in the
// node's own _tandem_meta, and the missed-key records other nodes hold.
type liveState struct {
	down       error               // why the last write or check failed; nil: reachable
	downSince  time.Time           // when down was set
	epoch      int64               // counts failures, so a check started earlier cannot undo a later one
	outdated   string              // the node's outdated marker ("" when not outdated)
	promotedAt int64               // unix ms of an operator's promote --force still in effect, 0 if none
	behindBy   map[string]missedBy // keys other nodes record as missed by this one, by recording node
	ahead      int64               // keys this node records as missed by reachable nodes
	holds      map[string]int64    // those keys, by the name of the node that missed them
	conflicts  int64               // unresolved conflicts recorded in this node
	catching   bool                // a catch-up of this node is running
	lastErr    string              // the last error seen, for status
	lastErrAt  time.Time
}

// Name is the datasource's configured name.
func (n *Node) Name() string { return n.name }

// Driver is the datasource's engine name.
func (n *Node) Driver() string { return n.eng.Name() }

// ID is the node identity stored in the database, "" if unknown.
func (n *Node) ID() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.id
}

// SameAs returns the earlier datasource that is the same database as n, or nil.
func (n *Node) SameAs() *Node { return n.sameAs }

// singleWriter returns n's engine as a SingleWriter, or nil.
func (n *Node) singleWriter() engine.SingleWriter {
	return n.caps.SingleWriter
}

// database returns the node that writes to n's database.
func (n *Node) database() *Node {
	if n.sameAs != nil {
		return n.sameAs
	}
	return n
}

func (n *Node) problem() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.prob
}

func (n *Node) setProblem(err error) {
	n.mu.Lock()
	n.prob = err
	n.mu.Unlock()
}

// missedBy is what one node records as missed by another.
type missedBy struct {
	count int64
	seen  time.Time // when a check last read it
}

// state returns a copy of n's live state.
func (n *Node) state() liveState {
	n.mu.Lock()
	defer n.mu.Unlock()
	st := n.live
	st.behindBy = maps.Clone(st.behindBy)
	return st
}

// behind is how many keys this node misses: the most any node records.
func (st liveState) behind() int64 {
	var most int64
	for _, e := range st.behindBy {
		most = max(most, e.count)
	}
	return most
}

// holders names the nodes that record keys as missed by this one.
func (st liveState) holders() []string {
	names := slices.Sorted(maps.Keys(st.behindBy))
	return names
}

// markDown records that n failed: writes go on without it, recording the
// keys it misses, until a check finds it reachable and it has caught up.
func (n *Node) markDown(err error) {
	n.mu.Lock()
	first := n.live.down == nil
	n.live.down = err
	n.live.epoch++
	if first {
		n.live.downSince = time.Now()
	}
	n.live.lastErr, n.live.lastErrAt = err.Error(), time.Now()
	if n.downc != nil {
		close(n.downc)
		n.downc = nil
	}
	n.mu.Unlock()
	if first {
		n.cluster.log.Warn("datasource down: writes go on without it", "node", n.name, "err", err)
		n.cluster.downEvent(n, err)
		n.cluster.kick()
	}
}

// downSignal returns a channel that is closed once n is down (at once if
// it is down now).
func (n *Node) downSignal() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.live.down != nil {
		return closedChan
	}
	if n.downc == nil {
		n.downc = make(chan struct{})
	}
	return n.downc
}

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// noteError records err as n's last error without marking it down.
func (n *Node) noteError(err error) {
	n.mu.Lock()
	n.live.lastErr, n.live.lastErrAt = err.Error(), time.Now()
	n.mu.Unlock()
}

// reachable reports whether n (a database node) is open and not down.
func (n *Node) reachable() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.conn() != nil && n.prob == nil && n.live.down == nil
}

// tandem's bookkeeping tables, present in every database it writes.
var (
	metaTable = engine.Table{
		Name: "_tandem_meta",
		Columns: []engine.Column{
			{Name: "k", Type: engine.Text, Size: 64, NotNull: true},
			{Name: "v", Type: engine.Text, NotNull: true},
		},
		PK: []string{"k"},
	}
	// pendingTable is the intent record: each row is one key (table and
	// primary key) that transaction txid wrote. A row that outlives its
	// transaction's commit on every database names a key that some
	// database may lack.
	// missedTable records, on every node a write reached, each key a node
	// it did not reach has missed (node: the missing datasource's name).
	// One row per key however often it changed: catch-up copies the
	// current row once.
	missedTable = engine.Table{
		Name: "_tandem_missed",
		Columns: []engine.Column{
			{Name: "node", Type: engine.Text, Size: 64, NotNull: true},
			{Name: "tbl", Type: engine.Text, Size: 128, NotNull: true},
			{Name: "pk", Type: engine.Text, Size: maxKeyText, NotNull: true},
			{Name: "at", Type: engine.Integer, NotNull: true}, // unix ms of the latest missed write
		},
		PK: []string{"node", "tbl", "pk"},
	}
	// conflictTable lists keys both sides of a split brain changed, with
	// both rows as they were found, and how each was resolved.
	conflictTable = engine.Table{
		Name: "_tandem_conflicts",
		Columns: []engine.Column{
			{Name: "tbl", Type: engine.Text, Size: 128, NotNull: true},
			{Name: "pk", Type: engine.Text, Size: maxKeyText, NotNull: true},
			{Name: "node_a", Type: engine.Text, Size: 64, NotNull: true},
			{Name: "row_a", Type: engine.Text}, // JSON object; NULL: no row
			{Name: "node_b", Type: engine.Text, Size: 64, NotNull: true},
			{Name: "row_b", Type: engine.Text},
			{Name: "found_at", Type: engine.Integer, NotNull: true},    // unix ms
			{Name: "resolution", Type: engine.Text, NotNull: true},     // "" while unresolved
			{Name: "resolved_at", Type: engine.Integer, NotNull: true}, // unix ms; 0 while unresolved
		},
		PK: []string{"tbl", "pk"},
	}
	pendingTable = engine.Table{
		Name: "_tandem_pending",
		Columns: []engine.Column{
			{Name: "txid", Type: engine.Text, Size: 32, NotNull: true},
			{Name: "seq", Type: engine.Integer, NotNull: true},
			{Name: "tbl", Type: engine.Text, Size: 128, NotNull: true},
			{Name: "pk", Type: engine.Text, NotNull: true},
			{Name: "at", Type: engine.Integer, NotNull: true}, // unix ms
		},
		PK: []string{"txid", "seq"},
	}
)

// maxKeyText bounds a key's text form in the bookkeeping tables whose
// primary key includes it: MySQL indexes only bounded text (3072 bytes).
const maxKeyText = 512

var bookkeeping = []*engine.Table{&metaTable, &pendingTable, &missedTable, &conflictTable}

// open connects and makes sure the database has tandem's tables and an
// identity. It publishes the connection only once both are there.
func (n *Node) open(ctx context.Context) error {
	dsn := n.dsn
	if sb := n.caps.StallBounder; sb != nil {
		var err error
		if dsn, err = sb.BoundStalls(dsn, lockWait*n.cluster.timeout); err != nil {
			return err
		}
	}
	conn, err := n.eng.Open(ctx, dsn)
	if err != nil {
		return err
	}
	id, err := n.meta(ctx, conn.Read, "node_id")
	if err == nil {
		// A database from before a bookkeeping table was added lacks it.
		err = n.hasTables(ctx, conn.Read)
	}
	if err != nil || id == "" {
		if id, err = n.initialise(ctx, conn); err != nil {
			conn.Close()
			return err
		}
	}
	n.mu.Lock()
	n.id = id
	n.mu.Unlock()
	n.connp.Store(conn)
	return nil
}

// conn returns n's open database, or nil when it has not been opened.
func (n *Node) conn() *engine.Conn { return n.connp.Load() }

func (n *Node) hasTables(ctx context.Context, q queryRower) error {
	for _, t := range bookkeeping {
		var one int
		err := q.QueryRowContext(ctx, "SELECT 1 FROM "+n.eng.Quote(t.Name)+n.eng.LimitClause(1, 0)).Scan(&one)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
	}
	return nil
}

func (n *Node) initialise(ctx context.Context, conn *engine.Conn) (string, error) {
	tx, err := conn.Write.BeginTx(ctx, nil)
	if err != nil {
		return "", fmt.Errorf("initialise: %w", err)
	}
	defer tx.Rollback()
	for _, t := range bookkeeping {
		for _, stmt := range n.eng.CreateTable(t) {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				return "", fmt.Errorf("initialise: %w", err)
			}
		}
	}
	id, err := n.meta(ctx, tx, "node_id")
	if err != nil {
		return "", fmt.Errorf("initialise: %w", err)
	}
	if id == "" {
		id = newID(8)
		now := time.Now().UTC().Format(time.RFC3339)
		for k, v := range map[string]string{"node_id": id, "created_at": now} {
			if err := n.setMeta(ctx, tx, k, v); err != nil {
				return "", fmt.Errorf("initialise: %w", err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return "", fmt.Errorf("initialise: %w", err)
	}
	return id, nil
}

type queryRower interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// meta reads a key of _tandem_meta; "" when absent.
func (n *Node) meta(ctx context.Context, q queryRower, key string) (string, error) {
	var v string
	err := q.QueryRowContext(ctx, fmt.Sprintf("SELECT v FROM %s WHERE k = %s",
		n.eng.Quote(metaTable.Name), n.eng.Placeholder(1)), key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return v, err
}

func (n *Node) setMeta(ctx context.Context, q execer, key, value string) error {
	_, err := q.ExecContext(ctx, n.eng.Upsert(&metaTable), key, value)
	return err
}

// deleteMeta deletes a key of _tandem_meta (absent: nothing happens).
func (n *Node) deleteMeta(ctx context.Context, q execer, key string) error {
	_, err := q.ExecContext(ctx, fmt.Sprintf("DELETE FROM %s WHERE k = %s",
		n.eng.Quote(metaTable.Name), n.eng.Placeholder(1)), key)
	return err
}

func (n *Node) close() error {
	if n.conn() == nil || n.sameAs != nil {
		return nil // an alias shares its database's connection
	}
	return n.conn().Close()
}

// sameFiles recognises, before anything is opened, datasources that name
// one database file; each later one becomes an alias of the first.
func (c *Cluster) sameFiles() {
	for j, b := range c.nodes {
		for _, a := range c.nodes[:j] {
			if a.sameAs == nil && oneFile(a.eng, a.dsn, b.eng, b.dsn) {
				b.sameAs = a
				c.log.Info("datasources are one database file; writing it once", "node", b.name, "same_as", a.name)
				break
			}
		}
	}
}

// oneFile reports whether two resolved DSNs name one database file (two
// paths, a symbolic link, a hard link), for engines whose databases are
// files.
func oneFile(ea engine.Engine, a string, eb engine.Engine, b string) bool {
	fe := engine.CapabilitiesOf(eb).File
	return fe != nil && ea.Name() == eb.Name() && fe.SameFile(a, b)
}

// findAliases recognises datasources that reach one database: they carry
// the same identity. Because a copied database file also carries its
// original's identity, the match is proved by writing a random token
// through one datasource and reading it back through the other.
func (c *Cluster) findAliases(ctx context.Context) {
	for j, b := range c.nodes {
		if b.conn() == nil || b.id == "" || b.sameAs != nil {
			continue
		}
		for _, a := range c.nodes[:j] {
			if a.conn() == nil || a.id != b.id || a.sameAs != nil {
				continue
			}
			same, err := sameDatabase(ctx, a, b)
			switch {
			case err != nil:
				b.setProblem(fmt.Errorf("%w: %s: identity probe: %v", ErrNodeDown, b.name, err))
			case same:
				b.sameAs = a
				c.log.Info("datasources are one database; writing it once", "node", b.name, "same_as", a.name)
			default:
				b.setProblem(fmt.Errorf("%w: %s and %s both carry node id %s but are different databases (was one copied from the other?)",
					ErrIdentityClash, a.name, b.name, b.id))
			}
			break
		}
	}
}

// sameDatabase writes a token under a key of its own through a and reads it
// back through b. (A shared key would race with other processes probing.)
func sameDatabase(ctx context.Context, a, b *Node) (bool, error) {
	token := newID(8)
	key := "probe_" + token
	if err := a.setMeta(ctx, a.conn().Write, key, token); err != nil {
		return false, err
	}
	got, err := b.meta(ctx, b.conn().Read, key)
	errDel := a.deleteMeta(ctx, a.conn().Write, key)
	if err == nil {
		err = errDel
	}
	return got == token, err
}

// newID returns n random bytes in hex.
func newID(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// dbTx is a write transaction on one database, on a connection of its own.
type dbTx struct {
	*sql.Tx
	n    *Node
	ctx  context.Context // the transaction's: cancelling it abandons the transaction
	conn *sql.Conn
	stop context.CancelFunc
	once sync.Once
	// guard bounds each statement and the commit on a server (engine.Locker):
	// one that gets no answer within it abandons the transaction, so a
	// server that hangs mid-transaction cannot hold a write for ever. It
	// is generous, as a statement may wait for rows another write holds.
	guard time.Duration
	// detach keeps the statements' contexts from interrupting them (a
	// group's transaction, which one member's cancellation must not end).
	detach bool
}

// begin starts a write transaction on n. ctx bounds the wait for a
// connection of this process's pool; wait bounds the database's answer (a
// lock another process holds, a hung server). The transaction lives until
// Commit, Rollback or abandon, whatever happens to ctx.
//
// On engines that lock rows rather than the database (engine.Locker), it
// takes the database's lock exclusively: begin serves catch-up, the
// sweeper and tandem's markers, which no write may interleave with.
func (n *Node) begin(ctx context.Context, wait time.Duration) (*dbTx, error) {
	return n.beginTx(ctx, wait, false, true)
}

// beginShared is begin taking the database's lock shared, as writes do:
// for work that only has to keep out of catch-up's way (clearing intent
// records, checking that the database takes writes).
func (n *Node) beginShared(ctx context.Context, wait time.Duration) (*dbTx, error) {
	return n.beginTx(ctx, wait, false, false)
}

// beginWrite is begin for a write: it gives up at once if, while it waited
// for this process's connection, another write found n down. (Writes queue
// for that connection; without this each would wait out the timeout in
// turn.)
func (n *Node) beginWrite(ctx context.Context, wait time.Duration) (*dbTx, error) {
	return n.beginTx(ctx, wait, true, false)
}

// lockWait is how many timeouts a transaction waits for tandem's lock on
// engines that lock rows (engine.Locker): a write holds it for at most a
// timeout at each of its steps.
const lockWait = 4

func (n *Node) beginTx(ctx context.Context, wait time.Duration, failFast, exclusive bool) (*dbTx, error) {
	db := n.conn()
	if db == nil {
		return nil, fmt.Errorf("%w: %s is not open", ErrNodeDown, n.name)
	}
	if failFast {
		if down := n.state().down; down != nil {
			return nil, fmt.Errorf("begin on %s: %w: %v", n.name, ErrNodeDown, down)
		}
	}
	cctx := ctx
	if n.caps.Locker != nil {
		// On a server, a connection may have to be made, and a server that
		// accepts it but never answers (a hung one) would hold the write
		// for ever: the wait is bounded like a statement's. Running out
		// says busy, not down: the pool may only be full of other writes.
		var cancel context.CancelFunc
		cctx, cancel = context.WithTimeout(ctx, lockWait*wait)
		defer cancel()
	}
	conn, err := db.Write.Conn(cctx)
	if err != nil {
		if ctx.Err() == nil && cctx.Err() != nil {
			return nil, fmt.Errorf("begin on %s: %w (no connection within %v)", n.name, errBusy, lockWait*wait)
		}
		return nil, fmt.Errorf("begin on %s: %w", n.name, err)
	}
	if failFast {
		if down := n.state().down; down != nil {
			conn.Close()
			return nil, fmt.Errorf("begin on %s: %w: %v", n.name, ErrNodeDown, down)
		}
	}
	tctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	timer := time.AfterFunc(wait, stop)
	tx, err := conn.BeginTx(tctx, nil)
	if !timer.Stop() {
		if err == nil {
			tx.Rollback()
		}
		stop()
		conn.Close()
		return nil, fmt.Errorf("begin on %s: %w (%v)", n.name, errTimeout, wait)
	}
	if err != nil {
		stop()
		conn.Close()
		return nil, fmt.Errorf("begin on %s: %w", n.name, err)
	}
	if l := n.caps.Locker; l != nil {
		// The server answered BEGIN. Waiting for tandem's lock is waiting
		// for other writers (each bounded by the timeout at every step),
		// not for a failing server, so it gets longer and, if it runs
		// out, says busy rather than down.
		timer := time.AfterFunc(lockWait*wait, stop)
		err := l.Lock(tctx, tx, exclusive)
		expired := !timer.Stop()
		if expired || err != nil {
			tx.Rollback()
			stop()
			conn.Close()
			if expired {
				return nil, fmt.Errorf("begin on %s: %w (waited %v)", n.name, errBusy, lockWait*wait)
			}
			return nil, fmt.Errorf("begin on %s: take tandem's lock: %w", n.name, err)
		}
	}
	t := &dbTx{Tx: tx, n: n, ctx: tctx, conn: conn, stop: stop}
	if n.caps.Locker != nil {
		t.guard = lockWait * wait
	}
	return t, nil
}

// guarded starts t's guard for one statement; the returned func ends it.
// When the guard runs out it cancels t's context, which ends the
// statement through bound.
func (t *dbTx) guarded() func() bool {
	if t.guard == 0 {
		return func() bool { return true }
	}
	return time.AfterFunc(t.guard, t.stop).Stop
}

// bound returns ctx, also cancelled when t's context is: the driver
// interrupts a statement only when the statement's own context ends.
// (Cancelling a transaction's context alone waits for the statement.)
func (t *dbTx) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if t.guard == 0 {
		return ctx, func() {}
	}
	sctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(t.ctx, cancel)
	return sctx, func() { stop(); cancel() }
}

// ExecContext runs a statement under t's guard.
func (t *dbTx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if t.detach {
		ctx = context.WithoutCancel(ctx)
	}
	defer t.guarded()()
	ctx, done := t.bound(ctx)
	defer done()
	return t.Tx.ExecContext(ctx, query, args...)
}

// QueryContext runs a query under t's guard until its first answer; its
// rows stay bound to t's context until the transaction ends.
func (t *dbTx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if t.detach {
		ctx = context.WithoutCancel(ctx)
	}
	defer t.guarded()()
	ctx, _ = t.bound(ctx) // released when t's context ends
	return t.Tx.QueryContext(ctx, query, args...)
}

// QueryRowContext runs a query under t's guard until its first answer.
func (t *dbTx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if t.detach {
		ctx = context.WithoutCancel(ctx)
	}
	defer t.guarded()()
	ctx, _ = t.bound(ctx) // released when t's context ends
	return t.Tx.QueryRowContext(ctx, query, args...)
}

// Commit commits and releases the connection.
func (t *dbTx) Commit() error {
	done := t.guarded()
	err := t.Tx.Commit()
	done()
	t.end()
	return err
}

// Rollback rolls back (if still open) and releases the connection.
func (t *dbTx) Rollback() error {
	err := t.Tx.Rollback()
	t.end()
	return err
}

// abandon gives up on a transaction whose database does not answer: the
// statement in progress is interrupted where the driver can, and the
// transaction is rolled back when the database answers again.
func (t *dbTx) abandon() {
	t.stop()
	go t.Rollback()
}

func (t *dbTx) end() {
	t.once.Do(func() {
		t.stop()
		t.conn.Close()
	})
}
