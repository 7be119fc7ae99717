package rows_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tandemdb/tandem/engine/sqlite"
	"github.com/tandemdb/tandem/internal/rows"
)

// applyTable opens a new SQLite file holding table u (id key, email
// unique) with the rows given (id → email) and returns its write handle
// and the table's Def as the database defines it.
func applyTable(t *testing.T, have map[int64]string) (*sql.DB, *rows.Def) {
	t.Helper()
	ctx := context.Background()
	e := sqlite.Engine{}
	conn, err := e.Open(ctx, filepath.Join(t.TempDir(), "x.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Write.Close(); conn.Read.Close() })
	db := conn.Write
	if _, err := db.Exec("CREATE TABLE u (id INTEGER NOT NULL PRIMARY KEY, email TEXT NOT NULL UNIQUE)"); err != nil {
		t.Fatal(err)
	}
	for id, email := range have {
		if _, err := db.Exec("INSERT INTO u VALUES (?, ?)", id, email); err != nil {
			t.Fatal(err)
		}
	}
	infos, err := e.Tables(ctx, db)
	if err != nil || len(infos) != 1 {
		t.Fatalf("tables: %v, %v", infos, err)
	}
	return db, rows.Define(infos[0])
}

func applyRows(t *testing.T, db *sql.DB) string {
	t.Helper()
	r, err := db.Query("SELECT id, email FROM u ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var out []string
	for r.Next() {
		var id int64
		var email string
		if err := r.Scan(&id, &email); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%d=%s", id, email))
	}
	return strings.Join(out, " ")
}

// TestApplyConvergesOnUniqueValuesMovedBetweenRows: written one by one in
// key order, each of these batches hits a unique value that a later row of
// the batch gives up; Apply makes them all.
func TestApplyConvergesOnUniqueValuesMovedBetweenRows(t *testing.T) {
	ch := func(id int64, email string) rows.Change {
		if email == "" {
			return rows.Change{Key: []any{id}}
		}
		return rows.Change{Key: []any{id}, Row: []any{id, email}}
	}
	for _, tc := range []struct {
		name    string
		have    map[int64]string
		changes []rows.Change
		want    string
		refused []int
	}{
		// The source saved (2,"b") then (1,"a"): key 1 comes first and
		// meets the target's stale row 2, which still holds "a".
		{"moved", map[int64]string{1: "x", 2: "a"}, []rows.Change{ch(1, "a"), ch(2, "b")}, "1=a 2=b", nil},
		{"swapped", map[int64]string{1: "a", 2: "b"}, []rows.Change{ch(1, "b"), ch(2, "a")}, "1=b 2=a", nil},
		{"cycled", map[int64]string{1: "a", 2: "b", 3: "c"}, []rows.Change{ch(1, "b"), ch(2, "c"), ch(3, "a")}, "1=b 2=c 3=a", nil},
		{"freed by a delete", map[int64]string{1: "x", 2: "a"}, []rows.Change{ch(1, "a"), ch(2, "")}, "1=a", nil},
		{"moved to a new row", map[int64]string{1: "a"}, []rows.Change{ch(1, "b"), ch(2, "c"), ch(3, "a")}, "1=b 2=c 3=a", nil},
		// A value held by a row outside the batch cannot be taken: that
		// change is refused, the others are made.
		{"held outside the batch", map[int64]string{1: "x", 9: "a"}, []rows.Change{ch(1, "a"), ch(2, "b")}, "1=x 2=b 9=a", []int{0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, td := applyTable(t, tc.have)
			ctx := context.Background()
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			refused, err := rows.Apply(ctx, sqlite.Engine{}, tx, td, tc.changes)
			if err != nil {
				t.Fatalf("apply: %v", err)
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
			var got []int
			for i := range refused {
				got = append(got, i)
			}
			slices.Sort(got)
			if !slices.Equal(got, tc.refused) {
				t.Errorf("refused changes %v (%v), want %v", got, rows.RefusedError(td, tc.changes, refused), tc.refused)
			}
			if got := applyRows(t, db); got != tc.want {
				t.Errorf("rows %q, want %q", got, tc.want)
			}
		})
	}
}
