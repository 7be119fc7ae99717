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
// fails to answer is marked down. It locks them in lockOrder.
func (c *Cluster) lockAll(ctx context.Context, v *view, extra ...*Node) (*session, error) {
	s := &session{txs: map[*Node]*lockedTx{}}
	for _, n := range c.lockOrder(v, append(slices.Clone(extra), v.write...)) {
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

// lockNodes begins a write transaction on each of nodes, in lockOrder
// under the current view.
func (c *Cluster) lockNodes(ctx context.Context, nodes []*Node) (*session, error) {
	s := &session{txs: map[*Node]*lockedTx{}}
	for _, n := range c.lockOrder(c.view.Load(), nodes) {
		if err := c.lockOne(ctx, s, n); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// lockOrder is the one order in which work that locks several databases
// takes their locks: first those v's writes skip, in rank order, then v's
// write set in the writers' order (the primary first, then rank order).
// The skipped ones come first so that one that does not answer (a lock
// held by another process) costs the writers nothing, where holding the
// primary meanwhile would stall them for the timeout; writes never lock a
// database they skip, so this cannot deadlock with them. And all such
// work takes the same order: catch-up's last step (primary, then the
// rejoining database) and `tandem resolve` (the skipped database, then
// the primary) once each held one lock and waited for the other's, and
// the health loop, retrying every round, kept resolve waiting for ever
// (TestNodeBehindAnUnreachableDatabaseTakesNoWritesUnlessForced, about 1
// run in 100 on a loaded machine).
func (c *Cluster) lockOrder(v *view, nodes []*Node) []*Node {
	var skipped, written []*Node
	for _, n := range nodes {
		if !v.writes(n) && !containsNode(skipped, n) {
			skipped = append(skipped, n)
		}
	}
	for _, n := range v.write {
		if containsNode(nodes, n) {
			written = append(written, n)
		}
	}
	rank := map[*Node]int{}
	for i, n := range c.ranked() {
		rank[n] = i
	}
	slices.SortStableFunc(skipped, func(a, b *Node) int { return rank[a.database()] - rank[b.database()] })
	return append(skipped, written...)
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
