package tandem

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// Node states reported by Status.
const (
	StateInSync     = "in sync"     // written by every write, missing nothing
	StateDown       = "down"        // unreachable, or unusable (see Error)
	StateBehind     = "behind"      // reachable, but missed writes it has not received (see Behind)
	StateCatchingUp = "catching up" // receiving the writes it missed
	StateOutdated   = "outdated"    // left out of the writes: it takes none until it has caught up, unless promoted with force
)

// InDoubtAfter is how old an intent record must be before Status counts it
// as in doubt and the health loop repairs it; younger ones belong to writes
// still being cleared.
const InDoubtAfter = 10 * time.Second

// NodeStatus describes one datasource.
type NodeStatus struct {
	Name     string `json:"name"`
	Driver   string `json:"driver"`
	Identity string `json:"identity"`
	// Primary: this datasource's database takes writes first and serves reads.
	Primary bool `json:"primary"`
	// SameAs names the earlier datasource that is the same database.
	SameAs string `json:"same_as,omitempty"`
	State  string `json:"state"`
	// LeftOut: the cluster's view leaves this datasource out of the writes
	// (it is down, or catching up); each write records the keys it misses.
	LeftOut bool `json:"left_out,omitempty"`
	// Behind counts the keys this datasource missed, as recorded on the
	// reachable datasources.
	Behind int64 `json:"behind"`
	// Conflicts counts unresolved conflicts this datasource is part of.
	Conflicts int64 `json:"conflicts"`
	// Outdated is the node's outdated marker, if it has one.
	Outdated string `json:"outdated,omitempty"`
	// Fingerprint digests the database's structure.
	Fingerprint string `json:"fingerprint,omitempty"`
	// StructureMatches is false when the structure differs from the primary's.
	StructureMatches bool `json:"structure_matches"`
	// CopyRefused counts the keys the last catch-up of this datasource, or
	// the last repair of writes in doubt, could not copy (a database
	// refused the row for a constraint), and CopyError says why for the
	// first of them. Both try them again every round; repair the row that
	// holds the value.
	CopyRefused int64  `json:"copy_refused,omitempty"`
	CopyError   string `json:"copy_error,omitempty"`
	// InDoubt counts intent records older than InDoubtAfter: writes whose
	// process may have died between commits, which the health loop repairs.
	InDoubt int64 `json:"in_doubt"`
	// Error is why the datasource is down; LastError the last error seen.
	Error       string     `json:"error,omitempty"`
	LastError   string     `json:"last_error,omitempty"`
	LastErrorAt *time.Time `json:"last_error_at,omitempty"`
}

// Status describes the cluster.
type Status struct {
	Nodes          []NodeStatus `json:"nodes"`
	Primary        string       `json:"primary"` // "" when no datasource can take writes
	Conflicts      int64        `json:"conflicts"`
	StructureMatch bool         `json:"structure_match"`
	StructureDiffs []string     `json:"structure_diffs,omitempty"`
	// WriteError is why writes are refused, if they are.
	WriteError string `json:"write_error,omitempty"`
	// View is the generation of the cluster's view this process writes
	// under; Arbiter says where the view lives, and ArbiterError why it
	// could not be read last time.
	View         int64  `json:"view"`
	Arbiter      string `json:"arbiter"`
	ArbiterError string `json:"arbiter_error,omitempty"`
	// Failover says how the primary changes when it is lost.
	Failover string `json:"failover"`
}

// Healthy reports whether every datasource is in sync, nothing is in doubt,
// no copy is refused and no conflict waits.
func (s *Status) Healthy() bool {
	if !s.StructureMatch || s.Conflicts > 0 || s.Primary == "" {
		return false
	}
	for _, n := range s.Nodes {
		if n.State != StateInSync || n.InDoubt > 0 || n.CopyRefused > 0 {
			return false
		}
	}
	return true
}

// Status checks every datasource now and reports it. It waits for each
// (at most Config.Timeout for one that does not answer); LastStatus does
// not.
func (c *Cluster) Status(ctx context.Context) (*Status, error) {
	if c.closed.Load() {
		return nil, ErrClosed
	}
	c.noteArbiter(c.reload(ctx))
	c.refresh(ctx, c.background)
	if err := c.checkStructure(ctx); err != nil {
		c.log.Warn("structure check failed", "err", err)
	}
	return c.report(ctx, true), nil
}

// LastStatus reports what the health loop's last round (or the last
// Status call) found, without asking any database: it answers at once,
// a datasource down or not, for dashboards and metrics scrapes. The
// health loop checks every Config.HealthInterval; InDoubt is the count the
// last Status call read (0 before the first).
func (c *Cluster) LastStatus() (*Status, error) {
	if c.closed.Load() {
		return nil, ErrClosed
	}
	return c.report(context.Background(), false), nil
}

// report builds a Status from what the cluster knows; now: reading each
// datasource's writes in doubt now (Status), else the last count read.
func (c *Cluster) report(ctx context.Context, now bool) *Status {
	st := c.Structure()
	v := c.view.Load()
	if newest := c.newestGeneration(); v.rec.Generation == 0 || newest > v.rec.Generation {
		// No process has stored a view yet, or the arbiter's is older than
		// a database's: show the one the next write would decide, or why
		// none can be decided.
		if err := c.undecidable(); err != nil && v.rec.Generation > 0 {
			v = &view{rec: v.rec, skip: c.ranked(), err: err}
		} else if first, err := c.firstView(); err == nil {
			v = c.viewOf(first)
			v.err = nil
		}
	}
	out := &Status{StructureMatch: st.Match, StructureDiffs: st.Diffs, View: v.rec.Generation, Arbiter: c.describeArbiter()}
	c.mu.RLock()
	if c.arbiterErr != nil {
		out.ArbiterError = c.arbiterErr.Error()
	}
	c.mu.RUnlock()
	if c.arb == nil {
		out.Failover = "only by `tandem promote`: no arbiter holds the view"
	} else {
		out.Failover = "automatic, through the arbiter"
	}
	if v.primary != nil {
		out.Primary = v.primary.name
	} else if v.err != nil {
		out.WriteError = v.err.Error()
	}
	cutoff := time.Now().Add(-InDoubtAfter).UnixMilli()
	for _, n := range c.nodes {
		d := n.database()
		live := d.state()
		ns := NodeStatus{
			Name:      n.name,
			Driver:    n.eng.Name(),
			Identity:  n.ID(),
			Primary:   d == v.primary,
			LeftOut:   v.rec.Excludes(d.name),
			Behind:    live.behind(),
			Conflicts: live.conflicts,
			Outdated:  live.outdated,
			LastError: live.lastErr,
		}
		if !live.lastErrAt.IsZero() {
			t := live.lastErrAt.UTC()
			ns.LastErrorAt = &t
		}
		if n.sameAs != nil {
			ns.SameAs = n.sameAs.name
		}
		ns.Fingerprint = st.Fingerprints[d.name]
		_, compared := st.Fingerprints[d.name]
		base := c.primary.database() // the first in rank, when no datasource takes writes
		if v.primary != nil {
			base = v.primary
		}
		if base, ok := st.Fingerprints[base.name]; ok {
			ns.StructureMatches = compared && ns.Fingerprint == base
		} else {
			ns.StructureMatches = compared && st.Match
		}
		err := d.problem()
		if err == nil {
			err = live.down
		}
		if err == nil && d.conn() == nil {
			err = ErrNodeDown
		}
		if err == nil && now {
			ns.InDoubt, err = d.inDoubt(ctx, cutoff)
			d.inDoubtSeen.Store(ns.InDoubt)
		} else if err == nil {
			ns.InDoubt = d.inDoubtSeen.Load()
		}
		switch {
		case err != nil:
			ns.State, ns.Error = StateDown, err.Error()
		case live.catching:
			ns.State = StateCatchingUp
		case v.rec.Excludes(d.name):
			ns.State = StateOutdated
			ns.Outdated = fmt.Sprintf("left out of the writes (view generation %d) until it has caught up", v.rec.Generation)
		case live.outdated != "":
			ns.State = StateOutdated
		case !v.writes(d) || live.behind() > 0:
			ns.State = StateBehind
		default:
			ns.State = StateInSync
		}
		ns.CopyRefused, ns.CopyError = live.refused.n+live.sweepRefused.n, live.refused.err
		if ns.CopyError == "" {
			ns.CopyError = live.sweepRefused.err
		}
		out.Conflicts = max(out.Conflicts, live.conflicts)
		out.Nodes = append(out.Nodes, ns)
	}
	return out
}

// inDoubt counts n's intent records made before cutoff (unix ms).
func (n *Node) inDoubt(ctx context.Context, cutoff int64) (int64, error) {
	if n.conn() == nil {
		return 0, ErrNodeDown
	}
	return n.records.CountIntents(ctx, n.conn().Read, cutoff)
}

// WriteTable writes the status as a table for people.
func (s *Status) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tDRIVER\tIDENTITY\tROLE\tSTATE\tBEHIND\tCONFLICTS\tIN DOUBT\tSTRUCTURE\tNOTE")
	for _, n := range s.Nodes {
		role := "secondary"
		if n.Primary {
			role = "primary"
		}
		structure := "-"
		if n.Fingerprint != "" {
			structure = n.Fingerprint[:8] + " differs"
			if n.StructureMatches {
				structure = n.Fingerprint[:8] + " matches"
			}
		}
		note := n.Error
		switch {
		case n.SameAs != "":
			note = "same database as " + n.SameAs + ": written once"
		case note == "" && n.Conflicts > 0 && !n.Primary:
			note = fmt.Sprintf("waits for %d unresolved conflicts: tandem conflicts", n.Conflicts)
		case note == "" && n.CopyRefused > 0:
			note = fmt.Sprintf("catch-up cannot copy %d keys (tandem verify names them): %s", n.CopyRefused, n.CopyError)
		case note == "" && n.Outdated != "":
			note = n.Outdated
		case note == "" && n.LastError != "" && n.LastErrorAt != nil:
			note = fmt.Sprintf("last error %s: %s", n.LastErrorAt.Format(time.RFC3339), n.LastError)
		}
		id := n.Identity
		if id == "" {
			id = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\t%s\n", n.Name, n.Driver, id, role, n.State, n.Behind, n.Conflicts, n.InDoubt, structure, note)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if s.WriteError != "" {
		if _, err := fmt.Fprintln(w, "writes refused: "+s.WriteError); err != nil {
			return err
		}
	}
	if s.Conflicts > 0 {
		if _, err := fmt.Fprintf(w, "%d unresolved conflicts: see `tandem conflicts`\n", s.Conflicts); err != nil {
			return err
		}
	}
	view := fmt.Sprintf("view: generation %d, held by %s; failover: %s", s.View, s.Arbiter, s.Failover)
	if s.ArbiterError != "" {
		view += "; the view cannot be read now: " + s.ArbiterError
	}
	if _, err := fmt.Fprintln(w, view); err != nil {
		return err
	}
	for _, d := range s.StructureDiffs {
		if _, err := fmt.Fprintln(w, "structure differs: "+d); err != nil {
			return err
		}
	}
	return nil
}
