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
// failed to clear them. The current rows of their keys are copied, under
// the locks of every written database, from the primary (or, if only a
// secondary holds the record, from that secondary: the primary failed to
// commit the write) to the others, and the records deleted.
//
// A secondary that holds the only record but is still catching up (another
// written database records keys it missed) is left for a later sweep. Its
// record may belong to a commit that reached it after the write had been
// recorded as missed there (a COMMIT that a hung or killed server carried
// out after tandem gave up on it): the rows it holds for those keys are
// then older than the primary's, and copying them would overwrite newer
// writes. Once catch-up has copied the keys it missed, its rows are the
// primary's or newer, and the copy is right.
func (c *Cluster) sweep(ctx context.Context) error {
	v, release, err := c.acquire()
	if err != nil {
		return err
	}
	defer release()
	for _, n := range v.write {
		if !n.reachable() {
			return nil // the view leaves it out first
		}
	}
	cutoff := time.Now().Add(-c.sweepAfter).UnixMilli()
	type doubt struct {
		holder *Node
		txid   string
	}
	var doubts []doubt
	seen := map[string]bool{}
	for _, n := range v.write {
		ids, err := n.records.StaleIntents(ctx, n.conn().Read, cutoff, 64)
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
	s, err := c.lockAll(ctx, v)
	if err != nil {
		return err
	}
	defer s.rollback()
	p := v.primary
	defs, err := p.tableDefs(ctx, s.txs[p])
	if err != nil {
		return err
	}
	for _, d := range doubts {
		src := p
		if has, err := p.records.HoldsIntent(ctx, s.txs[p], d.txid); err != nil {
			return err
		} else if !has {
			src = d.holder
			if behind, err := c.missesKeys(ctx, s, v, src); err != nil {
				return err
			} else if behind {
				c.log.Debug("a write in doubt waits for catch-up", "txid", d.txid, "holder", src.name)
				continue
			}
		}
		keys, err := src.records.IntentKeys(ctx, s.txs[src], d.txid)
		if err != nil {
			return err
		}
		in := &records.Intent{TxID: d.txid, At: time.Now().UnixMilli()}
		// The write's rows, by table, copied together: within one
		// transaction unique values may move between its rows.
		var tables []string
		batches := map[string][]rows.Change{}
		for _, k := range keys {
			td := defs[k.Table]
			if td == nil {
				return fmt.Errorf("table %s, named by intent %s, is not in %s", k.Table, d.txid, p.name)
			}
			key, err := td.DecodeKey(k.PK)
			if err != nil {
				return err
			}
			row, err := src.readRow(ctx, s.txs[src], td, key)
			if err != nil {
				return err
			}
			if batches[k.Table] == nil {
				tables = append(tables, k.Table)
			}
			batches[k.Table] = append(batches[k.Table], rows.Change{Key: key, Row: row})
			in.Keys = append(in.Keys, k)
		}
		whole, err := c.copyWhole(ctx, s, v, src, defs, tables, batches, refused)
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
		c.log.Info("repaired a write left in doubt", "txid", d.txid, "keys", len(keys), "from", src.name)
	}
	if err := s.commit(v.write[1:]...); err != nil {
		return err
	}
	c.sweepRefused(v.write, refused)
	return nil
}

// sweepRefused publishes, for each database of nodes, the rows of writes
// in doubt the last sweep could not copy to it (see copyWhole).
func (c *Cluster) sweepRefused(nodes []*Node, refused map[*Node]*refusals) {
	for _, n := range nodes {
		r := refused[n]
		if r == nil {
			r = &refusals{}
		}
		msg := ""
		if r.first != nil {
			msg = r.first.Error()
		}
		n.mu.Lock()
		was := n.live.sweepErr
		n.live.sweepRefused, n.live.sweepErr = r.n, msg
		n.mu.Unlock()
		if r.n > 0 && msg != was {
			c.log.Warn("a write in doubt cannot be repaired: a database refuses its rows", "node", n.name, "err", msg)
			c.event(EventCopyRefused, n.name, "the repair of writes in doubt cannot copy %d keys to %s; the first: %s", r.n, n.name, msg)
		}
	}
}

// copyWhole copies a write in doubt's rows from src to every other database
// of v.write, all of them or none: when a database refuses a row (a unique
// value that a row outside the write holds there), what was copied is
// undone, the refusal is added to refused (by the database that refused),
// and it reports false.
func (c *Cluster) copyWhole(ctx context.Context, s *session, v *view, src *Node, defs map[string]*rows.Def, tables []string, batches map[string][]rows.Change, refused map[*Node]*refusals) (bool, error) {
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
	for _, table := range tables {
		for _, w := range targets {
			ref, err := w.applyRows(ctx, s.txs[w], defs[table], batches[table])
			if err != nil {
				return false, err
			}
			if len(ref) > 0 {
				whole = false
				if refused[w] == nil {
					refused[w] = &refusals{}
				}
				for i := range ref {
					refused[w].add(fmt.Errorf("%s", rows.RefusedError(defs[table], batches[table], map[int]error{i: ref[i]})))
				}
			}
		}
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
