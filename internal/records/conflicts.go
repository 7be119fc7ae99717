package records

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// Conflict is a row of the Conflicts table: a key both sides of a split
// brain changed.
type Conflict struct {
	Table      string
	Key        string          // the primary key, as Key.PK
	NodeA      string          // one datasource
	RowA       json.RawMessage // its row when the conflict was found (null: no row)
	NodeB      string          // the other
	RowB       json.RawMessage
	FoundAt    time.Time
	Resolution string     // "" while unresolved
	ResolvedAt *time.Time // nil while unresolved
}

// RecordConflict records r (an upsert by table and key), inside tx.
func (s Store) RecordConflict(ctx context.Context, tx Execer, r *Conflict) error {
	var resolvedAt int64
	if r.ResolvedAt != nil {
		resolvedAt = r.ResolvedAt.UnixMilli()
	}
	_, err := tx.ExecContext(ctx, s.e.Upsert(&Conflicts), r.Table, r.Key, r.NodeA, nullJSON(r.RowA), r.NodeB, nullJSON(r.RowB),
		r.FoundAt.UnixMilli(), r.Resolution, resolvedAt)
	return err
}

func nullJSON(j json.RawMessage) any {
	if string(j) == "null" {
		return nil
	}
	return string(j)
}

func rawJSON(s *string) json.RawMessage {
	if s == nil {
		return json.RawMessage("null")
	}
	return json.RawMessage(*s)
}

// ReadConflicts reads the recorded conflicts: unresolved ones, or all.
func (s Store) ReadConflicts(ctx context.Context, q Querier, all bool) ([]Conflict, error) {
	where := " WHERE resolution = ''"
	if all {
		where = ""
	}
	rows, err := q.QueryContext(ctx, fmt.Sprintf("SELECT tbl, pk, node_a, row_a, node_b, row_b, found_at, resolution, resolved_at FROM %s%s ORDER BY found_at, tbl, pk",
		s.table(&Conflicts), where))
	if err != nil {
		return nil, err
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

// CountConflictsByNode counts the unresolved conflicts, by the name of
// each node that is part of one, into counts.
func (s Store) CountConflictsByNode(ctx context.Context, q Querier, counts map[string]int64) error {
	return countBy(ctx, q, fmt.Sprintf("SELECT node_a, COUNT(*) FROM %s WHERE resolution = '' GROUP BY node_a UNION ALL SELECT node_b, COUNT(*) FROM %[1]s WHERE resolution = '' GROUP BY node_b", s.table(&Conflicts)), counts)
}
