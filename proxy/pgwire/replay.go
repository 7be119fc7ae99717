package pgwire

// A transaction runs again when tandem committed nothing because a
// secondary was left out or the view changed (tandem.ErrNotCommitted):
// the proxy keeps the transaction's statements, begins it again under the
// new view, runs them again, and goes on as if nothing happened, provided
// each statement returns what it returned the first time (the same rows,
// byte for byte as sent, or the same count). The client never learns that
// a secondary was lost. When a statement returns something else (another
// sequence value, a row another client changed meanwhile), the client has
// acted on what it saw: the transaction fails with SQLSTATE 40001, nothing
// committed, and the client runs it again. A primary's loss is not run
// again: it fails the transactions in flight (ErrNodeDown, 40001) and the
// next one runs on the new primary.

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"time"

	"github.com/tandemdb/tandem"
)

const (
	// maxReplays bounds how many times one transaction runs again (and
	// Server.RetryFor how long it keeps trying).
	maxReplays = 20
	// maxLogged bounds the statements and argument bytes kept for a
	// transaction; past either it cannot run again.
	maxLogged      = 1000
	maxLoggedBytes = 1 << 20
)

// logged is a statement of the session's transaction, with what it
// returned.
type logged struct {
	query   string
	args    []any
	rows    bool // a query: digest and n are of the rows sent
	oids    []uint32
	formats []int16
	digest  [sha256.Size]byte
	n       int64 // rows affected or sent
}

// errDiffers: a statement returned, when its transaction ran again, other
// than what it returned to the client.
var errDiffers = errors.New("returned other rows when its transaction ran again")

// beginLog starts the log of a new transaction.
func (ss *session) beginLog() {
	ss.txlog, ss.txlogBytes, ss.noReplay, ss.pending = ss.txlog[:0], 0, false, nil
}

// note adds a statement that succeeded to the log.
func (ss *session) note(l logged) {
	if ss.tx == nil || ss.noReplay {
		return
	}
	size := len(l.query)
	for _, a := range l.args {
		switch v := a.(type) {
		case string:
			size += len(v)
		case []byte:
			size += len(v)
		default:
			size += 16
		}
	}
	if ss.txlogBytes += size; len(ss.txlog) >= maxLogged || ss.txlogBytes > maxLoggedBytes {
		ss.noReplay, ss.txlog = true, ss.txlog[:0]
		return
	}
	ss.txlog = append(ss.txlog, l)
}

// replayable reports whether err, met in the session's transaction, lets
// it run again: nothing was committed, and the outcome is known.
func (ss *session) replayable(err error) bool {
	return ss.tx != nil && !ss.noReplay && nothingCommitted(err)
}

// again runs fn, a statement outside a transaction, again while tandem
// says it committed nothing (and its outcome is known), up to maxReplays
// times: tandem runs such a statement again itself in most cases, not
// when a secondary kept tandem's lock past the timeout (ErrBusy) until it
// is left out.
func (ss *session) again(ctx context.Context, fn func() error) error {
	start := time.Now()
	err := fn()
	for i := 1; i <= maxReplays && err != nil && nothingCommitted(err) && ctx.Err() == nil && time.Since(start) < ss.s.retryFor(); i++ {
		ss.s.log().Info("proxy: a statement runs again", "because", err.Error())
		time.Sleep(backoff(i))
		err = fn()
	}
	return err
}

// backoff is the wait before the i-th try again: 50 ms more each time, at
// most half a second (a secondary is left out within the cluster's
// timeout).
func backoff(i int) time.Duration {
	return min(time.Duration(i)*50*time.Millisecond, 500*time.Millisecond)
}

// retrying runs fn, a step of the session's transaction (a statement,
// the commit), and while tandem says nothing was committed, runs the
// transaction again (replay) and fn after it, for up to RetryFor.
func (ss *session) retrying(ctx context.Context, fn func() error) error {
	err := fn()
	for start := time.Now(); err != nil && ss.replayable(err) && time.Since(start) < ss.s.retryFor(); {
		if err = ss.replay(ctx, err); err == nil {
			err = fn()
		}
	}
	return err
}

// nothingCommitted reports whether err says that nothing was committed.
func nothingCommitted(err error) bool {
	return errors.Is(err, tandem.ErrNotCommitted) && !errors.Is(err, tandem.ErrOutcomeUnknown)
}

// replay rolls the session's transaction back, begins it again and runs
// its statements again, up to maxReplays times while tandem says nothing
// was committed. It returns nil when the transaction is where it was
// (ss.tx is then the new one), else the error to report.
func (ss *session) replay(ctx context.Context, cause error) error {
	start := time.Now()
	for i := 0; i < maxReplays && (i == 0 || time.Since(start) < ss.s.retryFor()); i++ {
		ss.tx.Rollback()
		if i > 0 {
			time.Sleep(backoff(i))
		}
		tx, err := ss.db.BeginTx(context.WithoutCancel(ctx), nil)
		if err != nil {
			return fmt.Errorf("%w (and beginning it again: %w)", cause, err)
		}
		ss.tx = tx
		err = ss.rerun(ctx)
		if err == nil {
			level := slog.LevelDebug // a ROLLBACK TO SAVEPOINT
			if nothingCommitted(cause) {
				level = slog.LevelInfo
			}
			ss.s.log().Log(ctx, level, "proxy: a transaction ran again", "statements", len(ss.txlog), "because", cause.Error())
			return nil
		}
		if errors.Is(err, errDiffers) {
			return fmt.Errorf("%w: it ran again after %v and %w", tandem.ErrNotCommitted, cause, err)
		}
		if !ss.replayable(err) {
			return err
		}
		cause = err
	}
	return cause
}

// rerun runs the log in ss.tx, comparing each statement's result.
func (ss *session) rerun(ctx context.Context) error {
	for i, l := range ss.txlog {
		if !l.rows {
			res, err := ss.tx.ExecContext(ctx, l.query, l.args...)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n != l.n {
				return fmt.Errorf("statement %d (%.60q) %w: %d rows affected, not %d", i+1, l.query, errDiffers, n, l.n)
			}
			continue
		}
		rows, err := ss.tx.QueryContext(ctx, l.query, l.args...)
		if err != nil {
			return err
		}
		d := sha256.New()
		n, err := ss.encodeRows(rows, l.oids, l.formats, d, nil)
		if err != nil {
			return err
		}
		if n != l.n || [sha256.Size]byte(d.Sum(nil)) != l.digest {
			return fmt.Errorf("statement %d (%.60q) %w (%d rows, %d the first time)", i+1, l.query, errDiffers, n, l.n)
		}
	}
	return nil
}

// digestOf hashes one encoded row into h (each value's length, then its
// bytes; -1 for NULL), as rerun compares them.
func digestOf(h hash.Hash, row [][]byte) {
	var lb [4]byte
	for _, v := range row {
		n := uint32(len(v))
		if v == nil {
			n = ^uint32(0)
		}
		lb[0], lb[1], lb[2], lb[3] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
		h.Write(lb[:])
		h.Write(v)
	}
}
