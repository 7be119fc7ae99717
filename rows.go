package tandem

import (
	"context"
	"fmt"

	"github.com/tandemdb/tandem/engine"
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

// writeRow makes n's row of td with key equal row: an upsert of the whole
// row, or a delete when row is nil.
func (n *Node) writeRow(ctx context.Context, tx engine.Execer, td *rows.Def, key, row []any) error {
	if err := rows.Write(ctx, n.eng, tx, td, key, row); err != nil {
		return fmt.Errorf("%s: %w", n.name, err)
	}
	return nil
}
