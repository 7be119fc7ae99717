package tandem

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tandemdb/tandem/internal/records"
)

// The health loop: each HealthInterval (or when a failed write kicks it)
// every process checks every database on a connection of its own, reads
// the lasting state the databases hold (outdated markers, missed-key
// records, conflicts, promotions), installs the view that follows
// ([Cluster.recompute]), catches up databases that missed writes and
// repairs writes left in doubt. An operator's Promote is the one change of
// that state made by hand.

// kick asks the health loop to check every node now.
func (c *Cluster) kick() {
	select {
	case c.kicks <- struct{}{}:
	default:
	}
}

// roundContext returns the context of one round of background work: it
// ends when the round calls cancel or the cluster closes.
func (c *Cluster) roundContext() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-c.stop:
		case <-ctx.Done():
		}
		cancel()
	}()
	return ctx, cancel
}

// health checks every node each HealthInterval (or when kicked): it
// reopens nodes that were down, reads their lasting state, installs the
// view that follows, catches up nodes that missed writes, and repairs
// writes left in doubt by a process that died between commits.
func (c *Cluster) health() {
	defer close(c.healthDone)
	if c.twoPhase {
		// On a loop of its own: a prepared transaction left behind holds
		// its database's lock, which the checks below may wait for.
		done := make(chan struct{})
		defer func() { <-done }()
		go c.resolveLoop(done)
	}
	t := time.NewTicker(c.interval)
	defer t.Stop()
	lastSweep := time.Time{}
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		case <-c.kicks:
		}
		ctx, cancel := c.roundContext()
		c.refresh(ctx, true)
		c.recompute()
		if err := c.catchUpAll(ctx); err != nil && ctx.Err() == nil {
			c.log.Warn("catch-up", "err", err)
		}
		if time.Since(lastSweep) >= c.interval*4 {
			lastSweep = time.Now()
			sctx, cancel := c.stepContext(ctx)
			err := c.sweep(sctx)
			cancel()
			if err != nil && ctx.Err() == nil {
				c.log.Warn("repairing writes in doubt", "err", err)
			}
		}
		cancel()
	}
}

// probe is what one check reads from one database.
type probe struct {
	err        error // the database could not be read: the rest is unknown
	writeErr   error // a down database still takes no writes
	outdated   string
	promotedAt int64            // unix ms of the last forced promotion, 0 if none
	holds      map[string]int64 // missed keys recorded here, by the name of the node that missed them
	conflicts  map[string]int64 // unresolved conflicts recorded here, by node name
}

// refresh checks every database and updates what this process knows. With
// reopen, it also tries to open datasources that could not be opened yet.
func (c *Cluster) refresh(ctx context.Context, reopen bool) {
	nodes := c.ranked()
	probes := make([]probe, len(nodes))
	epochs := make([]int64, len(nodes))
	var wg sync.WaitGroup
	opened := false
	var mu sync.Mutex
	for i, n := range nodes {
		epochs[i] = n.state().epoch
		if n.problem() != nil {
			probes[i].err = n.problem()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			pctx, cancel := context.WithTimeout(ctx, c.timeout)
			defer cancel()
			if n.conn() == nil {
				if !reopen {
					probes[i].err = errNotOpen
					return
				}
				if err := n.open(pctx); err != nil {
					probes[i].err = err
					return
				}
				mu.Lock()
				opened = true
				mu.Unlock()
			}
			probes[i] = n.probe(pctx)
			if probes[i].err == nil && n.state().down != nil {
				// A down node returns only once it takes writes again:
				// reads still work while another process holds its lock.
				tx, err := n.beginShared(pctx, c.timeout)
				if err != nil {
					probes[i].writeErr = err
					return
				}
				tx.Rollback()
			}
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return // closing: the checks were interrupted, they found nothing
	}
	if opened {
		c.migrateReturning(ctx)
		if err := c.checkStructure(ctx); err != nil {
			c.log.Warn("structure check failed", "err", err)
		}
	}
	returned := false
	for i, n := range nodes {
		p := probes[i]
		failed := p.err
		if failed == nil {
			failed = p.writeErr
		}
		if failed != nil && n.problem() == nil && failed != errNotOpen {
			n.markDown(fmt.Errorf("check: %w", failed))
		}
		var ahead, conflicts int64
		now := time.Now()
		n.mu.Lock()
		if n.live.behindBy == nil {
			n.live.behindBy = map[string]missedBy{}
		}
		for j, o := range nodes {
			if j == i {
				continue
			}
			if probes[j].err != nil {
				// What an unreachable database records is not forgotten
				// with it: the node stays behind (and cannot become the
				// primary) until that database returns or an operator
				// promotes the node.
				if e, ok := n.live.behindBy[o.name]; ok && p.promotedAt > e.seen.UnixMilli() {
					delete(n.live.behindBy, o.name)
				}
				continue
			}
			if count := probes[j].holds[n.name]; count > 0 {
				n.live.behindBy[o.name] = missedBy{count: count, seen: now}
			} else {
				delete(n.live.behindBy, o.name)
			}
			ahead += p.holds[o.name]
			conflicts = max(conflicts, probes[j].conflicts[n.name])
		}
		conflicts = max(conflicts, p.conflicts[n.name])
		behind := n.live.behind()
		back := false
		if p.err == nil {
			n.live.promotedAt = p.promotedAt
			back = failed == nil && n.live.down != nil && n.live.epoch == epochs[i]
			if back {
				n.live.down = nil
			}
			n.live.outdated = p.outdated
			n.live.ahead, n.live.conflicts = ahead, conflicts
			n.live.holds = p.holds
		}
		n.mu.Unlock()
		if back {
			returned = true
			c.log.Info("datasource reachable again", "node", n.name, "missed", behind)
			c.event(EventUp, n.name, "%s reachable again (it rejoins the writes once it misses nothing)", n.name)
		}
	}
	if returned && !opened {
		// A database that was down may have missed a Migrate.
		c.migrateReturning(ctx)
		if err := c.checkStructure(ctx); err != nil {
			c.log.Warn("structure check failed", "err", err)
		}
	}
	c.markOutdated(ctx)
	c.forgetPromotions(ctx)
}

// forgetPromotions deletes the promoted_at mark of every reachable node
// that misses nothing any more: the promotion was for that one incident.
func (c *Cluster) forgetPromotions(ctx context.Context) {
	for _, n := range c.ranked() {
		st := n.state()
		if st.promotedAt == 0 || st.behind() > 0 || st.ahead > 0 || !n.reachable() {
			continue
		}
		tx, err := n.begin(ctx, c.timeout)
		if err != nil {
			continue
		}
		err = n.records.DeleteMeta(ctx, tx, records.PromotedAt)
		if err == nil {
			err = tx.Commit()
		}
		tx.Rollback()
		if err == nil {
			n.mu.Lock()
			n.live.promotedAt = 0
			n.mu.Unlock()
		}
	}
}

// markOutdated writes the outdated marker into every reachable database
// known to miss keys, so that a process that starts later, when the
// databases holding those keys may be unreachable, does not make it the
// primary.
func (c *Cluster) markOutdated(ctx context.Context) {
	for _, n := range c.ranked() {
		st := n.state()
		if st.behind() == 0 || st.outdated != "" || !n.reachable() {
			continue
		}
		mark := fmt.Sprintf("missed writes recorded on %s since %s", strings.Join(st.holders(), ", "), time.Now().UTC().Format(time.RFC3339))
		if err := n.setOutdated(ctx, c.timeout, mark); err != nil {
			n.noteError(fmt.Errorf("write outdated marker: %w", err))
			continue
		}
		n.mu.Lock()
		n.live.outdated = mark
		n.mu.Unlock()
	}
}

// setOutdated writes n's outdated marker, unless it has one.
func (n *Node) setOutdated(ctx context.Context, wait time.Duration, mark string) error {
	tx, err := n.begin(ctx, wait)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if old, err := n.records.Meta(ctx, tx, records.Outdated); err != nil || old != "" {
		return err
	}
	if err := n.records.SetMeta(ctx, tx, records.Outdated, mark); err != nil {
		return err
	}
	return tx.Commit()
}

// probe reads n's lasting state: its outdated marker, the missed keys it
// records for other nodes, and its unresolved conflicts.
func (n *Node) probe(ctx context.Context) probe {
	p := probe{holds: map[string]int64{}, conflicts: map[string]int64{}}
	db := n.conn().Read
	// A server's address can be taken over by another server (a failover
	// that moves an IP): the datasource then reaches a database that is
	// not its own. Until it reaches its own again, it counts as down, so
	// writes reach that database once and record what this one misses.
	if want := n.ID(); want != "" {
		id, err := n.records.Meta(ctx, db, records.NodeID)
		if err != nil {
			p.err = err
			return p
		}
		if id != want {
			p.err = n.cluster.otherDatabase(n, id)
			return p
		}
	}
	if p.outdated, p.err = n.records.Meta(ctx, db, records.Outdated); p.err != nil {
		return p
	}
	var promoted string
	if promoted, p.err = n.records.Meta(ctx, db, records.PromotedAt); p.err != nil {
		return p
	}
	p.promotedAt, _ = strconv.ParseInt(promoted, 10, 64)
	if p.err = n.records.CountMissedByNode(ctx, db, p.holds); p.err != nil {
		return p
	}
	p.err = n.records.CountConflictsByNode(ctx, db, p.conflicts)
	return p
}

// otherDatabase describes a datasource that reaches the database of node
// identity id instead of its own.
func (c *Cluster) otherDatabase(n *Node, id string) error {
	for _, o := range c.nodes {
		if o != n && o.ID() == id {
			return fmt.Errorf("%w: %s reaches the database of %s (node id %s), not its own (%s): was its address taken over?",
				ErrNodeDown, n.name, o.name, id, n.ID())
		}
	}
	return fmt.Errorf("%w: %s reaches another database (node id %q), not its own (%s)", ErrNodeDown, n.name, id, n.ID())
}

// Promote lets the datasource called name take writes although it is
// outdated (it missed writes it has not received): with force it clears the
// node's outdated marker and tells every process to forget the keys it
// knows the node missed on databases that are down, so that it becomes the
// primary when every datasource ranked before it is down. Without force it
// refuses an outdated node with ErrOutdated, and does nothing to another. What the node missed is not lost while the database that
// has it survives: when both are back, catch-up merges them and lists the
// keys both changed as conflicts.
func (c *Cluster) Promote(ctx context.Context, name string, force bool) error {
	n := c.node(name)
	if n == nil {
		return fmt.Errorf("promote: no datasource called %q", name)
	}
	n = n.database()
	db := n.conn()
	if db == nil || !n.reachable() {
		return fmt.Errorf("%w: promote: %s is not reachable", ErrNodeDown, name)
	}
	mark, err := n.records.Meta(ctx, db.Read, records.Outdated)
	if err != nil {
		return fmt.Errorf("promote %s: %w", name, err)
	}
	switch {
	case !force && mark != "":
		return fmt.Errorf("%w: %s: %s; promoting it loses those writes until the database that has them returns (use force)", ErrOutdated, name, mark)
	case !force:
		return nil // not outdated: it takes writes when the datasources ranked before it are down
	}
	// Forced: clear the marker, and note the time, which tells every
	// process to forget what it remembers this node missed.
	tx, err := n.begin(ctx, c.timeout)
	if err != nil {
		return fmt.Errorf("promote %s: %w", name, err)
	}
	defer tx.Rollback()
	if err := n.records.DeleteMeta(ctx, tx, records.Outdated); err != nil {
		return fmt.Errorf("promote %s: %w", name, err)
	}
	if err := n.records.SetMeta(ctx, tx, records.PromotedAt, strconv.FormatInt(time.Now().UnixMilli(), 10)); err != nil {
		return fmt.Errorf("promote %s: %w", name, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("promote %s: %w", name, err)
	}
	n.mu.Lock()
	n.live.outdated = ""
	n.live.behindBy = nil
	n.live.promotedAt = time.Now().UnixMilli()
	n.mu.Unlock()
	c.log.Warn("datasource promoted by an operator: it may take writes although it missed some", "node", name, "outdated", mark)
	c.promotedEvent(name, mark)
	c.recompute()
	return nil
}
