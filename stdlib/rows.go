package stdlib

import (
	"database/sql"
	"database/sql/driver"
	"io"
)

// rows hands database/sql the rows the primary's driver returned: each
// value as that driver gave it (int64, float64, bool, []byte, string,
// time.Time or nil), so that database/sql converts it as it would have.
type rows struct {
	r     *sql.Rows
	cols  []string
	types []string // the primary driver's database type names
	vals  []any
	ptrs  []any
	err   error
}

func newRows(r *sql.Rows) *rows {
	cols, err := r.Columns()
	out := &rows{r: r, cols: cols, err: err, types: make([]string, len(cols))}
	if cts, cerr := r.ColumnTypes(); cerr == nil && len(cts) == len(cols) {
		for i, ct := range cts {
			out.types[i] = ct.DatabaseTypeName()
		}
	}
	out.vals = make([]any, len(cols))
	out.ptrs = make([]any, len(cols))
	for i := range out.vals {
		out.ptrs[i] = &out.vals[i]
	}
	return out
}

func (r *rows) Columns() []string { return r.cols }

// ColumnTypeDatabaseTypeName implements driver.RowsColumnTypeDatabaseTypeName:
// the primary driver's name ("INT8", "TEXT", ...).
func (r *rows) ColumnTypeDatabaseTypeName(i int) string { return r.types[i] }
func (r *rows) Close() error                            { return r.r.Close() }

func (r *rows) Next(dest []driver.Value) error {
	err := r.next(dest)
	if err == io.EOF {
		return err
	}
	return notBadConn(err)
}

func (r *rows) next(dest []driver.Value) error {
	if r.err != nil {
		return r.err
	}
	if !r.r.Next() {
		if err := r.r.Err(); err != nil {
			return err
		}
		return io.EOF
	}
	if err := r.r.Scan(r.ptrs...); err != nil {
		return err
	}
	for i, v := range r.vals {
		dest[i] = v
	}
	return nil
}

// bufferedRows are the rows of a statement that wrote, read in full
// before its write committed.
type bufferedRows struct {
	cols  []string
	types []string
	data  [][]any
	next  int
}

func buffer(r *sql.Rows) (*bufferedRows, error) {
	defer r.Close()
	in := newRows(r)
	if in.err != nil {
		return nil, in.err
	}
	out := &bufferedRows{cols: in.cols, types: in.types}
	for {
		row := make([]driver.Value, len(in.cols))
		err := in.Next(row)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		vals := make([]any, len(row))
		for i, v := range row {
			if b, ok := v.([]byte); ok {
				v = append([]byte(nil), b...)
			}
			vals[i] = v
		}
		out.data = append(out.data, vals)
	}
	return out, r.Close()
}

func (b *bufferedRows) Columns() []string { return b.cols }
func (b *bufferedRows) Close() error      { return nil }

func (b *bufferedRows) Next(dest []driver.Value) error {
	if b.next >= len(b.data) {
		return io.EOF
	}
	for i, v := range b.data[b.next] {
		dest[i] = v
	}
	b.next++
	return nil
}

// ColumnTypeDatabaseTypeName implements driver.RowsColumnTypeDatabaseTypeName.
func (b *bufferedRows) ColumnTypeDatabaseTypeName(i int) string { return b.types[i] }
