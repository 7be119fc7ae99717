// Package testcluster builds throw-away tandem clusters on SQLite files for
// tests, and compares the databases behind them row for row.
package testcluster

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	_ "github.com/ncruces/go-sqlite3/driver"

	"github.com/tandemdb/tandem"
	_ "github.com/tandemdb/tandem/engine/sqlite" // the "sqlite" driver its configs name
	"github.com/tandemdb/tandem/verify"
)

// Config writes a config file for SQLite datasources named names (default
// foo and bar) in a new temporary directory and returns its path.
func Config(t testing.TB, names ...string) string {
	t.Helper()
	if len(names) == 0 {
		names = []string{"foo", "bar"}
	}
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString("datasources:\n")
	for _, n := range names {
		fmt.Fprintf(&b, "  - name: %s\n    driver: sqlite\n    dsn: %s.db\n", n, n)
	}
	path := filepath.Join(dir, "tandem.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// Open loads the config at path and opens a cluster closed at test end.
func Open(t testing.TB, path string, opts ...tandem.Option) *tandem.Cluster {
	t.Helper()
	cfg, err := tandem.LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := tandem.Open(context.Background(), cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// New writes a two-file config and opens it.
func New(t testing.TB, opts ...tandem.Option) (*tandem.Cluster, string) {
	t.Helper()
	path := Config(t)
	return Open(t, path, opts...), path
}

// Dump reads every row of every user table of a SQLite file, in primary-key
// order, as text: one line per row, each value as SQLite's quote() renders
// it (so 1, 1.0, '1' and X'01' all differ). Two files hold identical rows
// exactly when their dumps are equal.
func Dump(t testing.TB, file string) string {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+file+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	names := strings1(t, db, `SELECT name FROM sqlite_schema WHERE type='table' AND name NOT LIKE 'sqlite\_%' ESCAPE '\' AND name NOT LIKE '\_tandem\_%' ESCAPE '\' ORDER BY name`)
	var b strings.Builder
	for _, name := range names {
		fmt.Fprintf(&b, "table %s\n", name)
		cols := strings1(t, db, `SELECT name FROM pragma_table_info(?) ORDER BY cid`, name)
		pk := strings1(t, db, `SELECT name FROM pragma_table_info(?) WHERE pk > 0 ORDER BY pk`, name)
		if len(pk) == 0 {
			pk = cols
		}
		quoted := make([]string, len(cols))
		for i, c := range cols {
			quoted[i] = fmt.Sprintf(`quote(%q)`, c)
		}
		order := make([]string, len(pk))
		for i, c := range pk {
			order[i] = fmt.Sprintf("%q", c)
		}
		q := fmt.Sprintf(`SELECT %s FROM %q ORDER BY %s`, strings.Join(quoted, " || ',' || "), name, strings.Join(order, ", "))
		for _, row := range strings1(t, db, q) {
			b.WriteString(row + "\n")
		}
	}
	return b.String()
}

// DumpDir dumps name.db in dir for each name; see Dump.
func DumpDir(t testing.TB, dir string, names ...string) []string {
	t.Helper()
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = Dump(t, filepath.Join(dir, n+".db"))
	}
	return out
}

func strings1(t testing.TB, db *sql.DB, q string, args ...any) []string {
	t.Helper()
	rows, err := db.Query(q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// Count returns the number of rows in table of a SQLite file.
func Count(t testing.TB, file, table string) int {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+file+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(fmt.Sprintf("SELECT COUNT(*) FROM %q", table)).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// LoadConfig loads the config file at path, failing the test on an error.
func LoadConfig(t testing.TB, path string) *tandem.Config {
	t.Helper()
	cfg, err := tandem.LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// Verify compares the datasources of the config file at path
// (verify.Compare), failing the test on an error.
func Verify(t testing.TB, path string, tables ...string) *verify.Report {
	t.Helper()
	rep, err := verify.Compare(context.Background(), LoadConfig(t, path), verify.Options{Tables: tables})
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	return rep
}

// Diffs renders a report's differences as "table kind key columns" lines.
func Diffs(rep *verify.Report) []string {
	var out []string
	for _, tr := range rep.Tables {
		for _, d := range tr.Differences {
			out = append(out, strings.TrimSpace(fmt.Sprintf("%s %s %s %s", tr.Table, d.Kind, d.Key, strings.Join(d.Columns, ","))))
		}
	}
	return out
}

// SameLines fails the test unless got and want hold the same lines, in any
// order.
func SameLines(t testing.TB, what string, got, want []string) {
	t.Helper()
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("%s:\ngot  %q\nwant %q", what, got, want)
	}
}
