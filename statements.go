package tandem

import (
	"fmt"
	"strings"
)

// The SQL of a model's writes and reads, built once per model and engine:
// the write path ([Tx.Save], [Tx.Delete]) and the queries ([Get], [Find],
// [Count]) share it.

// statements are a model's SQL texts for one engine.
type statements struct {
	upsert          string
	insertAuto      string
	insertReturning bool
	delete          string // by primary key
	// upsertNoted and deleteNoted also record the key's intent row, whose
	// values follow the statement's (engine.WithInserter); "" elsewhere.
	upsertNoted, deleteNoted string
	selectCols               string // "a", "b", ... for SELECT
	byKey                    string // WHERE clause on the primary key
}

// sql returns m's statements for n's engine, building them once.
func (n *Node) sql(m *model) *statements {
	if s, ok := n.texts.Load(m.textKey()); ok {
		return s.(*statements)
	}
	e := n.eng
	s := &statements{upsert: e.Upsert(&m.table)}
	s.insertAuto, s.insertReturning = e.InsertAuto(&m.table)
	cols := make([]string, len(m.table.Columns))
	for i := range m.table.Columns {
		cols[i] = e.Quote(m.table.Columns[i].Name)
	}
	s.selectCols = strings.Join(cols, ", ")
	conds := make([]string, len(m.pk))
	for i, ci := range m.pk {
		conds[i] = fmt.Sprintf("%s = %s", e.Quote(m.table.Columns[ci].Name), e.Placeholder(i+1))
	}
	s.byKey = strings.Join(conds, " AND ")
	s.delete = fmt.Sprintf("DELETE FROM %s WHERE %s", e.Quote(m.table.Name), s.byKey)
	if wi := n.caps.WithInserter; wi != nil {
		s.upsertNoted = wi.WithInsert(s.upsert, n.records.InsertIntent(1, len(m.all)))
		s.deleteNoted = wi.WithInsert(s.delete, n.records.InsertIntent(1, len(m.pk)))
	}
	actual, _ := n.texts.LoadOrStore(m.textKey(), s)
	return actual.(*statements)
}
