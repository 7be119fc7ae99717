package stdlib_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tandemdb/tandem"
	"github.com/tandemdb/tandem/internal/testcluster"
	"github.com/tandemdb/tandem/stdlib"
)

// sameFiles fails unless foo.db and bar.db hold identical rows.
func sameFiles(t *testing.T, path string) {
	t.Helper()
	dumps := testcluster.DumpDir(t, filepath.Dir(path), "foo", "bar")
	if dumps[0] != dumps[1] {
		t.Fatalf("the files differ:\nfoo:\n%s\nbar:\n%s", dumps[0], dumps[1])
	}
	if !strings.Contains(dumps[0], "\n") {
		t.Fatal("nothing was written")
	}
	if d := testcluster.Diffs(testcluster.Verify(t, path)); len(d) > 0 {
		t.Fatalf("verify: %q", d)
	}
}

func TestDatabaseSQLOverAPair(t *testing.T) {
	ctx := context.Background()
	path := testcluster.Config(t)
	db, err := sql.Open("tandem", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.PingContext(ctx); err != nil {
		t.Fatal(err)
	}
	exec := func(q string, args ...any) sql.Result {
		t.Helper()
		res, err := db.ExecContext(ctx, q, args...)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return res
	}
	exec(`CREATE TABLE notes (id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL, at DATETIME DEFAULT CURRENT_TIMESTAMP, r INTEGER DEFAULT (random()))`)
	res := exec(`INSERT INTO notes (body) VALUES (?)`, "first")
	if id, err := res.LastInsertId(); err != nil || id != 1 {
		t.Errorf("LastInsertId = %d, %v; want 1", id, err)
	}
	exec(`INSERT INTO notes (body) VALUES (?), (?)`, "second", "third")
	if n, err := exec(`UPDATE notes SET body = body || '!' WHERE id > ?`, 1).RowsAffected(); err != nil || n != 2 {
		t.Errorf("RowsAffected = %d, %v; want 2", n, err)
	}

	// A prepared statement, run several times.
	st, err := db.PrepareContext(ctx, `INSERT INTO notes (body) VALUES (?)`)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{"p1", "p2", "p3"} {
		if _, err := st.ExecContext(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()

	// INSERT ... RETURNING outside a transaction: a write of its own.
	var id int64
	var r int64
	if err := db.QueryRowContext(ctx, `INSERT INTO notes (body) VALUES ('returning') RETURNING id, r`).Scan(&id, &r); err != nil || id != 7 {
		t.Fatalf("INSERT ... RETURNING: id %d, %v; want 7", id, err)
	}

	// A transaction: committed whole, or rolled back whole.
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO notes (body) VALUES ('in tx')`); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM notes`).Scan(&n); err != nil || n != 8 {
		t.Fatalf("count inside the transaction = %d, %v; want 8", n, err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	tx, err = db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM notes`); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM notes`).Scan(&n); err != nil || n != 8 {
		t.Fatalf("count after a rollback = %d, %v; want 8", n, err)
	}

	// A cancelled context ends the statement; nothing is written.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := db.ExecContext(cctx, `INSERT INTO notes (body) VALUES ('cancelled')`); err == nil {
		t.Error("an insert with a cancelled context succeeded")
	}

	// Refused, nothing written.
	for _, q := range []string{`PRAGMA foreign_keys = OFF`, `INSERT INTO notes (body) VALUES ('a'); INSERT INTO notes (body) VALUES ('b')`} {
		if _, err := db.ExecContext(ctx, q); !errors.Is(err, tandem.ErrRefused) {
			t.Errorf("%s: %v, want ErrRefused", q, err)
		}
	}
	if _, err := db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelSerializable}); !errors.Is(err, tandem.ErrRefused) {
		t.Errorf("a serializable transaction: %v, want ErrRefused", err)
	}
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM notes`).Scan(&n); err != nil || n != 8 {
		t.Fatalf("count after the refusals = %d, %v; want 8", n, err)
	}
	db.Close()
	sameFiles(t, path)
}

func TestOpenDBOverAnOpenCluster(t *testing.T) {
	ctx := context.Background()
	c, path := testcluster.New(t)
	db := stdlib.OpenDB(c)
	if _, err := db.ExecContext(ctx, `CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT)`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO kv VALUES ('a', hex(randomblob(8)))`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	// The cluster stays open: OpenDB does not own it.
	if _, err := c.Exec(ctx, `INSERT INTO kv VALUES ('b', hex(randomblob(8)))`); err != nil {
		t.Fatal(err)
	}
	sameFiles(t, path)
}
