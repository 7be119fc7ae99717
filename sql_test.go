package tandem_test

// Any SQL through tandem (capture.go): statements run on the primary as
// written, the rows they changed reach the secondary whole, and every
// value the primary decided (defaults, random(), ids, what triggers and
// cascades wrote) is the secondary's too. Each case ends with both files
// dumped and compared, and verify.

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tandemdb/tandem"
	"github.com/tandemdb/tandem/internal/testcluster"
)

// sqlPair opens a SQLite pair with the tables the cases write, made
// through Cluster.Exec.
func sqlPair(t *testing.T) (*tandem.Cluster, string) {
	t.Helper()
	ctx := context.Background()
	c, path := testcluster.New(t)
	for _, ddl := range []string{
		`CREATE TABLE items (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL,
			created DATETIME DEFAULT CURRENT_TIMESTAMP, r INTEGER DEFAULT (random()),
			uuid TEXT DEFAULT (lower(hex(randomblob(16)))))`,
		`CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT, n INTEGER DEFAULT 0)`,
		`CREATE TABLE parent (id INTEGER PRIMARY KEY, name TEXT)`,
		`CREATE TABLE child (id INTEGER PRIMARY KEY, parent INTEGER NOT NULL REFERENCES parent(id) ON DELETE CASCADE, r INTEGER DEFAULT (random()))`,
		`CREATE TABLE audit (id INTEGER PRIMARY KEY AUTOINCREMENT, item INTEGER, what TEXT, r INTEGER)`,
		`CREATE TRIGGER items_audit AFTER INSERT ON items BEGIN
			INSERT INTO audit (item, what, r) VALUES (NEW.id, 'insert ' || NEW.name, random()); END`,
		`CREATE TABLE nokey (a INTEGER, b TEXT)`,
		`CREATE TABLE k (k INTEGER PRIMARY KEY, t TEXT DEFAULT (hex(randomblob(4))))`, // names tandem's queries must not trip on
	} {
		if _, err := c.Exec(ctx, ddl); err != nil {
			t.Fatalf("%s: %v", ddl, err)
		}
	}
	return c, path
}

// sameFiles fails unless both files hold identical rows, and verify agrees.
func sameFiles(t *testing.T, path string) {
	t.Helper()
	dumps := testcluster.DumpDir(t, filepath.Dir(path), "foo", "bar")
	if dumps[0] != dumps[1] {
		t.Fatalf("the files differ:\nfoo:\n%s\nbar:\n%s", dumps[0], dumps[1])
	}
	// nokey has no primary key: verify compares rows by key.
	if d := testcluster.Diffs(testcluster.Verify(t, path, "items", "kv", "parent", "child", "audit", "k")); len(d) > 0 {
		t.Fatalf("verify: %q", d)
	}
}

func mustExec(t *testing.T, c interface {
	Exec(context.Context, string, ...any) (sql.Result, error)
}, q string, args ...any) sql.Result {
	t.Helper()
	res, err := c.Exec(context.Background(), q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return res
}

func TestSQLStatementsDecideEveryValueOnce(t *testing.T) {
	ctx := context.Background()
	c, path := sqlPair(t)
	cases := []struct {
		name  string
		stmts []string
	}{
		{"defaults: CURRENT_TIMESTAMP, random(), randomblob ids, AUTOINCREMENT", []string{
			`INSERT INTO items (name) VALUES ('a'), ('b'), ('c')`,
		}},
		{"INSERT ... SELECT of many rows", []string{
			`WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 500)
				INSERT INTO kv (k, v, n) SELECT 'k' || i, hex(randomblob(4)), abs(random() % 1000) FROM s`,
		}},
		{"UPDATE of many rows with random()", []string{
			`UPDATE kv SET n = abs(random() % 1000) WHERE k LIKE 'k1%'`,
		}},
		{"UPDATE of a primary key", []string{
			`UPDATE kv SET k = 'moved-' || k WHERE k IN ('k1', 'k2', 'k3')`,
		}},
		{"INSERT ... ON CONFLICT DO UPDATE", []string{
			`INSERT INTO kv (k, v) VALUES ('k10', 'new'), ('fresh', 'new') ON CONFLICT (k) DO UPDATE SET v = excluded.v || hex(randomblob(2))`,
		}},
		{"REPLACE", []string{
			`REPLACE INTO kv (k, v, n) VALUES ('k11', 'replaced', abs(random() % 7))`,
			`INSERT OR REPLACE INTO kv (k, v) VALUES ('k12', 'replaced too')`,
		}},
		{"the application's trigger writes another table", []string{
			`INSERT INTO items (name) VALUES ('audited')`,
		}},
		{"ON DELETE CASCADE", []string{
			`INSERT INTO parent (id, name) VALUES (1, 'one'), (2, 'two')`,
			`INSERT INTO child (id, parent) VALUES (10, 1), (11, 1), (12, 2)`,
			`DELETE FROM parent WHERE id = 1`,
		}},
		{"DELETE without WHERE", []string{
			`DELETE FROM child`,
		}},
		{"a table called k", []string{
			`INSERT INTO k (k) VALUES (1), (2)`,
			`UPDATE k SET k = k + 10`,
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, q := range tc.stmts {
				mustExec(t, c, q)
			}
			sameFiles(t, path)
		})
	}

	// What the cases wrote is there (the checks above would pass on
	// empty files too).
	var n int
	if err := c.QueryRow(ctx, `SELECT count(*) FROM kv`).Scan(&n); err != nil || n != 501 {
		t.Fatalf("kv holds %d rows (%v), want 501", n, err)
	}
	if err := c.QueryRow(ctx, `SELECT count(*) FROM audit a JOIN items i ON i.id = a.item`).Scan(&n); err != nil || n != 4 {
		t.Fatalf("audit joins %d items (%v), want 4", n, err)
	}
	if err := c.QueryRow(ctx, `SELECT count(*) FROM child`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("child holds %d rows (%v), want 0", n, err)
	}
}

func TestSQLAndModelWritesShareATransaction(t *testing.T) {
	ctx := context.Background()
	c, path := sqlPair(t)
	if err := c.Migrate(ctx, &Book{}); err != nil {
		t.Fatal(err)
	}
	err := c.Tx(ctx, func(tx *tandem.Tx) error {
		if err := tx.Save(ctx, &Book{Title: "model"}); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO items (name) VALUES ('sql')`); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `INSERT INTO kv (k, v) VALUES ('returned', hex(randomblob(8))) RETURNING v`)
		if err != nil {
			return err
		}
		for rows.Next() {
		}
		if err := rows.Close(); err != nil {
			return err
		}
		return tx.Save(ctx, &Book{Title: "model after"})
	})
	if err != nil {
		t.Fatal(err)
	}
	sameFiles(t, path)
	noCaptureLeft(t, path)
	var v string
	if err := c.QueryRow(ctx, `SELECT v FROM kv WHERE k = 'returned'`).Scan(&v); err != nil || len(v) != 16 {
		t.Fatalf("kv returned = %q (%v)", v, err)
	}

	// A change of structure inside a transaction, with rows of the new
	// structure after it.
	err = c.Tx(ctx, func(tx *tandem.Tx) error {
		if _, err := tx.Exec(ctx, `ALTER TABLE kv ADD COLUMN tag TEXT DEFAULT 'none'`); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO kv (k, tag) VALUES ('tagged', hex(randomblob(4)))`)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	sameFiles(t, path)
	if st := c.Structure(); !st.Match {
		t.Fatalf("structures differ after ALTER TABLE in a Tx: %v", st.Diffs)
	}

	// A transaction that fails writes nothing anywhere.
	boom := errors.New("boom")
	err = c.Tx(ctx, func(tx *tandem.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO kv (k) VALUES ('rolled back')`); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Tx = %v, want boom", err)
	}
	for _, f := range []string{"foo", "bar"} {
		if strings.Contains(testcluster.Dump(t, filepath.Join(filepath.Dir(path), f+".db")), "rolled back") {
			t.Fatalf("%s holds the rolled-back row", f)
		}
	}
}

func TestSQLThatCannotBeMirroredIsRefused(t *testing.T) {
	ctx := context.Background()
	c, path := sqlPair(t)
	before := testcluster.DumpDir(t, filepath.Dir(path), "foo", "bar")
	for _, tc := range []struct{ q, want string }{
		{`INSERT INTO kv (k) VALUES ('a'); INSERT INTO kv (k) VALUES ('b')`, "2 statements"},
		{`INSERT INTO kv (k) VALUES ('a;'); DELETE FROM kv`, "2 statements"},
		{`PRAGMA foreign_keys = OFF`, "PRAGMA"},
		{`BEGIN`, "Cluster.Tx"},
		{`GRANT SELECT ON kv TO someone`, "run it on each database"},
		{`INSERT INTO nokey (a, b) VALUES (1, 'x')`, "nokey has no primary key"},
		{``, "empty statement"},
	} {
		_, err := c.Exec(ctx, tc.q)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Exec(%q) = %v, want an error saying %q", tc.q, err, tc.want)
		}
	}
	err := c.Tx(ctx, func(tx *tandem.Tx) error {
		_, err := tx.Query(ctx, `CREATE TABLE inside (id INTEGER PRIMARY KEY)`)
		return err
	})
	if !errors.Is(err, tandem.ErrRefused) {
		t.Errorf("DDL through Tx.Query = %v, want ErrRefused", err)
	}
	err = c.Tx(ctx, func(tx *tandem.Tx) error {
		_, err := tx.Exec(ctx, `VACUUM`)
		return err
	})
	if !errors.Is(err, tandem.ErrRefused) || !strings.Contains(err.Error(), "Cluster.Exec") {
		t.Errorf("VACUUM inside a Tx = %v, want ErrRefused naming Cluster.Exec", err)
	}
	// Cluster.Query reads on a read-only connection: a statement that
	// writes fails there (when it runs: on SQLite, at the first Next).
	if rows, err := c.Query(ctx, `INSERT INTO kv (k) VALUES ('q') RETURNING k`); err == nil {
		for rows.Next() {
		}
		if err = rows.Err(); err == nil || !strings.Contains(err.Error(), "readonly") {
			t.Errorf("a write through Cluster.Query: rows.Err() = %v, want the read-only connection's refusal", err)
		}
		rows.Close()
	} else if !errors.Is(err, tandem.ErrRefused) {
		t.Errorf("a write through Cluster.Query = %v, want ErrRefused", err)
	}
	after := testcluster.DumpDir(t, filepath.Dir(path), "foo", "bar")
	if before[0] != after[0] || before[1] != after[1] {
		t.Fatalf("a refused statement wrote:\nbefore %q\nafter  %q", before, after)
	}
}

func TestAWriteAroundTandemIsRefused(t *testing.T) {
	_, path := sqlPair(t)
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(filepath.Dir(path), "bar.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_, err = db.Exec(`INSERT INTO kv (k, v) VALUES ('around', 'x')`)
	if err == nil || !strings.Contains(err.Error(), "tandem_capture") {
		t.Fatalf("a write on bar.db directly = %v, want refused (no such function: tandem_capture)", err)
	}
	// Reading is not affected.
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM kv`).Scan(&n); err != nil {
		t.Fatal(err)
	}
}

// A table created on every database around tandem (by hand, by another
// tool) gets capture before the first SQL write to it: SQLite's schema
// version tells at once.
func TestATableCreatedAroundTandemIsCapturedBeforeItsFirstWrite(t *testing.T) {
	ctx := context.Background()
	c, path := sqlPair(t)
	mustExec(t, c, `INSERT INTO kv (k) VALUES ('before')`)
	for _, f := range []string{"foo", "bar"} {
		db, err := sql.Open("sqlite3", "file:"+filepath.Join(filepath.Dir(path), f+".db"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(`CREATE TABLE by_hand (id INTEGER PRIMARY KEY, r INTEGER DEFAULT (random()))`); err != nil {
			t.Fatal(err)
		}
		db.Close()
	}
	mustExec(t, c, `INSERT INTO by_hand (id) VALUES (1), (2), (3)`)
	err := c.Tx(ctx, func(tx *tandem.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE by_hand SET r = random()`)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	sameFiles(t, path)
	var n int
	if err := c.QueryRow(ctx, `SELECT count(*) FROM by_hand`).Scan(&n); err != nil || n != 3 {
		t.Fatalf("by_hand holds %d rows (%v), want 3", n, err)
	}
}

// noCaptureLeft fails if a capture table of either file holds a row: each
// write empties what it captured before it commits.
func noCaptureLeft(t *testing.T, path string) {
	t.Helper()
	for _, f := range []string{"foo", "bar"} {
		db, err := sql.Open("sqlite3", "file:"+filepath.Join(filepath.Dir(path), f+".db")+"?mode=ro")
		if err != nil {
			t.Fatal(err)
		}
		rows, err := db.Query(`SELECT name FROM sqlite_schema WHERE type = 'table' AND name LIKE '\_tandem\_c\_%' ESCAPE '\'`)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for rows.Next() {
			var n string
			rows.Scan(&n)
			names = append(names, n)
		}
		rows.Close()
		if len(names) == 0 {
			t.Fatalf("%s has no capture table", f)
		}
		for _, n := range names {
			var count int
			if err := db.QueryRow(`SELECT count(*) FROM "` + n + `"`).Scan(&count); err != nil {
				t.Fatal(err)
			}
			if count > 0 {
				t.Errorf("%s: %s holds %d rows after the writes committed", f, n, count)
			}
		}
		db.Close()
	}
}

// VACUUM and ANALYZE change no row: Exec runs them on every database
// (ANALYZE leaves sqlite_stat1 on each), and the copies stay identical.
func TestMaintenanceRunsOnEveryDatabase(t *testing.T) {
	ctx := context.Background()
	c, path := sqlPair(t)
	if _, err := c.Exec(ctx, `INSERT INTO kv (k, v) VALUES ('a', 'x'), ('b', 'y')`); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`ANALYZE`, `VACUUM`} {
		if _, err := c.Exec(ctx, q); err != nil {
			t.Fatalf("Exec(%q): %v", q, err)
		}
	}
	for _, f := range []string{"foo", "bar"} {
		db, err := sql.Open("sqlite3", "file:"+filepath.Join(filepath.Dir(path), f+".db")+"?mode=ro")
		if err != nil {
			t.Fatal(err)
		}
		var n int
		err = db.QueryRow(`SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'`).Scan(&n)
		db.Close()
		if err != nil || n != 1 {
			t.Errorf("%s: sqlite_stat1 %d, %v: ANALYZE did not run there", f, n, err)
		}
	}
	sameFiles(t, path)
}
