package tandem

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
)

// A session: a write transaction on each of a set of databases, taken in
// the order writes take their locks (the primary first), for the work that
// no write may interleave with: catch-up, the repair of writes in doubt,
// conflict resolution.

// session is a set of write transactions taken in lock order.
type session struct {
	txs   map[*Node]*lockedTx
	order []*Node
}

// lockedTx is a session's transaction on one database. Its statements are
// prepared once per transaction: a batch runs the same few statements for
// every key, and parsing them each time would cost more than running them.
type lockedTx struct {
	*dbTx
	stmts map[string]*sql.Stmt
}

func (t *lockedTx) stmt(ctx context.Context, query string) *sql.Stmt {
	if st, ok := t.stmts[query]; ok {
		return st
	}
	st, err := t.PrepareContext(ctx, query)
	if err != nil {
		return nil // the unprepared call reports the error
	}
	t.stmts[query] = st
	return st
}

func (t *lockedTx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := t.stmt(ctx, query); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return t.dbTx.ExecContext(ctx, query, args...)
}

func (t *lockedTx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := t.stmt(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return t.dbTx.QueryContext(ctx, query, args...)
}

func (t *lockedTx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := t.stmt(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return t.dbTx.QueryRowContext(ctx, query, args...)
}

// lockAll begins a write transaction on every database of v's write set
// and on each of extra, each bounded by Config.Timeout; a database that
// fails to answer is marked down.
//
// The extra databases, which writes skip, are locked first: one that does
// not answer (a lock held by another process) then costs the writers
// nothing, where taking the primary first would stall them for the
// timeout. Writes never lock a database they skip, so this order cannot
// deadlock with them; the write set is locked in the writers' order.
func (c *Cluster) lockAll(ctx context.Context, v *view, extra ...*Node) (*session, error) {
	s := &session{txs: map[*Node]*lockedTx{}}
	var nodes []*Node
	for _, n := range extra {
		if !v.writes(n) {
			nodes = append(nodes, n)
		}
	}
	nodes = append(nodes, v.write...)
	for _, n := range nodes {
		if err := c.lockOne(ctx, s, n); err != nil {
			return nil, err
		}
		// Work done under an older view than a database took part in
		// could copy rows the wrong way: the view is read again first.
		g, err := n.records.ReadGeneration(ctx, s.txs[n])
		if err == nil && g > v.rec.Generation {
			err = fmt.Errorf("%w: %s took part in generation %d, this work was started under %d", errFenced, n.name, g, v.rec.Generation)
		}
		if err != nil {
			s.rollback()
			return nil, err
		}
	}
	return s, nil
}

// lockNodes begins a write transaction on each of nodes, in the order
// writes take their locks: the current primary first, then rank order.
func (c *Cluster) lockNodes(ctx context.Context, nodes []*Node) (*session, error) {
	s := &session{txs: map[*Node]*lockedTx{}}
	order := slices.Clone(nodes)
	if p := c.view.Load().primary; p != nil {
		if i := slices.Index(order, p); i > 0 {
			order = append([]*Node{p}, slices.Delete(order, i, i+1)...)
		}
	}
	for _, n := range order {
		if err := c.lockOne(ctx, s, n); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// lockOne adds a transaction on n to s, bounded by Config.Timeout; on a
// failure it rolls s back, and n is marked down unless it is only busy.
func (c *Cluster) lockOne(ctx context.Context, s *session, n *Node) error {
	if _, dup := s.txs[n]; dup {
		return nil
	}
	tx, err := n.begin(ctx, c.timeout)
	if err != nil {
		s.rollback()
		if ctx.Err() == nil {
			err = c.failed(ctx, n, err)
		}
		return err
	}
	s.txs[n] = &lockedTx{dbTx: tx, stmts: map[string]*sql.Stmt{}}
	s.order = append(s.order, n)
	return nil
}

func (s *session) rollback() {
	for _, n := range s.order {
		s.txs[n].Rollback()
	}
}

// commit commits first's transactions, then the others: the databases that
// receive rows before those whose records say they are still missing.
func (s *session) commit(first ...*Node) error {
	var errs []error
	for _, group := range [2]bool{true, false} {
		for _, n := range s.order {
			if containsNode(first, n) == group {
				if err := s.txs[n].Commit(); err != nil {
					errs = append(errs, fmt.Errorf("commit on %s: %w", n.name, err))
				}
			}
		}
		if len(errs) > 0 {
			s.rollback() // what is left
			break
		}
	}
	return errors.Join(errs...)
}
