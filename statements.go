package tandem

import (
	"fmt"
	"slices"
	"strings"
)

// updateValues is how many values Update's statement sets before the key
// (every column but the key's).
func (m *model) updateValues() int { return len(m.all) - len(m.pk) }

// The SQL of a model's writes and reads, built once per model and engine:
// the write path ([Tx.Save], [Tx.Delete]) and the queries ([Get], [Find],
// [Count]) share it.

// statements are a model's SQL texts for one engine.
type statements struct {
	upsert          string
	insertAuto      string
	insertReturning bool
	delete          string // by primary key
	// insert writes a whole row (Insert: a key taken is an error);
	// update writes every column but the key's, by key (Update: the
	// values first, then the key's).
	insert, update string
	// upsertNoted, deleteNoted, insertNoted and updateNoted also record
	// the key's intent row, whose values follow the statement's
	// (engine.WithInserter); "" elsewhere.
	upsertNoted, deleteNoted, insertNoted, updateNoted string
	selectCols                                         string // "a", "b", ... for SELECT
	byKey                                              string // WHERE clause on the primary key
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
	marks := make([]string, len(cols))
	for i := range marks {
		marks[i] = e.Placeholder(i + 1)
	}
	s.insert = fmt.Sprintf("INSERT INTO %s (%s) VALUES (%s)", e.Quote(m.table.Name), s.selectCols, strings.Join(marks, ", "))
	var sets []string
	for _, ci := range m.all {
		if !slices.Contains(m.pk, ci) {
			sets = append(sets, fmt.Sprintf("%s = %s", cols[ci], e.Placeholder(len(sets)+1)))
		}
	}
	if len(sets) == 0 { // every column is the key's: the row is there or not
		sets = []string{cols[m.pk[0]] + " = " + cols[m.pk[0]]}
	}
	keyConds := make([]string, len(m.pk))
	for i, ci := range m.pk {
		keyConds[i] = fmt.Sprintf("%s = %s", cols[ci], e.Placeholder(m.updateValues()+i+1))
	}
	s.update = fmt.Sprintf("UPDATE %s SET %s WHERE %s", e.Quote(m.table.Name), strings.Join(sets, ", "), strings.Join(keyConds, " AND "))
	if wi := n.caps.WithInserter; wi != nil {
		s.upsertNoted = wi.WithInsert(s.upsert, n.records.InsertIntent(1, len(m.all)))
		s.deleteNoted = wi.WithInsert(s.delete, n.records.InsertIntent(1, len(m.pk)))
		s.insertNoted = wi.WithInsert(s.insert, n.records.InsertIntent(1, len(m.all)))
		s.updateNoted = wi.WithInsert(s.update, n.records.InsertIntent(1, m.updateValues()+len(m.pk)))
	}
	actual, _ := n.texts.LoadOrStore(m.textKey(), s)
	return actual.(*statements)
}
