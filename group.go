package tandem

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
)

// Group commit for single-writer engines (SQLite).
//
// A SQLite file admits one writer at a time, and a mirrored write costs one
// commit (one fsync) per database. Concurrent Cluster.Save and
// Cluster.Delete calls therefore queue, and the first in the queue, the
// leader, writes the queued rows in one mirrored transaction: one commit per
// database for the whole group. Each member's row is written, in queue
// order, exactly as its own Tx would write it, and each member's call
// returns only once the group has committed everywhere.
//
// A member whose write fails on the primary (a value that does not fit, a
// unique violation, a Before hook's error) fails alone: SQLite undoes a
// failed statement without aborting the transaction, and a write reaches
// the secondaries only after it succeeded on the primary. Models with After
// hooks, which could fail after their row was mirrored, are not grouped.

// maxGroup bounds a group, and so a member's wait.
const maxGroup = 64

type groupRequest struct {
	ctx      context.Context
	v        any
	del      bool
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
	r := &groupRequest{ctx: ctx, v: v, del: del, done: make(chan struct{}), lead: make(chan struct{})}
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
	err := c.tx(gctx, func(tx *Tx) error {
		for _, r := range members {
			if r.err = r.ctx.Err(); r.err != nil {
				continue
			}
			if r.panicked = r.write(tx); r.panicked != nil {
				return fmt.Errorf("%w: a write in the same group panicked", ErrNotCommitted)
			}
			if tx.broken != nil {
				return fmt.Errorf("%w: a write in the same group failed: %v", ErrNotCommitted, r.err)
			}
		}
		return nil
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
