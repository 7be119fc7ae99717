package verify

// How one table is compared between two databases: ranges of keys
// checksummed on both sides at once, bisection of the ranges that differ,
// the rows of the smallest ones compared, and differing rows read again.
// Compare and Repair drive it.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/tandemdb/tandem/engine"
	"github.com/tandemdb/tandem/internal/records"
	"github.com/tandemdb/tandem/internal/rows"
	"github.com/tandemdb/tandem/internal/value"
)

// Tuning of the comparison.
const (
	verifyFanout    = 16                   // parts a differing range is split into
	verifyLeafRows  = 256                  // rows fetched and compared directly
	verifyChunkTime = 5 * time.Millisecond // what a range of the first pass should take
	verifyMinChunk  = 100
	verifyMaxChunk  = 1 << 20
)

// tableCmp compares one table between two databases.
type tableCmp struct {
	parents  []int64 // row counts of the ranges bisect is dividing, outermost first
	table    verifyTable
	a, b     *plainDB
	inGo     bool // hash rows in Go, in canonical values (engines differ)
	progress func(Progress)

	def   *rows.Def       // the table as the reference defines it
	cols  []string        // column names, in the reference's order
	pk    []int           // def.pk: positions of the key columns in cols, in key order
	types []engine.Column // def.t.Columns: the columns in logical types
	sa    *verifySide
	sb    *verifySide
	diffs []RowDiff
	rows  int64 // reference rows checked (first pass)
	start time.Time
	last  time.Time
}

// verifySide is one database's part of a comparison: a read transaction
// and the statements of the comparison, prepared once per text.
type verifySide struct {
	p     *plainDB
	tx    *sql.Tx
	cmp   *tableCmp
	stmts map[string]*sql.Stmt
}

// keyRange is the keys k with lo < k <= hi; a nil bound is open. Bounds
// are in the comparison's values: as stored when the engines match,
// canonical otherwise.
type keyRange struct{ lo, hi []any }

// newTableCmp prepares the comparison of table t between a and b.
func newTableCmp(t verifyTable, a, b *plainDB, opts Options) *tableCmp {
	c := &tableCmp{table: t, a: a, b: b, progress: opts.Progress}
	checksums := a.caps.Checksummer != nil
	c.inGo = opts.inGo || !checksums || a.eng.Name() != b.eng.Name()
	c.init()
	return c
}

func (c *tableCmp) run(ctx context.Context) ([]RowDiff, int64, int64, error) {
	var err error
	if c.sa, err = c.begin(ctx, c.a); err != nil {
		return nil, 0, 0, err
	}
	defer c.sa.close()
	if c.sb, err = c.begin(ctx, c.b); err != nil {
		return nil, 0, 0, err
	}
	defer c.sb.close()

	c.start = time.Now()
	c.last = c.start // the first report comes after 100 ms, with a rate worth showing
	na, nb, err := c.firstPass(ctx)
	if err != nil {
		return nil, 0, 0, err
	}
	c.report(-1, true)
	c.sa.close()
	c.sb.close()
	diffs, err := c.recheck(ctx)
	return diffs, na, nb, err
}

// init reads the columns and key of the table from the reference.
func (c *tableCmp) init() {
	c.def = rows.Define(c.table.ref)
	c.types, c.pk = c.def.T.Columns, c.def.PK
	for _, col := range c.types {
		c.cols = append(c.cols, col.Name)
	}
}

func (c *tableCmp) begin(ctx context.Context, p *plainDB) (*verifySide, error) {
	tx, err := p.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("begin on %s: %s", p.name, p.eng.Redact(err.Error()))
	}
	return &verifySide{p: p, tx: tx, cmp: c, stmts: map[string]*sql.Stmt{}}, nil
}

func (s *verifySide) close() {
	if s.tx != nil {
		s.closeStmts()
		s.tx.Rollback()
		s.tx = nil
	}
}

func (s *verifySide) closeStmts() {
	for text, st := range s.stmts {
		st.Close()
		delete(s.stmts, text)
	}
}

// report calls the progress callback, at most every 100 ms.
func (c *tableCmp) report(fraction float64, done bool) {
	if c.progress == nil {
		return
	}
	now := time.Now()
	if !done && now.Sub(c.last) < 100*time.Millisecond {
		return
	}
	c.last = now
	if done {
		fraction = 1
	}
	c.progress(Progress{Table: c.table.name, Reference: c.a.name, Datasource: c.b.name,
		Rows: c.rows, Fraction: fraction, Elapsed: now.Sub(c.start), Done: done})
}

// onBoth runs f on the reference and on the other side concurrently and
// returns both results.
func onBoth[T any](c *tableCmp, f func(s *verifySide) (T, error)) (a, b T, err error) {
	var wg sync.WaitGroup
	var errB error
	wg.Go(func() { b, errB = f(c.sb) })
	a, errA := f(c.sa)
	wg.Wait()
	return a, b, errors.Join(errA, errB)
}

// sum is a range's row count and checksum on one side.
type sum struct {
	n   int64
	sum uint64
}

// check compares range r on both sides; it reports the counts and
// bisects the range when they or the checksums differ.
func (c *tableCmp) check(ctx context.Context, r keyRange) (na, nb int64, err error) {
	sa, sb, err := onBoth(c, func(s *verifySide) (sum, error) { return s.checksum(ctx, r) })
	if err != nil {
		return 0, 0, err
	}
	if sa != sb {
		if err := c.bisect(ctx, r, sa.n, sb.n); err != nil {
			return 0, 0, err
		}
	}
	return sa.n, sb.n, nil
}

// firstPass walks the whole table in ranges sized to take about
// verifyChunkTime each, and returns the row counts.
func (c *tableCmp) firstPass(ctx context.Context) (int64, int64, error) {
	chunk := int64(1000)
	adapt := func(took time.Duration, rows int64) {
		if rows == 0 {
			return
		}
		perRow := took / time.Duration(rows)
		if perRow <= 0 {
			perRow = 1
		}
		want := int64(verifyChunkTime / perRow)
		want = max(min(want, chunk*4), chunk/2)
		chunk = max(min(want, verifyMaxChunk), verifyMinChunk)
	}
	var na, nb int64
	if lo, hi, ok, err := c.intBounds(ctx); err != nil {
		return 0, 0, err
	} else if ok {
		// A single integer key: ranges by value, sized by the keys' density.
		width := chunk
		var bound []any // the range's lower bound (open at first)
		next := lo      // the first key the next range must hold
		for {
			var r keyRange
			r.lo = bound
			last := next + width - 1
			if next > hi || last >= hi || last < next { // past the end, or overflow
				r.hi = nil
			} else {
				r.hi = []any{last}
			}
			t := time.Now()
			a, b, err := c.check(ctx, r)
			if err != nil {
				return 0, 0, err
			}
			na, nb, c.rows = na+a, nb+b, c.rows+a
			if r.hi == nil {
				return na, nb, nil
			}
			c.report((float64(last)-float64(lo)+1)/(float64(hi)-float64(lo)+1), false)
			rows := max(a, b)
			bound = r.hi
			if rows == 0 {
				// A gap: jump to the next key either side holds.
				n, ok, err := c.nextInt(ctx, last)
				if err != nil {
					return 0, 0, err
				}
				if !ok {
					next = hi + 1 // only the open range is left
				} else {
					next = n
				}
				continue
			}
			// Keys per row seen, times the rows a range should hold; at
			// most 16 times wider at a step, where keys thin out.
			adapt(time.Since(t), rows)
			width = max(1, min(width*16, int64(min(float64(width)*float64(chunk)/float64(rows), 1<<60))))
			next = last + 1
		}
	}
	// Any key: ranges of chunk keys of the reference.
	var lo []any
	for {
		hi, err := c.sa.nthKey(ctx, lo, chunk)
		if err != nil {
			return 0, 0, err
		}
		t := time.Now()
		a, b, err := c.check(ctx, keyRange{lo, hi})
		if err != nil {
			return 0, 0, err
		}
		na, nb, c.rows = na+a, nb+b, c.rows+a
		if hi == nil {
			return na, nb, nil
		}
		c.report(-1, false)
		adapt(time.Since(t), max(a, b))
		lo = hi
	}
}

// bisect finds the rows that differ in range r, which holds na rows on the
// reference and nb on the other side.
func (c *tableCmp) bisect(ctx context.Context, r keyRange, na, nb int64) error {
	n := max(na, nb)
	// Each level divides a range by verifyFanout. A part that holds more
	// than half its range's rows means the two sides do not split ranges
	// alike (keys ordered by different collations): compare its rows
	// whole rather than divide without end.
	if n <= verifyLeafRows || (len(c.parents) > 0 && 2*n > c.parents[len(c.parents)-1]) {
		return c.compareRows(ctx, r)
	}
	c.parents = append(c.parents, n)
	defer func() { c.parents = c.parents[:len(c.parents)-1] }()
	s := c.sa
	if nb > na {
		s = c.sb
	}
	step := (n + verifyFanout - 1) / verifyFanout
	keys, err := s.splitKeys(ctx, r, step)
	if err != nil {
		return err
	}
	if k := len(keys); k > 0 && r.hi != nil && c.sameKey(keys[k-1], r.hi) {
		keys = keys[:k-1] // the last quantile is the range's own end
	}
	lo := r.lo
	for _, k := range append(keys, r.hi) {
		if _, _, err := c.check(ctx, keyRange{lo, k}); err != nil {
			return err
		}
		lo = k
	}
	return nil
}

// compareRows fetches the rows of r from both sides and records how they
// differ.
func (c *tableCmp) compareRows(ctx context.Context, r keyRange) error {
	ra, rb, err := onBoth(c, func(s *verifySide) ([][]any, error) { return s.rows(ctx, r) })
	if err != nil {
		return err
	}
	c.diffs = append(c.diffs, c.diffRows(ra, rb)...)
	return nil
}

// diffRows compares two sets of rows by key.
func (c *tableCmp) diffRows(ra, rb [][]any) []RowDiff {
	byKey := make(map[string][]any, len(rb))
	for _, row := range rb {
		byKey[c.keyString(row)] = row
	}
	var out []RowDiff
	for _, row := range ra {
		k := c.keyString(row)
		other, ok := byKey[k]
		if !ok {
			out = append(out, RowDiff{Datasource: c.b.name, Kind: DiffMissing, Key: c.key(row)})
			continue
		}
		delete(byKey, k)
		if cols := c.changedColumns(row, other); len(cols) > 0 {
			out = append(out, RowDiff{Datasource: c.b.name, Kind: DiffChanged, Key: c.key(row), Columns: cols})
		}
	}
	for _, row := range rb {
		if _, ok := byKey[c.keyString(row)]; ok {
			out = append(out, RowDiff{Datasource: c.b.name, Kind: DiffExtra, Key: c.key(row)})
		}
	}
	return out
}

func (c *tableCmp) changedColumns(a, b []any) []string {
	var cols []string
	for i := range a {
		if !value.Equal(a[i], b[i]) {
			cols = append(cols, c.cols[i])
		}
	}
	return cols
}

// key returns the key of row.
func (c *tableCmp) key(row []any) Key {
	k := Key{Columns: make([]string, len(c.pk)), Values: make([]any, len(c.pk))}
	for i, p := range c.pk {
		k.Columns[i] = c.cols[p]
		k.Values[i] = row[p]
	}
	return k
}

// keyString identifies row's key, type included, for maps.
func (c *tableCmp) keyString(row []any) string {
	var b strings.Builder
	for _, p := range c.pk {
		fmt.Fprintf(&b, "%T:%#v;", row[p], row[p])
	}
	return b.String()
}

func (c *tableCmp) sameKey(a, b []any) bool {
	for i := range a {
		if !value.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// recheck reads every differing row again from both databases, outside
// the snapshots, and keeps those that still differ.
//
// On databases tandem writes, a row that differs may be a write in
// flight: committed on one database, not yet on the other. Its intent
// record ([records.Pending]) says so: it stays on every database the write
// reached until the write has committed everywhere. Such rows are read
// again, a little later each time (10, 20, 40 ms… up to recheckWait in
// all), until their record is gone; they are reported only if they still
// differ then. Rows without a record are reported at once, so verifying
// databases that simply differ costs no waiting.
func (c *tableCmp) recheck(ctx context.Context) ([]RowDiff, error) {
	sa := &verifySide{p: c.a, cmp: c, stmts: map[string]*sql.Stmt{}}
	sb := &verifySide{p: c.b, cmp: c, stmts: map[string]*sql.Stmt{}}
	defer sa.closeStmts()
	defer sb.closeStmts()
	out := []RowDiff{}
	pending := c.diffs
	deadline := time.Now().Add(recheckWait)
	for pause := 10 * time.Millisecond; len(pending) > 0; pause *= 2 {
		var still []RowDiff
		for _, d := range pending {
			var ra, rb [][]any
			for _, s := range []*verifySide{sa, sb} {
				row, err := s.rowByKey(ctx, d.Key.Values)
				if err != nil {
					return nil, err
				}
				if row != nil && s == sa {
					ra = append(ra, row)
				} else if row != nil {
					rb = append(rb, row)
				}
			}
			still = append(still, c.diffRows(ra, rb)...)
		}
		pending = pending[:0]
		for _, d := range still {
			flying := false
			if time.Now().Before(deadline) {
				var err error
				if flying, err = c.inFlight(ctx, []*verifySide{sa, sb}, d.Key.Values); err != nil {
					return nil, err
				}
			}
			if flying {
				pending = append(pending, d)
			} else {
				out = append(out, d)
			}
		}
		if len(pending) > 0 {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(min(pause, time.Until(deadline))):
			}
		}
	}
	sortDiffs(out)
	return out, nil
}

// recheckWait bounds how long recheck waits for writes in flight.
const recheckWait = 2 * time.Second

// inFlight reports whether either database holds an intent record of a
// write to key that has not yet committed everywhere. Databases without
// tandem's tables hold none.
func (c *tableCmp) inFlight(ctx context.Context, sides []*verifySide, key []any) (bool, error) {
	canonical := make([]any, len(key))
	for i, p := range c.pk {
		v := key[i]
		if !c.inGo {
			var err error
			if v, err = c.a.eng.Scan(&c.types[p], v); err != nil {
				return false, nil // not a key tandem could have written
			}
		}
		canonical[i] = v
	}
	k := value.EncodeKey(canonical)
	for _, s := range sides {
		rows, err := s.query(ctx, records.For(s.p.eng).InFlightSQL(), []any{c.table.name, k})
		if err != nil {
			continue // no such table: tandem does not write this database
		}
		found := rows.Next()
		err = rows.Close()
		if found {
			return true, nil
		}
		if err != nil {
			return false, s.fail(err)
		}
	}
	return false, nil
}

// sortDiffs orders differences by key: numbers before text before blobs,
// as SQL orders them.
func sortDiffs(diffs []RowDiff) {
	sort.SliceStable(diffs, func(i, j int) bool {
		a, b := diffs[i].Key.Values, diffs[j].Key.Values
		for k := range a {
			if c := value.SQLOrder(a[k], b[k]); c != 0 {
				return c < 0
			}
		}
		return false
	})
}

// intBounds returns the smallest and largest key of a table whose key is
// a single integer column, over both sides; ok is false for other keys
// (and for an integer column that holds other values, which SQLite
// allows).
func (c *tableCmp) intBounds(ctx context.Context) (lo, hi int64, ok bool, err error) {
	if len(c.pk) != 1 || c.types[c.pk[0]].Type != engine.Integer {
		return 0, 0, false, nil
	}
	ba, bb, err := onBoth(c, func(s *verifySide) ([2]any, error) {
		// Two queries: engines answer a lone min() or max() of an
		// indexed column from the index, both together by a full scan.
		var b [2]any
		k := s.p.eng.Quote(c.cols[c.pk[0]])
		for j, f := range []string{"min", "max"} {
			q := fmt.Sprintf("SELECT %s(%s) FROM %s", f, k, s.p.eng.Quote(c.table.name))
			if err := s.tx.QueryRowContext(ctx, q).Scan(&b[j]); err != nil {
				return b, s.fail(err)
			}
		}
		return b, nil
	})
	if err != nil {
		return 0, 0, false, err
	}
	first := true
	for _, b := range [][2]any{ba, bb} {
		if b[0] == nil && b[1] == nil {
			continue // an empty side
		}
		mn, ok1 := b[0].(int64)
		mx, ok2 := b[1].(int64)
		if !ok1 || !ok2 {
			return 0, 0, false, nil
		}
		if first || mn < lo {
			lo = mn
		}
		if first || mx > hi {
			hi = mx
		}
		first = false
	}
	if first {
		return 0, 0, false, nil // both empty: one open range does
	}
	return lo, hi, true, nil
}

// nextInt returns the smallest integer key above after on either side.
func (c *tableCmp) nextInt(ctx context.Context, after int64) (int64, bool, error) {
	ga, gb, err := onBoth(c, func(s *verifySide) (any, error) {
		var got any
		k := s.p.eng.Quote(c.cols[c.pk[0]])
		q := fmt.Sprintf("SELECT min(%s) FROM %s WHERE %s > %s", k, s.p.eng.Quote(c.table.name), k, s.p.eng.Placeholder(1))
		err := s.tx.QueryRowContext(ctx, q, s.bind(c.pk[0], after)).Scan(&got)
		return got, s.fail(err)
	})
	if err != nil {
		return 0, false, err
	}
	var n int64
	ok := false
	for _, g := range []any{ga, gb} {
		if v, isInt := g.(int64); isInt && (!ok || v < n) {
			n, ok = v, true
		}
	}
	return n, ok, nil
}

// bind converts a value of the comparison to the argument side s takes
// for column col.
func (s *verifySide) bind(col int, v any) any {
	if !s.cmp.inGo {
		return v
	}
	out, err := s.p.eng.Value(&s.cmp.types[col], v)
	if err != nil {
		return v
	}
	return out
}

// where renders the condition of r, appending its arguments.
func (s *verifySide) where(r keyRange, args *[]any) string {
	c := s.cmp
	e := s.p.eng
	cols := make([]string, len(c.pk))
	for i, p := range c.pk {
		cols[i] = e.Quote(c.cols[p])
	}
	tuple := func(bound []any) string {
		marks := make([]string, len(bound))
		for i, v := range bound {
			*args = append(*args, s.bind(c.pk[i], v))
			marks[i] = e.Placeholder(len(*args))
		}
		if len(marks) == 1 {
			return marks[0]
		}
		return "(" + strings.Join(marks, ", ") + ")"
	}
	key := cols[0]
	if len(cols) > 1 {
		key = "(" + strings.Join(cols, ", ") + ")"
	}
	var conds []string
	if r.lo != nil {
		conds = append(conds, key+" > "+tuple(r.lo))
	}
	if r.hi != nil {
		conds = append(conds, key+" <= "+tuple(r.hi))
	}
	if len(conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(conds, " AND ")
}

// query runs a statement of the comparison, prepared once per text.
func (s *verifySide) query(ctx context.Context, text string, args []any) (*sql.Rows, error) {
	st, ok := s.stmts[text]
	if !ok {
		var err error
		if s.tx != nil {
			st, err = s.tx.PrepareContext(ctx, text)
		} else { // recheck and repair: outside the snapshot
			st, err = s.p.db.PrepareContext(ctx, text)
		}
		if err != nil {
			return nil, s.fail(err)
		}
		s.stmts[text] = st
	}
	rows, err := st.QueryContext(ctx, args...)
	return rows, s.fail(err)
}

func (s *verifySide) fail(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("on %s: %s", s.p.name, s.p.eng.Redact(err.Error()))
}

func (s *verifySide) keyList() string {
	c := s.cmp
	cols := make([]string, len(c.pk))
	for i, p := range c.pk {
		cols[i] = s.p.eng.Quote(c.cols[p])
	}
	return strings.Join(cols, ", ")
}

// selectList is the columns as fetched: as stored, or (across engines) as
// the driver returns them for Scan.
func (s *verifySide) selectList(idx []int) string {
	cs := s.p.caps.Checksummer
	out := make([]string, len(idx))
	for i, p := range idx {
		q := s.p.eng.Quote(s.cmp.cols[p])
		if cs != nil && !s.cmp.inGo {
			q = cs.Stored(q)
		}
		out[i] = q
	}
	return strings.Join(out, ", ")
}

func (s *verifySide) all() []int {
	idx := make([]int, len(s.cmp.cols))
	for i := range idx {
		idx[i] = i
	}
	return idx
}

// checksum returns the count and checksum of range r on this side.
func (s *verifySide) checksum(ctx context.Context, r keyRange) (sum, error) {
	var args []any
	where := s.where(r, &args)
	table := s.p.eng.Quote(s.cmp.table.name)
	if !s.cmp.inGo {
		cols := make([]string, len(s.cmp.cols))
		for i, name := range s.cmp.cols {
			cols[i] = s.p.eng.Quote(name)
		}
		rows, err := s.query(ctx, "SELECT count(*), "+s.p.caps.Checksummer.Checksum(cols)+" FROM "+table+where, args)
		if err != nil {
			return sum{}, err
		}
		defer rows.Close()
		var out sum
		var total sql.NullInt64
		if rows.Next() {
			if err := rows.Scan(&out.n, &total); err != nil {
				return sum{}, s.fail(err)
			}
		}
		out.sum = uint64(total.Int64)
		return out, s.fail(rows.Err())
	}
	rows, err := s.fetch(ctx, "SELECT "+s.selectList(s.all())+" FROM "+table+where, args)
	if err != nil {
		return sum{}, err
	}
	var out sum
	for _, row := range rows {
		out.n++
		out.sum += value.Hash(row)
	}
	return out, nil
}

// fetch runs a query and returns its rows in the comparison's values.
func (s *verifySide) fetch(ctx context.Context, text string, args []any, idx ...int) ([][]any, error) {
	rows, err := s.query(ctx, text, args)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	if idx == nil {
		idx = s.all()
	}
	var out [][]any
	for rows.Next() {
		raw := make([]any, len(idx))
		ptrs := make([]any, len(idx))
		for i := range raw {
			ptrs[i] = &raw[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, s.fail(err)
		}
		if s.cmp.inGo {
			for i, p := range idx {
				v, err := s.p.eng.Scan(&s.cmp.types[p], raw[i])
				if err != nil {
					return nil, fmt.Errorf("on %s: %w", s.p.name, err)
				}
				raw[i] = v
			}
		}
		out = append(out, raw)
	}
	return out, s.fail(rows.Err())
}

// rows fetches the rows of r, in key order.
func (s *verifySide) rows(ctx context.Context, r keyRange) ([][]any, error) {
	var args []any
	where := s.where(r, &args)
	return s.fetch(ctx, "SELECT "+s.selectList(s.all())+" FROM "+s.p.eng.Quote(s.cmp.table.name)+where+" ORDER BY "+s.keyList(), args)
}

// rowByKey fetches one row; nil when there is none.
func (s *verifySide) rowByKey(ctx context.Context, key []any) ([]any, error) {
	c := s.cmp
	conds := make([]string, len(c.pk))
	args := make([]any, len(c.pk))
	for i, p := range c.pk {
		args[i] = s.bind(p, key[i])
		conds[i] = s.p.eng.Quote(c.cols[p]) + " = " + s.p.eng.Placeholder(i+1)
	}
	rows, err := s.fetch(ctx, "SELECT "+s.selectList(s.all())+" FROM "+s.p.eng.Quote(c.table.name)+" WHERE "+strings.Join(conds, " AND "), args)
	if err != nil || len(rows) == 0 {
		return nil, err
	}
	return rows[0], nil
}

// keysOnly turns fetched key rows into bounds.
func (s *verifySide) keys(ctx context.Context, text string, args []any) ([][]any, error) {
	return s.fetch(ctx, text, args, s.cmp.pk...)
}

// nthKey returns the n-th key after lo, in key order; nil when there are
// fewer.
func (s *verifySide) nthKey(ctx context.Context, lo []any, n int64) ([]any, error) {
	var args []any
	where := s.where(keyRange{lo: lo}, &args)
	text := "SELECT " + s.selectList(s.cmp.pk) + " FROM " + s.p.eng.Quote(s.cmp.table.name) + where +
		" ORDER BY " + s.keyList() + s.p.eng.LimitClause(1, int(n-1))
	keys, err := s.keys(ctx, text, args)
	if err != nil || len(keys) == 0 {
		return nil, err
	}
	return keys[0], nil
}

// splitKeys returns every step-th key of r, in key order: the bounds of
// r's parts.
func (s *verifySide) splitKeys(ctx context.Context, r keyRange, step int64) ([][]any, error) {
	var args []any
	where := s.where(r, &args)
	list := s.keyList()
	var outer []string
	for _, p := range s.cmp.pk {
		outer = append(outer, s.p.eng.Quote(s.cmp.cols[p]))
	}
	cs := s.p.caps.Checksummer
	if cs != nil && !s.cmp.inGo {
		for i := range outer {
			outer[i] = cs.Stored(outer[i])
		}
	}
	text := fmt.Sprintf("SELECT %s FROM (SELECT %s, row_number() OVER (ORDER BY %s) AS tandem_rn FROM %s%s) tandem_s WHERE tandem_rn %% %d = 0 ORDER BY tandem_rn",
		strings.Join(outer, ", "), list, list, s.p.eng.Quote(s.cmp.table.name), where, step)
	return s.keys(ctx, text, args)
}
