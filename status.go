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
	StateInSync  = "in sync"  // reachable, and no write is in doubt
	StateDown    = "down"     // unreachable, or unusable (see Error)
	StateInDoubt = "in doubt" // intent records older than InDoubtAfter exist: some write may be missing somewhere
)

// InDoubtAfter is how old an intent record must be before Status counts it
// as in doubt; younger ones belong to writes still being cleared.
const InDoubtAfter = 10 * time.Second

// NodeStatus describes one datasource.
type NodeStatus struct {
	Name     string `json:"name"`
	Driver   string `json:"driver"`
	Identity string `json:"identity"`
	Primary  bool   `json:"primary"`
	// SameAs names the earlier datasource that is the same database.
	SameAs string `json:"same_as,omitempty"`
	State  string `json:"state"`
	// Fingerprint digests the database's structure.
	Fingerprint string `json:"fingerprint,omitempty"`
	// StructureMatches is false when the structure differs from the primary's.
	StructureMatches bool `json:"structure_matches"`
	// InDoubt counts intent records older than InDoubtAfter.
	InDoubt int64  `json:"in_doubt"`
	Error   string `json:"error,omitempty"`
}

// Status describes the cluster.
type Status struct {
	Nodes          []NodeStatus `json:"nodes"`
	StructureMatch bool         `json:"structure_match"`
	StructureDiffs []string     `json:"structure_diffs,omitempty"`
}

// Status checks every datasource now and reports it.
func (c *Cluster) Status(ctx context.Context) (*Status, error) {
	if c.closed.Load() {
		return nil, ErrClosed
	}
	if err := c.checkStructure(ctx); err != nil {
		c.log.Warn("structure check failed", "err", err)
	}
	st := c.Structure()
	out := &Status{StructureMatch: st.Match, StructureDiffs: st.Diffs}
	cutoff := time.Now().Add(-InDoubtAfter).UnixMilli()
	for _, n := range c.nodes {
		ns := NodeStatus{
			Name:     n.name,
			Driver:   n.eng.Name(),
			Identity: n.id,
			Primary:  n == c.primary,
			State:    StateInSync,
		}
		if n.sameAs != nil {
			ns.SameAs = n.sameAs.name
		}
		d := n.database()
		ns.Fingerprint = st.Fingerprints[d.name]
		_, compared := st.Fingerprints[d.name]
		ns.StructureMatches = compared && ns.Fingerprint == st.Fingerprints[c.primary.database().name]
		err := d.problem()
		if err == nil && n.conn != nil {
			err = n.conn.Read.PingContext(ctx)
		}
		if err == nil {
			ns.InDoubt, err = d.inDoubt(ctx, cutoff)
		}
		switch {
		case err != nil:
			ns.State, ns.Error = StateDown, err.Error()
		case ns.InDoubt > 0:
			ns.State = StateInDoubt
		}
		out.Nodes = append(out.Nodes, ns)
	}
	return out, nil
}

// inDoubt counts n's intent records made before cutoff (unix ms).
func (n *Node) inDoubt(ctx context.Context, cutoff int64) (int64, error) {
	if n.conn == nil {
		return 0, ErrNodeDown
	}
	var count int64
	q := fmt.Sprintf("SELECT COUNT(*) FROM %s WHERE at < %s", n.eng.Quote(pendingTable.Name), n.eng.Placeholder(1))
	err := n.conn.Read.QueryRowContext(ctx, q, cutoff).Scan(&count)
	return count, err
}

// WriteTable writes the status as a table for people.
func (s *Status) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tDRIVER\tIDENTITY\tROLE\tSTATE\tSTRUCTURE\tIN DOUBT\tNOTE")
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
		if n.SameAs != "" {
			note = "same database as " + n.SameAs + ": written once"
		}
		id := n.Identity
		if id == "" {
			id = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", n.Name, n.Driver, id, role, n.State, structure, n.InDoubt, note)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, d := range s.StructureDiffs {
		if _, err := fmt.Fprintln(w, "structure differs: "+d); err != nil {
			return err
		}
	}
	return nil
}
