package tandem

import (
	"context"
	"fmt"

	"github.com/tandemdb/tandem/engine"
	"github.com/tandemdb/tandem/internal/records"
	"github.com/tandemdb/tandem/internal/rows"
)

// tableDefs reads the definitions of the user tables n's database holds.
func (n *Node) tableDefs(ctx context.Context, q engine.Querier) (map[string]*rows.Def, error) {
	infos, err := n.eng.Tables(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("read tables of %s: %w", n.name, err)
	}
	defs := make(map[string]*rows.Def, len(infos))
	for _, info := range infos {
		if td := rows.Define(info); len(td.PK) > 0 {
			defs[info.Name] = td // tandem's models always have a key; others cannot be copied by key
		}
	}
	return defs, nil
}

// readRow reads the row of td with key from n through q, in canonical
// values; nil when there is none.
func (n *Node) readRow(ctx context.Context, q rows.RowQuerier, td *rows.Def, key []any) ([]any, error) {
	row, err := rows.Read(ctx, n.eng, q, td, key)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", n.name, err)
	}
	return row, nil
}

// applyRows makes n's rows of td equal changes (rows.Apply), and returns
// the changes it could not make and why.
func (n *Node) applyRows(ctx context.Context, tx engine.Execer, td *rows.Def, changes []rows.Change) (map[int]error, error) {
	refused, err := rows.Apply(ctx, n.eng, tx, td, changes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", n.name, err)
	}
	return refused, nil
}

// tableRows are rows to copy, by table, tables in the order the keys first
// name them: written together, a table's rows converge where rows written
// one by one would refuse each other (rows.Apply).
type tableRows struct {
	tables  []string
	changes map[string][]rows.Change
}

// readRows reads from n, through q, the current rows of keys (a write's,
// as its intent record names them; what names them, for an error).
func (n *Node) readRows(ctx context.Context, q rows.RowQuerier, defs map[string]*rows.Def, keys []records.Key, what string) (*tableRows, error) {
	t := &tableRows{changes: map[string][]rows.Change{}}
	for _, k := range keys {
		td := defs[k.Table]
		if td == nil {
			return nil, fmt.Errorf("table %s, named by %s, is not in %s", k.Table, what, n.name)
		}
		key, err := td.DecodeKey(k.PK)
		if err != nil {
			return nil, err
		}
		row, err := n.readRow(ctx, q, td, key)
		if err != nil {
			return nil, err
		}
		if t.changes[k.Table] == nil {
			t.tables = append(t.tables, k.Table)
		}
		t.changes[k.Table] = append(t.changes[k.Table], rows.Change{Key: key, Row: row})
	}
	return t, nil
}

// applyTables makes n's rows equal t's, through tx, a table at a time, and
// adds each row n refuses (for a constraint) to refused. It reports
// whether n took every row.
func (n *Node) applyTables(ctx context.Context, tx engine.Execer, defs map[string]*rows.Def, t *tableRows, refused *refusals) (bool, error) {
	whole := true
	for _, table := range t.tables {
		ref, err := n.applyRows(ctx, tx, defs[table], t.changes[table])
		if err != nil {
			return false, err
		}
		for i := range t.changes[table] {
			if err, ok := ref[i]; ok {
				whole = false
				refused.add(rows.RefusedError(defs[table], t.changes[table], map[int]error{i: err}))
			}
		}
	}
	return whole, nil
}

// writeRow makes n's row of td with key equal row: an upsert of the whole
// row, or a delete when row is nil.
func (n *Node) writeRow(ctx context.Context, tx engine.Execer, td *rows.Def, key, row []any) error {
	if err := rows.Write(ctx, n.eng, tx, td, key, row); err != nil {
		return fmt.Errorf("%s: %w", n.name, err)
	}
	return nil
}
