package compat_test

import (
	"context"
	"database/sql"
	"testing"

	"github.com/pressly/goose/v3"
)

// goose migrations through tandem's driver: each runs in a transaction
// (its DDL and its rows on every database, in order), with a column added
// with a volatile default on PostgreSQL; down and up again; then the fault
// run on the migrated table.
func TestGoose(t *testing.T) {
	onBoth(t, func(t *testing.T, p *pair) {
		ctx := context.Background()
		dialect, dir := "sqlite3", "testdata/goose/sqlite"
		insert := `INSERT INTO goose_items (v) VALUES (?)`
		if p.engine == "postgres" {
			dialect, dir, insert = "postgres", "testdata/goose/postgres", `INSERT INTO goose_items (v) VALUES ($1)`
		}
		goose.SetLogger(goose.NopLogger())
		if err := goose.SetDialect(dialect); err != nil {
			t.Fatal(err)
		}
		if err := goose.UpContext(ctx, p.db, dir); err != nil {
			for name, db := range map[string]*sql.DB{"foo": p.foo, "bar": p.bar} {
				rows, _ := db.Query(`SELECT * FROM _tandem_pending`)
				cols, _ := rows.Columns()
				for rows.Next() {
					vals := make([]any, len(cols))
					ptrs := make([]any, len(cols))
					for i := range vals {
						ptrs[i] = &vals[i]
					}
					rows.Scan(ptrs...)
					t.Logf("DEBUG %s %v", name, vals)
				}
				rows.Close()
			}
			t.Fatal(err)
		}
		p.identical(t)
		if err := goose.DownContext(ctx, p.db, dir); err != nil {
			t.Fatal(err)
		}
		if err := goose.UpContext(ctx, p.db, dir); err != nil {
			t.Fatal(err)
		}
		version, err := goose.GetDBVersionContext(ctx, p.db)
		if err != nil || version != 2 {
			t.Fatalf("version %d, %v; want 2", version, err)
		}
		var n int
		if err := p.db.QueryRowContext(ctx, `SELECT count(*) FROM goose_items WHERE v < 0`).Scan(&n); err != nil || n != 2 {
			t.Fatalf("seed rows %d, %v; want 2", n, err)
		}
		p.identical(t)
		p.faultRun(t, "goose_items", func(ctx context.Context, v int64) error {
			_, err := p.db.ExecContext(ctx, insert, v)
			return err
		})
	})
}
