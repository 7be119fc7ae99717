package verify_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tandemdb/tandem"
	"github.com/tandemdb/tandem/internal/testcluster"
	"github.com/tandemdb/tandem/verify"
)

// vfPair creates SQLite files a.db and b.db in a new directory, runs
// schema on both, and returns the config path and connections to both.
func vfPair(t testing.TB, schema string) (cfg string, a, b *sql.DB) {
	t.Helper()
	dir := t.TempDir()
	cfg = filepath.Join(dir, "tandem.yaml")
	yaml := "datasources:\n  - name: a\n    driver: sqlite\n    dsn: a.db\n  - name: b\n    driver: sqlite\n    dsn: b.db\n"
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	open := func(name string) *sql.DB {
		db, err := sql.Open("sqlite3", vfURI(filepath.Join(dir, name)))
		if err != nil {
			t.Fatal(err)
		}
		db.SetMaxOpenConns(1)
		t.Cleanup(func() { db.Close() })
		vfExec(t, db, schema)
		return db
	}
	return cfg, open("a.db"), open("b.db")
}

// vfURI is the driver's URI of a file path (fuzz tests' directories
// hold a '#').
func vfURI(path string) string {
	return "file:" + strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
}

func vfExec(t testing.TB, db *sql.DB, stmts ...string) {
	t.Helper()
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

func vfLoad(t testing.TB, path string) *tandem.Config {
	t.Helper()
	cfg, err := tandem.LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// vfModes runs f with Verify comparing inside the databases (the engines
// match) and in Go (as across engines).
func vfModes(t *testing.T, f func(t *testing.T, inGo bool)) {
	for _, inGo := range []bool{false, true} {
		name := "in-database"
		if inGo {
			name = "in-go"
		}
		t.Run(name, func(t *testing.T) { f(t, inGo) })
	}
}

func vfVerify(t testing.TB, cfg string, inGo bool, tables ...string) *verify.Report {
	t.Helper()
	opts := verify.Options{Tables: tables}
	if inGo {
		verify.CompareInGo(&opts)
	}
	rep, err := verify.Compare(context.Background(), vfLoad(t, cfg), opts)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	return rep
}

func vfRepair(t testing.TB, cfg string, inGo, dryRun bool) (int, []string) {
	t.Helper()
	var changes []string
	opts := verify.RepairOptions{From: "a", To: "b", DryRun: dryRun, Change: func(c verify.RowChange) { changes = append(changes, c.String()) }}
	if inGo {
		verify.RepairInGo(&opts)
	}
	rep, err := verify.Repair(context.Background(), vfLoad(t, cfg), opts)
	if err != nil {
		t.Fatalf("repair: %v", err)
	}
	return rep.Changes, changes
}

// vfOracle lists the differences between a.db and b.db as SQLite itself
// sees them: ATTACH and a join per table, a column differing when its
// values are not IS-equal or their types differ. It shares no code with
// Verify.
func vfOracle(t testing.TB, cfg, table string, key []string, cols []string) []string {
	t.Helper()
	dir := filepath.Dir(cfg)
	db, err := sql.Open("sqlite3", vfURI(filepath.Join(dir, "a.db")))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	vfExec(t, db, fmt.Sprintf("ATTACH '%s' AS b", filepath.Join(dir, "b.db")))
	on := make([]string, len(key))
	for i, k := range key {
		on[i] = fmt.Sprintf("x.%s = y.%s", k, k)
	}
	join := strings.Join(on, " AND ")
	var lines []string
	q := func(kind, query string) {
		rows, err := db.Query(query)
		if err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		defer rows.Close()
		for rows.Next() {
			var k, c string
			if err := rows.Scan(&k, &c); err != nil {
				t.Fatal(err)
			}
			lines = append(lines, strings.TrimSpace(fmt.Sprintf("%s %s %s %s", table, kind, k, c)))
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
	}
	keyText := func(alias string) string {
		parts := make([]string, len(key))
		for i, k := range key {
			parts[i] = fmt.Sprintf("'%s=' || quote(%s.%s)", k, alias, k)
		}
		if len(parts) == 1 {
			return parts[0]
		}
		return "'(' || " + strings.Join(parts, " || ', ' || ") + " || ')'"
	}
	var changed []string
	for _, c := range cols {
		changed = append(changed, fmt.Sprintf("CASE WHEN x.%s IS NOT y.%s OR typeof(x.%s) <> typeof(y.%s) THEN '%s,' ELSE '' END", c, c, c, c, c))
	}
	q("missing", fmt.Sprintf("SELECT %s, '' FROM main.%s x WHERE NOT EXISTS (SELECT 1 FROM b.%s y WHERE %s)", keyText("x"), table, table, join))
	q("extra", fmt.Sprintf("SELECT %s, '' FROM b.%s y WHERE NOT EXISTS (SELECT 1 FROM main.%s x WHERE %s)", keyText("y"), table, table, join))
	q("changed", fmt.Sprintf("SELECT %s, rtrim(%s, ',') AS c FROM main.%s x JOIN b.%s y ON %s WHERE c <> ''", keyText("x"), strings.Join(changed, " || "), table, table, join))
	return lines
}

func TestVerifyFindsEveryMissingExtraAndChangedRow(t *testing.T) {
	vfModes(t, func(t *testing.T, inGo bool) {
		cfg, a, b := vfPair(t, `CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT, price REAL, qty INTEGER, data BLOB)`)
		for _, db := range []*sql.DB{a, b} {
			vfExec(t, db, `WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 20000)
				INSERT INTO item SELECT i, 'name ' || i, i * 0.5, i % 7, x'00ff' FROM s`)
		}
		rep := vfVerify(t, cfg, inGo)
		if !rep.Identical || len(rep.Tables) != 1 || rep.Tables[0].Rows["a"] != 20000 || rep.Tables[0].Rows["b"] != 20000 {
			t.Fatalf("identical copies: identical=%v, rows %v, %d differences", rep.Identical, rep.Tables[0].Rows, len(testcluster.Diffs(rep)))
		}
		vfExec(t, b,
			`UPDATE item SET name = 'changed' WHERE id = 1`,
			`UPDATE item SET price = price + 0.25, qty = NULL WHERE id = 10000`,
			`UPDATE item SET data = x'00fe' WHERE id = 20000`,
			`DELETE FROM item WHERE id IN (5, 6, 7, 15000)`,
			`INSERT INTO item VALUES (0, 'zero', 0, 0, NULL), (20001, 'new', 1, 1, NULL), (-5, 'neg', 1, 1, NULL)`)
		rep = vfVerify(t, cfg, inGo)
		want := []string{
			"item changed id=1 name", "item changed id=10000 price,qty", "item changed id=20000 data",
			"item missing id=5", "item missing id=6", "item missing id=7", "item missing id=15000",
			"item extra id=0", "item extra id=20001", "item extra id=-5",
		}
		testcluster.SameLines(t, "differences", testcluster.Diffs(rep), want)
		testcluster.SameLines(t, "the oracle", vfOracle(t, cfg, "item", []string{"id"}, []string{"name", "price", "qty", "data"}), want)
		if rep.Identical || rep.Tables[0].Rows["a"] != 20000 || rep.Tables[0].Rows["b"] != 19999 {
			t.Errorf("counts: got %v identical=%v, want a 20000, b 19999, not identical", rep.Tables[0].Rows, rep.Identical)
		}
		// Sorted by key.
		var keys []string
		for _, d := range rep.Tables[0].Differences {
			keys = append(keys, d.Key.String())
		}
		if wantOrder := []string{"id=-5", "id=0", "id=1", "id=5", "id=6", "id=7", "id=10000", "id=15000", "id=20000", "id=20001"}; !slices.Equal(keys, wantOrder) {
			t.Errorf("order: got %v, want %v", keys, wantOrder)
		}
	})
}

// TestVerifyAgreesWithSQLiteOnRandomChanges makes random changes to random
// tables, of several key shapes, and checks Verify against vfOracle.
func TestVerifyAgreesWithSQLiteOnRandomChanges(t *testing.T) {
	shapes := []struct {
		name, schema string
		key, cols    []string
		row          func(r *rand.Rand, i int) string // the VALUES of row i
	}{
		{"dense integer key", `CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT, n INTEGER)`, []string{"id"}, []string{"v", "n"},
			func(r *rand.Rand, i int) string { return fmt.Sprintf("(%d, 'v%d', %d)", i, r.IntN(1000), r.IntN(3)) }},
		{"sparse integer key", `CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT, n INTEGER)`, []string{"id"}, []string{"v", "n"},
			func(r *rand.Rand, i int) string {
				return fmt.Sprintf("(%d, 'v%d', %d)", int64(i)*int64(r.IntN(1<<20)+1)*1_000_003-int64(1)<<61, r.IntN(1000), r.IntN(3))
			}},
		{"text key", `CREATE TABLE t (code TEXT PRIMARY KEY, v TEXT, n REAL) WITHOUT ROWID`, []string{"code"}, []string{"v", "n"},
			func(r *rand.Rand, i int) string {
				return fmt.Sprintf("('k%07d-%d', 'v%d', %d.5)", i, r.IntN(9), r.IntN(1000), r.IntN(3))
			}},
		{"composite key", `CREATE TABLE t (a TEXT, b INTEGER, v TEXT, PRIMARY KEY (a, b))`, []string{"a", "b"}, []string{"v"},
			func(r *rand.Rand, i int) string { return fmt.Sprintf("('g%d', %d, 'v%d')", i%37, i, r.IntN(1000)) }},
	}
	for _, sh := range shapes {
		t.Run(sh.name, func(t *testing.T) {
			vfModes(t, func(t *testing.T, inGo bool) {
				seed := rand.Uint64()
				r := rand.New(rand.NewPCG(seed, 1))
				t.Logf("seed %d", seed)
				cfg, a, b := vfPair(t, sh.schema)
				const n = 6000
				var values []string
				for i := range n {
					values = append(values, sh.row(r, i))
				}
				for _, db := range []*sql.DB{a, b} {
					for chunk := range slices.Chunk(values, 500) {
						vfExec(t, db, "INSERT OR REPLACE INTO t VALUES "+strings.Join(chunk, ", "))
					}
				}
				// Random changes on either side, clustered and scattered.
				for range r.IntN(60) + 1 {
					db := a
					if r.IntN(2) == 0 {
						db = b
					}
					i := r.IntN(n)
					if r.IntN(4) == 0 { // a run of neighbours
						for j := i; j < min(n, i+r.IntN(300)); j++ {
							vfExec(t, db, "INSERT OR REPLACE INTO t VALUES "+sh.row(r, j))
						}
						continue
					}
					switch r.IntN(3) {
					case 0:
						key := strings.Join(sh.key, ", ")
						vfExec(t, db, fmt.Sprintf("DELETE FROM t WHERE (%s) IN (SELECT %s FROM t LIMIT 1 OFFSET %d)", key, key, i%5000))
					default:
						vfExec(t, db, "INSERT OR REPLACE INTO t VALUES "+sh.row(r, i))
					}
				}
				want := vfOracle(t, cfg, "t", sh.key, sh.cols)
				rep := vfVerify(t, cfg, inGo)
				testcluster.SameLines(t, fmt.Sprintf("%d differences", len(want)), testcluster.Diffs(rep), want)
				if rep.Identical != (len(want) == 0) {
					t.Errorf("identical = %v with %d differences", rep.Identical, len(want))
				}
				if n, _ := vfRepair(t, cfg, inGo, false); n != len(want) {
					t.Errorf("repair changed %d rows, want %d", n, len(want))
				}
				if rep := vfVerify(t, cfg, inGo); !rep.Identical {
					t.Errorf("after repair: %v", testcluster.Diffs(rep))
				}
				if left := vfOracle(t, cfg, "t", sh.key, sh.cols); len(left) > 0 {
					t.Errorf("after repair, SQLite sees: %v", left)
				}
			})
		})
	}
}

// TestVerifyComparesStoredValuesExactly covers values that look alike:
// NULL, the empty string and 'NULL'; the integer 1, the real 1.0 and the
// text '1' (a column without a declared type keeps each as stored); -0.0
// and 0.0; blobs; unicode; long text that differs in its last character.
func TestVerifyComparesStoredValuesExactly(t *testing.T) {
	long := strings.Repeat("ü漢字🙂", 100_000)
	cases := []struct {
		name   string
		a, b   string // SQL expressions of the value of column v
		differ bool
	}{
		{"NULL vs empty string", "NULL", "''", true},
		{"NULL vs 'NULL'", "NULL", "'NULL'", true},
		{"empty string vs 'NULL'", "''", "'NULL'", true},
		{"NULL vs NULL", "NULL", "NULL", false},
		{"integer vs real", "1", "1.0", true},
		{"integer vs text", "1", "'1'", true},
		{"real vs text", "1.5", "'1.5'", true},
		{"text vs blob", "'ab'", "x'6162'", true},
		{"-0.0 vs 0.0", "-0.0", "0.0", false},
		{"reals one ulp apart", "0.1", "0.1000000000000000055511151231257828", false},
		{"reals that differ in the last bit", "1.0000000000000002", "1.0", true},
		{"large integers", "9223372036854775807", "9223372036854775806", true},
		{"equal blobs", "x'00ff00'", "x'00ff00'", false},
		{"blobs differing in a byte", "x'00ff00'", "x'00ff01'", true},
		{"blob vs longer blob", "x'00'", "x'0000'", true},
		{"unicode", "'naïve café 🙂'", "'naïve café 🙂'", false},
		{"unicode normalisation", "'é'", "'e' || char(769)", true},
		{"long text, same", "'" + long + "'", "'" + long + "'", false},
		{"long text, last character", "'" + long + "'", "'" + long[:len(long)-4] + "🙃'", true},
		{"trailing space", "'x'", "'x '", true},
		{"case", "'X'", "'x'", true},
	}
	cfg, a, b := vfPair(t, `CREATE TABLE v (id INTEGER PRIMARY KEY, v)`)
	var want []string
	for i, c := range cases {
		vfExec(t, a, fmt.Sprintf("INSERT INTO v VALUES (%d, %s)", i, c.a))
		vfExec(t, b, fmt.Sprintf("INSERT INTO v VALUES (%d, %s)", i, c.b))
		if c.differ {
			want = append(want, fmt.Sprintf("v changed id=%d v", i))
		}
	}
	testcluster.SameLines(t, "the oracle (SQLite's typeof and IS)", vfOracle(t, cfg, "v", []string{"id"}, []string{"v"}), want)
	rep := vfVerify(t, cfg, false)
	got := testcluster.Diffs(rep)
	testcluster.SameLines(t, "differences", got, want)
	if t.Failed() {
		for _, line := range got {
			var id int
			fmt.Sscanf(line, "v changed id=%d", &id)
			t.Logf("reported: %s (%s)", line, cases[id].name)
		}
	}
	n, _ := vfRepair(t, cfg, false, false)
	if n != len(want) {
		t.Errorf("repair changed %d rows, want %d", n, len(want))
	}
	if rep := vfVerify(t, cfg, false); !rep.Identical {
		t.Errorf("after repair: %v", testcluster.Diffs(rep))
	}
	if left := vfOracle(t, cfg, "v", []string{"id"}, []string{"v"}); len(left) > 0 {
		t.Errorf("after repair, SQLite sees: %v", left)
	}
}

// TestVerifyComparesAfterAffinity: in typed columns SQLite converts a
// value to the column's affinity as it stores it, so values written
// differently but stored alike are equal, and a value it cannot convert
// stays as written and differs.
func TestVerifyComparesAfterAffinity(t *testing.T) {
	vfModes(t, func(t *testing.T, inGo bool) {
		cfg, a, b := vfPair(t, `CREATE TABLE w (id INTEGER PRIMARY KEY, i INTEGER, r REAL, s TEXT)`)
		vfExec(t, a, `INSERT INTO w VALUES (1, '1', 1, 1), (2, 2, 2.5, 'x'), (3, 3, 3, 'y')`)
		vfExec(t, b, `INSERT INTO w VALUES ('1', 1, '1.0', '1'), (2, 2.0, '2.5', 'x'), (3, 3, 3, 'Y')`)
		want := []string{"w changed id=3 s"}
		testcluster.SameLines(t, "the oracle", vfOracle(t, cfg, "w", []string{"id"}, []string{"i", "r", "s"}), want)
		testcluster.SameLines(t, "differences", testcluster.Diffs(vfVerify(t, cfg, inGo)), want)
	})
	cfg, a, b := vfPair(t, `CREATE TABLE w (id INTEGER PRIMARY KEY, i INTEGER)`)
	vfExec(t, a, `INSERT INTO w VALUES (1, 'abc'), (2, '2x')`)
	vfExec(t, b, `INSERT INTO w VALUES (1, 'abc'), (2, 2)`)
	want := []string{"w changed id=2 i"}
	testcluster.SameLines(t, "the oracle", vfOracle(t, cfg, "w", []string{"id"}, []string{"i"}), want)
	testcluster.SameLines(t, "text kept in an INTEGER column", testcluster.Diffs(vfVerify(t, cfg, false)), want)
}

// TestVerifyInGoComparesCanonicalValues is the comparison across engines:
// typed columns, values as tandem reads them (a TIMESTAMP as a time, a
// BOOLEAN as a bool).
func TestVerifyInGoComparesCanonicalValues(t *testing.T) {
	cfg, a, b := vfPair(t, `CREATE TABLE c (id INTEGER PRIMARY KEY, at TIMESTAMP, ok BOOLEAN, r REAL, x BLOB)`)
	vfExec(t, a, `INSERT INTO c VALUES (1, '2026-11-26T10:00:00.000000Z', 1, 1.5, x'01'), (2, '2026-11-26T10:00:00.000000Z', 0, -0.0, NULL), (3, NULL, NULL, NULL, x'')`)
	vfExec(t, b, `INSERT INTO c VALUES (1, '2026-11-26T10:00:00.000001Z', 1, 1.5, x'01'), (2, '2026-11-26T10:00:00.000000Z', 1, 0.0, NULL), (3, NULL, NULL, NULL, x'')`)
	want := []string{"c changed id=1 at", "c changed id=2 ok"}
	for _, inGo := range []bool{false, true} {
		testcluster.SameLines(t, fmt.Sprintf("in Go: %v", inGo), testcluster.Diffs(vfVerify(t, cfg, inGo)), want)
	}
	if n, _ := vfRepair(t, cfg, true, false); n != 2 {
		t.Errorf("repair changed %d rows, want 2", n)
	}
	if rep := vfVerify(t, cfg, false); !rep.Identical {
		t.Errorf("after repair, compared as stored: %v", testcluster.Diffs(rep))
	}
}

func TestVerifyEmptyAndOneSidedTables(t *testing.T) {
	vfModes(t, func(t *testing.T, inGo bool) {
		cfg, a, _ := vfPair(t, `CREATE TABLE e (id INTEGER PRIMARY KEY, v TEXT); CREATE TABLE f (k TEXT PRIMARY KEY, v TEXT)`)
		rep := vfVerify(t, cfg, inGo)
		if !rep.Identical || len(rep.Tables) != 2 || rep.Tables[0].Rows["a"] != 0 || rep.Tables[0].Rows["b"] != 0 {
			t.Fatalf("two empty tables: %+v", rep)
		}
		vfExec(t, a, `INSERT INTO e VALUES (1, 'x'), (9223372036854775807, 'max'), (-9223372036854775808, 'min')`, `INSERT INTO f VALUES ('', 'empty key'), ('k', NULL)`)
		rep = vfVerify(t, cfg, inGo)
		testcluster.SameLines(t, "one side empty", testcluster.Diffs(rep), []string{
			"e missing id=1", "e missing id=9223372036854775807", "e missing id=-9223372036854775808",
			"f missing k=''", "f missing k='k'",
		})
		vfRepair(t, cfg, inGo, false)
		if rep := vfVerify(t, cfg, inGo); !rep.Identical {
			t.Errorf("after repair: %v", testcluster.Diffs(rep))
		}
	})
}

func TestVerifyRefusesTablesItCannotCompare(t *testing.T) {
	for _, tc := range []struct {
		name, schemaA, schemaB string
		want                   []string // in the message
	}{
		{"table on one side only", `CREATE TABLE t (id INTEGER PRIMARY KEY); CREATE TABLE only_a (id INTEGER PRIMARY KEY)`, `CREATE TABLE t (id INTEGER PRIMARY KEY)`,
			[]string{"only_a", "on a, not on b"}},
		{"table on the other side only", `CREATE TABLE t (id INTEGER PRIMARY KEY)`, `CREATE TABLE t (id INTEGER PRIMARY KEY); CREATE TABLE only_b (id INTEGER PRIMARY KEY)`,
			[]string{"only_b", "on b, not on a"}},
		{"a column on one side only", `CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT, w TEXT)`, `CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)`,
			[]string{"table t", "column w is on a, not on b"}},
		{"a column of another type", `CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)`, `CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)`,
			[]string{"table t", "column v", "TEXT on a", "BLOB on b"}},
		{"another primary key", `CREATE TABLE t (a INTEGER, b INTEGER, PRIMARY KEY (a, b))`, `CREATE TABLE t (a INTEGER, b INTEGER, PRIMARY KEY (b, a))`,
			[]string{"table t", "primary key position"}},
		{"no primary key", `CREATE TABLE log (at TEXT, msg TEXT)`, `CREATE TABLE log (at TEXT, msg TEXT)`,
			[]string{"table log has no primary key"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, a, b := vfPair(t, "SELECT 1")
			vfExec(t, a, tc.schemaA)
			vfExec(t, b, tc.schemaB)
			before := vfDumps(t, cfg)
			_, err := verify.Compare(context.Background(), vfLoad(t, cfg), verify.Options{})
			if !errors.Is(err, tandem.ErrSchemaMismatch) {
				t.Fatalf("got %v, want ErrSchemaMismatch", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			_, err = verify.Repair(context.Background(), vfLoad(t, cfg), verify.RepairOptions{From: "a", To: "b"})
			if !errors.Is(err, tandem.ErrSchemaMismatch) {
				t.Errorf("repair: got %v, want ErrSchemaMismatch", err)
			}
			if after := vfDumps(t, cfg); !slices.Equal(before, after) {
				t.Errorf("the files changed")
			}
		})
	}
	t.Run("a table named that is nowhere", func(t *testing.T) {
		cfg, _, _ := vfPair(t, `CREATE TABLE t (id INTEGER PRIMARY KEY)`)
		_, err := verify.Compare(context.Background(), vfLoad(t, cfg), verify.Options{Tables: []string{"nope"}})
		if err == nil || !strings.Contains(err.Error(), "nope") {
			t.Errorf("got %v, want an error naming nope", err)
		}
	})
	t.Run("a table without a key left out", func(t *testing.T) {
		cfg, a, _ := vfPair(t, `CREATE TABLE log (msg TEXT); CREATE TABLE t (id INTEGER PRIMARY KEY)`)
		vfExec(t, a, `INSERT INTO log VALUES ('only on a')`)
		if rep := vfVerify(t, cfg, false, "t"); !rep.Identical || len(rep.Tables) != 1 {
			t.Errorf("--table t: %+v", rep)
		}
	})
	t.Run("an unreachable datasource", func(t *testing.T) {
		cfg, _, _ := vfPair(t, `CREATE TABLE t (id INTEGER PRIMARY KEY)`)
		if err := os.Remove(filepath.Join(filepath.Dir(cfg), "b.db")); err != nil {
			t.Fatal(err)
		}
		_, err := verify.Compare(context.Background(), vfLoad(t, cfg), verify.Options{})
		if !errors.Is(err, tandem.ErrNodeDown) || !strings.Contains(err.Error(), "datasource b") {
			t.Errorf("got %v, want ErrNodeDown naming datasource b", err)
		}
		if _, err := os.Stat(filepath.Join(filepath.Dir(cfg), "b.db")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("verify created b.db: %v", err)
		}
	})
}

// vfDumps returns the contents of both files.
func vfDumps(t testing.TB, cfg string) []string {
	t.Helper()
	var out []string
	for _, f := range []string{"a.db", "b.db"} {
		b, err := os.ReadFile(filepath.Join(filepath.Dir(cfg), f))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(b))
	}
	return out
}

func TestRepairDryRunWritesNothing(t *testing.T) {
	cfg, a, b := vfPair(t, `CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)`)
	vfExec(t, a, `INSERT INTO t VALUES (1, 'one'), (2, 'two'), (3, 'three')`)
	vfExec(t, b, `INSERT INTO t VALUES (2, 'TWO'), (3, 'three'), (4, 'four')`)
	before := vfDumps(t, cfg)
	n, changes := vfRepair(t, cfg, false, true)
	want := []string{"insert b.t id=1", "update b.t id=2 (v)", "delete b.t id=4"}
	if n != 3 || !slices.Equal(changes, want) {
		t.Errorf("dry run: %d changes %q, want %q", n, changes, want)
	}
	if after := vfDumps(t, cfg); !slices.Equal(before, after) {
		t.Errorf("a dry run changed the files")
	}
	n, changes = vfRepair(t, cfg, false, false)
	if n != 3 || !slices.Equal(changes, want) {
		t.Errorf("repair: %d changes %q, want %q", n, changes, want)
	}
	if rep := vfVerify(t, cfg, false); !rep.Identical {
		t.Errorf("after repair: %v", testcluster.Diffs(rep))
	}
	if n, _ := vfRepair(t, cfg, false, false); n != 0 {
		t.Errorf("a second repair changed %d rows", n)
	}
}

func TestVerifySameFileUnderTwoNames(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "tandem.yaml")
	if err := os.WriteFile(cfg, []byte("datasources:\n  - {name: a, driver: sqlite, dsn: a.db}\n  - {name: b, driver: sqlite, dsn: ./sub/../a.db}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite3", vfURI(filepath.Join(dir, "a.db")))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	vfExec(t, db, `CREATE TABLE t (id INTEGER PRIMARY KEY)`, `INSERT INTO t VALUES (1)`)
	rep := vfVerify(t, cfg, false)
	if !rep.Identical || rep.Aliases["b"] != "a" {
		t.Errorf("one file under two names: %+v", rep)
	}
	if _, err := verify.Repair(context.Background(), vfLoad(t, cfg), verify.RepairOptions{From: "a", To: "b"}); !errors.Is(err, tandem.ErrConfig) {
		t.Errorf("repair of a file onto itself: got %v, want ErrConfig", err)
	}
}

// FuzzVerifyValues stores two arbitrary values in the same row of two
// files and checks that Verify calls them different exactly when SQLite
// does (typeof and IS), and that Repair then makes them equal.
func FuzzVerifyValues(f *testing.F) {
	f.Add(uint8(0), int64(1), 1.0, "1", []byte("1"), uint8(1), int64(1), 1.0, "1", []byte("1"))
	f.Add(uint8(2), int64(0), math.Copysign(0, -1), "", []byte{}, uint8(3), int64(0), 0.0, "NULL", []byte(nil))
	f.Add(uint8(4), int64(-1), math.Inf(1), "\x00a", []byte{0}, uint8(4), int64(-1), math.Inf(-1), "\x00b", []byte{0, 0})
	f.Fuzz(func(t *testing.T, ka uint8, ia int64, fa float64, sa string, ba []byte, kb uint8, ib int64, fb float64, sb string, bb []byte) {
		value := func(kind uint8, i int64, fl float64, s string, b []byte) any {
			switch kind % 5 {
			case 0:
				return i
			case 1:
				if math.IsNaN(fl) {
					return nil // SQLite stores NaN as NULL
				}
				return fl
			case 2:
				return s
			case 3:
				if b == nil {
					b = []byte{}
				}
				return b
			}
			return nil
		}
		cfg, a, b := vfPair(t, `CREATE TABLE v (id INTEGER PRIMARY KEY, v)`)
		if _, err := a.Exec(`INSERT INTO v VALUES (1, ?)`, value(ka, ia, fa, sa, ba)); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Exec(`INSERT INTO v VALUES (1, ?)`, value(kb, ib, fb, sb, bb)); err != nil {
			t.Fatal(err)
		}
		want := vfOracle(t, cfg, "v", []string{"id"}, []string{"v"})
		testcluster.SameLines(t, "verify vs SQLite", testcluster.Diffs(vfVerify(t, cfg, false)), want)
		vfRepair(t, cfg, false, false)
		if left := vfOracle(t, cfg, "v", []string{"id"}, []string{"v"}); len(left) > 0 {
			t.Errorf("after repair, SQLite sees: %v", left)
		}
	})
}

// TestRepairThroughAnotherNameOfADatabase: with three datasources, two of
// them one file, repair from the second name copies from that file.
func TestRepairThroughAnotherNameOfADatabase(t *testing.T) {
	cfg, a, b := vfPair(t, `CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)`)
	vfExec(t, a, `INSERT INTO t VALUES (1, 'one')`)
	yaml := "datasources:\n  - {name: a, driver: sqlite, dsn: a.db}\n  - {name: b, driver: sqlite, dsn: b.db}\n  - {name: a2, driver: sqlite, dsn: ./sub/../a.db}\n"
	if err := os.Mkdir(filepath.Join(filepath.Dir(cfg), "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	rep, err := verify.Repair(context.Background(), vfLoad(t, cfg), verify.RepairOptions{From: "a2", To: "b"})
	if err != nil || rep.Changes != 1 {
		t.Fatalf("repair from a2 (a.db): %+v, %v", rep, err)
	}
	var v string
	if err := b.QueryRow(`SELECT v FROM t WHERE id = 1`).Scan(&v); err != nil || v != "one" {
		t.Errorf("b after the repair: %q, %v", v, err)
	}
}

// TestRepairConvergesOnUniqueValuesMovedBetweenRows: b's rows hold the
// unique values of a's in other rows (moved, swapped, cycled), and a row
// of b holds a value a gives another key. Written one by one in key
// order, each repair meets a value a later row still holds; Repair makes
// them all, in both modes.
func TestRepairConvergesOnUniqueValuesMovedBetweenRows(t *testing.T) {
	vfModes(t, func(t *testing.T, inGo bool) {
		cfg, a, b := vfPair(t, "CREATE TABLE u (id INTEGER NOT NULL PRIMARY KEY, email TEXT NOT NULL UNIQUE)")
		vfExec(t, a, "INSERT INTO u VALUES (1, 'a'), (2, 'b'), (3, 's2'), (4, 's1'), (5, 'c2'), (6, 'c3'), (7, 'c1'), (8, 'z')")
		vfExec(t, b, "INSERT INTO u VALUES (1, 'x'), (2, 'a'), (3, 's1'), (4, 's2'), (5, 'c1'), (6, 'c2'), (7, 'c3'), (9, 'z')")
		n, _ := vfRepair(t, cfg, inGo, false)
		if n != 9 {
			t.Errorf("repair made %d changes, want 9 (keys 1-7 updated, 8 inserted, 9 deleted)", n)
		}
		if rep := vfVerify(t, cfg, inGo); !rep.Identical {
			t.Errorf("after repair: %v", testcluster.Diffs(rep))
		}
	})
}
