package soak

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tandemdb/tandem"
	"github.com/tandemdb/tandem/internal/jepsen"
	"github.com/tandemdb/tandem/internal/testcluster"
)

// checkedPair builds two identical SQLite databases through tandem: the
// bank set up, and 20 values inserted, each acknowledged with its id. It
// returns the config's path and the acknowledgements.
func checkedPair(t *testing.T) (string, map[string]int64) {
	t.Helper()
	path := testcluster.Config(t)
	c := testcluster.Open(t, path, tandem.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	ctx := context.Background()
	if err := (jepsen.Unique{}).Setup(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := (jepsen.Bank{Accounts: accounts, Balance: balance}).Setup(ctx, c); err != nil {
		t.Fatal(err)
	}
	acked := map[string]int64{}
	for i := range 20 {
		it := &jepsen.UniqueItem{Val: fmt.Sprintf("w1.1-%d", i+1)}
		if err := c.Save(ctx, it); err != nil {
			t.Fatal(err)
		}
		acked[it.Val] = it.ID
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	return path, acked
}

// damage runs statements on one database file directly, bypassing tandem.
func damage(t *testing.T, file string, stmts ...string) {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+file)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range stmts {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// readOnly opens a SQLite file read-only as the node called name.
func readOnly(t *testing.T, name, file string) jepsen.Node {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+file+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return jepsen.SQLNode(name, db)
}

func TestCheckFindsLostWritesDivergentRowsAndBrokenTotals(t *testing.T) {
	for _, tc := range []struct {
		name        string
		foo, bar    []string // statements run on each database
		badReads    []string
		lost        []string
		divergent   bool
		invariant   bool
		problemsSay []string
	}{
		{name: "healthy"},
		{
			name: "acknowledged write lost on bar",
			bar:  []string{"DELETE FROM jepsen_unique WHERE val = 'w1.1-7'"},
			lost: []string{"w1.1-7"}, divergent: true,
			problemsSay: []string{"bar: 1 acknowledged values missing: w1.1-7 (id 7)", "id 7 differs between nodes", "verify: table jepsen_unique: missing id=7 on bar"},
		},
		{
			// Two processes each took bar and foo as the primary: both
			// assigned id 21, to different values.
			name: "one id, two values",
			foo:  []string{"INSERT INTO jepsen_unique (id, val) VALUES (21, 'w1.2-1')"},
			bar:  []string{"INSERT INTO jepsen_unique (id, val) VALUES (21, 'w2.2-1')"},
			lost: []string{"w1.2-1", "w2.2-1"}, divergent: true,
			problemsSay: []string{"id 21 acknowledged for 2 values: w1.2-1, w2.2-1", `id 21 differs between nodes: foo: "w1.2-1", bar: "w2.2-1"`},
		},
		{
			name:        "unacknowledged row on one database only",
			bar:         []string{"INSERT INTO jepsen_unique (id, val) VALUES (99, 'w1.1-99')"},
			divergent:   true,
			problemsSay: []string{`id 99 differs between nodes: foo: no row, bar: "w1.1-99"`, "verify: table jepsen_unique: extra id=99 on bar"},
		},
		{
			name:        "accounts differ, totals intact",
			bar:         []string{"UPDATE jepsen_account SET balance = balance - 5 WHERE id = 1", "UPDATE jepsen_account SET balance = balance + 5 WHERE id = 2"},
			divergent:   true,
			problemsSay: []string{"accounts differ between databases: foo {1:100 2:100", "bar {1:95 2:105"},
		},
		{
			name:        "bank total broken on both",
			foo:         []string{"UPDATE jepsen_account SET balance = balance + 10 WHERE id = 3"},
			bar:         []string{"UPDATE jepsen_account SET balance = balance + 10 WHERE id = 3"},
			invariant:   true,
			problemsSay: []string{"foo: total 810, want 800", "bar: total 810, want 800"},
		},
		{
			name:        "a wrong read through the cluster",
			badReads:    []string{"w2.1 at 10:00:00.000: total 790, want 800"},
			invariant:   true,
			problemsSay: []string{"wrong read through the cluster: w2.1 at 10:00:00.000: total 790, want 800"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path, acked := checkedPair(t)
			dir := filepath.Dir(path)
			damage(t, filepath.Join(dir, "foo.db"), tc.foo...)
			damage(t, filepath.Join(dir, "bar.db"), tc.bar...)
			if tc.name == "one id, two values" {
				acked["w1.2-1"], acked["w2.2-1"] = 21, 21
			}
			nodes := []jepsen.Node{readOnly(t, "foo", filepath.Join(dir, "foo.db")), readOnly(t, "bar", filepath.Join(dir, "bar.db"))}
			f, err := Check(context.Background(), testcluster.LoadConfig(t, path), nodes,
				Expect{Acked: acked, BadReads: tc.badReads, Accounts: accounts, Total: accounts * balance})
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(f.Lost) != fmt.Sprint(tc.lost) || f.Divergent != tc.divergent || f.Invariant != tc.invariant {
				t.Errorf("lost %v divergent %v invariant %v; want %v %v %v", f.Lost, f.Divergent, f.Invariant, tc.lost, tc.divergent, tc.invariant)
			}
			all := strings.Join(f.Problems, "\n")
			for _, p := range tc.problemsSay {
				if !strings.Contains(all, p) {
					t.Errorf("problems do not say %q:\n%s", p, all)
				}
			}
			if f.OK() != (tc.name == "healthy") {
				t.Errorf("OK() = %v:\n%s", f.OK(), all)
			}
		})
	}
}

func TestDumpWritesTheRowsTheChecksRead(t *testing.T) {
	path, _ := checkedPair(t)
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(filepath.Dir(path), "foo.db")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	out := filepath.Join(t.TempDir(), "foo.rows")
	if err := (&datasource{name: "foo", read: db}).dump(context.Background(), out); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"unique\t1\tw1.1-1\n", "unique\t20\tw1.1-20\n", "account\t8\t100\n", "meta\tnode_id\t"} {
		if !strings.Contains(string(b), line) {
			t.Errorf("the dump lacks %q:\n%s", line, b)
		}
	}
}
