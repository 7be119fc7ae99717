package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tandemdb/tandem"
	"github.com/tandemdb/tandem/internal/testcluster"
)

// appFiles makes foo.db and bar.db as an application that never knew
// tandem left them: its own tables (one without a key) and rows, the
// same on both unless differ names a row to change on bar.
func appFiles(t *testing.T, dir, differ string) {
	t.Helper()
	for _, name := range []string{"foo", "bar"} {
		db, err := sql.Open("sqlite3", "file:"+filepath.Join(dir, name+".db"))
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range []string{
			`CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, since DATETIME)`,
			`CREATE TABLE log (at TEXT, line TEXT)`,
			`INSERT INTO customers VALUES (1, 'Ann', '2020-01-02 03:04:05'), (2, 'Bob', NULL)`,
			`INSERT INTO log VALUES ('2020', 'opened')`,
		} {
			if _, err := db.Exec(q); err != nil {
				t.Fatal(err)
			}
		}
		if name == "bar" && differ != "" {
			if _, err := db.Exec(`UPDATE customers SET name = 'Robert' WHERE name = ?`, differ); err != nil {
				t.Fatal(err)
			}
		}
		db.Close()
	}
}

func TestAdoptTakesIdenticalDatabasesWithoutRewritingThem(t *testing.T) {
	dir := t.TempDir()
	appFiles(t, dir, "")
	path := writeConfig(t, dir, twoFiles)
	before := testcluster.Dump(t, filepath.Join(dir, "foo.db"))

	code, out, errs := runT(t, "adopt", "--config", path)
	if code != 0 {
		t.Fatalf("adopt: exit %d\n%s%s", code, out, errs)
	}
	if !strings.Contains(out, "adopted: 1 table identical") || !strings.Contains(out, "without a primary key, whose writes tandem refuses until they have one: log") {
		t.Errorf("adopt said:\n%s", out)
	}
	// Again, with --json: capture is there already; the same answer.
	code, out, errs = runT(t, "adopt", "--config", path, "--json")
	var got struct {
		Adopted bool     `json:"adopted"`
		Tables  int      `json:"tables"`
		Keyless []string `json:"keyless"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil || code != 0 || !got.Adopted || got.Tables != 1 || !slices.Equal(got.Keyless, []string{"log"}) {
		t.Errorf("adopt --json: exit %d, %+v (%v)\n%s%s", code, got, err, out, errs)
	}
	for _, f := range []string{"foo", "bar"} {
		if got := testcluster.Dump(t, filepath.Join(dir, f+".db")); got != before {
			t.Errorf("%s.db's rows changed:\nbefore %q\nafter  %q", f, before, got)
		}
	}
	// A write around tandem is refused; one through it reaches both.
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(dir, "bar.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`UPDATE customers SET name = 'x'`); err == nil {
		t.Error("a write on bar.db around tandem was accepted")
	}
	ctx := context.Background()
	c, err := tandem.Open(ctx, testcluster.LoadConfig(t, path))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, `UPDATE customers SET since = CURRENT_TIMESTAMP WHERE id = 2`); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, `INSERT INTO log VALUES ('now', 'x')`); err == nil || !strings.Contains(err.Error(), "log has no primary key") {
		t.Errorf("a write to the keyless table = %v, want refused", err)
	}
	c.Close()
	dumps := testcluster.DumpDir(t, dir, "foo", "bar")
	if dumps[0] != dumps[1] || dumps[0] == before {
		t.Errorf("after a write through tandem:\nfoo %q\nbar %q", dumps[0], dumps[1])
	}
}

func TestAdoptRefusesDatabasesThatDiffer(t *testing.T) {
	dir := t.TempDir()
	appFiles(t, dir, "Bob")
	path := writeConfig(t, dir, twoFiles)
	code, out, errs := runT(t, "adopt", "--config", path)
	if code != 1 || !strings.Contains(errs, "tandem repair") || !strings.Contains(out, "customers: 1 differing row") {
		t.Fatalf("adopt: exit %d\n%s%s", code, out, errs)
	}
	code, out, _ = runT(t, "adopt", "--config", path, "--json")
	var got struct {
		Adopted     bool `json:"adopted"`
		Differences *struct {
			Identical bool `json:"identical"`
		} `json:"differences"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil || code != 1 || got.Adopted || got.Differences == nil || got.Differences.Identical {
		t.Errorf("adopt --json of databases that differ: exit %d, %+v (%v)\n%s", code, got, err, out)
	}
	// Nothing installed: a write around tandem still goes through.
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(dir, "bar.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`UPDATE customers SET name = 'Bob' WHERE id = 2`); err != nil {
		t.Errorf("a write on bar.db after a refused adopt: %v", err)
	}
}
