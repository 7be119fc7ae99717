package tandem

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/tandemdb/tandem/arbiter"
	"github.com/tandemdb/tandem/internal/records"
	"github.com/tandemdb/tandem/internal/rows"
)

// Catch-up: a database that missed writes receives the current rows of the
// keys it missed, named by the missed-key records that every database the
// writes reached holds (see [records.Missed]), and then rejoins the writes.
//
// Each batch runs under the locks of every database it touches, taken in
// the order writes take them (the primary first): a concurrent writer of a
// key waits for the batch on the primary, so the batch never copies a row
// image older than one a writer has already written, and a row absent on
// the primary stays absent until the batch commits. The cost follows the
// number of keys missed, not the size of the tables.

// catchUpBatch is how many keys one batch copies: small enough that the
// writers it holds up wait milliseconds.
const catchUpBatch = 500

// refusals are the keys a catch-up pass could not copy: a database refused
// the row for a constraint (a unique value another row holds there).
type refusals struct {
	n     int64
	first error
}

func (r *refusals) add(err error) {
	if r.n++; r.first == nil {
		r.first = err
	}
}

// refusedState is what Status shows of the keys one kind of copy (catch-up,
// the repair of writes in doubt) could not make to or from a node.
type refusedState struct {
	n   int64
	err string // why, for the first of them
}

// noteRefused publishes r, what the copy called what last could not copy
// to or from n, in the slot of n's live state that slot selects, for Status
// and the metrics, and sends EventCopyRefused when keys begin to be refused
// (or the reason changes).
func (c *Cluster) noteRefused(n *Node, slot func(*liveState) *refusedState, r refusals, what string) {
	msg := ""
	if r.first != nil {
		msg = r.first.Error()
	}
	n.mu.Lock()
	s := slot(&n.live)
	was := s.err
	*s = refusedState{n: r.n, err: msg}
	n.mu.Unlock()
	if r.n > 0 && msg != was {
		c.log.Warn(what+" cannot copy some keys", "node", n.name, "keys", r.n, "first", msg)
		c.event(EventCopyRefused, n.name, "%s of %s cannot copy %d keys; the first: %s", what, n.name, r.n, msg)
	}
}

// copiesRefused publishes what a catch-up pass of x could not copy.
func (c *Cluster) copiesRefused(x *Node, r refusals) {
	c.noteRefused(x, func(l *liveState) *refusedState { return &l.refused }, r, "catch-up")
}

// joinBehind is how many keys a database may still miss when it asks to
// rejoin the writes: they are copied while every database is locked, so
// writes wait for them.
const joinBehind = catchUpBatch

// catchUpAll catches up every reachable database that misses writes, or
// holds writes the others miss.
func (c *Cluster) catchUpAll(ctx context.Context) error {
	var errs []error
	for _, x := range c.ranked() {
		v := c.view.Load()
		st := x.state()
		if !x.reachable() || v.primary == nil {
			continue
		}
		var err error
		switch {
		case x == v.primary:
		case st.behind() > 0 || st.holds[v.primary.name] > 0:
			err = c.CatchUp(ctx, x.name)
		case v.rec.Excludes(x.name) || st.outdated != "":
			_, err = c.finishCatchUp(ctx, x)
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// CatchUp brings the datasource called name up to date now: it copies the
// current rows of every key it missed from the primary, copies to the
// others the keys only it holds (after a split brain or a takeover), lists
// keys both sides changed as conflicts (resolved by the configured policy),
// and, once nothing is missing, clears its outdated marker so it rejoins the
// writes. The health loop calls it on its own; it is safe to call at any
// time from any process.
func (c *Cluster) CatchUp(ctx context.Context, name string) error {
	x := c.node(name)
	if x == nil {
		return fmt.Errorf("catch up: no datasource called %q", name)
	}
	x = x.database()
	if !x.reachable() {
		return fmt.Errorf("%w: catch up %s: it cannot be reached", ErrNodeDown, x.name)
	}
	x.mu.Lock()
	if x.live.catching {
		x.mu.Unlock()
		return nil
	}
	x.live.catching = true
	x.mu.Unlock()
	defer func() {
		x.mu.Lock()
		x.live.catching = false
		x.mu.Unlock()
	}()

	start := time.Now()
	var copied int
	var refused refusals
	for _, phase := range []bool{false, true} {
		var cursor records.Key
		for {
			sctx, cancel := c.stepContext(ctx)
			n, next, err := c.catchUpStep(sctx, x, phase, cursor, &refused)
			cancel()
			c.catchUpProgress(x, n, err)
			copied += n
			if err != nil {
				return fmt.Errorf("catch up %s: %w", x.name, err)
			}
			if next == nil {
				break
			}
			cursor = *next
		}
	}
	c.copiesRefused(x, refused)
	sctx, cancel := c.stepContext(ctx)
	done, err := c.finishCatchUp(sctx, x)
	cancel()
	if err != nil {
		return fmt.Errorf("catch up %s: %w", x.name, err)
	}
	if copied > 0 || done {
		c.log.Info("caught up", "node", x.name, "keys", copied, "elapsed", time.Since(start).Round(time.Millisecond), "complete", done)
	}
	if x.state().conflicts > 0 && c.view.Load().writes(x) && c.view.Load().primary != x {
		// A conflict waits: the primary's row is the one served meanwhile,
		// and x is left out until it is resolved.
		if err := c.exclude(ctx, x, errors.New("a conflict waits for its resolution")); err != nil && !errors.Is(err, errViewChanged) {
			return fmt.Errorf("catch up %s: %w", x.name, err)
		}
	}
	if done {
		c.kick() // let it rejoin now
	}
	return nil
}

// stepContext bounds one step of the health loop's work (a batch of
// catch-up, a sweep): a database that stops answering mid-step must not
// hold the loop, which is what finds it down. A step may wait for tandem's
// lock (lockWait timeouts) and then work.
func (c *Cluster) stepContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, 2*lockWait*c.timeout)
}

// catchUpStep copies one batch of keys. With reverse false it copies keys
// that x misses from the primary to x; with reverse true, keys that x holds
// and the databases being written miss, from x to them. It returns how many
// keys it copied and where the next batch starts (nil: the pass is over).
func (c *Cluster) catchUpStep(ctx context.Context, x *Node, reverse bool, from records.Key, refused *refusals) (int, *records.Key, error) {
	v, release, err := c.acquire()
	if err != nil {
		return 0, nil, err
	}
	defer release()
	if v.primary == x {
		return 0, nil, nil
	}
	for _, n := range append([]*Node{x}, v.write...) {
		if !n.reachable() {
			return 0, nil, nil // a database found down is not read or written until it is back
		}
	}
	start := time.Now()
	s, err := c.lockAll(ctx, v, x)
	if err != nil {
		return 0, nil, err
	}
	defer s.rollback()
	copied, next, err := c.copyMissed(ctx, s, v, x, reverse, from, refused)
	if err != nil || copied == 0 && next == nil {
		return 0, nil, err
	}
	receivers := []*Node{x}
	if reverse {
		receivers = v.write
	}
	if err := s.commit(receivers...); err != nil {
		return 0, nil, err
	}
	countCaughtUp(receivers, copied)
	for _, n := range receivers {
		n.counters.catchUp.since(start)
	}
	return copied, next, nil
}

// copyMissed copies, inside s, one batch of the keys catchUpStep copies,
// and deletes their records; the caller commits s, the receivers first.
func (c *Cluster) copyMissed(ctx context.Context, s *session, v *view, x *Node, reverse bool, from records.Key, refused *refusals) (int, *records.Key, error) {
	p := v.primary
	ptx := s.txs[p]

	// The records to work through: those the written databases hold for x,
	// or those x holds for them.
	holder, missing := p, []*Node{x}
	if reverse {
		holder, missing = x, v.write
	}
	recs, err := holder.records.MissedKeys(ctx, s.txs[holder], names(missing), from, catchUpBatch)
	if err != nil {
		return 0, nil, fmt.Errorf("read missed keys on %s: %w", holder.name, err)
	}
	if len(recs) == 0 {
		return 0, nil, nil
	}
	c.catchUpBegins(x)
	defs, err := p.tableDefs(ctx, ptx)
	if err != nil {
		return 0, nil, err
	}
	open, err := c.unresolved(ctx, s, []*Node{p, x})
	if err != nil {
		return 0, nil, err
	}
	// Which databases hold records at all, so that a batch without a split
	// brain spends no statements looking for one.
	holds := map[*Node]bool{}
	for _, w := range v.write {
		if holds[w], err = w.records.HasAnyMissed(ctx, s.txs[w], []string{x.name}); err != nil {
			return 0, nil, err
		}
	}
	if holds[x], err = x.records.HasAnyMissed(ctx, s.txs[x], names(v.write)); err != nil {
		return 0, nil, err
	}
	src, dsts := p, []*Node{x}
	if reverse {
		src, dsts = x, v.write
	}
	// The rows to copy, by table, written together once read: a batch
	// converges where rows written one by one would refuse each other
	// (a unique value moved between them).
	type batch struct {
		td      *rows.Def
		recs    []records.Key
		changes []rows.Change
	}
	var tables []*batch
	byTable := map[string]*batch{}
	copied := 0
	for _, r := range recs {
		if open[r] {
			continue // a conflict waits for its resolution
		}
		td := defs[r.Table]
		if td == nil {
			return copied, nil, fmt.Errorf("table %s, named by a missed-key record, is not in %s", r.Table, p.name)
		}
		key, err := td.DecodeKey(r.PK)
		if err != nil {
			return copied, nil, err
		}
		// Did the other side change the key too? Then it is a conflict.
		other, otherMissing := x, v.write
		if reverse {
			other, otherMissing = p, []*Node{x}
		}
		both := false
		if holds[other] {
			if both, err = other.records.HasMissed(ctx, s.txs[other], names(otherMissing), r); err != nil {
				return copied, nil, err
			}
		}
		if both {
			waits, err := c.conflict(ctx, s, v, x, td, r, key)
			if err != nil {
				return copied, nil, err
			}
			if waits {
				// Until the next check counts it, keep x out of the writes.
				defer func() {
					x.mu.Lock()
					x.live.conflicts++
					x.mu.Unlock()
				}()
			}
		} else {
			row, err := src.readRow(ctx, s.txs[src], td, key)
			if err != nil {
				return copied, nil, err
			}
			b := byTable[r.Table]
			if b == nil {
				b = &batch{td: td}
				byTable[r.Table] = b
				tables = append(tables, b)
			}
			b.recs = append(b.recs, r)
			b.changes = append(b.changes, rows.Change{Key: key, Row: row})
			continue
		}
		if err := c.forget(ctx, s, v, x, r, holds); err != nil {
			return copied, nil, err
		}
		copied++
	}
	for _, b := range tables {
		stuck := map[int]error{}
		for _, d := range dsts {
			ref, err := d.applyRows(ctx, s.txs[d], b.td, b.changes)
			if err != nil {
				return copied, nil, err
			}
			for i, err := range ref {
				stuck[i] = fmt.Errorf("%s: %w", d.name, err)
			}
		}
		for i, r := range b.recs {
			if err, ok := stuck[i]; ok {
				// Its record stays: a later pass copies it once the row
				// that holds its value is copied too (or repaired).
				refused.add(fmt.Errorf("%s %s: %w", r.Table, r.PK, err))
				continue
			}
			if err := c.forget(ctx, s, v, x, r, holds); err != nil {
				return copied, nil, err
			}
			copied++
		}
	}
	if len(recs) < catchUpBatch {
		return copied, nil, nil
	}
	return copied, &recs[len(recs)-1], nil
}

// forget deletes the missed-key records of r between x and the written
// databases, in both directions, from every database that holds any.
func (c *Cluster) forget(ctx context.Context, s *session, v *view, x *Node, r records.Key, holds map[*Node]bool) error {
	for _, w := range v.write {
		if holds[w] {
			if err := w.records.DeleteMissed(ctx, s.txs[w], []string{x.name}, r); err != nil {
				return err
			}
		}
	}
	if !holds[x] {
		return nil
	}
	return x.records.DeleteMissed(ctx, s.txs[x], names(v.write), r)
}

// finishCatchUp lets x rejoin the writes once it misses nothing: under the
// locks of every database, so that no write records a key as missed by x
// meanwhile, it checks that no database records a key x missed and that no
// conflict of x waits, and changes the view to include x (clearing any
// outdated marker left from before views). It reports whether x is
// complete. Every database must be reachable: one that is not may hold
// records of what x missed.
func (c *Cluster) finishCatchUp(ctx context.Context, x *Node) (bool, error) {
	all := c.ranked()
	for _, n := range all {
		if !n.reachable() {
			return false, nil
		}
	}
	errNotYet := errors.New("not caught up yet")
	err := c.changeBy(ctx, fmt.Sprintf("%s has caught up", x.name), false, []*Node{x}, func(cur arbiter.View) (arbiter.View, bool) {
		next := cur
		next.Excluded = slices.DeleteFunc(slices.Clone(cur.Excluded), func(n string) bool { return n == x.name })
		return next, len(next.Excluded) < len(cur.Excluded) || x.state().outdated != ""
	}, func(s *session) error {
		if ok, err := c.matchPrimary(ctx, s, x, all, "rejoins the writes"); err != nil {
			return err
		} else if !ok {
			return errNotYet
		}
		for _, n := range all {
			if err := n.records.DeleteMeta(ctx, s.txs[n], records.Outdated); err != nil {
				return err
			}
		}
		return nil
	})
	switch {
	case errors.Is(err, errNotYet):
		return false, nil
	case err != nil:
		return false, err
	}
	// What it misses, as this process knows it, is what the last check
	// counted, before the catch-up: it misses nothing now.
	x.mu.Lock()
	x.live.behindBy = nil
	x.live.outdated = ""
	x.mu.Unlock()
	c.catchUpEnd(x, true)
	return true, nil
}

// matchPrimary makes x hold the primary's rows of every key where it may
// differ, under the locks of s (every database in all, which is every one
// that may hold records of x): it copies what x missed since catch-up's
// last batch (a steady stream of writes cannot keep it out for ever), checks
// that no database records a key x misses and no conflict of x waits, and
// settles every write in doubt (settleDoubts). It runs before x rejoins the
// writes and before x takes over as the primary; false: not yet (too much
// left to copy, or a row x refuses).
func (c *Cluster) matchPrimary(ctx context.Context, s *session, x *Node, all []*Node, why string) (bool, error) {
	v := c.view.Load()
	var from records.Key
	for copied := 0; ; {
		n, next, err := c.copyMissed(ctx, s, v, x, false, from, &refusals{})
		if err != nil {
			return false, err
		}
		if copied += n; next == nil {
			countCaughtUp([]*Node{x}, copied)
			break
		}
		if copied >= joinBehind {
			return false, nil
		}
		from = *next
	}
	if ok, err := c.missesNothing(ctx, s, v, x, all); err != nil || !ok {
		return false, err
	}
	return c.settleDoubts(ctx, s, v, x, why)
}

// settleDoubts makes x's rows of every write in doubt, on x or on
// the primary, equal the primary's before x rejoins the writes or takes
// over as the primary (why says which); the primary's rows are the truth
// (see sweep).
//
// A write in doubt is one whose process died, or gave up, between its
// commits: some databases committed it and others did not, and no record
// says which missed it. Writes after it that changed some of its keys
// carried the primary's rows of those keys to every database, so a
// database that lacks it holds it in part. Rejoining that way, or taking
// over that way, would serve (and keep) a write in part: a transfer's
// debit without its credit.
//
// A write in doubt that x holds and the primary does not committed on x
// alone (a commit a hung or killed server carried out after tandem gave up
// on it, while x was left out) and was never acknowledged: x's rows of it
// are undone and its record deleted. Once x takes part in the writes it
// could become the primary, and a sweep would then complete the write from
// x, in part, over rows the interim primary wrote.
//
// A write in doubt the primary holds may be one x never saw: committed on
// the primary while it was a secondary whose commit failed on the old
// primary, no database recorded that x missed it, and later writes built
// on it. x gets the primary's rows of its keys (the record stays, for the
// sweep), else a later primary lacking it would undo it, in part.
//
// It reports false when x refuses a row (a constraint), which the status
// shows.
func (c *Cluster) settleDoubts(ctx context.Context, s *session, v *view, x *Node, why string) (bool, error) {
	p := v.primary
	if p == nil || p == x {
		return true, nil
	}
	future := time.Now().Add(time.Hour).UnixMilli() // every record, whatever its age
	mine, err := x.records.StaleIntents(ctx, s.txs[x], future, 1<<20)
	if err != nil {
		return false, fmt.Errorf("read intent records on %s: %w", x.name, err)
	}
	theirs, err := p.records.StaleIntents(ctx, s.txs[p], future, 1<<20)
	if err != nil {
		return false, fmt.Errorf("read intent records on %s: %w", p.name, err)
	}
	var defs map[string]*rows.Def
	settle := func(holder *Node, id string) (bool, error) {
		keys, err := holder.records.IntentKeys(ctx, s.txs[holder], id)
		if err != nil {
			return false, err
		}
		if defs == nil {
			if defs, err = p.tableDefs(ctx, s.txs[p]); err != nil {
				return false, err
			}
		}
		t, err := p.readRows(ctx, s.txs[p], defs, keys, fmt.Sprintf("intent %s on %s", id, holder.name))
		if err != nil {
			return false, err
		}
		var refused refusals
		whole, err := x.applyTables(ctx, s.txs[x], defs, t, &refused)
		if err == nil && !whole {
			c.copiesRefused(x, refused)
		}
		return whole, err
	}
	held := map[string]bool{}
	for _, id := range theirs {
		held[id] = true
		if ok, err := settle(p, id); err != nil || !ok {
			return ok, err
		}
	}
	for _, id := range mine {
		if held[id] {
			continue // x now has the primary's rows of it; the sweep ends it
		}
		if ok, err := settle(x, id); err != nil || !ok {
			return ok, err
		}
		if err := x.records.DeleteIntent(ctx, s.txs[x], id); err != nil {
			return false, err
		}
		c.log.Info("undid a write the primary lacks before the datasource "+why, "node", x.name, "txid", id, "primary", p.name)
	}
	return true, nil
}

// missesNothing reports whether no database of all records a key as
// missed by n and, unless n is v's primary, no conflict of n waits (the
// primary's rows are the ones served while a conflict waits; the other
// side waits with it).
func (c *Cluster) missesNothing(ctx context.Context, s *session, v *view, n *Node, all []*Node) (bool, error) {
	for _, m := range all {
		if m == n {
			continue
		}
		if left, err := m.records.HasAnyMissed(ctx, s.txs[m], []string{n.name}); err != nil || left {
			return false, err
		}
	}
	if n == v.primary {
		return true, nil
	}
	open, err := c.unresolved(ctx, s, []*Node{n})
	return err == nil && len(open) == 0, err
}
