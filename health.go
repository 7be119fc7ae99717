package tandem

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/tandemdb/tandem/arbiter"
	"github.com/tandemdb/tandem/internal/records"
)

// The health loop: each HealthInterval (or when a failed write kicks it)
// every process reads the cluster's view from where it lives, checks every
// database on a connection of its own, reads the lasting state the
// databases hold (missed-key records, conflicts), and asks for the view to
// change ([Cluster.change]) where a database in it cannot be read, where one
// left out has caught up, or where the configured primary can take over
// again; it catches up databases that missed writes and repairs writes left
// in doubt. An operator's Promote is the one change made by hand.
//
// Contention is not failure: a write that waits too long for a database's
// lock asks [Cluster.failed], which reads that database on a connection of
// its own. If the read answers, the database is busy, not down: the write
// fails with ErrBusy and the view stays as it is.

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
		if err := c.reload(ctx); ctx.Err() == nil {
			c.noteArbiter(err)
		}
		c.refresh(ctx, true)
		c.decide(ctx)
		if err := c.catchUpAll(ctx); err != nil && ctx.Err() == nil {
			c.log.Warn("catch-up", "err", err)
		}
		c.vacuumCaptures(ctx)
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
	gen        int64            // the highest view generation the database took part in
	promotedAt int64            // unix ms of the last forced promotion, 0 if none
	holds      map[string]int64 // missed keys recorded here, by the name of the node that missed them
	conflicts  map[string]int64 // unresolved conflicts recorded here, by node name
}

// refresh checks every database and updates what this process knows. With
// reopen, it also tries to open datasources that could not be opened yet.
func (c *Cluster) refresh(ctx context.Context, reopen bool) {
	// One check at a time (the health loop's, Status's): a check that
	// began before another must not apply what it found after it.
	c.refreshing.Lock()
	defer c.refreshing.Unlock()
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
			if err := n.probeRead(pctx); err != nil {
				probes[i].err = err
				return
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
			n.live.gen = p.gen
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
}

// probe reads n's lasting state: its outdated marker, the missed keys it
// records for other nodes, and its unresolved conflicts.
func (n *Node) probe(ctx context.Context) probe {
	p := probe{holds: map[string]int64{}, conflicts: map[string]int64{}}
	conn := n.conn()
	if conn == nil {
		p.err = fmt.Errorf("%w: %s is not open", ErrNodeDown, n.name)
		return p
	}
	db := conn.Read
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
		if p.err = n.reaches(id, want); p.err != nil {
			return p
		}
	}
	if p.outdated, p.err = n.records.Meta(ctx, db, records.Outdated); p.err != nil {
		return p
	}
	if p.gen, p.err = n.records.ReadGeneration(ctx, db); p.err != nil {
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
func (c *Cluster) otherDatabase(n *Node, id, own string) error {
	for _, o := range c.nodes {
		if o != n && o.ID() == id {
			return fmt.Errorf("%w: %s reaches the database of %s (node id %s), not its own (%s): was its address taken over?",
				ErrNodeDown, n.name, o.name, id, own)
		}
	}
	return fmt.Errorf("%w: %s reaches another database (node id %q), not its own (%s)", ErrNodeDown, n.name, id, own)
}

// decide asks for the view to change where what the checks found calls
// for it: a database writes reach that cannot be read is left out (the
// primary too, where an arbiter lets another take over); the first database
// in rank order that writes reach takes over again from a lower-ranked
// primary. Databases left out rejoin through catch-up.
func (c *Cluster) decide(ctx context.Context) {
	v := c.view.Load()
	if v.rec.Generation == 0 || c.newestGeneration() > v.rec.Generation {
		if err := c.decideAgain(); err != nil && ctx.Err() == nil {
			c.log.Warn("cluster view", "err", err)
		}
		return
	}
	if v.primary == nil {
		return
	}
	for _, n := range v.write {
		if down := n.state().down; down != nil {
			if err := c.exclude(ctx, n, down); err != nil && ctx.Err() == nil && !errors.Is(err, errViewChanged) {
				c.log.Warn("cluster view", "err", err)
			}
			return // one change a round: the next round sees its effect
		}
	}
	for _, n := range c.ranked() {
		if n == v.primary {
			break
		}
		if v.writes(n) && n.reachable() && n.state().behind() == 0 {
			err := c.takeOverAgain(ctx, n, v.primary)
			if err != nil && ctx.Err() == nil && !errors.Is(err, errViewChanged) {
				c.log.Warn("cluster view", "err", err)
			}
			return
		}
	}
}

// takeOverAgain makes n, which writes reach, the primary again in place of
// the lower-ranked p, once n is in step with p (inStep).
func (c *Cluster) takeOverAgain(ctx context.Context, n, p *Node) error {
	err := c.changeBy(ctx, fmt.Sprintf("%s takes over again from %s", n.name, p.name), false, []*Node{n}, func(cur arbiter.View) (arbiter.View, bool) {
		next := cur
		next.Primary = n.name
		return next, cur.Primary != n.name
	}, c.inStep(ctx, n, p))
	if errors.Is(err, errNotInStep) {
		return nil // the next round tries again
	}
	return err
}

// errNotInStep: a database cannot take over yet (inStep).
var errNotInStep = errors.New("not in step with the primary yet: keys left to copy, or a row it refuses")

// inStep is the check of a change that makes n, which writes reach, the
// primary in place of p, both reachable: under the locks of every
// reachable database it makes n's rows equal p's wherever they may differ
// (matchPrimary), or fails with errNotInStep. A write whose process died
// between its commits on p and on n, followed by writes that carried some
// of its rows to n, leaves n holding it in part; an earlier version that
// changed the primary without this served and kept such halves (the fault
// soak's seed 5127: the bank's total broke right after a failback).
func (c *Cluster) inStep(ctx context.Context, n, p *Node) func(*session) error {
	return func(s *session) error {
		if v := c.view.Load(); v.primary != p || !v.writes(n) {
			return errViewChanged
		}
		ok, err := c.matchPrimary(ctx, s, n, s.order, "takes over")
		if err == nil && !ok {
			err = errNotInStep
		}
		return err
	}
}

// newestGeneration is the highest view generation a reachable database
// took part in, as the last check read it.
func (c *Cluster) newestGeneration() int64 {
	var g int64
	for _, n := range c.ranked() {
		if n.reachable() {
			g = max(g, n.state().gen)
		}
	}
	return g
}

// initView stores the first view of a cluster that has none: the first
// database in rank order that misses nothing is the primary, and every
// database that misses keys (recorded on a reachable database) is left out
// until it has caught up. When every reachable database misses keys (the
// two halves of a split brain), the first whose missing keys are all on
// reachable databases takes the writes, and catch-up merges the halves.
// Every process that starts at once tries; one wins the compare-and-swap,
// and the others take its view.
func (c *Cluster) initView(ctx context.Context) error {
	first, err := c.firstView()
	if err != nil {
		return err
	}
	return c.change(ctx, "first view", func(arbiter.View) (arbiter.View, bool) { return first, true })
}

// firstView decides the view initView stores (its generation is set by
// the change).
func (c *Cluster) firstView() (arbiter.View, error) {
	var primary *Node
	for _, n := range c.ranked() {
		if st := n.state(); n.reachable() && st.behind() == 0 && st.outdated == "" {
			primary = n
			break
		}
	}
	if primary == nil {
		for _, n := range c.ranked() {
			if n.reachable() && holdersReachable(n) {
				primary = n
				break
			}
		}
	}
	if primary == nil {
		return arbiter.View{}, fmt.Errorf("%w: no datasource can take writes: none is reachable and misses nothing", ErrNodeDown)
	}
	var excluded []string
	for _, n := range c.ranked() {
		if st := n.state(); n != primary && (st.behind() > 0 || st.outdated != "") {
			excluded = append(excluded, n.name)
		}
	}
	return arbiter.View{Primary: primary.name, Excluded: excluded, Ranking: names(c.ranked())}, nil
}

// holdersReachable reports whether every database that records keys n
// missed is reachable.
func holdersReachable(n *Node) bool {
	for _, h := range n.state().holders() {
		if hn := n.cluster.node(h); hn == nil || !hn.database().reachable() {
			return false
		}
	}
	return true
}

// failed tells what a failure of n in a write's step means. A database
// that answers a read, on a connection of its own, within the timeout is
// busy (its lock is held by other writers), not down: the result wraps
// ErrBusy and nothing changes. Otherwise n is marked down (the health loop
// leaves it out of the view) and the result wraps ErrNodeDown.
func (c *Cluster) failed(ctx context.Context, n *Node, err error) error {
	if down := n.state().down; down != nil {
		// Already known: no probe (it would cost another timeout).
		if errors.Is(err, ErrNodeDown) {
			return err
		}
		return fmt.Errorf("%w: %s: %w (it was found down: %v)", ErrNodeDown, n.name, err, down)
	}
	if contention(err) {
		// The probe also ends when another write or the health check
		// finds n down meanwhile: no need to wait out its timeout too.
		pctx, cancel := n.untilDown(context.WithoutCancel(ctx), c.timeout)
		perr := n.probeRead(pctx)
		cancel()
		if known := n.state().down; perr != nil && known != nil {
			return fmt.Errorf("%w: %s: %w (it was found down: %v)", ErrNodeDown, n.name, err, known)
		}
		if perr == nil {
			n.noteError(err)
			return fmt.Errorf("%w: %s answers reads, but its lock stayed held: %w", ErrBusy, n.name, err)
		}
		err = fmt.Errorf("%w; a read on a connection of its own failed too: %w", err, perr)
	}
	n.markDown(err)
	n.countFailures(1)
	if errors.Is(err, ErrNodeDown) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrNodeDown, err)
}

// contention reports whether err may be a wait for a lock that other
// writers hold (and not a failure of the database): only a read can tell.
func contention(err error) bool {
	return errors.Is(err, errTimeout) || errors.Is(err, ErrBusy) || errors.Is(err, context.DeadlineExceeded)
}

// probeRead reads n's identity on a connection of its own: the check that
// tells a busy database from a failed one. For a database file it opens a
// new connection each time: connections already open keep reaching a file
// whose mount or path is gone, as a process starting now would not.
func (n *Node) probeRead(ctx context.Context) error {
	db := n.conn()
	if db == nil {
		return fmt.Errorf("%w: %s is not open", ErrNodeDown, n.name)
	}
	q := db.Read
	if n.caps.File != nil {
		plain, err := n.eng.OpenPlain(ctx, n.dsn)
		if err != nil {
			// The error names the file; status and events name the
			// datasource instead.
			why := "cannot open its database file"
			var pe *fs.PathError
			if errors.As(err, &pe) {
				why += ": " + pe.Err.Error()
			}
			return errors.New(why)
		}
		defer plain.Close()
		q = plain
	}
	id, err := n.records.Meta(ctx, q, records.NodeID)
	if err != nil {
		return err
	}
	return n.reaches(id, n.ID())
}

// noteArbiter records whether the view could be read (err nil), for
// status, and logs a change.
func (c *Cluster) noteArbiter(err error) {
	c.mu.Lock()
	was := c.arbiterErr
	c.arbiterErr = err
	c.mu.Unlock()
	switch {
	case err != nil && was == nil:
		c.log.Warn("cluster view: cannot be read; writes go on under the view this process holds, and it does not change", "arbiter", c.describeArbiter(), "err", err)
	case err == nil && was != nil:
		c.log.Info("cluster view: readable again", "arbiter", c.describeArbiter())
	}
}

// Promote makes the datasource called name the primary: the view changes
// by compare-and-swap (through the arbiter, or without one in the
// databases), so that every process writes it first from then on. The old
// primary stays in the writes if it can be reached, and is left out if not.
//
// Without force, name must be a datasource writes reach (it misses
// nothing); a datasource left out of the writes is refused with
// ErrOutdated. While the old primary can be reached, name first gets its
// rows wherever they may differ (writes left in doubt by a process that
// died between its commits); ErrBusy when that cannot finish yet. With
// force it is promoted anyway: what it missed is not lost
// while the database that has it survives, and when both are back, catch-up
// merges them and lists the keys both changed as conflicts. Where no
// arbiter holds the view, promote is the only way the primary changes; the
// operator then vouches that no process still writes the old one.
func (c *Cluster) Promote(ctx context.Context, name string, force bool) error {
	n := c.node(name)
	if n == nil {
		return fmt.Errorf("promote: no datasource called %q", name)
	}
	n = n.database()
	if !n.reachable() {
		if err := n.probeRead(ctx); err != nil {
			return fmt.Errorf("%w: promote: %s is not reachable: %v", ErrNodeDown, name, err)
		}
	}
	v := c.view.Load()
	if v.rec.Excludes(n.name) && !force {
		return fmt.Errorf("%w: %s is left out of the writes: it misses writes that another database holds; promoting it loses them until that database returns (use force)", ErrOutdated, name)
	}
	why := fmt.Sprintf("an operator promotes %s", name)
	var check func(*session) error
	var first []*Node
	if p := v.primary; p != nil && p != n && p.reachable() && v.writes(n) {
		check, first = c.inStep(ctx, n, p), []*Node{n}
	}
	err := c.changeBy(ctx, why, true, first, func(cur arbiter.View) (arbiter.View, bool) {
		next := cur
		next.Primary = n.name
		next.Excluded = slices.DeleteFunc(slices.Clone(cur.Excluded), func(x string) bool { return x == n.name })
		if old := c.node(cur.Primary); old != nil && old.database() != n && !old.database().reachable() && !next.Excludes(old.name) {
			next.Excluded = append(next.Excluded, old.name)
			slices.Sort(next.Excluded)
		}
		// A view older than a database's generation is stored anew even
		// when it says the same.
		return next, !next.Equal(cur) || c.newestGeneration() > cur.Generation
	}, check)
	if errors.Is(err, errNotInStep) {
		return fmt.Errorf("%w: promote %s: %w; try again", ErrBusy, name, err)
	}
	if err != nil {
		return fmt.Errorf("promote %s: %w", name, err)
	}
	if force {
		// Forget what this process remembers it missed on databases that
		// are down: the operator chose to go on without it.
		n.mu.Lock()
		n.live.behindBy = nil
		n.mu.Unlock()
		c.log.Warn("datasource promoted by an operator: it may take writes although it missed some", "node", name)
		c.promotedEvent(name, "promoted by an operator")
	}
	return nil
}
