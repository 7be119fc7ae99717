package records

import (
	"context"
	"fmt"
	"hash/maphash"
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
	keys keyList
}

// NewIntent starts the intent record of a write made at now; its keys are
// added as the write makes them.
func NewIntent(now time.Time) *Intent {
	return &Intent{
		// Time-ordered, so records sort by age.
		TxID: fmt.Sprintf("%016x%s", now.UnixNano(), NewID(8)),
		At:   now.UnixMilli(),
	}
}

// IntentOf is the record txid (made at at, unix ms) naming keys, in order
// (each once).
func IntentOf(txid string, at int64, keys []Key) *Intent {
	in := &Intent{TxID: txid, At: at}
	for _, k := range keys {
		in.Add(k)
	}
	return in
}

// Len returns how many keys the record names.
func (in *Intent) Len() int { return in.keys.len() }

// Key returns the key whose seq is i (0 <= i < Len()).
func (in *Intent) Key(i int) Key { return in.keys.at(i) }

// Next returns the seq k has, or would have once added, and whether k is
// new to the record.
func (in *Intent) Next(k Key) (seq int, fresh bool) {
	if i := in.keys.find(k); i >= 0 {
		return i, false
	}
	return in.keys.len(), true
}

// Add adds k unless the record holds it, and returns its seq.
func (in *Intent) Add(k Key) int {
	if i := in.keys.find(k); i >= 0 {
		return i
	}
	return in.keys.add(k)
}

// DropKeys forgets every key (benchmarks that measure what recording
// costs).
func (in *Intent) DropKeys() { in.keys = keyList{} }

// keyList holds a write's keys compactly: a statement can change a
// million rows, and each key costs here its text and about 40 bytes, where
// a Key in a slice and a map of them cost about 150.
type keyList struct {
	tables []string // distinct, in the order first seen
	data   []byte   // every key's PK text, back to back
	ends   []int    // key i's text is data[ends[i-1]:ends[i]]
	table  []uint32 // key i's table, an index in tables
	seed   maphash.Seed
	first  map[uint64]int32 // a hash of a key to the first key with it
	others map[Key]int      // keys whose hash an earlier key has
}

func (l *keyList) len() int { return len(l.ends) }

func (l *keyList) at(i int) Key {
	start := 0
	if i > 0 {
		start = l.ends[i-1]
	}
	return Key{Table: l.tables[l.table[i]], PK: string(l.data[start:l.ends[i]])}
}

// is reports whether key i is k, without copying it.
func (l *keyList) is(i int, k Key) bool {
	start := 0
	if i > 0 {
		start = l.ends[i-1]
	}
	return l.tables[l.table[i]] == k.Table && string(l.data[start:l.ends[i]]) == k.PK
}

func (l *keyList) hash(k Key) uint64 {
	var h maphash.Hash
	h.SetSeed(l.seed)
	h.WriteString(k.Table)
	h.WriteByte(0)
	h.WriteString(k.PK)
	return h.Sum64()
}

// find returns k's index, or -1.
func (l *keyList) find(k Key) int {
	if l.first == nil {
		return -1
	}
	i, ok := l.first[l.hash(k)]
	if !ok {
		return -1
	}
	if l.is(int(i), k) {
		return int(i)
	}
	if j, ok := l.others[k]; ok {
		return j
	}
	return -1
}

// add appends k, which the list does not hold, and returns its index.
func (l *keyList) add(k Key) int {
	if l.first == nil {
		l.seed = maphash.MakeSeed()
		l.first = map[uint64]int32{}
	}
	t := slices.Index(l.tables, k.Table) // a write touches few tables
	if t < 0 {
		t = len(l.tables)
		l.tables = append(l.tables, k.Table)
	}
	i := len(l.ends)
	l.data = append(l.data, k.PK...)
	l.ends = append(l.ends, len(l.data))
	l.table = append(l.table, uint32(t))
	h := l.hash(k)
	if _, taken := l.first[h]; !taken {
		l.first[h] = int32(i)
	} else {
		if l.others == nil {
			l.others = map[Key]int{}
		}
		l.others[k] = i
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
	chunk := make([]int, 0, recordChunk)
	flush := func() error {
		if len(chunk) == 0 {
			return nil
		}
		args := make([]any, 0, 5*len(chunk))
		for _, i := range chunk {
			args = append(args, in.Note(i, in.Key(i))...)
		}
		_, err := tx.ExecContext(ctx, s.InsertIntent(len(chunk), 0), args...)
		chunk = chunk[:0]
		return err
	}
	for i := range in.Len() {
		if noted(i) {
			continue
		}
		if chunk = append(chunk, i); len(chunk) == recordChunk {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
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

// IntentsNaming returns, sorted, the txids of the intent records other
// than txid's that name a key txid's record names: one query, through q
// (a transaction that holds txid's record, written already), however many
// keys the record names.
func (s Store) IntentsNaming(ctx context.Context, q Querier, txid string) ([]string, error) {
	t := s.table(&Pending)
	query := fmt.Sprintf("SELECT DISTINCT o.txid FROM %s m JOIN %s o ON o.tbl = m.tbl AND o.pk = m.pk WHERE m.txid = %s AND o.txid <> %s ORDER BY o.txid",
		t, t, s.e.Placeholder(1), s.e.Placeholder(2))
	return queryStrings(ctx, q, query, txid, txid)
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
