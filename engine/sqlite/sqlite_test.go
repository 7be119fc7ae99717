package sqlite_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/tandemdb/tandem/engine"
	"github.com/tandemdb/tandem/engine/sqlite"
)

// Every logical type survives Value, a round trip through a file, and Scan,
// read the way catch-up reads rows (into interface values); and text that
// looks like a time stays text.
func TestValueAndScanRoundTripEveryType(t *testing.T) {
	ctx := context.Background()
	e := sqlite.Engine{}
	dsn, err := e.ResolveDSN("t.db", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	conn, err := e.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	table := engine.Table{Name: "t", PK: []string{"i"}, Columns: []engine.Column{
		{Name: "i", Type: engine.Integer, NotNull: true},
		{Name: "r", Type: engine.Real},
		{Name: "s", Type: engine.Text, Size: 40},
		{Name: "u", Type: engine.Text},
		{Name: "b", Type: engine.Blob},
		{Name: "ok", Type: engine.Bool},
		{Name: "at", Type: engine.Time},
		{Name: "null_at", Type: engine.Time},
	}}
	for _, stmt := range e.CreateTable(&table) {
		if _, err := conn.Write.ExecContext(ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}
	at := time.Date(2026, 11, 26, 10, 0, 0, 123456000, time.UTC)
	row := []any{int64(-7), 2.5, "2026-01-01T00:00:00Z", "2026-01-01T00:00:00.5Z", []byte{0, 1, 2}, true, at, nil}
	args := make([]any, len(row))
	for i := range row {
		if args[i], err = e.Value(&table.Columns[i], row[i]); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := conn.Write.ExecContext(ctx, e.Upsert(&table), args...); err != nil {
		t.Fatal(err)
	}
	raw := make([]any, len(row))
	ptrs := make([]any, len(row))
	for i := range raw {
		ptrs[i] = &raw[i]
	}
	if err := conn.Read.QueryRowContext(ctx, `SELECT i, r, s, u, b, ok, at, null_at FROM t`).Scan(ptrs...); err != nil {
		t.Fatal(err)
	}
	for i, c := range table.Columns {
		got, err := e.Scan(&c, raw[i])
		if err != nil {
			t.Errorf("Scan %s (%T %v): %v", c.Name, raw[i], raw[i], err)
			continue
		}
		switch want := row[i].(type) {
		case []byte:
			if !bytes.Equal(got.([]byte), want) {
				t.Errorf("%s: got %v, want %v", c.Name, got, want)
			}
		case time.Time:
			if g, ok := got.(time.Time); !ok || !g.Equal(want) || g.Location() != time.UTC {
				t.Errorf("%s: got %#v, want %v in UTC", c.Name, got, want)
			}
		default:
			if got != want {
				t.Errorf("%s: got %#v, want %#v", c.Name, got, want)
			}
		}
	}
	tables, err := e.Tables(ctx, conn.Read)
	if err != nil || len(tables) != 1 {
		t.Fatalf("Tables: %v %v", tables, err)
	}
	for i, c := range tables[0].Columns {
		if c.Logical != table.Columns[i].Type {
			t.Errorf("column %s declared %s reads back as %v, want %v", c.Name, c.Type, c.Logical, table.Columns[i].Type)
		}
	}
}

// TestRegisteredAsSqlite: importing the package is what a program does to
// open datasources with driver "sqlite".
func TestRegisteredAsSqlite(t *testing.T) {
	e, ok := engine.Lookup("sqlite")
	if !ok || e != (sqlite.Engine{}) || e.Name() != "sqlite" {
		t.Fatalf(`engine.Lookup("sqlite") = %#v, %v; want sqlite.Engine{}`, e, ok)
	}
}
