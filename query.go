package tandem

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/tandemdb/tandem/engine"
	"github.com/tandemdb/tandem/internal/value"
)

// Reader is where reads come from: a Cluster (the primary's database) or a
// Tx (the transaction on the primary, which sees the transaction's writes).
type Reader interface {
	reader() (querier, *Node, *Cluster, error)
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func (c *Cluster) reader() (querier, *Node, *Cluster, error) {
	if c.closed.Load() {
		return nil, nil, nil, ErrClosed
	}
	// Reads come from the primary: the first datasource in rank order that
	// is reachable and misses nothing; if it failed since the view was
	// decided, from the next database every write reaches.
	// (No recompute here: a read may run inside a Tx callback, which holds
	// the gate a view change waits for.)
	v := c.view.Load()
	if v.primary == nil {
		return nil, nil, nil, v.err
	}
	for _, n := range v.write {
		if n.reachable() {
			return n.conn().Read, n, c, nil
		}
	}
	c.kick()
	return nil, nil, nil, fmt.Errorf("%w: read: %s", ErrNodeDown, nodeNames(v.write))
}

func (tx *Tx) reader() (querier, *Node, *Cluster, error) {
	if tx.done {
		return nil, nil, nil, fmt.Errorf("read: transaction already finished")
	}
	return tx.tx, tx.primary, tx.c, nil
}

// QueryOption narrows, orders or limits Find and Count.
type QueryOption func(*query)

type query struct {
	where  []string
	args   []any
	eq     []eqCond
	order  []string
	limit  int
	offset int
}

type eqCond struct {
	col string
	val any
}

// Where adds a condition in SQL, with ? for each argument, e.g.
// Where("price < ? AND title LIKE ?", 20, "Go%"). Conditions are ANDed.
// An argument that is a slice or an array (other than []byte, one value)
// stands for its elements, comma-separated: Where("id IN (?)", ids). An
// empty list is refused with an error (IN () is not SQL).
func Where(cond string, args ...any) QueryOption {
	return func(q *query) {
		q.where = append(q.where, cond)
		q.args = append(q.args, args...)
	}
}

// Eq adds the condition column = value (column IS NULL for a nil value).
func Eq(column string, value any) QueryOption {
	return func(q *query) { q.eq = append(q.eq, eqCond{column, value}) }
}

// OrderBy orders by columns, each "name" or "name DESC" (or "name ASC").
func OrderBy(columns ...string) QueryOption {
	return func(q *query) { q.order = append(q.order, columns...) }
}

// Limit returns at most n rows.
func Limit(n int) QueryOption { return func(q *query) { q.limit = n } }

// Offset skips the first n rows.
func Offset(n int) QueryOption { return func(q *query) { q.offset = n } }

// Get reads the row of model T with the given primary key (one value per
// key column, in key order). It returns ErrNotFound when there is none.
func Get[T any](ctx context.Context, r Reader, key ...any) (*T, error) {
	db, n, m, err := readerFor[T](r)
	if err != nil {
		return nil, err
	}
	if len(key) != len(m.pk) {
		return nil, fmt.Errorf("get %s: %d key values given, the key has %d (%s)", m.table.Name, len(key), len(m.pk), strings.Join(m.table.PK, ", "))
	}
	args := make([]any, len(key))
	for i, k := range key {
		if args[i], err = n.arg(k); err != nil {
			return nil, fmt.Errorf("get %s: key %s: %w", m.table.Name, m.table.PK[i], err)
		}
	}
	s := n.sql(m)
	q := fmt.Sprintf("SELECT %s FROM %s WHERE %s%s", s.selectCols, n.eng.Quote(m.table.Name), s.byKey, rowLock(r, n))
	ctx, done := n.readGuard(ctx, r)
	defer done()
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("get %s on %s: %w", m.table.Name, n.name, readErr(ctx, err))
	}
	list, err := scanRows[T](m, rows)
	if err != nil {
		return nil, fmt.Errorf("get %s on %s: %w", m.table.Name, n.name, readErr(ctx, err))
	}
	if len(list) == 0 {
		return nil, fmt.Errorf("get %s %s: %w", m.table.Name, value.EncodeKey(key), ErrNotFound)
	}
	return &list[0], nil
}

// Find reads the rows of model T that match every condition.
func Find[T any](ctx context.Context, r Reader, opts ...QueryOption) ([]T, error) {
	db, n, m, err := readerFor[T](r)
	if err != nil {
		return nil, err
	}
	q, args, err := n.selectSQL(m, n.sql(m).selectCols, opts, true)
	if err != nil {
		return nil, fmt.Errorf("find %s: %w", m.table.Name, err)
	}
	q += rowLock(r, n)
	ctx, done := n.readGuard(ctx, r)
	defer done()
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("find %s on %s: %w", m.table.Name, n.name, readErr(ctx, err))
	}
	list, err := scanRows[T](m, rows)
	if err != nil {
		return nil, fmt.Errorf("find %s on %s: %w", m.table.Name, n.name, readErr(ctx, err))
	}
	return list, nil
}

// Count counts the rows of model T that match every condition.
func Count[T any](ctx context.Context, r Reader, opts ...QueryOption) (int64, error) {
	db, n, m, err := readerFor[T](r)
	if err != nil {
		return 0, err
	}
	q, args, err := n.selectSQL(m, "COUNT(*)", opts, false)
	if err != nil {
		return 0, fmt.Errorf("count %s: %w", m.table.Name, err)
	}
	var count int64
	ctx, done := n.readGuard(ctx, r)
	defer done()
	if err := db.QueryRowContext(ctx, q, args...).Scan(&count); err != nil {
		return 0, fmt.Errorf("count %s on %s: %w", m.table.Name, n.name, readErr(ctx, err))
	}
	return count, nil
}

// readGuard bounds a read on a server (engine.Locker): ctx is cancelled if
// the read, its rows included, takes longer than a write's statements may
// (lockWait timeouts), so a hung server cannot hold a reader for ever (the
// health check then finds it down, and reads go to the next database).
// done must be called once the rows are read. A read outside a Tx (r
// not a *Tx; nil for tandem's own) also ends at once when a write or the
// health check finds n down; a Tx's transaction is given up then already
// (giveUpWhenDown), which ends its reads and says why.
func (n *Node) readGuard(ctx context.Context, r Reader) (context.Context, func()) {
	if n.caps.Locker == nil {
		return ctx, func() {}
	}
	ctx, cancel := context.WithCancelCause(ctx)
	timer := time.AfterFunc(lockWait*n.cluster.timeout, func() { cancel(nil) })
	if _, inTx := r.(*Tx); !inTx {
		n.giveUpWhenDown(ctx, cancel)
	}
	return ctx, func() { timer.Stop(); cancel(nil) }
}

// readErr says why a read failed when its guard ended it because its
// database was found down (readGuard): the driver says only "context
// canceled". A Tx whose read fails so runs again under the new view.
func readErr(ctx context.Context, err error) error {
	if cause := context.Cause(ctx); err != nil && errors.Is(cause, ErrNodeDown) && !errors.Is(err, ErrNodeDown) {
		return fmt.Errorf("%w (%v)", cause, err)
	}
	return err
}

// rowLock is the clause that makes a read inside a Tx lock the rows it
// returns, on engines that lock rows (engine.Locker): a Tx then reads rows
// no other write can change before it commits, as on SQLite, where every
// write transaction holds the database's write lock.
func rowLock(r Reader, n *Node) string {
	if _, ok := r.(*Tx); !ok {
		return ""
	}
	if l := n.caps.Locker; l != nil {
		return l.RowLock()
	}
	return ""
}

// readerFor resolves where r reads from and the model of T.
func readerFor[T any](r Reader) (querier, *Node, *model, error) {
	db, n, c, err := r.reader()
	if err != nil {
		return nil, nil, nil, err
	}
	m, err := c.model(reflect.TypeFor[T]())
	return db, n, m, err
}

func (n *Node) selectSQL(m *model, what string, opts []QueryOption, ordered bool) (string, []any, error) {
	q := query{limit: -1}
	for _, o := range opts {
		o(&q)
	}
	e := n.eng
	var b strings.Builder
	fmt.Fprintf(&b, "SELECT %s FROM %s", what, e.Quote(m.table.Name))
	var conds []string
	var args []any
	marks := 0
	for _, w := range q.where {
		_, used, err := rebind(w, e, 0)
		if err != nil {
			return "", nil, err
		}
		marks += used
	}
	if marks != len(q.args) {
		return "", nil, fmt.Errorf("conditions have %d placeholders and %d arguments", marks, len(q.args))
	}
	p, next := 0, 0
	for _, w := range q.where {
		_, used, _ := rebind(w, e, 0)
		cond, flat, err := expand(w, e, p, q.args[next:next+used])
		if err != nil {
			return "", nil, err
		}
		next += used
		conds = append(conds, "("+cond+")")
		p += len(flat)
		for _, a := range flat {
			v, err := n.arg(a)
			if err != nil {
				return "", nil, fmt.Errorf("condition %q: %w", w, err)
			}
			args = append(args, v)
		}
	}
	for _, eq := range q.eq {
		col := m.table.Column(eq.col)
		if col == nil {
			return "", nil, fmt.Errorf("no column %q (have: %s)", eq.col, m.columnNames())
		}
		v, err := n.arg(eq.val)
		if err != nil {
			return "", nil, fmt.Errorf("column %s: %w", col.Name, err)
		}
		if v == nil {
			conds = append(conds, e.Quote(col.Name)+" IS NULL")
			continue
		}
		p++
		conds = append(conds, e.Quote(col.Name)+" = "+e.Placeholder(p))
		args = append(args, v)
	}
	if len(conds) > 0 {
		b.WriteString(" WHERE " + strings.Join(conds, " AND "))
	}
	if ordered {
		var order []string
		for _, o := range q.order {
			name, dir, _ := strings.Cut(strings.TrimSpace(o), " ")
			dir = strings.ToUpper(strings.TrimSpace(dir))
			if m.table.Column(name) == nil {
				return "", nil, fmt.Errorf("order by %q: no such column (have: %s)", name, m.columnNames())
			}
			if dir != "" && dir != "ASC" && dir != "DESC" {
				return "", nil, fmt.Errorf("order by %q: want ASC or DESC after the column", o)
			}
			order = append(order, strings.TrimSpace(e.Quote(name)+" "+dir))
		}
		if len(order) == 0 {
			// A stable order: the same rows in the same order from every engine.
			for _, k := range m.table.PK {
				order = append(order, e.Quote(k))
			}
		}
		b.WriteString(" ORDER BY " + strings.Join(order, ", "))
		b.WriteString(e.LimitClause(q.limit, q.offset))
	}
	return b.String(), args, nil
}

func (m *model) columnNames() string {
	names := make([]string, len(m.table.Columns))
	for i, c := range m.table.Columns {
		names[i] = c.Name
	}
	return strings.Join(names, ", ")
}

// rebind replaces each ? outside quotes in cond with the engine's
// placeholder, numbering from after+1. It returns how many it replaced.
func rebind(cond string, e engine.Engine, after int) (string, int, error) {
	n := 0
	out, err := walkCond(cond, func(b *strings.Builder) error {
		n++
		b.WriteString(e.Placeholder(after + n))
		return nil
	})
	return out, n, err
}

// expand is rebind with the condition's arguments, one per ?: an argument
// that is a list (a slice or an array, other than bytes) stands for as many
// placeholders as it has elements, for IN (?). It returns the condition and
// its arguments, lists spread.
func expand(cond string, e engine.Engine, after int, args []any) (string, []any, error) {
	var flat []any
	i := 0
	out, err := walkCond(cond, func(b *strings.Builder) error {
		a := args[i]
		i++
		list, ok := listOf(a)
		if !ok {
			list = []any{a}
		} else if len(list) == 0 {
			return fmt.Errorf("condition %q: argument %d is an empty list (%T); IN () is not SQL, and matches nothing: leave the condition out", cond, i, a)
		}
		for j, x := range list {
			if j > 0 {
				b.WriteString(", ")
			}
			flat = append(flat, x)
			b.WriteString(e.Placeholder(after + len(flat)))
		}
		return nil
	})
	return out, flat, err
}

// walkCond copies cond, calling mark for each ? outside quotes (it writes
// what stands for it); a ';' or an unterminated quote is an error.
func walkCond(cond string, mark func(*strings.Builder) error) (string, error) {
	var b strings.Builder
	var quote rune
	for _, r := range cond {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			}
		case r == '\'' || r == '"' || r == '`':
			quote = r
		case r == '?':
			if err := mark(&b); err != nil {
				return "", err
			}
			continue
		case r == ';':
			return "", fmt.Errorf("condition %q: ';' is not allowed", cond)
		}
		b.WriteRune(r)
	}
	if quote != 0 {
		return "", fmt.Errorf("condition %q: unterminated quote", cond)
	}
	return b.String(), nil
}

// listOf returns the elements of a, when a is a list: a slice or an array
// whose elements are not bytes ([]byte is one value, a blob).
func listOf(a any) ([]any, bool) {
	v := reflect.ValueOf(a)
	if !v.IsValid() || (v.Kind() != reflect.Slice && v.Kind() != reflect.Array) || v.Type().Elem().Kind() == reflect.Uint8 {
		return nil, false
	}
	out := make([]any, v.Len())
	for i := range out {
		out[i] = v.Index(i).Interface()
	}
	return out, true
}

// arg converts a query argument to n's storage form, the way column values
// are: integers to int64, times to the engine's time form, and so on.
func (n *Node) arg(a any) (any, error) {
	if a == nil {
		return nil, nil
	}
	x, err := value.FromField(reflect.ValueOf(a))
	if err != nil {
		return nil, err
	}
	var col engine.Column
	switch x := x.(type) {
	case time.Time:
		col.Type = engine.Time
		return n.eng.Value(&col, x.UTC().Truncate(time.Microsecond))
	case bool:
		col.Type = engine.Bool
	case float64:
		col.Type = engine.Real
		if err := value.Fits(&col, x); err != nil {
			return nil, err
		}
	}
	return n.eng.Value(&col, x)
}

func scanRows[T any](m *model, rows *sql.Rows) ([]T, error) {
	defer rows.Close()
	var list []T
	raw := make([]any, len(m.table.Columns))
	ptrs := make([]any, len(raw))
	for i := range raw {
		ptrs[i] = &raw[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		var t T
		v := reflect.ValueOf(&t).Elem()
		for i, x := range raw {
			if err := value.Assign(v.FieldByIndex(m.fields[i]), x); err != nil {
				return nil, fmt.Errorf("column %s: %w", m.table.Columns[i].Name, err)
			}
		}
		list = append(list, t)
	}
	return list, rows.Err()
}

// reader makes a Node a Reader: reads from that datasource only, whatever
// its state. Useful to compare datasources, as the demo does.
func (n *Node) reader() (querier, *Node, *Cluster, error) {
	if n.conn() == nil {
		return nil, nil, nil, fmt.Errorf("%w: %s", ErrNodeDown, n.name)
	}
	return n.conn().Read, n, n.cluster, nil
}
