package verify

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/tandemdb/tandem"
	"github.com/tandemdb/tandem/internal/rows"
)

// Repair makes datasource To hold exactly the rows of datasource From: it
// compares them as Compare does, then inserts, updates and deletes on To
// the rows that differ, and only those, in transactions of up to
// repairBatch rows. Each row is read again from both databases inside
// To's transaction, so the change written is the one still needed.
//
// Run it on a cluster that is not being written, or on rows no writer
// touches: a write that lands on From after Repair read the row is not
// copied (tandem's own catch-up, not Repair, is the tool for a live
// cluster). With DryRun it reports the changes and writes nothing.
func Repair(ctx context.Context, cfg *tandem.Config, opts RepairOptions) (*RepairReport, error) {
	dss, err := openPlain(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer closePlain(dss)
	if opts.From == "" || opts.To == "" {
		return nil, fmt.Errorf("%w: repair needs a datasource to copy from and one to repair", tandem.ErrConfig)
	}
	vopts := Options{Tables: opts.Tables, Between: []string{opts.From, opts.To}, Progress: opts.Progress, inGo: opts.inGo}
	found, err := compareOpen(ctx, dss, vopts)
	if err != nil {
		return nil, err
	}
	if len(found.Aliases) > 0 {
		return nil, fmt.Errorf("%w: %s and %s are one database", tandem.ErrConfig, opts.From, opts.To)
	}
	from, others, _ := pickPair(dss, vopts.Between)
	from = aliasTarget(dss, from) // another name of a database: the one opened
	to := []*plainDB{aliasTarget(dss, others[0])}
	rep := &RepairReport{Before: found, DryRun: opts.DryRun}
	tables, err := verifyTables(ctx, from, to, found.tableNames(), nil)
	if err != nil {
		return nil, err
	}
	for i, t := range tables {
		diffs := found.Tables[i].Differences
		if len(diffs) == 0 {
			continue
		}
		c := newTableCmp(t, from, to[0], vopts)
		for len(diffs) > 0 {
			n := min(len(diffs), repairBatch)
			changed, err := c.repairBatch(ctx, diffs[:n], opts)
			rep.Changes += changed
			if err != nil {
				return rep, fmt.Errorf("repair table %s on %s: %w", t.name, to[0].name, err)
			}
			diffs = diffs[n:]
		}
	}
	return rep, nil
}

// repairBatch is how many rows one transaction of Repair changes.
const repairBatch = 500

// RepairOptions say what Repair repairs.
type RepairOptions struct {
	From, To string   // the datasource whose rows are right, and the one to repair
	Tables   []string // empty: every table
	DryRun   bool     // report the changes, write nothing
	// Change, when set, is called for each row changed (with DryRun: that
	// would change), before it is written.
	Change func(RowChange)
	// Progress, when set, follows the comparison (see Options.Progress).
	Progress func(Progress)

	inGo bool // tests: compare in Go, as across engines
}

// The kinds of RowChange.
const (
	ChangeInsert = "insert"
	ChangeUpdate = "update"
	ChangeDelete = "delete"
)

// RowChange is one row Repair writes.
type RowChange struct {
	Datasource string   `json:"datasource"` // the one repaired
	Table      string   `json:"table"`
	Kind       string   `json:"kind"`
	Key        Key      `json:"key"`
	Columns    []string `json:"columns,omitempty"` // update: the columns that change
}

// String renders the change for people: update bar.books id=3 (title).
func (c RowChange) String() string {
	s := fmt.Sprintf("%s %s.%s %s", c.Kind, c.Datasource, c.Table, c.Key)
	if len(c.Columns) > 0 {
		s += " (" + strings.Join(c.Columns, ", ") + ")"
	}
	return s
}

// RepairReport is what Repair did.
type RepairReport struct {
	Before  *Report // the comparison that found the rows to repair
	Changes int     // rows changed (with DryRun: that would change)
	DryRun  bool
}

func (r *Report) tableNames() []string {
	names := make([]string, len(r.Tables))
	for i, t := range r.Tables {
		names[i] = t.Table
	}
	return names
}

// repairBatch makes the rows of diffs on b equal those on a, in one
// transaction on b, and returns how many rows it changed.
func (c *tableCmp) repairBatch(ctx context.Context, diffs []RowDiff, opts RepairOptions) (int, error) {
	to := c.b
	tx, err := to.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("begin: %s", to.eng.Redact(err.Error()))
	}
	defer tx.Rollback()
	src := &verifySide{p: c.a, cmp: c, stmts: map[string]*sql.Stmt{}}
	dst := &verifySide{p: to, tx: tx, cmp: c, stmts: map[string]*sql.Stmt{}}
	defer dst.closeStmts()
	defer src.closeStmts()
	texts := c.def.Statements(to.eng) // upsert: every column in the reference's order; delete: by key
	// The changes, made together once all are read: rows written one by
	// one may refuse each other (a unique value moved between them).
	type change struct {
		ch         RowChange
		args, keys []any // the upsert's (nil for a delete), the delete's
	}
	var changes []change
	for _, d := range diffs {
		want, err := src.rowByKey(ctx, d.Key.Values)
		if err != nil {
			return 0, err
		}
		have, err := dst.rowByKey(ctx, d.Key.Values)
		if err != nil {
			return 0, err
		}
		ch := RowChange{Datasource: to.name, Table: c.table.name, Key: d.Key}
		var args, keys []any
		for i, p := range c.pk {
			keys = append(keys, dst.bind(p, d.Key.Values[i]))
		}
		switch {
		case want == nil && have == nil:
			continue
		case want == nil:
			ch.Kind = ChangeDelete
		default:
			if have == nil {
				ch.Kind = ChangeInsert
			} else if ch.Columns = c.changedColumns(want, have); len(ch.Columns) == 0 {
				continue
			} else {
				ch.Kind = ChangeUpdate
			}
			for i, v := range want {
				args = append(args, dst.bind(i, v))
			}
		}
		if opts.Change != nil {
			opts.Change(ch)
		}
		changes = append(changes, change{ch, args, keys})
	}
	if opts.DryRun {
		return len(changes), nil
	}
	deletes := make([]bool, len(changes))
	for i, ch := range changes {
		deletes[i] = ch.args == nil
	}
	refused, err := rows.Converge(ctx, tx, to.eng.Constraint, deletes, func(i int, del bool) error {
		ch := changes[i]
		if del || ch.args == nil {
			_, err := tx.ExecContext(ctx, texts.Delete, ch.keys...)
			return err
		}
		_, err := tx.ExecContext(ctx, texts.Upsert, ch.args...)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("%s: %s", c.table.name, to.eng.Redact(err.Error()))
	}
	if len(refused) > 0 {
		var msgs []string
		for i, ch := range changes {
			if err, ok := refused[i]; ok {
				msgs = append(msgs, fmt.Sprintf("%s %s: %s", ch.ch.Kind, ch.ch.Key, to.eng.Redact(err.Error())))
			}
		}
		return 0, fmt.Errorf("%d of %d changes refused, none made: %s", len(refused), len(changes), strings.Join(msgs, "; "))
	}
	changed := len(changes)
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("commit: %s", to.eng.Redact(err.Error()))
	}
	return changed, nil
}
