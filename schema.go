package tandem

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/tandemdb/tandem/engine"
)

// Structure is the comparison of the datasources' table structures
// (columns, types, nullability, keys, defaults, indexes).
type Structure struct {
	// Match is true when every reachable database has the same structure
	// as the primary's.
	Match bool
	// Fingerprints maps each reachable datasource to a digest of its structure.
	Fingerprints map[string]string
	// Diffs names every difference by table and column, e.g.
	// "table book: column price: REAL on foo, TEXT on bar".
	Diffs []string
}

func (s Structure) err() error {
	return fmt.Errorf("%w: %s", ErrSchemaMismatch, strings.Join(s.Diffs, "; "))
}

// Structure returns the last comparison of the datasources' structures,
// made by Open and Migrate.
func (c *Cluster) Structure() Structure {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.structure
}

// checkStructure compares every reachable database with the primary's.
func (c *Cluster) checkStructure(ctx context.Context) error {
	st := Structure{Match: true, Fingerprints: map[string]string{}}
	type result struct {
		n      *Node
		tables []engine.TableInfo
	}
	var base *result
	var all []result
	for _, n := range c.nodes {
		if n.conn() == nil || n.problem() != nil {
			continue
		}
		tctx, cancel := context.WithTimeout(ctx, c.timeout)
		tables, err := n.eng.Tables(tctx, n.conn().Read)
		cancel()
		if err != nil {
			if !n.reachable() {
				continue // checked again when it returns
			}
			return fmt.Errorf("read structure of %s: %w", n.name, err)
		}
		if c.mixed {
			// Engines declare types differently: fingerprint what must
			// match across them.
			logical := make([]engine.TableInfo, len(tables))
			for i, t := range tables {
				logical[i] = logicalColumns(t)
			}
			st.Fingerprints[n.name] = fingerprint(logical)
		} else {
			st.Fingerprints[n.name] = fingerprint(tables)
		}
		all = append(all, result{n, tables})
		if n == c.primary.database() {
			base = &all[len(all)-1]
		}
	}
	if base == nil && len(all) > 0 {
		base = &all[0]
	}
	for _, r := range all {
		if r.n.database() == base.n || r.n.sameAs != nil {
			continue
		}
		st.Diffs = append(st.Diffs, diffTables(base.n.name, base.tables, r.n.name, r.tables, base.n.eng.Name() == r.n.eng.Name())...)
	}
	st.Match = len(st.Diffs) == 0
	c.mu.Lock()
	old := c.structure
	c.structure = st
	c.mu.Unlock()
	for name, fp := range st.Fingerprints {
		if prev, ok := old.Fingerprints[name]; ok && prev != fp {
			// A change of structure made around tandem (a table created
			// by hand): SQL writes read the tables, and whether each has
			// capture, again.
			c.sqlw.forget(nil)
			break
		}
	}
	return nil
}

// fingerprint digests a structure: equal structures, equal fingerprints.
func fingerprint(tables []engine.TableInfo) string {
	h := sha256.New()
	for _, t := range tables {
		fmt.Fprintf(h, "table %q\n", t.Name)
		for _, c := range t.Columns {
			fmt.Fprintf(h, "  column %q %s\n", c.Name, c)
		}
		for _, x := range t.Indexes {
			fmt.Fprintf(h, "  index %q %s\n", x.Name, x)
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// diffTables names every difference between a's and b's structures.
// Databases of one engine must declare the same types and defaults; across
// engines, the logical types, NOT NULL and the keys must match.
func diffTables(aName string, a []engine.TableInfo, bName string, b []engine.TableInfo, sameEngine bool) []string {
	var diffs []string
	bt := map[string]engine.TableInfo{}
	for _, t := range b {
		bt[t.Name] = t
	}
	at := map[string]bool{}
	for _, ta := range a {
		at[ta.Name] = true
		tb, ok := bt[ta.Name]
		if !ok {
			diffs = append(diffs, fmt.Sprintf("table %s: missing on %s", ta.Name, bName))
			continue
		}
		if !sameEngine {
			ta, tb = logicalColumns(ta), logicalColumns(tb)
		}
		diffs = append(diffs, diffColumns(ta, aName, tb, bName)...)
	}
	for _, tb := range b {
		if !at[tb.Name] {
			diffs = append(diffs, fmt.Sprintf("table %s: missing on %s", tb.Name, aName))
		}
	}
	return diffs
}

// logicalColumns restates t's columns in engine-neutral terms, for
// comparing the structures of two engines.
func logicalColumns(t engine.TableInfo) engine.TableInfo {
	cols := make([]engine.ColumnInfo, len(t.Columns))
	for i, c := range t.Columns {
		cols[i] = engine.ColumnInfo{Name: c.Name, Type: strings.ToUpper(c.Logical.String()), Logical: c.Logical, NotNull: c.NotNull, PK: c.PK}
	}
	t.Columns = cols
	return t
}

func diffColumns(ta engine.TableInfo, aName string, tb engine.TableInfo, bName string) []string {
	prefix := "table " + ta.Name + ": column "
	diffs := diffNamed(prefix, ta.Columns, aName, tb.Columns, bName,
		func(c engine.ColumnInfo) string { return c.Name })
	if len(diffs) == 0 && len(ta.Columns) == len(tb.Columns) {
		for i := range ta.Columns {
			if ta.Columns[i].Name != tb.Columns[i].Name {
				diffs = append(diffs, fmt.Sprintf("table %s: column order differs: (%s) on %s, (%s) on %s",
					ta.Name, colNames(ta), aName, colNames(tb), bName))
				break
			}
		}
	}
	return append(diffs, diffNamed("table "+ta.Name+": index ", ta.Indexes, aName, tb.Indexes, bName,
		func(x engine.IndexInfo) string { return x.Name })...)
}

// diffNamed compares two lists of named things (columns, indexes) by name,
// and each pair by its String form.
func diffNamed[T fmt.Stringer](prefix string, a []T, aName string, b []T, bName string, name func(T) string) []string {
	var diffs []string
	inB := map[string]T{}
	for _, x := range b {
		inB[name(x)] = x
	}
	inA := map[string]bool{}
	for _, xa := range a {
		inA[name(xa)] = true
		xb, ok := inB[name(xa)]
		switch {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("%s%s: missing on %s", prefix, name(xa), bName))
		case xa.String() != xb.String():
			diffs = append(diffs, fmt.Sprintf("%s%s: %s on %s, %s on %s", prefix, name(xa), xa, aName, xb, bName))
		}
	}
	for _, xb := range b {
		if !inA[name(xb)] {
			diffs = append(diffs, fmt.Sprintf("%s%s: missing on %s", prefix, name(xb), aName))
		}
	}
	return diffs
}

func colNames(t engine.TableInfo) string {
	names := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		names[i] = c.Name
	}
	return strings.Join(names, ", ")
}

// Migrate creates the tables and indexes of the given models (struct
// values or pointers to them) on every database, with the same statements
// on each, where they do not exist yet. It does not alter existing tables:
// a table that lacks a column its model defines is an error. Afterwards it
// compares the structures again and returns ErrSchemaMismatch if they differ.
func (c *Cluster) Migrate(ctx context.Context, models ...any) error {
	if c.closed.Load() {
		return ErrClosed
	}
	var ms []*model
	for _, v := range models {
		t := reflect.TypeOf(v)
		for t != nil && t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if t == nil {
			return fmt.Errorf("%w: migrate: nil model", ErrInvalidModel)
		}
		m, err := c.model(t)
		if err != nil {
			return err
		}
		ms = append(ms, m)
	}
	// A table one engine cannot hold exactly is refused before anything
	// is created anywhere.
	for _, n := range c.nodes {
		if tc := n.caps.TableChecker; tc != nil {
			for _, m := range ms {
				if err := tc.CheckTable(&m.table); err != nil {
					return fmt.Errorf("%w: migrate: %s (%s): %w", ErrInvalidModel, n.name, n.eng.Name(), err)
				}
			}
		}
	}
	c.mu.Lock()
	for _, m := range ms {
		if !containsModel(c.migrated, m) {
			c.migrated = append(c.migrated, m)
		}
	}
	c.mu.Unlock()
	// Datasources that are down are migrated when they return, before
	// they catch up.
	migrated := 0
	for _, n := range c.ranked() {
		if n.conn() == nil || n.problem() != nil {
			continue
		}
		if !n.reachable() {
			// Down but open (a failed write, a lock held elsewhere): try
			// it, bounded like any wait for a failing database. If it
			// fails, it is migrated when it returns.
			mctx, cancel := context.WithTimeout(ctx, c.timeout)
			err := n.migrate(mctx, ms)
			cancel()
			if err != nil {
				n.noteError(fmt.Errorf("migrate: %w", err))
				continue
			}
		} else if err := n.migrate(ctx, ms); err != nil {
			return fmt.Errorf("migrate %s: %w", n.name, err)
		}
		migrated++
	}
	if migrated == 0 {
		return fmt.Errorf("%w: migrate: no datasource is reachable", ErrNodeDown)
	}
	if err := c.checkStructure(ctx); err != nil {
		return err
	}
	if st := c.Structure(); !st.Match {
		return st.err()
	}
	return nil
}

func containsModel(list []*model, m *model) bool {
	for _, x := range list {
		if x == m {
			return true
		}
	}
	return false
}

// migrateReturning creates the migrated models' tables in datasources that
// were down when Migrate ran.
func (c *Cluster) migrateReturning(ctx context.Context) {
	c.mu.RLock()
	ms := append([]*model(nil), c.migrated...)
	c.mu.RUnlock()
	if len(ms) == 0 {
		return
	}
	for _, n := range c.ranked() {
		// Not n.reachable(): a node just opened is still marked down
		// until the check that opened it finishes.
		if n.conn() != nil && n.problem() == nil {
			// Bounded like every other wait of the health loop.
			mctx, cancel := context.WithTimeout(ctx, c.timeout)
			if err := n.migrate(mctx, ms); err != nil {
				n.noteError(fmt.Errorf("migrate: %w", err))
			}
			cancel()
		}
	}
}

func (n *Node) migrate(ctx context.Context, ms []*model) error {
	tx, err := n.conn().Write.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, m := range ms {
		for _, stmt := range n.eng.CreateTable(&m.table) {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("table %s: %w", m.table.Name, err)
			}
		}
	}
	tables, err := n.eng.Tables(ctx, tx)
	if err != nil {
		return err
	}
	if err := n.captureModels(ctx, tx, ms, tables); err != nil {
		return err
	}
	for _, m := range ms {
		for _, t := range tables {
			if t.Name != m.table.Name {
				continue
			}
			have := map[string]bool{}
			for _, c := range t.Columns {
				have[c.Name] = true
			}
			for _, c := range m.table.Columns {
				if !have[c.Name] {
					return fmt.Errorf("table %s exists without column %s that model %v defines (tandem does not alter existing tables)",
						m.table.Name, c.Name, m.typ)
				}
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	n.cluster.sqlw.forget(n)
	return nil
}

// captureModels installs capture on the models' tables that lack it,
// where the database has capture installed (SQL writes are in use): a
// table made after Cluster.Capture is captured like the others.
func (n *Node) captureModels(ctx context.Context, tx *sql.Tx, ms []*model, tables []engine.TableInfo) error {
	cp := n.caps.Capturer
	if cp == nil {
		return nil
	}
	captured, refused, err := cp.Captured(ctx, tx)
	if err != nil || len(captured)+len(refused) == 0 {
		return err
	}
	for _, t := range tables {
		if slices.Contains(captured, t.Name) || !slices.ContainsFunc(ms, func(m *model) bool { return m.table.Name == t.Name }) {
			continue
		}
		for _, stmt := range cp.InstallCapture(t) {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("install capture on %s: %w", t.Name, err)
			}
		}
	}
	return nil
}
