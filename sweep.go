package tandem

import (
	"context"
	"fmt"
	"time"

	"github.com/tandemdb/tandem/internal/records"
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
	if len(doubts) == 0 {
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
			for _, w := range v.write {
				if w != src {
					if err := w.writeRow(ctx, s.txs[w], td, key, row); err != nil {
						return err
					}
				}
			}
			in.Keys = append(in.Keys, k)
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
	return s.commit(v.write[1:]...)
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
