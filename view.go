package tandem

import (
	"context"
	"fmt"
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
			count, err := h.records.CountMissed(ctx, db.Read, n.name)
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
