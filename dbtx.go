package tandem

// A transaction on one database, on a connection of its own: how long it
// may wait for a connection, for tandem's lock and for each statement, so
// that a hung server or a busy lock never holds a write for ever.

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"sync"
	"time"
)

// dbTx is a write transaction on one database, on a connection of its own.
type dbTx struct {
	*sql.Tx
	n    *Node
	ctx  context.Context // the transaction's: cancelling it abandons the transaction
	conn *sql.Conn
	// cancel ends ctx, with the cause a statement it ends reports (nil:
	// the transaction ended normally).
	cancel context.CancelCauseFunc
	once   sync.Once
	// guard bounds each statement and the commit on a server (engine.Locker):
	// one that gets no answer within it abandons the transaction, so a
	// server that hangs mid-transaction cannot hold a write for ever. It
	// is generous, as a statement may wait for rows another write holds.
	guard time.Duration
	// detach keeps the statements' contexts from interrupting them (a
	// group's transaction, which one member's cancellation must not end).
	detach bool
	// captureOff, when set, runs on the connection once the transaction
	// ended, before the pool has it again: the transaction turned capture
	// on, and on this engine the setting outlives it
	// (engine.Capturer.CaptureOff).
	captureOff string
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
// turn.) Every other transaction checks at BEGIN that it reached n's own
// database (identify); a write does it in its fence, which it runs next.
func (n *Node) beginWrite(ctx context.Context, wait time.Duration) (*dbTx, error) {
	return n.beginTx(ctx, wait, true, false)
}

// lockWait is how many timeouts a transaction waits for tandem's lock on
// engines that lock rows (engine.Locker): a write holds it for at most a
// timeout at each of its steps.
const lockWait = 4

func (n *Node) beginTx(ctx context.Context, wait time.Duration, write, exclusive bool) (*dbTx, error) {
	db := n.conn()
	if db == nil {
		return nil, fmt.Errorf("%w: %s is not open", ErrNodeDown, n.name)
	}
	if write {
		if down := n.state().down; down != nil {
			return nil, fmt.Errorf("begin on %s: %w: %v", n.name, ErrNodeDown, down)
		}
	}
	cctx := ctx
	if n.caps.Locker != nil {
		// On a server, a connection may have to be made, and a server that
		// accepts it but never answers (a hung one) would hold the write
		// for ever: the wait is bounded like a statement's, and ends when
		// n is found down meanwhile. Running out says busy, not down: the
		// pool may only be full of other writes.
		var stop context.CancelFunc
		cctx, stop = n.untilDown(ctx, lockWait*wait)
		defer stop()
	}
	conn, err := db.Write.Conn(cctx)
	if err != nil {
		if down := context.Cause(cctx); ctx.Err() == nil && errors.Is(down, ErrNodeDown) {
			return nil, fmt.Errorf("begin on %s: %w", n.name, down)
		}
		if ctx.Err() == nil && cctx.Err() != nil {
			return nil, fmt.Errorf("begin on %s: %w (no connection within %v)", n.name, ErrBusy, lockWait*wait)
		}
		return nil, fmt.Errorf("begin on %s: %w", n.name, err)
	}
	if write {
		if down := n.state().down; down != nil {
			conn.Close()
			return nil, fmt.Errorf("begin on %s: %w: %v", n.name, ErrNodeDown, down)
		}
	}
	tctx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	stop := func() { cancel(nil) }
	if n.caps.Locker != nil {
		n.giveUpWhenDown(tctx, cancel)
	}
	timer := time.AfterFunc(wait, stop)
	tx, err := conn.BeginTx(tctx, nil)
	if down := context.Cause(tctx); down != nil && errors.Is(down, ErrNodeDown) {
		timer.Stop()
		if err == nil {
			tx.Rollback()
		}
		conn.Close()
		return nil, fmt.Errorf("begin on %s: %w", n.name, down)
	}
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
				return nil, fmt.Errorf("begin on %s: %w (waited %v)", n.name, ErrBusy, lockWait*wait)
			}
			return nil, fmt.Errorf("begin on %s: take tandem's lock: %w", n.name, err)
		}
	}
	t := &dbTx{Tx: tx, n: n, ctx: tctx, conn: conn, cancel: cancel}
	if n.caps.Locker != nil {
		t.guard = lockWait * wait
	}
	if !write {
		// A write checks it in its fence, in the same statement.
		if err := n.identify(tctx, t); err != nil {
			t.Rollback()
			return nil, err
		}
	}
	return t, nil
}

// giveUpWhenDown ends work on n (a transaction, a read, the wait for a
// connection) through its context tctx, with cancel, as soon as another
// write or the health check finds n down: a server that hangs mid-
// transaction then costs the work in flight on it the time to find it
// down, not a statement's guard (4 timeouts), and the view can change at
// once (a change waits for this process's writes in flight). Nothing is
// watched when n is down already: work begun then is what checks whether
// n is back. The watch ends with tctx.
func (n *Node) giveUpWhenDown(tctx context.Context, cancel context.CancelCauseFunc) {
	down := n.downSignal()
	select {
	case <-down:
		return
	default:
	}
	go func() {
		select {
		case <-down:
			cancel(fmt.Errorf("%w: %s was found down: given up", ErrNodeDown, n.name))
		case <-tctx.Done():
		}
	}()
}

// untilDown returns ctx bounded by d that also ends, with a cause wrapping
// ErrNodeDown, when n is found down meanwhile (giveUpWhenDown).
func (n *Node) untilDown(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	dctx, cancel := context.WithCancelCause(ctx)
	n.giveUpWhenDown(dctx, cancel)
	tctx, stop := context.WithTimeout(dctx, d)
	return tctx, func() { stop(); cancel(nil) }
}

// guarded starts t's guard for one statement; the returned func ends it.
// When the guard runs out it cancels t's context, which ends the
// statement through bound.
func (t *dbTx) guarded() func() bool {
	if t.guard == 0 {
		return func() bool { return true }
	}
	return time.AfterFunc(t.guard, func() {
		t.cancel(fmt.Errorf("%s: %w (%v)", t.n.name, errTimeout, t.guard))
	}).Stop
}

// explain says why a statement failed when t's own context ended it (its
// guard ran out, or the transaction was given up) while the caller's ctx
// did not: the driver says only "context canceled".
func (t *dbTx) explain(ctx context.Context, err error) error {
	if err == nil || ctx.Err() != nil {
		return err
	}
	if cause := context.Cause(t.ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return fmt.Errorf("%w (%v)", cause, err)
	}
	return err
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
	sctx, done := t.bound(ctx)
	defer done()
	res, err := t.Tx.ExecContext(sctx, query, args...)
	return res, t.explain(ctx, err)
}

// QueryContext runs a query under t's guard until its first answer; its
// rows stay bound to t's context until the transaction ends.
func (t *dbTx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if t.detach {
		ctx = context.WithoutCancel(ctx)
	}
	defer t.guarded()()
	sctx, _ := t.bound(ctx) // released when t's context ends
	rows, err := t.Tx.QueryContext(sctx, query, args...)
	return rows, t.explain(ctx, err)
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

// Commit commits and releases the connection. Where the driver's commit
// cannot be interrupted (engine.StallBounder: go-sql-driver/mysql's takes
// no context), it stops waiting when t's guard runs out or n is found
// down, and leaves the commit's answer, and the connection, to a goroutine
// of its own: the write and the view change that waits for it go on, and
// the commit's outcome is unknown.
func (t *dbTx) Commit() error {
	done := t.guarded()
	defer done()
	start := time.Now()
	if t.n.caps.StallBounder == nil {
		err := t.explain(context.Background(), t.Tx.Commit())
		if err == nil {
			t.n.counters.commit.since(start)
		}
		t.end()
		return err
	}
	answer := make(chan error, 1)
	go func() { answer <- t.Tx.Commit() }()
	select {
	case err := <-answer:
		if err == nil {
			t.n.counters.commit.since(start)
		}
		t.end()
		return t.explain(context.Background(), err)
	case <-t.ctx.Done():
		go func() {
			<-answer
			t.end()
		}()
		return fmt.Errorf("commit on %s: %w", t.n.name, context.Cause(t.ctx))
	}
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
	t.cancel(fmt.Errorf("%s: %w: the transaction was given up", t.n.name, errTimeout))
	go t.Rollback()
}

func (t *dbTx) end() {
	t.once.Do(func() {
		t.cancel(nil)
		if t.captureOff != "" {
			t.resetCapture()
		}
		t.conn.Close()
	})
}

// resetCapture turns capture off on t's connection, or has the pool
// discard the connection when it cannot: a connection that captures
// would fill capture tables with keys nobody reads.
func (t *dbTx) resetCapture() {
	wait := t.guard
	if wait == 0 {
		wait = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if _, err := t.conn.ExecContext(ctx, t.captureOff); err != nil {
		_ = t.conn.Raw(func(any) error { return driver.ErrBadConn })
	}
}
