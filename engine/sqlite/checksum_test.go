package sqlite_test

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tandemdb/tandem/engine"
	"github.com/tandemdb/tandem/engine/sqlite"
)

// OpenPlain opens a database as it is: a missing file is an error, not a
// new file, and a file in rollback-journal mode stays in it. Its
// connections compute the checksum the engine promises: per row the
// RowHash of the stored values, summed.
func TestOpenPlainChangesNothingAndChecksumsStoredValues(t *testing.T) {
	ctx := context.Background()
	e := sqlite.Engine{}
	dir := t.TempDir()
	missing, err := e.ResolveDSN("missing.db", dir)
	if err != nil {
		t.Fatal(err)
	}
	if db, err := e.OpenPlain(ctx, missing); err == nil {
		db.Close()
		t.Errorf("OpenPlain of a missing file succeeded")
	}
	if _, err := os.Stat(filepath.Join(dir, "missing.db")); !os.IsNotExist(err) {
		t.Errorf("OpenPlain created missing.db: %v", err)
	}

	path := filepath.Join(dir, "plain.db")
	setup, err := sql.Open("sqlite3", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer setup.Close()
	for _, s := range []string{`PRAGMA journal_mode=DELETE`, `CREATE TABLE t (id INTEGER PRIMARY KEY, v)`,
		`INSERT INTO t VALUES (1, 1), (2, 1.0), (3, '1'), (4, x'31'), (5, NULL), (6, -0.0)`} {
		if _, err := setup.Exec(s); err != nil {
			t.Fatal(err)
		}
	}
	dsn, err := e.ResolveDSN("plain.db", dir)
	if err != nil {
		t.Fatal(err)
	}
	db, err := e.OpenPlain(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cols := []string{e.Quote("id"), e.Quote("v")}
	var sum int64
	if err := db.QueryRowContext(ctx, "SELECT "+e.Checksum(cols)+" FROM t").Scan(&sum); err != nil {
		t.Fatal(err)
	}
	var want uint64
	for i, v := range []func(h *engine.RowHash){
		func(h *engine.RowHash) { h.Int(1) }, func(h *engine.RowHash) { h.Real(1) },
		func(h *engine.RowHash) { h.Text([]byte("1")) }, func(h *engine.RowHash) { h.Blob([]byte("1")) },
		func(h *engine.RowHash) { h.Null() }, func(h *engine.RowHash) { h.Real(0) },
	} {
		h := engine.NewRowHash()
		h.Int(int64(i + 1))
		v(&h)
		want += h.Sum()
	}
	if uint64(sum) != want {
		t.Errorf("checksum %d, want %d", uint64(sum), want)
	}
	// Stored values come back as stored, whatever the declared type.
	rows, err := db.QueryContext(ctx, "SELECT "+e.Stored(e.Quote("v"))+" FROM t ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var v any
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%T", v))
	}
	rows.Close()
	if want := "int64 float64 string []uint8 <nil> float64"; strings.Join(got, " ") != want {
		t.Errorf("stored types %q, want %q", strings.Join(got, " "), want)
	}
	db.Close()
	var mode string
	if err := setup.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "delete" {
		t.Errorf("journal mode after OpenPlain: %q %v, want delete", mode, err)
	}
	if _, err := os.Stat(path + "-wal"); !os.IsNotExist(err) {
		t.Errorf("OpenPlain left a WAL file: %v", err)
	}
}

// RowHash tells apart what verify must tell apart.
func TestRowHashSeesTypesAndBoundaries(t *testing.T) {
	hash := func(add func(h *engine.RowHash)) uint64 {
		h := engine.NewRowHash()
		add(&h)
		return h.Sum()
	}
	distinct := map[string]func(h *engine.RowHash){
		"int 1":       func(h *engine.RowHash) { h.Int(1) },
		"real 1":      func(h *engine.RowHash) { h.Real(1) },
		"text 1":      func(h *engine.RowHash) { h.Text([]byte("1")) },
		"blob 1":      func(h *engine.RowHash) { h.Blob([]byte("1")) },
		"null":        func(h *engine.RowHash) { h.Null() },
		"empty text":  func(h *engine.RowHash) { h.Text(nil) },
		"empty blob":  func(h *engine.RowHash) { h.Blob(nil) },
		"text NULL":   func(h *engine.RowHash) { h.Text([]byte("NULL")) },
		"ab, c":       func(h *engine.RowHash) { h.Text([]byte("ab")); h.Text([]byte("c")) },
		"a, bc":       func(h *engine.RowHash) { h.Text([]byte("a")); h.Text([]byte("bc")) },
		"8 bytes":     func(h *engine.RowHash) { h.Text([]byte("12345678")) },
		"8 bytes + 0": func(h *engine.RowHash) { h.Text([]byte("12345678\x00")) },
		"true":        func(h *engine.RowHash) { h.Bool(true) },
		"time 1":      func(h *engine.RowHash) { h.TimeMicros(1) },
		"int 1, null": func(h *engine.RowHash) { h.Int(1); h.Null() },
		"null, int 1": func(h *engine.RowHash) { h.Null(); h.Int(1) },
	}
	seen := map[uint64]string{}
	for name, add := range distinct {
		s := hash(add)
		if other, dup := seen[s]; dup {
			t.Errorf("%s and %s hash alike", name, other)
		}
		seen[s] = name
	}
	if hash(func(h *engine.RowHash) { h.Real(0) }) != hash(func(h *engine.RowHash) { h.Real(math.Copysign(0, -1)) }) {
		t.Errorf("0.0 and -0.0 hash differently")
	}
}
