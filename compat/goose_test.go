package compat_test

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
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
		migrate := func(what string, f func(context.Context, *sql.DB, string, ...goose.OptionsFunc) error) {
			t.Helper()
			if err := f(ctx, p.db, dir); err != nil {
				t.Fatalf("goose %s: %v\n%s", what, err, pendingRecords(p))
			}
		}
		migrate("up", goose.UpContext)
		p.identical(t)
		migrate("down", goose.DownContext)
		migrate("up again", goose.UpContext)
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

// pendingRecords renders the intent records each database holds, for a
// failure's message.
func pendingRecords(p *pair) string {
	var b strings.Builder
	for _, side := range []struct {
		name string
		db   *sql.DB
	}{{"foo", p.foo}, {"bar", p.bar}} {
		rows, err := side.db.Query(`SELECT txid, tbl, pk FROM _tandem_pending ORDER BY txid, tbl, pk`)
		if err != nil {
			fmt.Fprintf(&b, "%s: %v\n", side.name, err)
			continue
		}
		for rows.Next() {
			var txid, tbl, pk string
			rows.Scan(&txid, &tbl, &pk)
			fmt.Fprintf(&b, "%s holds %s %s %s\n", side.name, txid, tbl, pk)
		}
		rows.Close()
		if p.engine != "postgres" {
			continue
		}
		act, err := side.db.Query(`SELECT pid, coalesce(state, ''), coalesce(wait_event_type, ''), coalesce(wait_event, ''), now() - xact_start, left(query, 120)
			FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() ORDER BY pid`)
		if err != nil {
			fmt.Fprintf(&b, "%s activity: %v\n", side.name, err)
			continue
		}
		for act.Next() {
			var pid int
			var state, wt, w, age, q string
			act.Scan(&pid, &state, &wt, &w, &age, &q)
			fmt.Fprintf(&b, "%s pid %d %s wait %s/%s xact %s: %s\n", side.name, pid, state, wt, w, age, q)
		}
		act.Close()
	}
	return b.String()
}
