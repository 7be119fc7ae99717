// Package rows reads and writes rows by key without a Go model: catch-up,
// the repair of writes in doubt, conflict resolution and repair copy rows
// of any table, named by the table and the key that the records hold
// (value.EncodeKey's JSON), in canonical values, so they work whichever
// process wrote the rows and whichever engines the databases run.
package rows

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tandemdb/tandem/engine"
	"github.com/tandemdb/tandem/internal/value"
)

// Def is a table as a live database defines it, in logical types.
type Def struct {
	T     engine.Table
	PK    []int                         // positions of the key columns in t.Columns, in key order
	texts map[engine.Engine]*Statements // built on first use per engine; not safe for concurrent use
}

type Statements struct {
	SelectByKey, SelectAll, Upsert, Delete string
}

// Define turns a live table's structure into a Def: its columns
// in logical types, and its key columns in key order (none when the table
// has no primary key).
func Define(info engine.TableInfo) *Def {
	td := &Def{T: engine.Table{Name: info.Name}, PK: info.Key()}
	for _, ci := range info.Columns {
		td.T.Columns = append(td.T.Columns, engine.Column{Name: ci.Name, Type: ci.Logical, NotNull: ci.NotNull})
	}
	for _, i := range td.PK {
		td.T.PK = append(td.T.PK, td.T.Columns[i].Name)
	}
	return td
}

// Statements returns the row statements of td in engine e's dialect.
func (td *Def) Statements(e engine.Engine) *Statements {
	if s := td.texts[e]; s != nil {
		return s
	}
	cols := make([]string, len(td.T.Columns))
	for i, c := range td.T.Columns {
		cols[i] = e.Quote(c.Name)
	}
	conds := make([]string, len(td.PK))
	for i, ci := range td.PK {
		conds[i] = fmt.Sprintf("%s = %s", e.Quote(td.T.Columns[ci].Name), e.Placeholder(i+1))
	}
	where := strings.Join(conds, " AND ")
	s := &Statements{
		SelectByKey: fmt.Sprintf("SELECT %s FROM %s WHERE %s", strings.Join(cols, ", "), e.Quote(td.T.Name), where),
		SelectAll:   fmt.Sprintf("SELECT %s FROM %s", strings.Join(cols, ", "), e.Quote(td.T.Name)),
		Upsert:      e.Upsert(&td.T),
		Delete:      fmt.Sprintf("DELETE FROM %s WHERE %s", e.Quote(td.T.Name), where),
	}
	if td.texts == nil {
		td.texts = map[engine.Engine]*Statements{}
	}
	td.texts[e] = s
	return s
}

// DecodeKey turns a recorded key back into canonical values.
func (td *Def) DecodeKey(s string) ([]any, error) {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var raw []any
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("table %s: key %s: %w", td.T.Name, s, err)
	}
	if len(raw) != len(td.PK) {
		return nil, fmt.Errorf("table %s: key %s has %d values, the table's key %d columns", td.T.Name, s, len(raw), len(td.PK))
	}
	key := make([]any, len(raw))
	for i, ci := range td.PK {
		v, err := value.FromJSON(td.T.Columns[ci].Type, raw[i])
		if err != nil {
			return nil, fmt.Errorf("table %s: key %s: column %s: %w", td.T.Name, s, td.T.Columns[ci].Name, err)
		}
		key[i] = v
	}
	return key, nil
}

// KeyArgs converts key to e's storage form.
func (td *Def) KeyArgs(e engine.Engine, key []any) ([]any, error) {
	args := make([]any, len(key))
	for i, ci := range td.PK {
		v, err := e.Value(&td.T.Columns[ci], key[i])
		if err != nil {
			return nil, err
		}
		args[i] = v
	}
	return args, nil
}

// RowQuerier is a *sql.DB, *sql.Conn or *sql.Tx, or a wrapper of one.
type RowQuerier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Read reads the row of td with key through q, a connection to a database
// of engine e, in canonical values; nil when there is none.
func Read(ctx context.Context, e engine.Engine, q RowQuerier, td *Def, key []any) ([]any, error) {
	args, err := td.KeyArgs(e, key)
	if err != nil {
		return nil, err
	}
	raw := make([]any, len(td.T.Columns))
	ptrs := make([]any, len(raw))
	for i := range raw {
		ptrs[i] = &raw[i]
	}
	err = q.QueryRowContext(ctx, td.Statements(e).SelectByKey, args...).Scan(ptrs...)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s %s: %w", td.T.Name, value.EncodeKey(key), err)
	}
	row := make([]any, len(raw))
	for i := range raw {
		if row[i], err = e.Scan(&td.T.Columns[i], raw[i]); err != nil {
			return nil, fmt.Errorf("read %s %s: %w", td.T.Name, value.EncodeKey(key), err)
		}
	}
	return row, nil
}

// Write makes the row of td with key, in a database of engine e, equal
// row: an upsert of the whole row, or a delete when row is nil.
func Write(ctx context.Context, e engine.Engine, tx engine.Execer, td *Def, key, row []any) error {
	var err error
	if row == nil {
		var args []any
		if args, err = td.KeyArgs(e, key); err == nil {
			_, err = tx.ExecContext(ctx, td.Statements(e).Delete, args...)
		}
	} else {
		args := make([]any, len(row))
		for i := range row {
			if args[i], err = e.Value(&td.T.Columns[i], row[i]); err != nil {
				break
			}
		}
		if err == nil {
			_, err = tx.ExecContext(ctx, td.Statements(e).Upsert, args...)
		}
	}
	if err != nil {
		return fmt.Errorf("write %s %s: %w", td.T.Name, value.EncodeKey(key), err)
	}
	return nil
}

// JSON renders a row as a JSON object of column names to canonical
// values ("null" for no row). Equal rows render equally on every engine.
func (td *Def) JSON(row []any) string {
	if row == nil {
		return "null"
	}
	obj := make(map[string]any, len(row))
	for i, v := range row {
		if t, ok := v.(time.Time); ok {
			v = t.UTC()
		}
		obj[td.T.Columns[i].Name] = v
	}
	b, err := json.Marshal(obj)
	if err != nil {
		return fmt.Sprint(row)
	}
	return string(b)
}
