// Package records owns tandem's bookkeeping tables, present in every
// database tandem writes, and every statement on them: the node's metadata
// (identity and markers), the intent records of writes in flight, the keys
// a database missed, and the conflicts of a split brain. A change to the
// format of a bookkeeping table touches this package only.
//
// A Store speaks one engine's dialect; the caller supplies the connection
// or transaction each statement runs in, so that a record is written in
// the same transaction as the data it describes.
package records

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/tandemdb/tandem/engine"
)

// Key names one row: its table and its primary key, as the JSON text
// value.EncodeKey makes of the key's canonical values.
type Key struct{ Table, PK string }

// MaxKeyText bounds a key's text form in the bookkeeping tables whose
// primary key includes it: MySQL indexes only bounded text (3072 bytes).
const MaxKeyText = 512

// The bookkeeping tables.
var (
	// Meta holds the node's identity (node_id, created_at), its outdated
	// marker and an operator's promotion (promoted_at).
	Meta = engine.Table{
		Name: "_tandem_meta",
		Columns: []engine.Column{
			{Name: "k", Type: engine.Text, Size: 64, NotNull: true},
			{Name: "v", Type: engine.Text, NotNull: true},
		},
		PK: []string{"k"},
	}
	// Pending is the intent record: each row is one key (table and
	// primary key) that transaction txid wrote. A row that outlives its
	// transaction's commit on every database names a key that some
	// database may lack.
	Pending = engine.Table{
		Name: "_tandem_pending",
		Columns: []engine.Column{
			{Name: "txid", Type: engine.Text, Size: 32, NotNull: true},
			{Name: "seq", Type: engine.Integer, NotNull: true},
			{Name: "tbl", Type: engine.Text, Size: 128, NotNull: true},
			{Name: "pk", Type: engine.Text, Size: MaxKeyText, NotNull: true},
			{Name: "at", Type: engine.Integer, NotNull: true}, // unix ms
		},
		PK: []string{"txid", "seq"},
		// Every write looks up the records naming its keys
		// (IntentsNaming): a write left in doubt among them is settled
		// before the write commits.
		Indexes: []engine.Index{{Name: "_tandem_pending_key", Columns: []string{"tbl", "pk"}}},
	}
	// Missed records, on every node a write reached, each key a node it
	// did not reach has missed (node: the missing datasource's name). One
	// row per key however often it changed: catch-up copies the current
	// row once.
	Missed = engine.Table{
		Name: "_tandem_missed",
		Columns: []engine.Column{
			{Name: "node", Type: engine.Text, Size: 64, NotNull: true},
			{Name: "tbl", Type: engine.Text, Size: 128, NotNull: true},
			{Name: "pk", Type: engine.Text, Size: MaxKeyText, NotNull: true},
			{Name: "at", Type: engine.Integer, NotNull: true}, // unix ms of the latest missed write
		},
		PK: []string{"node", "tbl", "pk"},
	}
	// Conflicts lists keys both sides of a split brain changed, with both
	// rows as they were found, and how each was resolved.
	Conflicts = engine.Table{
		Name: "_tandem_conflicts",
		Columns: []engine.Column{
			{Name: "tbl", Type: engine.Text, Size: 128, NotNull: true},
			{Name: "pk", Type: engine.Text, Size: MaxKeyText, NotNull: true},
			{Name: "node_a", Type: engine.Text, Size: 64, NotNull: true},
			{Name: "row_a", Type: engine.Text}, // JSON object; NULL: no row
			{Name: "node_b", Type: engine.Text, Size: 64, NotNull: true},
			{Name: "row_b", Type: engine.Text},
			{Name: "found_at", Type: engine.Integer, NotNull: true},    // unix ms
			{Name: "resolution", Type: engine.Text, NotNull: true},     // "" while unresolved
			{Name: "resolved_at", Type: engine.Integer, NotNull: true}, // unix ms; 0 while unresolved
		},
		PK: []string{"tbl", "pk"},
	}
)

// Tables are the bookkeeping tables, in the order they are created.
var Tables = []*engine.Table{&Meta, &Pending, &Missed, &Conflicts}

// IsBookkeeping reports whether name is one of the bookkeeping tables.
func IsBookkeeping(name string) bool {
	for _, t := range Tables {
		if t.Name == name {
			return true
		}
	}
	return false
}

// Querier is a *sql.DB, *sql.Conn or *sql.Tx, or a wrapper of one.
type Querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Store reads and writes the bookkeeping tables of databases of one engine.
type Store struct{ e engine.Engine }

// For returns the Store of engine e.
func For(e engine.Engine) Store { return Store{e} }

func (s Store) table(t *engine.Table) string { return s.e.Quote(t.Name) }

// inList renders placeholders for names, numbered after before, and
// appends names to args.
func (s Store) inList(names []string, before int, args *[]any) string {
	marks := make([]string, len(names))
	for i, n := range names {
		marks[i] = s.e.Placeholder(before + i + 1)
		*args = append(*args, n)
	}
	return strings.Join(marks, ", ")
}

// HasTables reports an error unless every bookkeeping table exists (a
// database from before a table was added lacks it).
func (s Store) HasTables(ctx context.Context, q Querier) error {
	for _, t := range Tables {
		var one int
		err := q.QueryRowContext(ctx, "SELECT 1 FROM "+s.table(t)+s.e.LimitClause(1, 0)).Scan(&one)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
	}
	return nil
}

// Create creates the bookkeeping tables that do not exist, inside tx,
// and brings those made by an earlier version to the current definition
// where the engine needs that for their indexes (engine.TableUpgrader).
func (s Store) Create(ctx context.Context, tx interface {
	engine.Querier
	engine.Execer
}) error {
	for _, t := range Tables {
		// CreateTable's first statement creates the table, the others
		// its indexes.
		for i, stmt := range s.e.CreateTable(t) {
			if i == 1 {
				if u, ok := s.e.(engine.TableUpgrader); ok {
					if err := u.UpgradeTable(ctx, tx, t); err != nil {
						return err
					}
				}
			}
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				return err
			}
		}
	}
	return nil
}

// NewID returns n random bytes in hex: node identities, txids, probes.
func NewID(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Metadata keys of the Meta table.
const (
	NodeID     = "node_id"     // the database's node identity
	CreatedAt  = "created_at"  // when tandem initialised it, RFC 3339
	Outdated   = "outdated"    // why the node missed writes; absent: it did not
	PromotedAt = "promoted_at" // unix ms of an operator's forced promotion
)

// Meta reads a key of the Meta table; "" when absent.
func (s Store) Meta(ctx context.Context, q Querier, key string) (string, error) {
	var v string
	err := q.QueryRowContext(ctx, fmt.Sprintf("SELECT v FROM %s WHERE k = %s",
		s.table(&Meta), s.e.Placeholder(1)), key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return v, err
}

// Metas reads several keys of the Meta table in one statement; a key that
// is absent is absent from the map.
func (s Store) Metas(ctx context.Context, q Querier, keys ...string) (map[string]string, error) {
	marks := make([]string, len(keys))
	args := make([]any, len(keys))
	for i, k := range keys {
		marks[i], args[i] = s.e.Placeholder(i+1), k
	}
	rows, err := q.QueryContext(ctx, fmt.Sprintf("SELECT k, v FROM %s WHERE k IN (%s)",
		s.table(&Meta), strings.Join(marks, ", ")), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	m := make(map[string]string, len(keys))
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return nil, err
		}
		m[k] = v
	}
	return m, rows.Err()
}

// SetMeta sets a key of the Meta table.
func (s Store) SetMeta(ctx context.Context, x engine.Execer, key, value string) error {
	_, err := x.ExecContext(ctx, s.e.Upsert(&Meta), key, value)
	return err
}

// DeleteMeta deletes a key of the Meta table (absent: nothing happens).
func (s Store) DeleteMeta(ctx context.Context, x engine.Execer, key string) error {
	_, err := x.ExecContext(ctx, fmt.Sprintf("DELETE FROM %s WHERE k = %s",
		s.table(&Meta), s.e.Placeholder(1)), key)
	return err
}

// Generation is the key of the highest view generation the database has
// taken part in (see package arbiter): a write made under an older view is
// refused before it commits.
const Generation = "generation"

// View is the key of the cluster's view where no arbiter holds it: the
// primary's database holds it, as JSON.
const View = "view"

// ReadGeneration reads the database's generation; 0 when it has none.
func (s Store) ReadGeneration(ctx context.Context, q Querier) (int64, error) {
	v, err := s.Meta(ctx, q, Generation)
	if err != nil {
		return 0, err
	}
	return s.ParseGeneration(v)
}

// ParseGeneration reads a generation as the Meta table holds it ("": 0).
func (s Store) ParseGeneration(v string) (int64, error) {
	if v == "" {
		return 0, nil
	}
	g, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s holds generation %q: %w", s.table(&Meta), v, err)
	}
	return g, nil
}

// SetGeneration sets the database's generation.
func (s Store) SetGeneration(ctx context.Context, x Execer, gen int64) error {
	return s.SetMeta(ctx, x, Generation, strconv.FormatInt(gen, 10))
}
