package tandem

import (
	"context"
	"fmt"
	"time"

	"github.com/tandemdb/tandem/internal/records"
)

// checkNotAhead refuses a write, inside tx on n, when n records keys as
// missed by the primary: then the primary lacks rows n has, and full rows
// read there would overwrite them. (Keys n records as missed by another
// secondary do no harm: that one is catching up.) Holding n's lock, no
// other writer can add such a record until the write ends.
func (n *Node) checkNotAhead(ctx context.Context, tx querier, primary *Node) error {
	ahead, err := n.records.HasAnyMissed(ctx, tx, []string{primary.name})
	switch {
	case err != nil:
		return fmt.Errorf("check missed keys on %s: %w", n.name, err)
	case !ahead:
		return nil
	}
	return fmt.Errorf("%w: %s records keys that %s missed; retry", errPrimaryBehind, n.name, primary.name)
}

// missesWritesOf notes that holder records keys n missed, until the next
// check counts them.
func (n *Node) missesWritesOf(holder *Node) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.live.behindBy == nil {
		n.live.behindBy = map[string]missedBy{}
	}
	if _, ok := n.live.behindBy[holder.name]; !ok {
		n.live.behindBy[holder.name] = missedBy{count: 1, seen: time.Now()}
	}
}

// settleIntent turns in's intent record on n, a database that committed
// the write, into missed-key records for the databases that failed to.
func (n *Node) settleIntent(ctx context.Context, wait time.Duration, in *records.Intent, lost []*Node) error {
	tx, err := n.begin(ctx, wait)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := n.records.RecordMissed(ctx, tx, in, names(lost)); err != nil {
		return err
	}
	if err := n.records.DeleteIntent(ctx, tx, in.TxID); err != nil {
		return err
	}
	return tx.Commit()
}

// fence refuses, inside tx on n, a write made under a view of generation
// gen when n has taken part in a newer view: another process changed the
// view, and the write runs again under it. Otherwise n takes part in gen
// from then on (the first write under a new view records it, where the
// change itself could not reach n).
//
// In the same statement it checks that tx reached n's own database (see
// identify): a write never lands in another database through a taken-over
// address.
func (n *Node) fence(ctx context.Context, tx *dbTx, gen int64) error {
	want := n.ownID()
	keys := []string{records.Generation}
	if want != "" {
		keys = append(keys, records.NodeID)
	}
	meta, err := n.records.Metas(ctx, tx, keys...)
	if err != nil {
		return fmt.Errorf("read the view generation on %s: %w", n.name, err)
	}
	if err := n.reaches(meta[records.NodeID], want); err != nil {
		return err
	}
	if n.cluster.noFence {
		return nil
	}
	stored, err := n.records.ParseGeneration(meta[records.Generation])
	if err != nil {
		return fmt.Errorf("read the view generation on %s: %w", n.name, err)
	}
	switch {
	case stored > gen:
		return fmt.Errorf("%w: %s took part in generation %d, the write was made under %d", errFenced, n.name, stored, gen)
	case stored < gen:
		if err := n.records.SetGeneration(ctx, tx, gen); err != nil {
			return fmt.Errorf("set the view generation on %s: %w", n.name, err)
		}
	}
	return nil
}

// identify checks, inside tx on n, that tx reached n's own database. A
// pool opens connections when it needs them, and an address (a link, an
// IP) that another database took over in the meantime gives it connections
// to that database: checking once, when n was opened, does not cover the
// connections opened later. A mismatch closes n's connections (takenOver)
// and says n is down.
func (n *Node) identify(ctx context.Context, tx *dbTx) error {
	want := n.ownID()
	if want == "" {
		return nil
	}
	id, err := n.records.Meta(ctx, tx, records.NodeID)
	if err != nil {
		return fmt.Errorf("read the node id on %s: %w", n.name, err)
	}
	return n.reaches(id, want)
}
