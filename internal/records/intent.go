package records

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Intent is the record a write leaves, in its own transaction, on every
// database it writes: the keys it touched. Once every database has
// committed, the records are cleared in batches off the hot path. A record
// that survives names keys some database may lack: the write failed to
// commit somewhere, or the process died between commits.
type Intent struct {
	TxID string
	At   int64 // unix ms
	Keys []Key
	seq  map[Key]int // each key's index in Keys, its seq in the record
}

// NewIntent starts the intent record of a write made at now; its keys are
// added as the write makes them.
func NewIntent(now time.Time) *Intent {
	return &Intent{
		// Time-ordered, so records sort by age.
		TxID: fmt.Sprintf("%016x%s", now.UnixNano(), NewID(8)),
		At:   now.UnixMilli(),
		seq:  map[Key]int{},
	}
}

// Next returns the seq k has, or would have once added, and whether k is
// new to the record.
func (in *Intent) Next(k Key) (seq int, fresh bool) {
	if i, ok := in.seq[k]; ok {
		return i, false
	}
	return len(in.Keys), true
}

// Add adds k unless the record holds it, and returns its seq.
func (in *Intent) Add(k Key) int {
	i, fresh := in.Next(k)
	if fresh {
		in.seq[k] = i
		in.Keys = append(in.Keys, k)
	}
	return i
}

// Note returns the values of k's row in the Pending table, in the order of
// InsertIntent's columns.
func (in *Intent) Note(seq int, k Key) []any {
	return []any{in.TxID, int64(seq), k.Table, k.PK, in.At}
}

// recordChunk is how many keys one INSERT records.
const recordChunk = 100

// RecordIntent writes in's keys to the Pending table inside tx, but for
// those noted already (in the statements that wrote them: see
// InsertIntent).
func (s Store) RecordIntent(ctx context.Context, tx Execer, in *Intent, noted func(seq int) bool) error {
	var rest []int
	for i := range in.Keys {
		if !noted(i) {
			rest = append(rest, i)
		}
	}
	for start := 0; start < len(rest); start += recordChunk {
		chunk := rest[start:min(start+recordChunk, len(rest))]
		args := make([]any, 0, 5*len(chunk))
		for _, i := range chunk {
			args = append(args, in.Note(i, in.Keys[i])...)
		}
		if _, err := tx.ExecContext(ctx, s.InsertIntent(len(chunk), 0), args...); err != nil {
			return err
		}
	}
	return nil
}

// InsertIntent inserts rows intent records, with placeholders numbered
// from after+1, each row's values as Intent.Note gives them. Engines whose
// write statements can insert along the way (engine.WithInserter) append
// it to the statement that writes the key.
func (s Store) InsertIntent(rows, after int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "INSERT INTO %s (txid, seq, tbl, pk, at) VALUES ", s.table(&Pending))
	p := after
	for r := 0; r < rows; r++ {
		if r > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('(')
		for c := 0; c < 5; c++ {
			if c > 0 {
				b.WriteString(", ")
			}
			p++
			b.WriteString(s.e.Placeholder(p))
		}
		b.WriteByte(')')
	}
	return b.String()
}

// DeleteIntent deletes the intent record of txid, inside tx.
func (s Store) DeleteIntent(ctx context.Context, tx Execer, txid string) error {
	_, err := tx.ExecContext(ctx, fmt.Sprintf("DELETE FROM %s WHERE txid = %s",
		s.table(&Pending), s.e.Placeholder(1)), txid)
	return err
}

// ClearIntents deletes the intent records of txids, inside tx.
func (s Store) ClearIntents(ctx context.Context, tx Execer, txids []string) error {
	var args []any
	q := fmt.Sprintf("DELETE FROM %s WHERE txid IN (%s)", s.table(&Pending), s.inList(txids, 0, &args))
	_, err := tx.ExecContext(ctx, q, args...)
	return err
}

// StaleIntents returns up to limit txids of intent records made before
// cutoff (unix ms), oldest first.
func (s Store) StaleIntents(ctx context.Context, q Querier, cutoff int64, limit int) ([]string, error) {
	return queryStrings(ctx, q, fmt.Sprintf("SELECT DISTINCT txid FROM %s WHERE at < %s ORDER BY txid%s",
		s.table(&Pending), s.e.Placeholder(1), s.e.LimitClause(limit, 0)), cutoff)
}

// HoldsIntent reports whether the database holds the intent record of txid.
func (s Store) HoldsIntent(ctx context.Context, q Querier, txid string) (bool, error) {
	var count int
	err := q.QueryRowContext(ctx, fmt.Sprintf("SELECT COUNT(*) FROM %s WHERE txid = %s",
		s.table(&Pending), s.e.Placeholder(1)), txid).Scan(&count)
	return count > 0, err
}

// IntentsNaming returns, sorted, the txids other than except of the intent
// records that name any of keys.
func (s Store) IntentsNaming(ctx context.Context, q Querier, keys []Key, except string) ([]string, error) {
	byTable := map[string][]string{}
	var tables []string
	for _, k := range keys {
		if byTable[k.Table] == nil {
			tables = append(tables, k.Table)
		}
		byTable[k.Table] = append(byTable[k.Table], k.PK)
	}
	var found []string
	for _, table := range tables {
		pks := byTable[table]
		for len(pks) > 0 {
			chunk := pks[:min(len(pks), recordChunk)]
			pks = pks[len(chunk):]
			args := []any{table, except}
			query := fmt.Sprintf("SELECT DISTINCT txid FROM %s WHERE tbl = %s AND txid <> %s AND pk IN (%s)",
				s.table(&Pending), s.e.Placeholder(1), s.e.Placeholder(2), s.inList(chunk, 2, &args))
			ids, err := queryStrings(ctx, q, query, args...)
			if err != nil {
				return nil, err
			}
			found = append(found, ids...)
		}
	}
	slices.Sort(found)
	return slices.Compact(found), nil
}

// IntentKeys returns the keys of txid's intent record, in the order the
// write touched them.
func (s Store) IntentKeys(ctx context.Context, q Querier, txid string) ([]Key, error) {
	return queryKeys(ctx, q, fmt.Sprintf("SELECT tbl, pk FROM %s WHERE txid = %s ORDER BY seq",
		s.table(&Pending), s.e.Placeholder(1)), txid)
}

// CountIntents counts the intent records made before cutoff (unix ms):
// the writes in doubt, once cutoff is old enough.
func (s Store) CountIntents(ctx context.Context, q Querier, cutoff int64) (int64, error) {
	var count int64
	err := q.QueryRowContext(ctx, fmt.Sprintf("SELECT COUNT(*) FROM %s WHERE at < %s",
		s.table(&Pending), s.e.Placeholder(1)), cutoff).Scan(&count)
	return count, err
}

// InFlightSQL is a query, with the table and the key text as its two
// arguments, that returns a row while an intent record names that key.
func (s Store) InFlightSQL() string {
	return fmt.Sprintf("SELECT 1 FROM %s WHERE tbl = %s AND pk = %s%s",
		s.table(&Pending), s.e.Placeholder(1), s.e.Placeholder(2), s.e.LimitClause(1, 0))
}
