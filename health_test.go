package tandem

// The health loop's repairs, driven by hand on two SQLite files: a
// Cluster opened WithoutBackground runs no round of its own.

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	_ "github.com/ncruces/go-sqlite3/driver"

	"github.com/tandemdb/tandem/internal/value"
)

type sweepItem struct {
	K int64 `tandem:"k,pk"`
	V int64 `tandem:"v"`
}

func (sweepItem) TableName() string { return "sweep_items" }

// healthPair opens a cluster of foo.db and bar.db in a new directory,
// without background work, both holding sweep_items row {1, 1}. It is
// closed at the end of the test.
func healthPair(t *testing.T, ctx context.Context) (*Cluster, *Config, string) {
	t.Helper()
	dir := t.TempDir()
	cfg := &Config{Datasources: []Datasource{
		{Name: "foo", Driver: "sqlite", DSN: filepath.Join(dir, "foo.db")},
		{Name: "bar", Driver: "sqlite", DSN: filepath.Join(dir, "bar.db")},
	}}
	c, err := Open(ctx, cfg, WithoutBackground(), WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Migrate(ctx, &sweepItem{}); err != nil {
		t.Fatal(err)
	}
	if err := c.Save(ctx, &sweepItem{K: 1, V: 1}); err != nil {
		t.Fatal(err)
	}
	return c, cfg, dir
}

// healthFile opens dir/name with plain database/sql, closed at the end of
// the test: the state a crash leaves is written through it.
func healthFile(t *testing.T, dir, name string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(dir, name)+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestSweepCopiesThePrimarysRowsOverAZombieCommit builds the state a
// "zombie" commit leaves: a write W was recorded on foo, the primary, as
// missed by bar (bar's commit had failed, as far as tandem knew), and foo
// has since moved on; but bar carried the commit out after all, so bar
// holds W's intent record, the only one left, and W's now old row. bar has
// rejoined the writes before catch-up copied that key (a secondary nearly
// caught up joins). The sweep must not copy bar's old row over foo's newer
// one (an earlier version did): it copies the primary's rows.
func TestSweepCopiesThePrimarysRowsOverAZombieCommit(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, _, dir := healthPair(t, ctx)
	foo, bar := healthFile(t, dir, "foo.db"), healthFile(t, dir, "bar.db")
	count := func(db *sql.DB, table string) int {
		t.Helper()
		var n int
		if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for count(foo, "_tandem_pending")+count(bar, "_tandem_pending") > 0 { // the clearer's
		if ctx.Err() != nil {
			t.Fatal("the Save's intent records were not cleared")
		}
		time.Sleep(10 * time.Millisecond)
	}
	exec := func(db *sql.DB, q string, args ...any) {
		t.Helper()
		if _, err := db.ExecContext(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	key := value.EncodeKey([]any{int64(1)})
	old := time.Now().Add(-time.Hour).UnixMilli()
	// foo: W's value 2 was overwritten by a later write, 3; the key is
	// recorded as missed by bar.
	exec(foo, "UPDATE sweep_items SET v = 3 WHERE k = 1")
	exec(foo, "INSERT INTO _tandem_missed (node, tbl, pk, at) VALUES ('bar', 'sweep_items', ?, ?)", key, old)
	// bar: W committed late, with its intent record.
	exec(bar, "UPDATE sweep_items SET v = 2 WHERE k = 1")
	exec(bar, "INSERT INTO _tandem_pending (txid, seq, tbl, pk, at) VALUES ('w', 0, 'sweep_items', ?, ?)", key, old)

	c.refresh(ctx, false)
	if v := c.view.Load(); !v.writes(c.node("bar")) {
		t.Fatalf("view %s: bar, one key behind, should take writes", v)
	}
	c.sweepAfter = 0
	value := func(db *sql.DB) int64 {
		t.Helper()
		var v int64
		if err := db.QueryRowContext(ctx, "SELECT v FROM sweep_items WHERE k = 1").Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	if err := c.sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if got := value(foo); got != 3 {
		t.Fatalf("after the sweep, foo holds v = %d, want 3: bar's older row was copied over it", got)
	}
	if got := value(bar); got != 3 {
		t.Fatalf("after the sweep, bar holds v = %d, want foo's 3", got)
	}
	if n := count(bar, "_tandem_pending"); n != 0 {
		t.Fatalf("bar holds %d intent records after the sweep, want none", n)
	}

	if err := c.catchUpAll(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.sweep(ctx); err != nil {
		t.Fatal(err)
	}
	for name, db := range map[string]*sql.DB{"foo": foo, "bar": bar} {
		if got := value(db); got != 3 {
			t.Errorf("%s holds v = %d after catch-up and the sweep, want 3", name, got)
		}
		for _, table := range []string{"_tandem_pending", "_tandem_missed"} {
			if n := count(db, table); n != 0 {
				t.Errorf("%s: %d rows left in %s", name, n, table)
			}
		}
	}
}

// TestCatchUpBringsALeftOutDatabaseBackIntoTheView: bar missed a write and
// was left out of the view; catch-up copies the key and, under the locks
// of both databases, lets bar rejoin by a change of the view. A later
// process (tandem status) finds bar in the writes, missing nothing, with
// foo's row.
func TestCatchUpBringsALeftOutDatabaseBackIntoTheView(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, cfg, dir := healthPair(t, ctx)
	foo, err := sql.Open("sqlite3", "file:"+filepath.Join(dir, "foo.db")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer foo.Close()
	bar := c.node("bar")
	if err := c.exclude(ctx, bar, errors.New("left out by the test")); err != nil {
		t.Fatal(err)
	}
	gen := c.view.Load().rec.Generation
	// bar missed a write of key 1.
	for _, q := range []string{
		"UPDATE sweep_items SET v = 2 WHERE k = 1",
		"INSERT INTO _tandem_missed (node, tbl, pk, at) VALUES ('bar', 'sweep_items', '" + value.EncodeKey([]any{int64(1)}) + "', 0)",
	} {
		if _, err := foo.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	c.refresh(ctx, false) // reads the count
	if v := c.view.Load(); bar.state().behind() != 1 || v.writes(bar) {
		t.Fatalf("bar: %d keys behind, view %s; want 1, and bar left out", bar.state().behind(), v)
	}
	if err := c.catchUpAll(ctx); err != nil {
		t.Fatal(err)
	}
	if v := c.view.Load(); !v.writes(bar) || v.rec.Generation != gen+1 {
		t.Fatalf("after catch-up: view %s, want bar in the writes at generation %d", v, gen+1)
	}
	if g, err := bar.records.ReadGeneration(ctx, bar.conn().Read); err != nil || g != gen+1 {
		t.Fatalf("bar's generation after it rejoined: %d, %v; want %d", g, err, gen+1)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c2, err := Open(ctx, cfg, WithoutBackground(), WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	st, err := c2.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Healthy() || st.View != gen+1 {
		t.Fatalf("a later process: healthy %v at view %d, %+v; want healthy at %d", st.Healthy(), st.View, st.Nodes, gen+1)
	}
	var v int64
	if err := c2.node("bar").conn().Read.QueryRowContext(ctx, "SELECT v FROM sweep_items WHERE k = 1").Scan(&v); err != nil || v != 2 {
		t.Fatalf("bar's row: %d, %v; want 2", v, err)
	}
}
