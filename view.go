package tandem

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/tandemdb/tandem/arbiter"
	"github.com/tandemdb/tandem/internal/records"
)

// A view is what one write sees of the cluster: which database is the
// primary, which databases the write reaches, and which it skips (each
// skipped database gets a missed-key record, in the same transaction, on
// every database the write reaches).
//
// A view is read, never decided alone: it is the record an arbiter holds
// (see package arbiter), or without one the record the primary's database
// holds, and it changes only by compare-and-swap there ([Cluster.change]),
// with a generation every change increments. Every process therefore writes
// under the same view, or under an older one that the databases refuse:
// each database stores the highest generation it has taken part in, and a
// write under an older generation fails before it commits and runs again
// under the new view (fencing).
//
// Within a process, views change only under the Cluster's gate: every write
// holds the gate for reading from its first statement to its last commit,
// and a change takes it for writing, so no two writes of one process run
// under different views.
type view struct {
	rec     arbiter.View
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
		return fmt.Sprintf("gen %d: no primary", v.rec.Generation)
	}
	return fmt.Sprintf("gen %d: primary %s, writing %s, skipping %s", v.rec.Generation, v.primary.name, nodeNames(v.write), nodeNames(v.skip))
}

// names returns the names of nodes, for the records (records.Store).
func names(nodes []*Node) []string {
	out := make([]string, len(nodes))
	for i, n := range nodes {
		out[i] = n.name
	}
	return out
}

func nodeNames(nodes []*Node) string {
	if len(nodes) == 0 {
		return "none"
	}
	return strings.Join(names(nodes), ", ")
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

// viewOf turns an arbiter's record into the view writes run under: the
// primary, then every other database the record does not exclude, in rank
// order.
func (c *Cluster) viewOf(rec arbiter.View) *view {
	v := &view{rec: rec}
	for _, n := range c.ranked() {
		if err := n.problem(); err != nil {
			// A configuration mistake (a copied database): refuse writes
			// rather than write around it.
			v.err, v.skip = err, c.ranked()
			return v
		}
	}
	if rec.Generation == 0 && rec.Primary == "" {
		v.err = fmt.Errorf("%w: no datasource can take writes yet: the cluster's view (%s) is not known", ErrNodeDown, c.describeArbiter())
		v.skip = c.ranked()
		return v
	}
	p := c.node(rec.Primary)
	if p == nil {
		v.err = fmt.Errorf("%w: no datasource can take writes: the cluster's view (%s) names no primary of this config", ErrNodeDown, rec)
		v.skip = c.ranked()
		return v
	}
	v.primary = p.database()
	v.write = []*Node{v.primary}
	for _, n := range c.ranked() {
		switch {
		case n == v.primary:
		case rec.Excludes(n.name):
			v.skip = append(v.skip, n)
		default:
			v.write = append(v.write, n)
		}
	}
	return v
}

// install makes rec the view of this process's writes if it is newer than
// the one they run under, waiting for the writes under the old one.
func (c *Cluster) install(rec arbiter.View) {
	if rec.Generation <= c.view.Load().rec.Generation {
		return
	}
	c.gate.Lock()
	defer c.gate.Unlock()
	old := c.view.Load()
	if rec.Generation <= old.rec.Generation {
		return
	}
	v := c.viewOf(rec)
	c.view.Store(v)
	c.log.Info("cluster view changed", "view", v.String(), "was", old.String())
	if old.rec.Generation > 0 { // the first view this process reads is no change
		c.primaryEvent(old, v)
	}
}

// acquire returns the view a write runs under and holds the gate until
// release is called.
func (c *Cluster) acquire() (v *view, release func(), err error) {
	if err := c.decideAgain(); err != nil {
		return nil, nil, err
	}
	c.gate.RLock()
	v = c.view.Load()
	if v.primary == nil {
		c.gate.RUnlock()
		if v.err != nil {
			return nil, nil, v.err
		}
		return nil, nil, fmt.Errorf("%w: no datasource can take writes", ErrNodeDown)
	}
	return v, c.gate.RUnlock, nil
}

// decideAgain stores a view where the arbiter holds none yet (a cluster
// opened without background work), or one older than a database has taken
// part in (a new arbiter, or the halves of a split brain each with one):
// the view is decided from what the databases record. A cluster with a
// history decides again only when every database can be read: one that
// cannot may record keys the others missed.
func (c *Cluster) decideAgain() error {
	gen, newest := c.view.Load().rec.Generation, c.newestGeneration()
	if gen > 0 && newest <= gen || c.closed.Load() {
		return nil
	}
	if gen > 0 {
		// Most often the view changed and this process has not installed
		// it yet (another process changed it; or this one did, and waits
		// for the writes in flight to install it, while a check already
		// read the new generation on a database): the arbiter holds it.
		ctx, cancel := context.WithTimeout(context.Background(), 2*c.timeout)
		err := c.reload(ctx)
		cancel()
		if err == nil && c.newestGeneration() <= c.view.Load().rec.Generation {
			return nil
		}
	}
	if err := c.undecidable(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*lockWait*c.timeout)
	defer cancel()
	if err := c.initView(ctx); err != nil && !errors.Is(err, errViewChanged) {
		return err
	}
	return nil
}

// undecidable says why the view cannot be decided again from the databases
// (see decideAgain), or nil.
func (c *Cluster) undecidable() error {
	gen, newest := c.view.Load().rec.Generation, c.newestGeneration()
	if newest == 0 {
		return nil
	}
	for _, n := range c.ranked() {
		if !n.reachable() {
			return fmt.Errorf("%w: the cluster's view (%s, generation %d) is older than generation %d, which a database took part in: "+
				"another arbiter decided meanwhile (every process must share one), and %s cannot be read to decide again; "+
				"`tandem promote --force NAME` makes NAME the primary", ErrNodeDown, c.describeArbiter(), gen, newest, n.name)
		}
	}
	return nil
}

// errViewChanged: the view changed under a change being made; it was not
// made, and the process now holds the new view.
var errViewChanged = errors.New("the cluster's view changed meanwhile")

// reload reads the view from where it lives and installs it if it is newer.
// A view whose ranking is not this config's is refused: processes must
// share one config.
func (c *Cluster) reload(ctx context.Context) error {
	rec, ok, err := c.loadView(ctx)
	if err != nil {
		return err
	}
	if !ok {
		return nil
	}
	if err := c.sameRanking(rec); err != nil {
		return err
	}
	c.install(rec)
	return nil
}

// sameRanking refuses a view made by a process whose config ranks other
// datasources, or ranks them otherwise.
func (c *Cluster) sameRanking(rec arbiter.View) error {
	if mine := names(c.ranked()); !slices.Equal(rec.Ranking, mine) {
		return &ConfigError{File: c.configFile, Field: "datasources", Msg: fmt.Sprintf(
			"this config ranks %s, but the cluster's view (%s) ranks %s: every process must name the same datasources in the same order (the primary first)",
			strings.Join(mine, ", "), c.describeArbiter(), strings.Join(rec.Ranking, ", "))}
	}
	return nil
}

// describeArbiter says where the view lives, for messages and status.
func (c *Cluster) describeArbiter() string {
	if c.arb == nil {
		return "no arbiter: the primary's database"
	}
	return c.arb.Describe()
}

// loadView reads the stored view: from the arbiter, or without one, the
// newest any reachable database holds.
func (c *Cluster) loadView(ctx context.Context) (arbiter.View, bool, error) {
	if c.arb != nil {
		actx, cancel := context.WithTimeout(ctx, c.timeout)
		defer cancel()
		return c.arb.Load(actx)
	}
	var best arbiter.View
	found := false
	for _, n := range c.ranked() {
		db := n.conn()
		if db == nil || n.problem() != nil {
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, c.timeout)
		rec, ok, err := readView(rctx, n, db.Read)
		cancel()
		if err != nil || !ok {
			continue
		}
		if !found || rec.Generation > best.Generation {
			best, found = rec, true
		}
	}
	return best, found, nil
}

// readView reads the view a database holds (without an arbiter).
func readView(ctx context.Context, n *Node, q records.Querier) (arbiter.View, bool, error) {
	s, err := n.records.Meta(ctx, q, records.View)
	if err != nil || s == "" {
		return arbiter.View{}, false, err
	}
	var rec arbiter.View
	if err := json.Unmarshal([]byte(s), &rec); err != nil {
		return rec, false, fmt.Errorf("%s holds a damaged view %q: %w", n.name, s, err)
	}
	return rec, true, nil
}

// errNoArbiter refuses an automatic change of the primary where no arbiter
// holds the view.
var errNoArbiter = errors.New("no arbiter: the primary changes only by `tandem promote`")

// change changes the view by compare-and-swap: next returns the view to
// install in place of cur (its generation is set here, above cur's and
// every database's), or ok false when no change is needed. Every reachable
// database is locked meanwhile, so no write of any process is half way
// through it, and takes the new generation in the same transactions:
// writes under the old view then fail on them and run again under the new
// one.
//
// It must not be called while holding the gate (a write in progress).
func (c *Cluster) change(ctx context.Context, why string, next func(cur arbiter.View) (arbiter.View, bool)) error {
	return c.changeBy(ctx, why, false, nil, next, nil)
}

// changeBy is change; byOperator allows a change of the primary where no
// arbiter holds the view (Promote), and check, when set, runs under the
// locks before the swap: an error from it cancels the change. The
// transactions on first commit before the others (the receivers of rows
// check copied, before the databases whose records of them it deleted).
func (c *Cluster) changeBy(ctx context.Context, why string, byOperator bool, first []*Node, next func(cur arbiter.View) (arbiter.View, bool), check func(s *session) error) error {
	c.changing.Lock()
	defer c.changing.Unlock()
	v := c.view.Load()
	rec, ok := next(v.rec)
	if !ok {
		return nil
	}
	rec.Ranking = names(c.ranked())
	rec.Generation = v.rec.Generation + 1 // at least; raised under the locks below
	if c.arb == nil && !byOperator && rec.Primary != v.rec.Primary && v.rec.Generation > 0 {
		return fmt.Errorf("%w: %s: %w", ErrNodeDown, why, errNoArbiter)
	}
	nv := c.viewOf(rec)
	if nv.primary == nil {
		return fmt.Errorf("%s: %w", why, nv.err)
	}
	var lock []*Node
	for _, n := range c.ranked() {
		if n.reachable() {
			lock = append(lock, n)
		}
	}
	if c.arb == nil && !containsNode(lock, nv.primary) {
		return fmt.Errorf("%w: %s: the view lives in %s, which cannot be reached", ErrNodeDown, why, nv.primary.name)
	}
	s, err := c.lockNodes(ctx, lock)
	if err != nil {
		return fmt.Errorf("%s: %w", why, err)
	}
	defer s.rollback()
	if check != nil {
		if err := check(s); err != nil {
			return err
		}
	}
	// The new generation is above every one a database has taken part in:
	// a new arbiter (a witness laid anew) starts above the old views.
	for _, n := range lock {
		g, err := n.records.ReadGeneration(ctx, s.txs[n])
		if err != nil {
			return fmt.Errorf("%s: read the generation on %s: %w", why, n.name, err)
		}
		rec.Generation = max(rec.Generation, g+1)
	}
	for _, n := range lock {
		if err := n.records.SetGeneration(ctx, s.txs[n], rec.Generation); err != nil {
			return fmt.Errorf("%s: set the generation on %s: %w", why, n.name, err)
		}
	}
	if c.arb != nil {
		actx, cancel := context.WithTimeout(ctx, c.timeout)
		cur, swapped, err := c.arb.Swap(actx, v.rec.Generation, rec)
		cancel()
		if err != nil {
			return fmt.Errorf("%s: %w", why, err)
		}
		if !swapped {
			if err := c.sameRanking(cur); err != nil {
				return err
			}
			// Installing waits for this process's writes, which may wait
			// for the locks the session holds: release them first.
			s.rollback()
			c.install(cur)
			return fmt.Errorf("%s: %w", why, errViewChanged)
		}
	} else if stored, err := c.swapInDatabases(ctx, s, lock, nv.primary, v.rec, rec); err != nil {
		if stored != nil {
			s.rollback()
			c.install(*stored)
		}
		return fmt.Errorf("%s: %w", why, err)
	}
	if err := s.commit(first...); err != nil {
		// The arbiter holds the new view: the databases that did not take
		// its generation take it with their next write.
		c.log.Warn("view change: a database did not take the new generation", "err", err)
	}
	c.log.Info("cluster view: changed", "view", rec.String(), "why", why)
	c.install(rec)
	return nil
}

// swapInDatabases is the compare-and-swap without an arbiter: in the
// primary's database, inside the session, the stored view must still be
// cur. The new view is written to every other locked database too, so that
// a process that starts while the primary is unreachable still finds it.
//
// When the stored view is not cur it returns errViewChanged with the view
// stored, which the caller installs once it has released the session.
func (c *Cluster) swapInDatabases(ctx context.Context, s *session, lock []*Node, primary *Node, cur, next arbiter.View) (*arbiter.View, error) {
	stored, ok, err := readView(ctx, primary, s.txs[primary])
	if err != nil {
		return nil, err
	}
	if ok && stored.Generation != cur.Generation || !ok && cur.Generation != 0 && primary.name == cur.Primary {
		if ok {
			return &stored, errViewChanged
		}
		return nil, errViewChanged
	}
	data, err := json.Marshal(next)
	if err != nil {
		return nil, err
	}
	for _, n := range lock {
		if err := n.records.SetMeta(ctx, s.txs[n], records.View, string(data)); err != nil {
			return nil, fmt.Errorf("store the view on %s: %w", n.name, err)
		}
	}
	return nil, nil
}

// exclude leaves n out of the writes: every write records the keys it
// misses until it has caught up.
func (c *Cluster) exclude(ctx context.Context, n *Node, why error) error {
	var stuck error
	err := c.change(ctx, fmt.Sprintf("leave %s out: %v", n.name, why), func(cur arbiter.View) (arbiter.View, bool) {
		if cur.Excludes(n.name) {
			return cur, false
		}
		if cur.Primary == n.name {
			next, ok := c.failover(cur, n)
			if !ok {
				stuck = c.noSuccessor(cur, n)
			}
			return next, ok
		}
		next := cur
		next.Excluded = append(slices.Clone(cur.Excluded), n.name)
		slices.Sort(next.Excluded)
		return next, true
	})
	if err == nil {
		err = stuck
	}
	return err
}

// noSuccessor says why no datasource can take over from the primary p, and
// what an operator can do.
func (c *Cluster) noSuccessor(cur arbiter.View, p *Node) error {
	var why []string
	for _, n := range c.ranked() {
		switch {
		case n == p:
		case cur.Excludes(n.name):
			why = append(why, fmt.Sprintf("%s is left out of the writes (it missed writes the others hold): `tandem promote --force %s` lets it take writes without them", n.name, n.name))
		case !n.reachable():
			why = append(why, fmt.Sprintf("%s is down", n.name))
		}
	}
	return fmt.Errorf("%w: no datasource can take writes: the primary %s is down; %s", ErrNodeDown, p.name, strings.Join(why, "; "))
}

// failover returns the view in which the first database in rank order that
// writes reach (so it misses nothing) takes over from the primary p, which
// is left out; ok false when there is none.
func (c *Cluster) failover(cur arbiter.View, p *Node) (arbiter.View, bool) {
	for _, n := range c.ranked() {
		if n == p || cur.Excludes(n.name) || !n.reachable() {
			continue
		}
		next := cur
		next.Primary = n.name
		next.Excluded = append(slices.Clone(cur.Excluded), p.name)
		slices.Sort(next.Excluded)
		return next, true
	}
	return cur, false
}
