package tandem

import (
	"context"
	"fmt"
	"reflect"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tandemdb/tandem/internal/records"
	"github.com/tandemdb/tandem/internal/rows"
	"github.com/tandemdb/tandem/internal/value"
)

// Group commit for single-writer engines (SQLite).
//
// A SQLite file admits one writer at a time, and a mirrored write costs one
// commit (one fsync) per database. Concurrent Cluster.Save, Cluster.Delete
// and Cluster.Tx calls therefore queue, and the first in the queue, the
// leader, runs the queued writes in one mirrored transaction: one commit per
// database for the whole group. Each member is written, in queue order,
// exactly as its own Tx would write it, and each member's call returns only
// once the group has committed everywhere.
//
// A member whose write fails on the primary (a value that does not fit, a
// unique violation, a Before hook's error) fails alone: SQLite undoes a
// failed statement without aborting the transaction, and a write reaches
// the secondaries only after it succeeded on the primary. Models with After
// hooks, which could fail after their row was mirrored, are not grouped.
//
// A Cluster.Tx member runs in a savepoint of the group's transaction. If
// its callback fails or panics, the savepoint is rolled back on the
// primary and the rows the callback wrote are sent to the secondaries
// again as the primary now holds them (or deleted there): it too fails
// alone. A member reads what the members before it wrote, as it would had
// they committed just before it began.

// maxGroup bounds a group, and so a member's wait.
const maxGroup = 64

type groupRequest struct {
	ctx      context.Context
	v        any
	del      bool
	fn       func(*Tx) error // a Cluster.Tx; v and del are unused
	err      error
	panicked any           // a panic of the write (a hook's), re-raised in the caller
	done     chan struct{} // closed when err is final
	lead     chan struct{} // closed when this request must lead the next group
}

type grouper struct {
	mu      sync.Mutex
	queue   []*groupRequest
	leading bool

	groups, members atomic.Int64 // for tests and, later, metrics
}

// groupable reports whether writes of v may join a group.
func (c *Cluster) groupable(v any) bool {
	if c.primary.database().singleWriter() == nil {
		return false
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return false
	}
	m, err := c.model(rv.Elem().Type())
	return err == nil && !m.hasHook.afterSave && !m.hasHook.afterDelete
}

// writeGrouped queues one Save or Delete and returns its result.
func (c *Cluster) writeGrouped(ctx context.Context, v any, del bool) error {
	return c.joinGroup(&groupRequest{ctx: ctx, v: v, del: del, done: make(chan struct{}), lead: make(chan struct{})})
}

// txGrouped queues one Cluster.Tx and returns its result.
func (c *Cluster) txGrouped(ctx context.Context, fn func(*Tx) error) error {
	return c.joinGroup(&groupRequest{ctx: ctx, fn: fn, done: make(chan struct{}), lead: make(chan struct{})})
}

// joinGroup queues r, leads a group when its turn comes, and returns r's
// result once its group has committed (or failed).
func (c *Cluster) joinGroup(r *groupRequest) error {
	start := time.Now()
	err := c.groupResult(r)
	if err == nil {
		c.writeLatency.since(start) // each member counts, as in Metrics
	}
	return err
}

func (c *Cluster) groupResult(r *groupRequest) error {
	g := &c.group
	g.mu.Lock()
	g.queue = append(g.queue, r)
	leader := !g.leading
	g.leading = true
	g.mu.Unlock()
	if !leader {
		select {
		case <-r.done:
		case <-r.lead:
			c.leadGroup()
		}
	} else {
		c.leadGroup()
	}
	<-r.done
	if r.panicked != nil {
		panic(r.panicked)
	}
	return r.err
}

// write applies r in tx and returns what it panicked with, if it did.
func (r *groupRequest) write(tx *Tx) (panicked any) {
	defer func() { panicked = recover() }()
	// A member's cancellation must not interrupt a statement (on SQLite
	// that rolls back the whole transaction): it counts only until the
	// member's turn. Its context's values still reach hooks.
	ctx := context.WithoutCancel(r.ctx)
	if r.del {
		r.err = tx.Delete(ctx, r.v)
	} else {
		r.err = tx.Save(ctx, r.v)
	}
	return nil
}

// leadGroup writes the queued requests (the leader's own first) as one
// transaction, then hands the lead to the next request in the queue.
func (c *Cluster) leadGroup() {
	g := &c.group
	g.mu.Lock()
	n := min(len(g.queue), maxGroup)
	members := g.queue[:n:n]
	g.queue = g.queue[n:]
	g.mu.Unlock()
	g.groups.Add(1)
	g.members.Add(int64(n))

	// The group's own work must not fail because one member's context ends.
	gctx := context.WithoutCancel(members[0].ctx)
	err := c.txRuns(gctx, func(tx *Tx) error { // each member's latency is observed in joinGroup
		// A member's cancellation must not interrupt a statement: on
		// SQLite that rolls back the whole transaction.
		tx.tx.detach = true
		for i, r := range members {
			r.panicked = nil
			if r.err = r.ctx.Err(); r.err != nil {
				continue
			}
			if r.fn != nil {
				r.err, r.panicked = tx.member(context.WithoutCancel(r.ctx), i, r.fn)
				if tx.broken != nil {
					return fmt.Errorf("%w: a transaction in the same group failed: %v", ErrNotCommitted, tx.broken)
				}
				continue
			}
			if r.panicked = r.write(tx); r.panicked != nil {
				return fmt.Errorf("%w: a write in the same group panicked", ErrNotCommitted)
			}
			if tx.broken != nil {
				return fmt.Errorf("%w: a write in the same group failed: %v", ErrNotCommitted, r.err)
			}
		}
		for _, r := range members {
			if r.err == nil && r.panicked == nil {
				return nil
			}
		}
		// Every member failed: write nothing anywhere, not even the rows
		// that undo a failed member's writes on the secondaries.
		return errGroupFailed
	}, true)
	for _, r := range members {
		if r.err == nil {
			r.err = err
		}
		close(r.done)
	}

	g.mu.Lock()
	if len(g.queue) > 0 {
		close(g.queue[0].lead)
	} else {
		g.leading = false
	}
	g.mu.Unlock()
}

// member runs fn, the i-th member of a group and a Cluster.Tx, inside a
// savepoint of the group's transaction, and returns fn's error or panic.
// If fn fails, its writes are undone on the primary, and each row it wrote
// is sent to the secondaries again as the primary holds it now. A failure
// that ends the group's transaction sets tx.broken.
func (tx *Tx) member(ctx context.Context, i int, fn func(*Tx) error) (err error, panicked any) {
	sp := "tandem_member_" + strconv.Itoa(i)
	if _, err := tx.tx.ExecContext(ctx, "SAVEPOINT "+sp); err != nil {
		tx.statementFailed(ctx, err)
		return fmt.Errorf("%w: savepoint on %s: %w", ErrNotCommitted, tx.primary.name, err), nil
	}
	tx.keepOps = true // a member that fails has its ops sent again
	nops, nids := len(tx.ops), len(tx.ids)
	func() {
		defer func() { panicked = recover() }()
		err = fn(tx)
	}()
	if tx.broken != nil {
		return err, panicked // the group's transaction is gone
	}
	if err == nil && panicked == nil {
		if _, rerr := tx.tx.ExecContext(ctx, "RELEASE "+sp); rerr != nil {
			tx.statementFailed(ctx, rerr)
			return fmt.Errorf("%w: release savepoint on %s: %w", ErrNotCommitted, tx.primary.name, rerr), nil
		}
		tx.members++
		tx.memberOps += len(tx.ops) - nops
		return nil, nil
	}
	if err == nil {
		err = fmt.Errorf("%w: the transaction panicked", ErrNotCommitted)
	}
	for _, q := range []string{"ROLLBACK TO " + sp, "RELEASE " + sp} {
		if _, rerr := tx.tx.ExecContext(ctx, q); rerr != nil {
			tx.statementFailed(ctx, rerr)
			if tx.broken == nil {
				tx.broken = rerr
			}
			return err, panicked
		}
	}
	for _, f := range tx.ids[nids:] {
		f.SetZero()
	}
	tx.ids = tx.ids[:nids]
	undone := tx.ops[nops:]
	tx.ops = tx.ops[:nops]
	tx.nops = nops // the rows are sent again below
	seen := make(map[records.Key]bool, len(undone))
	for _, o := range undone {
		if o.ddl != "" {
			// The secondaries ran it: it cannot be undone there alone.
			tx.broken = fmt.Errorf("%w: a transaction that changed the structure failed inside a group", ErrNotCommitted)
			return err, panicked
		}
		k := records.Key{Table: o.m.table.Name, PK: value.EncodeKey(o.key)}
		if seen[k] {
			continue
		}
		seen[k] = true
		td := &rows.Def{T: o.m.table, PK: o.m.pk}
		row, rerr := tx.primary.readRow(ctx, tx.tx, td, o.key)
		if rerr != nil {
			// The secondaries hold rows the primary no longer does.
			tx.statementFailed(ctx, rerr)
			if tx.broken == nil {
				tx.broken = rerr
			}
			return err, panicked
		}
		if row == nil {
			tx.send(op{m: o.m, del: true, key: o.key})
		} else {
			tx.send(op{m: o.m, key: o.key, row: row})
		}
	}
	tx.memberOps += len(tx.ops) - nops
	return err, panicked
}
