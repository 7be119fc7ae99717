package tandem

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// A view is what one write sees of the cluster: which database is the
// primary, which databases the write reaches, and which it skips (each
// skipped database gets a missed-key record, in the same transaction, on
// every database the write reaches).
//
// Views change only under the Cluster's gate: every write holds the gate
// for reading from its first statement to its last commit, and a change
// takes it for writing, so no two writes of one process run under different
// views. That keeps the lock order (primary first, then the others in
// rank order) the same for every write, and it means that once a returning
// database has joined the view, no write of this process can still record
// a key as missed by it.
type view struct {
	primary *Node   // nil: no datasource can take writes (err says why)
	write   []*Node // distinct databases every write reaches, primary first
	skip    []*Node // distinct databases writes skip
	err     error
	// autoSynced holds the tables whose auto-id counter the primary has
	// moved past every id it holds (engine.AutoSyncer), under this view.
	autoSynced sync.Map
}

func (v *view) writes(n *Node) bool { return containsNode(v.write, n) }

func (v *view) String() string {
	if v.primary == nil {
		return "no primary"
	}
	return fmt.Sprintf("primary %s, writing %s, skipping %s", v.primary.name, nodeNames(v.write), nodeNames(v.skip))
}

func nodeNames(nodes []*Node) string {
	if len(nodes) == 0 {
		return "none"
	}
	names := make([]string, len(nodes))
	for i, n := range nodes {
		names[i] = n.name
	}
	return strings.Join(names, ", ")
}

// ranked returns the distinct databases in rank order: the configured
// primary, then the others in configured order. Every process that shares
// the config ranks them the same way.
func (c *Cluster) ranked() []*Node {
	out := []*Node{c.primary.database()}
	for _, n := range c.nodes {
		if d := n.database(); !containsNode(out, d) {
			out = append(out, d)
		}
	}
	return out
}

// compute decides a view from what this process knows of each node, which
// the health check reads from the databases themselves (see refresh).
//
//   - A candidate is reachable and has no outdated marker.
//   - The primary is the first candidate in rank order that misses no key
//     (none recorded as missed by it, on any database this process has
//     read). When every reachable node misses some: the first whose
//     missing keys are all on reachable databases (the halves of a split
//     brain, merged by catch-up; an outdated one only if every database is
//     reachable), or that an operator promoted.
//   - Writes reach the primary and every other reachable node that misses
//     at most joinBehind keys, or that writes already reached, unless it
//     holds keys the others miss or has unresolved conflicts.
func (c *Cluster) compute(old *view) *view {
	v := &view{}
	var cands []*Node
	var why []string
	for _, n := range c.ranked() {
		if err := n.problem(); err != nil {
			// A configuration mistake (a copied database): refuse writes
			// rather than write around it.
			return &view{err: err, skip: c.ranked()}
		}
	}
	var up []*Node
	all := true
	for _, n := range c.ranked() {
		st := n.state()
		switch {
		case st.down != nil || n.conn() == nil:
			why = append(why, fmt.Sprintf("%s is down", n.name))
			all = false
			continue
		case st.outdated != "":
			why = append(why, fmt.Sprintf("%s is outdated (%s): `tandem promote --force %s` lets it take writes without what it missed", n.name, st.outdated, n.name))
		default:
			cands = append(cands, n)
		}
		up = append(up, n)
	}
	for _, n := range cands {
		if n.state().behind() == 0 {
			v.primary = n
			break
		}
	}
	if v.primary == nil {
		// Every reachable node misses keys. If the databases that hold
		// them are all reachable (both halves of a split brain), the first
		// takes writes and catch-up merges the halves. A node whose missing
		// keys an unreachable database may hold waits for it, or for an
		// operator's promote --force.
		for _, n := range up {
			st := n.state()
			if st.promotedAt > 0 && st.outdated == "" || missingReachable(n) && (st.outdated == "" || all) {
				v.primary = n
				break
			}
			if st.outdated == "" {
				why = append(why, fmt.Sprintf("%s missed writes that only %s holds: `tandem promote --force %s` lets it take writes without them",
					n.name, strings.Join(st.holders(), ", "), n.name))
			}
		}
	}
	if v.primary == nil {
		v.err = fmt.Errorf("%w: no datasource can take writes: %s", ErrNodeDown, strings.Join(why, "; "))
		v.skip = c.ranked()
		return v
	}
	v.write = []*Node{v.primary}
	for _, n := range c.ranked() {
		if n == v.primary {
			continue
		}
		// A secondary nearly caught up joins (with or without an outdated
		// marker, which only keeps it from becoming the primary): the rest
		// is copied while it is written. Without that, a steady stream of
		// writes would keep it a few keys behind for ever. One that holds
		// keys the primary misses, or conflicts, waits for catch-up.
		st := n.state()
		up := st.down == nil && n.conn() != nil
		near := st.behind() <= joinBehind || old != nil && old.primary == v.primary && old.writes(n)
		if up && near && st.holds[v.primary.name] == 0 && st.conflicts == 0 {
			v.write = append(v.write, n)
		} else {
			v.skip = append(v.skip, n)
		}
	}
	return v
}

// joinBehind is how many missed keys a secondary may still have when it
// rejoins the writes.
const joinBehind = catchUpBatch

// missingReachable reports whether every database that records keys n
// missed is reachable.
func missingReachable(n *Node) bool {
	for _, h := range n.state().holders() {
		if hn := n.cluster.node(h); hn == nil || !hn.database().reachable() {
			return false
		}
	}
	return true
}

func sameView(a, b *view) bool {
	return a != nil && b != nil && a.primary == b.primary && nodeNames(a.write) == nodeNames(b.write) &&
		nodeNames(a.skip) == nodeNames(b.skip) && fmt.Sprint(a.err) == fmt.Sprint(b.err)
}

// recompute decides the view again and installs it if it changed, waiting
// for this process's writes under the old view to finish.
func (c *Cluster) recompute() {
	if sameView(c.view.Load(), c.compute(c.view.Load())) {
		return
	}
	c.gate.Lock()
	defer c.gate.Unlock()
	old := c.view.Load()
	v := c.compute(old)
	if joined := joining(old, v); len(joined) > 0 {
		// The counts compute used were read before this process's writes
		// under the old view finished, and those may have recorded keys
		// as missed by the joining databases since: count again now that
		// none is in flight. A new primary in particular must miss nothing.
		c.recount(joined)
		v = c.compute(old)
	}
	if !sameView(old, v) {
		c.view.Store(v)
		c.log.Info("cluster view changed", "view", v.String(), "was", old.String())
		c.primaryEvent(old, v)
	}
}

// joining returns the databases v writes that old did not, or v's primary
// if it is new.
func joining(old, v *view) []*Node {
	var out []*Node
	for _, n := range v.write {
		if !old.writes(n) || (n == v.primary && old.primary != n) {
			out = append(out, n)
		}
	}
	return out
}

// recount reads again, from every database that can be read, how many
// keys each of nodes missed.
func (c *Cluster) recount(nodes []*Node) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	for _, n := range nodes {
		for _, h := range c.ranked() {
			db := h.conn()
			if h == n || db == nil {
				continue
			}
			var count int64
			err := db.Read.QueryRowContext(ctx, fmt.Sprintf("SELECT COUNT(*) FROM %s WHERE node = %s",
				h.eng.Quote(missedTable.Name), h.eng.Placeholder(1)), n.name).Scan(&count)
			if err != nil {
				continue // what it last said stands
			}
			n.mu.Lock()
			if n.live.behindBy == nil {
				n.live.behindBy = map[string]missedBy{}
			}
			if count > 0 {
				n.live.behindBy[h.name] = missedBy{count: count, seen: time.Now()}
			} else {
				delete(n.live.behindBy, h.name)
			}
			n.mu.Unlock()
		}
	}
}

// acquire returns the view a write runs under and holds the gate until
// release is called.
func (c *Cluster) acquire() (v *view, release func(), err error) {
	for range 3 {
		c.gate.RLock()
		v = c.view.Load()
		stale := false
		for _, n := range v.write {
			if !n.reachable() {
				stale = true
			}
		}
		if !stale {
			if v.primary == nil {
				c.gate.RUnlock()
				return nil, nil, v.err
			}
			return v, c.gate.RUnlock, nil
		}
		c.gate.RUnlock()
		c.recompute()
	}
	return nil, nil, fmt.Errorf("%w: the cluster view keeps changing", ErrNodeDown)
}

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
		err = n.deleteMeta(ctx, tx, "promoted_at")
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
	if old, err := n.meta(ctx, tx, "outdated"); err != nil || old != "" {
		return err
	}
	if err := n.setMeta(ctx, tx, "outdated", mark); err != nil {
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
		id, err := n.meta(ctx, db, "node_id")
		if err != nil {
			p.err = err
			return p
		}
		if id != want {
			p.err = n.cluster.otherDatabase(n, id)
			return p
		}
	}
	if p.outdated, p.err = n.meta(ctx, db, "outdated"); p.err != nil {
		return p
	}
	var promoted string
	if promoted, p.err = n.meta(ctx, db, "promoted_at"); p.err != nil {
		return p
	}
	p.promotedAt, _ = strconv.ParseInt(promoted, 10, 64)
	q := n.eng.Quote
	p.err = countBy(ctx, db, fmt.Sprintf("SELECT node, COUNT(*) FROM %s GROUP BY node", q(missedTable.Name)), p.holds)
	if p.err != nil {
		return p
	}
	p.err = countBy(ctx, db, fmt.Sprintf("SELECT node_a, COUNT(*) FROM %s WHERE resolution = '' GROUP BY node_a UNION ALL SELECT node_b, COUNT(*) FROM %[1]s WHERE resolution = '' GROUP BY node_b", q(conflictTable.Name)), p.conflicts)
	return p
}

func countBy(ctx context.Context, db *sql.DB, query string, into map[string]int64) error {
	rows, err := db.QueryContext(ctx, query)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var k string
		var n int64
		if err := rows.Scan(&k, &n); err != nil {
			return err
		}
		into[k] += n
	}
	return rows.Err()
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

// errNotOpen stands for the (already recorded) reason a datasource could
// not be opened, when a check does not try again.
var errNotOpen = errors.New("not open")

// errTimeout marks a datasource that did not answer within Config.Timeout.
var errTimeout = errors.New("no answer within the timeout")

// errBusy marks a database that answered but whose tandem lock other
// writers held too long (engine.Locker): busy, not down.
var errBusy = errors.New("tandem's lock stayed held by other writers")
