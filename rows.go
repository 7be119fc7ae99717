package tandem

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/tandemdb/tandem/engine"

	"database/sql"
)

// Rows by key, without a Go model: catch-up, the repair of writes in doubt
// and conflict resolution copy rows of any table, named by the table and
// the key that the records hold (keyOf's JSON), in the canonical values of
// model.go, so they work whichever process wrote the rows and whichever
// engines the databases run.

// tableDef is a table as a live database defines it, in logical types.
type tableDef struct {
	t     engine.Table
	pk    []int                            // positions of the key columns in t.Columns, in key order
	texts map[engine.Engine]*rowStatements // built on first use per engine
}

type rowStatements struct {
	selectByKey, upsert, delete string
}

// defineTable turns a live table's structure into a tableDef: its columns
// in logical types, and its key columns in key order (none when the table
// has no primary key).
func defineTable(info engine.TableInfo) *tableDef {
	td := &tableDef{t: engine.Table{Name: info.Name}, texts: map[engine.Engine]*rowStatements{}}
	type keyCol struct{ pos, col int }
	var keys []keyCol
	for i, ci := range info.Columns {
		td.t.Columns = append(td.t.Columns, engine.Column{Name: ci.Name, Type: ci.Logical, NotNull: ci.NotNull})
		if ci.PK > 0 {
			keys = append(keys, keyCol{ci.PK, i})
		}
	}
	sort.Slice(keys, func(a, b int) bool { return keys[a].pos < keys[b].pos })
	for _, k := range keys {
		td.pk = append(td.pk, k.col)
		td.t.PK = append(td.t.PK, td.t.Columns[k.col].Name)
	}
	return td
}

// tableDefs reads the definitions of the user tables n's database holds.
func (n *Node) tableDefs(ctx context.Context, q engine.Querier) (map[string]*tableDef, error) {
	infos, err := n.eng.Tables(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("read tables of %s: %w", n.name, err)
	}
	defs := make(map[string]*tableDef, len(infos))
	for _, info := range infos {
		if td := defineTable(info); len(td.pk) > 0 {
			defs[info.Name] = td // tandem's models always have a key; others cannot be copied by key
		}
	}
	return defs, nil
}

// statements returns the row statements of td in engine e's dialect.
func (td *tableDef) statements(e engine.Engine) *rowStatements {
	if s := td.texts[e]; s != nil {
		return s
	}
	cols := make([]string, len(td.t.Columns))
	for i, c := range td.t.Columns {
		cols[i] = e.Quote(c.Name)
	}
	conds := make([]string, len(td.pk))
	for i, ci := range td.pk {
		conds[i] = fmt.Sprintf("%s = %s", e.Quote(td.t.Columns[ci].Name), e.Placeholder(i+1))
	}
	where := strings.Join(conds, " AND ")
	s := &rowStatements{
		selectByKey: fmt.Sprintf("SELECT %s FROM %s WHERE %s", strings.Join(cols, ", "), e.Quote(td.t.Name), where),
		upsert:      e.Upsert(&td.t),
		delete:      fmt.Sprintf("DELETE FROM %s WHERE %s", e.Quote(td.t.Name), where),
	}
	td.texts[e] = s
	return s
}

// decodeKey turns a recorded key back into canonical values.
func (td *tableDef) decodeKey(s string) ([]any, error) {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var raw []any
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("table %s: key %s: %w", td.t.Name, s, err)
	}
	if len(raw) != len(td.pk) {
		return nil, fmt.Errorf("table %s: key %s has %d values, the table's key %d columns", td.t.Name, s, len(raw), len(td.pk))
	}
	key := make([]any, len(raw))
	for i, ci := range td.pk {
		v, err := fromJSON(td.t.Columns[ci].Type, raw[i])
		if err != nil {
			return nil, fmt.Errorf("table %s: key %s: column %s: %w", td.t.Name, s, td.t.Columns[ci].Name, err)
		}
		key[i] = v
	}
	return key, nil
}

// fromJSON converts a value keyOf encoded back to its canonical Go value.
func fromJSON(t engine.Type, v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	bad := fmt.Errorf("%v is not a %v", v, t)
	switch t {
	case engine.Integer:
		if n, ok := v.(json.Number); ok {
			return n.Int64()
		}
	case engine.Real:
		if n, ok := v.(json.Number); ok {
			return n.Float64()
		}
	case engine.Text:
		if s, ok := v.(string); ok {
			return s, nil
		}
	case engine.Blob:
		if s, ok := v.(string); ok {
			return base64.StdEncoding.DecodeString(s)
		}
	case engine.Bool:
		if b, ok := v.(bool); ok {
			return b, nil
		}
	case engine.Time:
		if s, ok := v.(string); ok {
			return time.Parse(time.RFC3339Nano, s)
		}
	}
	return nil, bad
}

// keyArgs converts key to n's storage form.
func (n *Node) keyArgs(td *tableDef, key []any) ([]any, error) {
	args := make([]any, len(key))
	for i, ci := range td.pk {
		v, err := n.eng.Value(&td.t.Columns[ci], key[i])
		if err != nil {
			return nil, err
		}
		args[i] = v
	}
	return args, nil
}

// readRow reads the row of td with key from n through q, in canonical
// values; nil when there is none.
func (n *Node) readRow(ctx context.Context, q querier, td *tableDef, key []any) ([]any, error) {
	args, err := n.keyArgs(td, key)
	if err != nil {
		return nil, err
	}
	raw := make([]any, len(td.t.Columns))
	ptrs := make([]any, len(raw))
	for i := range raw {
		ptrs[i] = &raw[i]
	}
	err = q.QueryRowContext(ctx, td.statements(n.eng).selectByKey, args...).Scan(ptrs...)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s %s on %s: %w", td.t.Name, keyOf(key), n.name, err)
	}
	row := make([]any, len(raw))
	for i := range raw {
		if row[i], err = n.eng.Scan(&td.t.Columns[i], raw[i]); err != nil {
			return nil, fmt.Errorf("read %s %s on %s: %w", td.t.Name, keyOf(key), n.name, err)
		}
	}
	return row, nil
}

// writeRow makes n's row of td with key equal row: an upsert of the whole
// row, or a delete when row is nil.
func (n *Node) writeRow(ctx context.Context, tx execer, td *tableDef, key, row []any) error {
	var err error
	if row == nil {
		var args []any
		if args, err = n.keyArgs(td, key); err == nil {
			_, err = tx.ExecContext(ctx, td.statements(n.eng).delete, args...)
		}
	} else {
		args := make([]any, len(row))
		for i := range row {
			if args[i], err = n.eng.Value(&td.t.Columns[i], row[i]); err != nil {
				break
			}
		}
		if err == nil {
			_, err = tx.ExecContext(ctx, td.statements(n.eng).upsert, args...)
		}
	}
	if err != nil {
		return fmt.Errorf("write %s %s on %s: %w", td.t.Name, keyOf(key), n.name, err)
	}
	return nil
}

// rowJSON renders a row as a JSON object of column names to canonical
// values ("null" for no row). Equal rows render equally on every engine.
func rowJSON(td *tableDef, row []any) string {
	if row == nil {
		return "null"
	}
	obj := make(map[string]any, len(row))
	for i, v := range row {
		if t, ok := v.(time.Time); ok {
			v = t.UTC()
		}
		obj[td.t.Columns[i].Name] = v
	}
	b, err := json.Marshal(obj)
	if err != nil {
		return fmt.Sprint(row)
	}
	return string(b)
}
