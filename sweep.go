package tandem

import (
	"context"
	"fmt"
	"time"

	"github.com/tandemdb/tandem/internal/records"
	"github.com/tandemdb/tandem/internal/rows"
)

// sweep repairs writes left in doubt: intent records older than
// c.sweepAfter belong to writes whose process died between commits, or
// failed to clear them. Under the locks of every written database, the
// primary's current rows of their keys are copied to the others, whole
// (a savepoint per write), and the records deleted.
//
// The primary's rows, whichever database holds the record: every write
// reaches the primary first, and every later write of those keys read and
// wrote the primary's rows. A write the primary holds is so completed
// everywhere (with whatever later writes made of its rows); a write the
// primary lacks (committed on a secondary only before a crash, or by a
// hung server after tandem gave up on it) was never acknowledged, and is
// undone everywhere. Copying a secondary's rows instead could apply a
// transaction in part: its rows that later writes changed would keep the
// later values, the others its own (a bank total off by the transfer).
//
// A primary that misses keys (another written database records some) is
// not the truth yet: the sweep waits for catch-up.
func (c *Cluster) sweep(ctx context.Context) error {
	// Look for records first without the gate: a view change waits for
	// the gate's holders, and a database that stops answering this read
	// must not hold it (readGuard ends the read when it is found down).
	v := c.view.Load()
	if v.primary == nil {
		return nil
	}
	for _, n := range v.write {
		if !n.reachable() {
			return nil // the view leaves it out first
		}
	}
	cutoff := time.Now().Add(-c.sweepAfter).UnixMilli()
	var doubts []doubt
	seen := map[string]bool{}
	for _, n := range v.write {
		rctx, done := n.readGuard(ctx, nil)
		ids, err := n.records.StaleIntents(rctx, n.conn().Read, cutoff, 64)
		done()
		if err != nil {
			return err
		}
		for _, id := range ids {
			if !seen[id] {
				seen[id] = true
				doubts = append(doubts, doubt{n, id})
			}
		}
	}
	refused := map[*Node]*refusals{}
	if len(doubts) == 0 {
		c.sweepRefused(v.write, refused)
		return nil
	}
	if err := c.repairDoubts(ctx, v, refused, "repaired a write left in doubt", func(*session) ([]doubt, error) { return doubts, nil }); err != nil {
		return err
	}
	c.sweepRefused(v.write, refused)
	return nil
}

// doubt is a write in doubt: its txid, and a database that holds its intent
// record.
type doubt struct {
	holder *Node
	txid   string
}

// settleDoubtsOf ends, before the sweep would, the doubt of each of txids
// whose intent record some databases of the view hold and others lack (a
// write whose process died between its commits). A write found it: its
// keys overlap (see overlapsDoubt). A record every database holds belongs
// to a write committed everywhere, left to the clearer; one none holds was
// settled meanwhile.
func (c *Cluster) settleDoubtsOf(ctx context.Context, txids []string) error {
	v := c.view.Load()
	if v.primary == nil || len(v.write) < 2 {
		return nil
	}
	// First without locks: a record another process's clearer was
	// deleting is gone by now from every database, and costs no lock.
	rctx, cancel := context.WithTimeout(ctx, lockWait*c.timeout)
	doubts, err := c.inDoubt(rctx, v, txids, func(n *Node) (records.Querier, error) {
		if db := n.conn(); db != nil {
			return db.Read, nil
		}
		return nil, fmt.Errorf("%w: %s is not open", ErrNodeDown, n.name)
	})
	cancel()
	if err != nil || len(doubts) == 0 {
		return err
	}
	still := make([]string, len(doubts))
	for i, d := range doubts {
		still[i] = d.txid
	}
	refused := map[*Node]*refusals{}
	return c.repairDoubts(ctx, v, refused, "ended the doubt of a write before a write of its keys", func(s *session) ([]doubt, error) {
		return c.inDoubt(ctx, v, still, func(n *Node) (records.Querier, error) { return s.txs[n], nil })
	})
}

// inDoubt returns those of txids whose intent record some databases of
// v.write hold and others lack, as read through q.
func (c *Cluster) inDoubt(ctx context.Context, v *view, txids []string, q func(*Node) (records.Querier, error)) ([]doubt, error) {
	var doubts []doubt
	for _, id := range txids {
		var holders []*Node
		for _, n := range v.write {
			r, err := q(n)
			if err != nil {
				return nil, err
			}
			held, err := n.records.HoldsIntent(ctx, r, id)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", n.name, err)
			}
			if held {
				holders = append(holders, n)
			}
		}
		if len(holders) > 0 && len(holders) < len(v.write) {
			doubts = append(doubts, doubt{holders[0], id})
		}
	}
	return doubts, nil
}

// repairDoubts repairs, under v and the locks of every database it writes,
// the writes in doubt that find lists (inside those locks): the primary's
// current rows of each one's keys are copied to the others, whole (a
// savepoint per write; a refused row is added to refused and its record
// stays), and its records deleted; each is logged with the message done. A primary that misses keys (another
// written database records some) is not the truth yet: nothing is
// repaired until it has caught up.
func (c *Cluster) repairDoubts(ctx context.Context, v *view, refused map[*Node]*refusals, done string, find func(*session) ([]doubt, error)) error {
	cur, release, err := c.acquire()
	if err != nil {
		return err
	}
	defer release()
	if cur != v {
		return nil // the next round looks again, under the new view
	}
	s, err := c.lockAll(ctx, v)
	if err != nil {
		return err
	}
	defer s.rollback()
	doubts, err := find(s)
	if err != nil || len(doubts) == 0 {
		return err
	}
	p := v.primary
	defs, err := p.tableDefs(ctx, s.txs[p])
	if err != nil {
		return err
	}
	if behind, err := c.missesKeys(ctx, s, v, p); err != nil {
		return err
	} else if behind {
		c.log.Debug("writes in doubt wait for the primary's catch-up", "primary", p.name, "writes", len(doubts))
		return nil
	}
	for _, d := range doubts {
		keys, err := d.holder.records.IntentKeys(ctx, s.txs[d.holder], d.txid)
		if err != nil {
			return err
		}
		in := records.IntentOf(d.txid, time.Now().UnixMilli(), keys)
		t, err := p.readRows(ctx, s.txs[p], defs, keys, "intent "+d.txid)
		if err != nil {
			return err
		}
		whole, err := c.copyWhole(ctx, s, v, p, defs, t, refused)
		if err != nil {
			return err
		}
		if !whole {
			continue // its record stays; the next sweep tries again
		}
		for _, w := range v.write {
			if err := w.records.RecordMissed(ctx, s.txs[w], in, names(v.skip)); err != nil {
				return err
			}
			if err := w.records.DeleteIntent(ctx, s.txs[w], d.txid); err != nil {
				return err
			}
		}
		c.log.Info(done, "txid", d.txid, "keys", len(keys), "from", p.name)
	}
	return s.commit(v.write[1:]...)
}

// sweepRefused publishes, for each database of nodes, the rows of writes
// in doubt the last sweep could not copy to it (see copyWhole).
func (c *Cluster) sweepRefused(nodes []*Node, refused map[*Node]*refusals) {
	for _, n := range nodes {
		r := refused[n]
		if r == nil {
			r = &refusals{}
		}
		c.noteRefused(n, func(l *liveState) *refusedState { return &l.sweepRefused }, *r, "the repair of writes in doubt")
	}
}

// copyWhole copies a write in doubt's rows from src to every other database
// of v.write, all of them or none: when a database refuses a row (a unique
// value that a row outside the write holds there), what was copied is
// undone, the refusal is added to refused (by the database that refused),
// and it reports false.
func (c *Cluster) copyWhole(ctx context.Context, s *session, v *view, src *Node, defs map[string]*rows.Def, t *tableRows, refused map[*Node]*refusals) (bool, error) {
	var targets []*Node
	for _, w := range v.write {
		if w != src {
			targets = append(targets, w)
		}
	}
	for _, w := range targets {
		if _, err := s.txs[w].ExecContext(ctx, "SAVEPOINT tandem_doubt"); err != nil {
			return false, fmt.Errorf("%s: savepoint: %w", w.name, err)
		}
	}
	whole := true
	for _, w := range targets {
		if refused[w] == nil {
			refused[w] = &refusals{}
		}
		ok, err := w.applyTables(ctx, s.txs[w], defs, t, refused[w])
		if err != nil {
			return false, err
		}
		whole = whole && ok
	}
	end := "RELEASE SAVEPOINT tandem_doubt"
	if !whole {
		end = "ROLLBACK TO SAVEPOINT tandem_doubt"
	}
	for _, w := range targets {
		if _, err := s.txs[w].ExecContext(ctx, end); err != nil {
			return false, fmt.Errorf("%s: %s: %w", w.name, end, err)
		}
	}
	return whole, nil
}

// missesKeys reports whether a database of v.write other than n records
// keys n missed, inside the sweep's transactions s.
func (c *Cluster) missesKeys(ctx context.Context, s *session, v *view, n *Node) (bool, error) {
	for _, w := range v.write {
		if w == n {
			continue
		}
		if left, err := w.records.HasAnyMissed(ctx, s.txs[w], []string{n.name}); err != nil || left {
			return left, err
		}
	}
	return false, nil
}
