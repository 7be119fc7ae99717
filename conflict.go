package tandem

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

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
func (c *Cluster) conflict(ctx context.Context, s *session, v *view, x *Node, td *rows.Def, r missedCursor, key []any) (waits bool, err error) {
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
	rec := Conflict{Table: r.tbl, Key: r.pk, NodeA: p.name, RowA: json.RawMessage(pj), NodeB: x.name, RowB: json.RawMessage(xj), FoundAt: now}
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
		c.log.Warn("conflict resolved by policy", "table", r.tbl, "key", r.pk, "kept", winner.name, "policy", c.policy.name())
		c.event(EventConflict, x.name, "conflict on %s %s (both %s and %s changed it) resolved by the %s policy: kept %s's row", r.tbl, r.pk, p.name, x.name, c.policy.name(), winner.name)
	} else {
		c.log.Warn("conflict: both sides changed a row; `tandem resolve` decides", "table", r.tbl, "key", r.pk, "nodes", p.name+", "+x.name)
		c.event(EventConflict, x.name, "conflict on %s %s: both %s and %s changed it; `tandem resolve` decides", r.tbl, r.pk, p.name, x.name)
	}
	for _, n := range []*Node{p, x} {
		if err := n.recordConflict(ctx, s.txs[n], &rec); err != nil {
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

func (n *Node) recordConflict(ctx context.Context, tx execer, r *Conflict) error {
	var resolvedAt int64
	if r.ResolvedAt != nil {
		resolvedAt = r.ResolvedAt.UnixMilli()
	}
	_, err := tx.ExecContext(ctx, n.eng.Upsert(&conflictTable), r.Table, r.Key, r.NodeA, nullJSON(r.RowA), r.NodeB, nullJSON(r.RowB),
		r.FoundAt.UnixMilli(), r.Resolution, resolvedAt)
	return err
}

func nullJSON(j json.RawMessage) any {
	if string(j) == "null" {
		return nil
	}
	return string(j)
}

// unresolved returns the keys with an unresolved conflict recorded on any
// of nodes.
func (c *Cluster) unresolved(ctx context.Context, s *session, nodes []*Node) (map[missedCursor]bool, error) {
	open := map[missedCursor]bool{}
	for _, n := range nodes {
		list, err := n.conflicts(ctx, s.txs[n], false)
		if err != nil {
			return nil, err
		}
		for _, r := range list {
			open[missedCursor{r.Table, r.Key}] = true
		}
	}
	return open, nil
}

// conflicts reads the conflicts recorded on n: unresolved ones, or all.
func (n *Node) conflicts(ctx context.Context, q querier, all bool) ([]Conflict, error) {
	where := " WHERE resolution = ''"
	if all {
		where = ""
	}
	rows, err := q.QueryContext(ctx, fmt.Sprintf("SELECT tbl, pk, node_a, row_a, node_b, row_b, found_at, resolution, resolved_at FROM %s%s ORDER BY found_at, tbl, pk",
		n.eng.Quote(conflictTable.Name), where))
	if err != nil {
		return nil, fmt.Errorf("read conflicts on %s: %w", n.name, err)
	}
	defer rows.Close()
	var out []Conflict
	for rows.Next() {
		var r Conflict
		var rowA, rowB *string
		var found, resolved int64
		if err := rows.Scan(&r.Table, &r.Key, &r.NodeA, &rowA, &r.NodeB, &rowB, &found, &r.Resolution, &resolved); err != nil {
			return nil, err
		}
		r.RowA, r.RowB = rawJSON(rowA), rawJSON(rowB)
		r.FoundAt = time.UnixMilli(found).UTC()
		if resolved != 0 {
			t := time.UnixMilli(resolved).UTC()
			r.ResolvedAt = &t
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

func rawJSON(s *string) json.RawMessage {
	if s == nil {
		return json.RawMessage("null")
	}
	return json.RawMessage(*s)
}

// Conflicts lists the conflicts recorded in the cluster's databases: the
// unresolved ones, or with all, the resolved ones too.
func (c *Cluster) Conflicts(ctx context.Context, all bool) ([]Conflict, error) {
	seen := map[missedCursor]bool{}
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
			if k := (missedCursor{r.Table, r.Key}); !seen[k] {
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
	seen := map[missedCursor]bool{}
	for _, n := range nodes {
		list, err := n.conflicts(ctx, s.txs[n], false)
		if err != nil {
			return 0, err
		}
		for _, r := range list {
			k := missedCursor{r.Table, r.Key}
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
				if err := n.recordConflict(ctx, s.txs[n], r); err != nil {
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
	mark, err := n.meta(ctx, db.Read, "outdated")
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
	if err := n.deleteMeta(ctx, tx, "outdated"); err != nil {
		return fmt.Errorf("promote %s: %w", name, err)
	}
	if err := n.setMeta(ctx, tx, "promoted_at", strconv.FormatInt(time.Now().UnixMilli(), 10)); err != nil {
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
