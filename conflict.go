package tandem

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/tandemdb/tandem/internal/records"
	"github.com/tandemdb/tandem/internal/rows"
	"github.com/tandemdb/tandem/internal/value"
)

// Split brain: when application processes were cut off from different
// databases, each half took writes the other missed, and each recorded the
// keys the other missed. On reconnection catch-up copies every key only one
// side changed to the other side; a key both sides changed is a conflict
// (unless both rows are identical) and is resolved only by the configured
// policy. Every conflict is recorded, with both rows as they were found, in
// _tandem_conflicts on both databases, resolved or not.

// ConflictPolicy says how catch-up resolves a key both sides of a split
// brain changed.
type ConflictPolicy struct {
	// Policy is ConflictManual (the default), ConflictPrimary or ConflictNewest.
	Policy string
	// Column names the column ConflictNewest compares (a time or a number).
	Column string
}

// Conflict policies.
const (
	// ConflictManual leaves the conflict for `tandem resolve`; until then the
	// datasource that is not the primary takes no writes.
	ConflictManual = "manual"
	// ConflictPrimary keeps the primary's row.
	ConflictPrimary = "primary"
	// ConflictNewest keeps the row whose Column is greater; when the column
	// is equal or missing on one side (a deleted row), the conflict waits
	// for `tandem resolve`.
	ConflictNewest = "newest"
)

// Conflict is a key both sides of a split brain changed.
type Conflict struct {
	Table string `json:"table"`
	// Key is the primary key, a JSON array of its column values.
	Key string `json:"key"`
	// NodeA and NodeB are the two datasources; RowA and RowB their rows
	// when the conflict was found, as JSON objects (null: no row).
	NodeA      string          `json:"node_a"`
	RowA       json.RawMessage `json:"row_a"`
	NodeB      string          `json:"node_b"`
	RowB       json.RawMessage `json:"row_b"`
	FoundAt    time.Time       `json:"found_at"`
	Resolution string          `json:"resolution,omitempty"` // "" while unresolved
	ResolvedAt *time.Time      `json:"resolved_at,omitempty"`
}

// conflict handles key r of td, which both the primary and x changed while
// apart: identical rows are not a conflict; otherwise it is recorded on
// both, and resolved now if the policy can. It reports whether the
// conflict waits for an operator.
func (c *Cluster) conflict(ctx context.Context, s *session, v *view, x *Node, td *rows.Def, r records.Key, key []any) (waits bool, err error) {
	p := v.primary
	prow, err := p.readRow(ctx, s.txs[p], td, key)
	if err != nil {
		return false, err
	}
	xrow, err := x.readRow(ctx, s.txs[x], td, key)
	if err != nil {
		return false, err
	}
	pj, xj := td.JSON(prow), td.JSON(xrow)
	if pj == xj {
		return false, nil
	}
	now := time.Now()
	rec := Conflict{Table: r.Table, Key: r.PK, NodeA: p.name, RowA: json.RawMessage(pj), NodeB: x.name, RowB: json.RawMessage(xj), FoundAt: now}
	winner := c.winner(td, p, prow, x, xrow)
	switch winner {
	case p:
		if err := x.writeRow(ctx, s.txs[x], td, key, prow); err != nil {
			return false, err
		}
	case x:
		for _, w := range v.write {
			if err := w.writeRow(ctx, s.txs[w], td, key, xrow); err != nil {
				return false, err
			}
		}
	}
	if winner != nil {
		rec.Resolution = fmt.Sprintf("%s policy: kept %s's row", c.policy.name(), winner.name)
		rec.ResolvedAt = &now
		c.log.Warn("conflict resolved by policy", "table", r.Table, "key", r.PK, "kept", winner.name, "policy", c.policy.name())
		c.event(EventConflict, x.name, "conflict on %s %s (both %s and %s changed it) resolved by the %s policy: kept %s's row", r.Table, r.PK, p.name, x.name, c.policy.name(), winner.name)
	} else {
		c.log.Warn("conflict: both sides changed a row; `tandem resolve` decides", "table", r.Table, "key", r.PK, "nodes", p.name+", "+x.name)
		c.event(EventConflict, x.name, "conflict on %s %s: both %s and %s changed it; `tandem resolve` decides", r.Table, r.PK, p.name, x.name)
	}
	for _, n := range []*Node{p, x} {
		if err := n.records.RecordConflict(ctx, s.txs[n], (*records.Conflict)(&rec)); err != nil {
			return false, err
		}
	}
	return winner == nil, nil
}

func (p ConflictPolicy) name() string {
	if p.Policy == "" {
		return ConflictManual
	}
	return p.Policy
}

// winner applies the policy to a conflict; nil: it waits for an operator.
func (c *Cluster) winner(td *rows.Def, p *Node, prow []any, x *Node, xrow []any) *Node {
	switch c.policy.Policy {
	case ConflictPrimary:
		return p
	case ConflictNewest:
		col := -1
		for i, cc := range td.T.Columns {
			if cc.Name == c.policy.Column {
				col = i
			}
		}
		if col < 0 || prow == nil || xrow == nil {
			return nil
		}
		switch cmp := value.Compare(prow[col], xrow[col]); {
		case cmp > 0:
			return p
		case cmp < 0:
			return x
		}
	}
	return nil
}

// unresolved returns the keys with an unresolved conflict recorded on any
// of nodes.
func (c *Cluster) unresolved(ctx context.Context, s *session, nodes []*Node) (map[records.Key]bool, error) {
	open := map[records.Key]bool{}
	for _, n := range nodes {
		list, err := n.conflicts(ctx, s.txs[n], false)
		if err != nil {
			return nil, err
		}
		for _, r := range list {
			open[records.Key{Table: r.Table, PK: r.Key}] = true
		}
	}
	return open, nil
}

// conflicts reads the conflicts recorded on n: unresolved ones, or all.
func (n *Node) conflicts(ctx context.Context, q querier, all bool) ([]Conflict, error) {
	list, err := n.records.ReadConflicts(ctx, q, all)
	if err != nil {
		return nil, fmt.Errorf("read conflicts on %s: %w", n.name, err)
	}
	out := make([]Conflict, len(list))
	for i, r := range list {
		out[i] = Conflict(r)
	}
	return out, nil
}

// Conflicts lists the conflicts recorded in the cluster's databases: the
// unresolved ones, or with all, the resolved ones too.
func (c *Cluster) Conflicts(ctx context.Context, all bool) ([]Conflict, error) {
	seen := map[records.Key]bool{}
	var out []Conflict
	read := false
	for _, n := range c.ranked() {
		if !n.reachable() {
			continue
		}
		list, err := n.conflicts(ctx, n.conn().Read, all)
		if err != nil {
			return nil, err
		}
		read = true
		for _, r := range list {
			if k := (records.Key{Table: r.Table, PK: r.Key}); !seen[k] {
				seen[k] = true
				out = append(out, r)
			}
		}
	}
	if !read {
		return nil, fmt.Errorf("%w: no datasource is reachable", ErrNodeDown)
	}
	return out, nil
}

// Resolve resolves unresolved conflicts by keeping the row of the
// datasource called take: its current row (or its absence) is copied to
// every other database of the conflict and to every database being
// written. With table and key empty it resolves every unresolved conflict
// that take is part of; otherwise the one of that table and key (key as
// Conflict.Key prints it). It returns how many it resolved.
func (c *Cluster) Resolve(ctx context.Context, table, key, take string) (int, error) {
	keep := c.node(take)
	if keep == nil {
		return 0, fmt.Errorf("resolve: no datasource called %q", take)
	}
	keep = keep.database()
	v, release, err := c.acquire()
	if err != nil {
		return 0, err
	}
	defer release()
	var extra []*Node
	for _, n := range c.ranked() {
		if n.reachable() && !v.writes(n) {
			extra = append(extra, n)
		}
	}
	if !v.writes(keep) && !containsNode(extra, keep) {
		return 0, fmt.Errorf("%w: resolve: %s is not reachable", ErrNodeDown, take)
	}
	s, err := c.lockAll(ctx, v, extra...)
	if err != nil {
		return 0, err
	}
	defer s.rollback()
	nodes := s.order
	var todo []Conflict
	seen := map[records.Key]bool{}
	for _, n := range nodes {
		list, err := n.conflicts(ctx, s.txs[n], false)
		if err != nil {
			return 0, err
		}
		for _, r := range list {
			k := records.Key{Table: r.Table, PK: r.Key}
			if seen[k] || (table != "" && r.Table != table) || (key != "" && r.Key != key) {
				continue
			}
			if r.NodeA != keep.name && r.NodeB != keep.name {
				continue
			}
			seen[k] = true
			todo = append(todo, r)
		}
	}
	if table != "" && len(todo) == 0 {
		return 0, fmt.Errorf("resolve: no unresolved conflict of %s on table %s key %s", take, table, key)
	}
	defs, err := keep.tableDefs(ctx, s.txs[keep])
	if err != nil {
		return 0, err
	}
	now := time.Now()
	for i := range todo {
		r := &todo[i]
		td := defs[r.Table]
		if td == nil {
			return 0, fmt.Errorf("resolve: table %s is not in %s", r.Table, keep.name)
		}
		k, err := td.DecodeKey(r.Key)
		if err != nil {
			return 0, err
		}
		row, err := keep.readRow(ctx, s.txs[keep], td, k)
		if err != nil {
			return 0, err
		}
		for _, n := range nodes {
			if n == keep {
				continue
			}
			if n.name == r.NodeA || n.name == r.NodeB || v.writes(n) {
				if err := n.writeRow(ctx, s.txs[n], td, k, row); err != nil {
					return 0, err
				}
			}
		}
		r.Resolution = "resolved by an operator: kept " + keep.name + "'s row"
		r.ResolvedAt = &now
		for _, n := range nodes {
			if n.name == r.NodeA || n.name == r.NodeB {
				if err := n.records.RecordConflict(ctx, s.txs[n], (*records.Conflict)(r)); err != nil {
					return 0, err
				}
			}
		}
	}
	if err := s.commit(); err != nil {
		return 0, err
	}
	c.resolvedEvent(keep, len(todo))
	c.kick()
	return len(todo), nil
}
