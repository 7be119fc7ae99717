package tandem

import (
	"bytes"
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/tandemdb/tandem/engine"
)

// Verify proves that datasources hold identical rows, or names every row
// that differs. It works on any databases with primary keys, including
// ones tandem never wrote to, and reads only: nothing is created or
// changed.
//
// How: each table is compared in ranges of primary keys. For each range
// both databases, scanned concurrently, report a row count and an
// order-independent checksum, computed inside the database when both run
// the same engine (engine.Checksummer), so only two numbers cross the
// wire. Ranges grow or shrink so that each takes a few milliseconds. A
// range whose numbers differ is split in 16 at its keys' quantiles, and
// the parts that differ are split again, down to ranges of at most 256
// rows, whose rows alone are fetched and compared (the bisection of
// pt-table-checksum and data-diff). Each database is read in one
// transaction, a consistent snapshot. A row found different is read
// again from both databases at the end, and reported only if it still
// differs, so that a write in flight between two databases of a live
// cluster is not reported.
//
// Values compare by what the databases store, type included: the integer
// 1 differs from the real 1.0 and from the text '1', NULL from the empty
// string and from 'NULL'; only -0.0 and 0.0 are equal. Across engines
// (SQLite and PostgreSQL, say) rows are compared in tandem's canonical
// values (Engine.Scan), hashed in Go.
//
// A table without a primary key cannot be compared row by row: Verify
// returns an error naming it (leave it out with VerifyOptions.Tables).
func Verify(ctx context.Context, cfg *Config, opts VerifyOptions) (*VerifyReport, error) {
	dss, err := openPlain(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer closePlain(dss)
	return verifyOpen(ctx, dss, opts)
}

// VerifyOptions choose what Verify compares.
type VerifyOptions struct {
	// Tables limits the comparison to these tables. Empty: every table
	// of every datasource (tandem's own bookkeeping tables excluded).
	Tables []string
	// Between limits the comparison to two datasources, the first of
	// which is the reference. Empty: the configured primary (else the
	// first datasource) against each of the others.
	Between []string
	// Progress, when set, is called as rows are checked, at most every
	// 100 ms per table and datasource pair, and once at the end of each.
	Progress func(VerifyProgress)

	// inGo (tests) hashes rows in Go even when the engines match, as
	// verify does across engines.
	inGo bool
}

// VerifyProgress says how far a comparison has got.
type VerifyProgress struct {
	Table      string
	Reference  string  // the reference datasource
	Datasource string  // the datasource compared with it
	Rows       int64   // rows of the reference checked so far
	Fraction   float64 // of the table checked, by key; -1 when unknown
	Elapsed    time.Duration
	Done       bool
}

// VerifyReport is what Verify found.
type VerifyReport struct {
	// Identical is true when every table holds the same rows on every
	// datasource.
	Identical bool `json:"identical"`
	// Reference is the datasource the others were compared with.
	Reference string `json:"reference"`
	// Datasources are the ones compared with it.
	Datasources []string `json:"datasources"`
	// Aliases name datasources that are one database with another (two
	// paths to one file): they are not compared with themselves.
	Aliases map[string]string `json:"aliases,omitempty"`
	Tables  []TableReport     `json:"tables"`
}

// TableReport is one table's comparison.
type TableReport struct {
	Table string `json:"table"`
	// Rows is the table's row count on each datasource.
	Rows map[string]int64 `json:"rows"`
	// Differences lists every row that differs, by key.
	Differences []RowDiff `json:"differences"`
}

// The kinds of RowDiff.
const (
	DiffMissing = "missing" // on the reference, not on the datasource
	DiffExtra   = "extra"   // on the datasource only
	DiffChanged = "changed" // on both, with different values
)

// RowDiff is one row that differs between the reference and a datasource.
type RowDiff struct {
	Datasource string   `json:"datasource"`
	Kind       string   `json:"kind"`
	Key        Key      `json:"key"`
	Columns    []string `json:"columns,omitempty"` // changed: the columns that differ
}

// Key is a row's primary key: its columns, in key order, and their values
// (as the reference database stores them; blobs in JSON as base64).
type Key struct {
	Columns []string
	Values  []any
}

// MarshalJSON renders the key as an object of column names to values, in
// key order.
func (k Key) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, c := range k.Columns {
		if i > 0 {
			b.WriteByte(',')
		}
		name, _ := json.Marshal(c)
		b.Write(name)
		b.WriteByte(':')
		v, err := json.Marshal(jsonValue(k.Values[i]))
		if err != nil {
			return nil, err
		}
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// String renders the key for people: id=7, or (a=1, b='x').
func (k Key) String() string {
	parts := make([]string, len(k.Columns))
	for i, c := range k.Columns {
		parts[i] = c + "=" + sqlLiteral(k.Values[i])
	}
	if len(parts) == 1 {
		return parts[0]
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

// jsonValue makes v encodable: a non-finite float becomes its name.
func jsonValue(v any) any {
	if f, ok := v.(float64); ok && (math.IsNaN(f) || math.IsInf(f, 0)) {
		return fmt.Sprint(f)
	}
	if t, ok := v.(time.Time); ok {
		return t.UTC().Format(time.RFC3339Nano)
	}
	return v
}

// sqlLiteral renders a value the way SQL would spell it.
func sqlLiteral(v any) string {
	switch x := v.(type) {
	case nil:
		return "NULL"
	case string:
		return "'" + strings.ReplaceAll(x, "'", "''") + "'"
	case []byte:
		return fmt.Sprintf("X'%X'", x)
	case time.Time:
		return "'" + x.UTC().Format(time.RFC3339Nano) + "'"
	}
	return fmt.Sprint(v)
}

// plainDB is a datasource opened for verify or repair.
type plainDB struct {
	name  string
	eng   engine.Engine
	dsn   string
	db    *sql.DB
	alias string // the name of an earlier datasource that is the same database
}

// openPlain opens every datasource of cfg without changing anything in it.
func openPlain(ctx context.Context, cfg *Config) ([]*plainDB, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var out []*plainDB
	for i, ds := range cfg.Datasources {
		p := &plainDB{name: ds.Name, eng: ds.eng, dsn: ds.dsn}
		for _, q := range out {
			if fe, ok := p.eng.(engine.FileEngine); ok && q.eng == p.eng && fe.SameFile(q.dsn, p.dsn) {
				p.alias = q.name
				break
			}
		}
		if p.alias == "" {
			db, err := p.eng.OpenPlain(ctx, p.dsn)
			if err != nil {
				closePlain(out)
				return nil, fmt.Errorf("%w: datasource %s (datasources[%d]): %s", ErrNodeDown, ds.Name, i, p.eng.Redact(err.Error()))
			}
			p.db = db
		}
		out = append(out, p)
	}
	// The reference comes first: the configured primary, then config order.
	if pi := cfg.primaryIndex(); pi > 0 {
		p := out[pi]
		out = append([]*plainDB{p}, slices.Delete(out, pi, pi+1)...)
	}
	return out, nil
}

func closePlain(dss []*plainDB) {
	for _, p := range dss {
		if p.db != nil {
			p.db.Close()
		}
	}
}

// pickPair returns the reference and the datasources to compare with it.
func pickPair(dss []*plainDB, between []string) (*plainDB, []*plainDB, error) {
	byName := map[string]*plainDB{}
	for _, p := range dss {
		byName[p.name] = p
	}
	if len(between) == 0 {
		return dss[0], dss[1:], nil
	}
	if len(between) != 2 || between[0] == between[1] {
		return nil, nil, fmt.Errorf("%w: compare two different datasources, not %q", ErrConfig, between)
	}
	var pair [2]*plainDB
	for i, name := range between {
		if pair[i] = byName[name]; pair[i] == nil {
			names := make([]string, len(dss))
			for j, p := range dss {
				names[j] = p.name
			}
			return nil, nil, fmt.Errorf("%w: no datasource called %q (have: %s)", ErrConfig, name, strings.Join(names, ", "))
		}
	}
	return pair[0], pair[1:], nil
}

func verifyOpen(ctx context.Context, dss []*plainDB, opts VerifyOptions) (*VerifyReport, error) {
	ref, others, err := pickPair(dss, opts.Between)
	if err != nil {
		return nil, err
	}
	rep := &VerifyReport{Identical: true, Reference: ref.name}
	ref = aliasTarget(dss, ref)
	var pairs []*plainDB
	for _, o := range others {
		rep.Datasources = append(rep.Datasources, o.name)
		if t := aliasTarget(dss, o); t != ref {
			pairs = append(pairs, t)
			continue
		}
		if rep.Aliases == nil {
			rep.Aliases = map[string]string{}
		}
		rep.Aliases[o.name] = rep.Reference // one database: nothing to compare
	}
	tables, err := verifyTables(ctx, ref, pairs, opts.Tables)
	if err != nil {
		return nil, err
	}
	for _, t := range tables {
		tr := TableReport{Table: t.name, Rows: map[string]int64{}, Differences: []RowDiff{}}
		for _, o := range pairs {
			cmp := newTableCmp(t, ref, o, opts)
			diffs, na, nb, err := cmp.run(ctx)
			if err != nil {
				return nil, fmt.Errorf("verify table %s between %s and %s: %w", t.name, ref.name, o.name, err)
			}
			tr.Rows[ref.name] = na
			tr.Rows[o.name] = nb
			tr.Differences = append(tr.Differences, diffs...)
		}
		if len(tr.Differences) > 0 {
			rep.Identical = false
		}
		rep.Tables = append(rep.Tables, tr)
	}
	return rep, nil
}

// aliasTarget follows p's alias to the datasource that was opened.
func aliasTarget(dss []*plainDB, p *plainDB) *plainDB {
	if p.alias == "" {
		return p
	}
	for _, q := range dss {
		if q.name == p.alias {
			return q
		}
	}
	return p
}

// verifyTable is a table to compare: its structure on the reference and
// on each datasource compared with it.
type verifyTable struct {
	name   string
	ref    engine.TableInfo
	others []engine.TableInfo
}

// verifyTables reads the structure of every database and picks the
// tables to compare. A table on one side only, or with different
// columns or keys, is an error naming it: rows cannot be compared then.
func verifyTables(ctx context.Context, ref *plainDB, others []*plainDB, only []string) ([]verifyTable, error) {
	read := func(p *plainDB) (map[string]engine.TableInfo, error) {
		infos, err := p.eng.Tables(ctx, p.db)
		if err != nil {
			return nil, fmt.Errorf("%w: read the tables of %s: %s", ErrNodeDown, p.name, p.eng.Redact(err.Error()))
		}
		m := make(map[string]engine.TableInfo, len(infos))
		for _, t := range infos {
			m[t.Name] = t
		}
		return m, nil
	}
	refTables, err := read(ref)
	if err != nil {
		return nil, err
	}
	otherTables := make([]map[string]engine.TableInfo, len(others))
	for i, o := range others {
		if otherTables[i], err = read(o); err != nil {
			return nil, err
		}
	}
	names := only
	if len(names) == 0 {
		set := map[string]bool{}
		for n := range refTables {
			set[n] = true
		}
		for _, m := range otherTables {
			for n := range m {
				set[n] = true
			}
		}
		for n := range set {
			names = append(names, n)
		}
		sort.Strings(names)
	}
	var out []verifyTable
	var errs []error
	for _, name := range names {
		t := verifyTable{name: name}
		var ok bool
		if t.ref, ok = refTables[name]; !ok {
			holders := []string{}
			for i, m := range otherTables {
				if _, ok := m[name]; ok {
					holders = append(holders, others[i].name)
				}
			}
			if len(holders) == 0 {
				errs = append(errs, fmt.Errorf("table %s: no such table on %s", name, ref.name))
			} else {
				errs = append(errs, fmt.Errorf("table %s: on %s, not on %s", name, strings.Join(holders, ", "), ref.name))
			}
			continue
		}
		bad := false
		for i, m := range otherTables {
			o, ok := m[name]
			if !ok {
				errs = append(errs, fmt.Errorf("table %s: on %s, not on %s", name, ref.name, others[i].name))
				bad = true
				continue
			}
			if err := sameColumns(t.ref, o, ref, others[i]); err != nil {
				errs = append(errs, err)
				bad = true
				continue
			}
			t.others = append(t.others, o)
		}
		if !slices.ContainsFunc(t.ref.Columns, func(c engine.ColumnInfo) bool { return c.PK > 0 }) {
			errs = append(errs, fmt.Errorf("table %s has no primary key: rows are compared by primary key (leave it out with --table)", name))
			bad = true
		}
		if !bad {
			out = append(out, t)
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: %w", ErrSchemaMismatch, errors.Join(errs...))
	}
	return out, nil
}

// sameColumns checks that two databases define a table with the same
// columns (in any order) and the same primary key. Databases of one engine
// must declare the same types; across engines the logical types must
// match.
func sameColumns(a, b engine.TableInfo, pa, pb *plainDB) error {
	bcols := map[string]engine.ColumnInfo{}
	for _, c := range b.Columns {
		bcols[c.Name] = c
	}
	for _, ca := range a.Columns {
		cb, ok := bcols[ca.Name]
		if !ok {
			return fmt.Errorf("table %s: column %s is on %s, not on %s", a.Name, ca.Name, pa.name, pb.name)
		}
		delete(bcols, ca.Name)
		if ca.PK != cb.PK {
			return fmt.Errorf("table %s: column %s: primary key position %d on %s, %d on %s", a.Name, ca.Name, ca.PK, pa.name, cb.PK, pb.name)
		}
		sameType := ca.Logical == cb.Logical
		if pa.eng.Name() == pb.eng.Name() {
			sameType = ca.Type == cb.Type
		}
		if !sameType {
			return fmt.Errorf("table %s: column %s: %s on %s, %s on %s", a.Name, ca.Name, ca.Type, pa.name, cb.Type, pb.name)
		}
	}
	for name := range bcols {
		return fmt.Errorf("table %s: column %s is on %s, not on %s", a.Name, name, pb.name, pa.name)
	}
	return nil
}

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
	table    verifyTable
	a, b     *plainDB
	inGo     bool // hash rows in Go, in canonical values (engines differ)
	progress func(VerifyProgress)

	cols  []string // column names, in the reference's order
	pk    []int    // positions of the key columns in cols, in key order
	types []engine.Column
	sa    *verifySide
	sb    *verifySide
	diffs []RowDiff
	rows  int64 // reference rows checked (first pass)
	start time.Time
	last  time.Time
}

// verifySide is one database's part of a comparison: a read transaction
// and the statements of the comparison, by shape.
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
func newTableCmp(t verifyTable, a, b *plainDB, opts VerifyOptions) *tableCmp {
	c := &tableCmp{table: t, a: a, b: b, progress: opts.Progress}
	_, checksums := a.eng.(engine.Checksummer)
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
	for _, col := range c.table.ref.Columns {
		c.cols = append(c.cols, col.Name)
		c.types = append(c.types, engine.Column{Name: col.Name, Type: col.Logical})
	}
	type kc struct{ pos, col int }
	var keys []kc
	for i, col := range c.table.ref.Columns {
		if col.PK > 0 {
			keys = append(keys, kc{col.PK, i})
		}
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].pos < keys[j].pos })
	for _, k := range keys {
		c.pk = append(c.pk, k.col)
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
	c.progress(VerifyProgress{Table: c.table.name, Reference: c.a.name, Datasource: c.b.name,
		Rows: c.rows, Fraction: fraction, Elapsed: now.Sub(c.start), Done: done})
}

// both runs f on the two sides concurrently.
func (c *tableCmp) both(f func(s *verifySide) error) error {
	var wg sync.WaitGroup
	var errB error
	wg.Go(func() { errB = f(c.sb) })
	errA := f(c.sa)
	wg.Wait()
	return errors.Join(errA, errB)
}

// sum is a range's row count and checksum on one side.
type sum struct {
	n   int64
	sum uint64
}

// check compares range r on both sides; it reports the counts and
// bisects the range when they or the checksums differ.
func (c *tableCmp) check(ctx context.Context, r keyRange) (na, nb int64, err error) {
	var sa, sb sum
	if err := c.both(func(s *verifySide) error {
		got, err := s.checksum(ctx, r)
		if s == c.sa {
			sa = got
		} else {
			sb = got
		}
		return err
	}); err != nil {
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
			width = max(1, min(width*16, int64(float64(width)*float64(chunk)/float64(rows))))
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
	if max(na, nb) <= verifyLeafRows {
		return c.compareRows(ctx, r)
	}
	s, n := c.sa, na
	if nb > na {
		s, n = c.sb, nb
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
	var ra, rb [][]any
	if err := c.both(func(s *verifySide) error {
		rows, err := s.rows(ctx, r)
		if s == c.sa {
			ra = rows
		} else {
			rb = rows
		}
		return err
	}); err != nil {
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
		if !sameValue(a[i], b[i]) {
			cols = append(cols, c.cols[i])
		}
	}
	return cols
}

// sameValue compares two values as the databases store them (or in
// canonical form): same type and value; -0.0 equals 0.0.
func sameValue(a, b any) bool {
	switch x := a.(type) {
	case nil:
		return b == nil
	case []byte:
		y, ok := b.([]byte)
		return ok && bytes.Equal(x, y)
	case float64:
		y, ok := b.(float64)
		return ok && (x == y || (math.IsNaN(x) && math.IsNaN(y)))
	case time.Time:
		y, ok := b.(time.Time)
		return ok && x.Equal(y)
	}
	return a == b
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
		fmt.Fprintf(&b, "%T:%v\x00", row[p], row[p])
	}
	return b.String()
}

func (c *tableCmp) sameKey(a, b []any) bool {
	for i := range a {
		if !sameValue(a[i], b[i]) {
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
// record (pending.go) says so: it stays on every database the write
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
	k := keyOf(canonical)
	for _, s := range sides {
		e := s.p.eng
		q := fmt.Sprintf("SELECT 1 FROM %s WHERE tbl = %s AND pk = %s%s",
			e.Quote(pendingTable.Name), e.Placeholder(1), e.Placeholder(2), e.LimitClause(1, 0))
		rows, err := s.query(ctx, q, []any{c.table.name, k})
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
			if c := sqlOrder(a[k], b[k]); c != 0 {
				return c < 0
			}
		}
		return false
	})
}

func sqlOrder(a, b any) int {
	rank := func(v any) int {
		switch v.(type) {
		case nil:
			return 0
		case int64, float64, bool:
			return 1
		case string, time.Time:
			return 2
		}
		return 3
	}
	num := func(v any) float64 {
		switch x := v.(type) {
		case int64:
			return float64(x)
		case float64:
			return x
		case bool:
			if x {
				return 1
			}
		}
		return 0
	}
	ra, rb := rank(a), rank(b)
	if ra != rb {
		return ra - rb
	}
	switch ra {
	case 1:
		if x, ok := a.(int64); ok {
			if y, ok := b.(int64); ok {
				return cmp.Compare(x, y)
			}
		}
		return cmp.Compare(num(a), num(b))
	case 2:
		return strings.Compare(fmt.Sprint(jsonValue(a)), fmt.Sprint(jsonValue(b)))
	case 3:
		ab, _ := a.([]byte)
		bb, _ := b.([]byte)
		return bytes.Compare(ab, bb)
	}
	return 0
}

// intBounds returns the smallest and largest key of a table whose key is
// a single integer column, over both sides; ok is false for other keys
// (and for an integer column that holds other values, which SQLite
// allows).
func (c *tableCmp) intBounds(ctx context.Context) (lo, hi int64, ok bool, err error) {
	if len(c.pk) != 1 || c.types[c.pk[0]].Type != engine.Integer {
		return 0, 0, false, nil
	}
	var bounds [2][2]any
	if err := c.both(func(s *verifySide) error {
		i := 0
		if s == c.sb {
			i = 1
		}
		// Two queries: engines answer a lone min() or max() of an
		// indexed column from the index, both together by a full scan.
		k := s.p.eng.Quote(c.cols[c.pk[0]])
		for j, f := range []string{"min", "max"} {
			q := fmt.Sprintf("SELECT %s(%s) FROM %s", f, k, s.p.eng.Quote(c.table.name))
			if err := s.tx.QueryRowContext(ctx, q).Scan(&bounds[i][j]); err != nil {
				return s.fail(err)
			}
		}
		return nil
	}); err != nil {
		return 0, 0, false, err
	}
	first := true
	for _, b := range bounds {
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
	var got [2]any
	if err := c.both(func(s *verifySide) error {
		i := 0
		if s == c.sb {
			i = 1
		}
		k := s.p.eng.Quote(c.cols[c.pk[0]])
		return s.tx.QueryRowContext(ctx, fmt.Sprintf("SELECT min(%s) FROM %s WHERE %s > %s", k, s.p.eng.Quote(c.table.name), k, s.p.eng.Placeholder(1)),
			s.bind(c.pk[0], after)).Scan(&got[i])
	}); err != nil {
		return 0, false, err
	}
	var n int64
	ok := false
	for _, g := range got {
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
	cs, _ := s.p.eng.(engine.Checksummer)
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
		rows, err := s.query(ctx, "SELECT count(*), "+s.p.eng.(engine.Checksummer).Checksum(cols)+" FROM "+table+where, args)
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
		out.sum += hashCanonical(row)
	}
	return out, nil
}

// hashCanonical hashes a row of canonical values.
func hashCanonical(row []any) uint64 {
	h := engine.NewRowHash()
	for _, v := range row {
		switch x := v.(type) {
		case nil:
			h.Null()
		case int64:
			h.Int(x)
		case float64:
			h.Real(x)
		case string:
			h.Text([]byte(x))
		case []byte:
			h.Blob(x)
		case bool:
			h.Bool(x)
		case time.Time:
			h.TimeMicros(x.UnixMicro())
		default:
			h.Text([]byte(fmt.Sprint(x)))
		}
	}
	return h.Sum()
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
	cs, _ := s.p.eng.(engine.Checksummer)
	if cs != nil && !s.cmp.inGo {
		for i := range outer {
			outer[i] = cs.Stored(outer[i])
		}
	}
	text := fmt.Sprintf("SELECT %s FROM (SELECT %s, row_number() OVER (ORDER BY %s) AS tandem_rn FROM %s%s) tandem_s WHERE tandem_rn %% %d = 0 ORDER BY tandem_rn",
		strings.Join(outer, ", "), list, list, s.p.eng.Quote(s.cmp.table.name), where, step)
	return s.keys(ctx, text, args)
}
