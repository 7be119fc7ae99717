// Package verify proves that the datasources of a tandem config hold
// identical rows, or names every row that differs (Compare), and makes one
// datasource hold exactly the rows of another (Repair). It opens the
// databases itself, read-only for Compare, and needs no open Cluster: the
// tandem command's verify and repair, and the demo's dashboard, use it
// alone.
package verify

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/tandemdb/tandem"
	"github.com/tandemdb/tandem/engine"
	"github.com/tandemdb/tandem/internal/value"
)

// Compare proves that datasources hold identical rows, or names every row
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
// returns an error naming it (leave it out with Options.Tables).
func Compare(ctx context.Context, cfg *tandem.Config, opts Options) (*Report, error) {
	dss, err := openPlain(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer closePlain(dss)
	return compareOpen(ctx, dss, opts)
}

// Options choose what Compare compares.
type Options struct {
	// Tables limits the comparison to these tables. Empty: every table
	// of every datasource (tandem's own bookkeeping tables excluded).
	Tables []string
	// Between limits the comparison to two datasources, the first of
	// which is the reference. Empty: the configured primary (else the
	// first datasource) against each of the others.
	Between []string
	// Progress, when set, is called as rows are checked, at most every
	// 100 ms per table and datasource pair, and once at the end of each.
	Progress func(Progress)
	// KeyedOnly leaves out the tables without a primary key (they are
	// named in Report.Keyless) where they would be an error.
	KeyedOnly bool

	// inGo (tests) hashes rows in Go even when the engines match, as
	// verify does across engines.
	inGo bool
}

// Progress says how far a comparison has got.
type Progress struct {
	Table      string
	Reference  string  // the reference datasource
	Datasource string  // the datasource compared with it
	Rows       int64   // rows of the reference checked so far
	Fraction   float64 // of the table checked, by key; -1 when unknown
	Elapsed    time.Duration
	Done       bool
}

// Report is what Compare found.
type Report struct {
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
	// Keyless names the tables left out for having no primary key
	// (Options.KeyedOnly).
	Keyless []string `json:"keyless,omitempty"`
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
		v, err := json.Marshal(value.JSON(k.Values[i]))
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
		parts[i] = c + "=" + value.SQLLiteral(k.Values[i])
	}
	if len(parts) == 1 {
		return parts[0]
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

// primaryIndex is the index of cfg's configured primary datasource.
func primaryIndex(cfg *tandem.Config) int {
	for i, ds := range cfg.Datasources {
		if ds.Name == cfg.Primary {
			return i
		}
	}
	return 0
}

// plainDB is a datasource opened for verify or repair.
type plainDB struct {
	name  string
	eng   engine.Engine
	caps  engine.Capabilities
	dsn   string
	db    *sql.DB
	alias string // the name of an earlier datasource that is the same database
}

// openPlain opens every datasource of cfg without changing anything in it.
func openPlain(ctx context.Context, cfg *tandem.Config) ([]*plainDB, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var out []*plainDB
	for i, ds := range cfg.Datasources {
		p := &plainDB{name: ds.Name, eng: ds.Engine(), caps: engine.CapabilitiesOf(ds.Engine()), dsn: ds.ResolvedDSN()}
		for _, q := range out {
			if engine.SameFile(q.eng, q.dsn, p.eng, p.dsn) {
				p.alias = q.name
				break
			}
		}
		if p.alias == "" {
			db, err := p.eng.OpenPlain(ctx, p.dsn)
			if err != nil {
				closePlain(out)
				return nil, fmt.Errorf("%w: datasource %s (datasources[%d]): %s", tandem.ErrNodeDown, ds.Name, i, p.eng.Redact(err.Error()))
			}
			p.db = db
		}
		out = append(out, p)
	}
	// The reference comes first: the configured primary, then config order.
	if pi := primaryIndex(cfg); pi > 0 {
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
		return nil, nil, fmt.Errorf("%w: compare two different datasources, not %q", tandem.ErrConfig, between)
	}
	var pair [2]*plainDB
	for i, name := range between {
		if pair[i] = byName[name]; pair[i] == nil {
			names := make([]string, len(dss))
			for j, p := range dss {
				names[j] = p.name
			}
			return nil, nil, fmt.Errorf("%w: no datasource called %q (have: %s)", tandem.ErrConfig, name, strings.Join(names, ", "))
		}
	}
	return pair[0], pair[1:], nil
}

func compareOpen(ctx context.Context, dss []*plainDB, opts Options) (*Report, error) {
	ref, others, err := pickPair(dss, opts.Between)
	if err != nil {
		return nil, err
	}
	rep := &Report{Identical: true, Reference: ref.name}
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
	var keyless *[]string
	if opts.KeyedOnly {
		keyless = &rep.Keyless
	}
	tables, err := verifyTables(ctx, ref, pairs, opts.Tables, keyless)
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

// ErrNoSuchTable: a table named in Options.Tables is on no datasource.
var ErrNoSuchTable = errors.New("no such table on any datasource")

// verifyTables reads the structure of every database and picks the
// tables to compare. A table on one side only, or with different
// columns or keys, is an error naming it: rows cannot be compared then.
// With keyless, a table without a primary key is named there and left
// out instead.
func verifyTables(ctx context.Context, ref *plainDB, others []*plainDB, only []string, keyless *[]string) ([]verifyTable, error) {
	read := func(p *plainDB) (map[string]engine.TableInfo, error) {
		infos, err := p.eng.Tables(ctx, p.db)
		if err != nil {
			return nil, fmt.Errorf("%w: read the tables of %s: %s", tandem.ErrNodeDown, p.name, p.eng.Redact(err.Error()))
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
	names := slices.Compact(slices.Sorted(slices.Values(only)))
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
	// A table asked for that no database has is a wrong name, not a
	// difference of structure.
	var unknown []string
	for _, name := range only {
		_, held := refTables[name]
		for _, m := range otherTables {
			_, ok := m[name]
			held = held || ok
		}
		if !held && !slices.Contains(unknown, name) {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) > 0 {
		return nil, fmt.Errorf("%w: %s (%s has: %s)", ErrNoSuchTable, strings.Join(unknown, ", "), ref.name, strings.Join(slices.Sorted(maps.Keys(refTables)), ", "))
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
			errs = append(errs, fmt.Errorf("table %s: on %s, not on %s", name, strings.Join(holders, ", "), ref.name))
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
		if !slices.ContainsFunc(t.ref.Columns, func(c engine.ColumnInfo) bool { return c.PK > 0 }) && keyless != nil {
			*keyless = append(*keyless, name)
			bad = true
		} else if !slices.ContainsFunc(t.ref.Columns, func(c engine.ColumnInfo) bool { return c.PK > 0 }) {
			errs = append(errs, fmt.Errorf("table %s has no primary key: rows are compared by primary key (leave it out with --table)", name))
			bad = true
		}
		if !bad {
			out = append(out, t)
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: %w", tandem.ErrSchemaMismatch, errors.Join(errs...))
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
