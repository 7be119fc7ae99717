package tandem_test

// Any SQL through tandem on a PostgreSQL pair: the statement kinds of
// sql_test.go in PostgreSQL's dialect (writable CTEs, TRUNCATE, identity
// and serial keys, an application trigger in PL/pgSQL), sequences after a
// failover, a write around tandem refused, and a SQL workload through a
// secondary killed mid-stream.

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandemdb/tandem"
	"github.com/tandemdb/tandem/internal/dbserver"
	"github.com/tandemdb/tandem/verify"
)

func TestSQLOnPostgres(t *testing.T) {
	pg := [2]*dbserver.Server{dbserver.Start(t, dbserver.Postgres), dbserver.Start(t, dbserver.Postgres)}
	p := srvPair{"postgres", srvBackend{"postgres", pg[0]}, srvBackend{"postgres", pg[1]}, ""}
	t.Run("StatementsDecideEveryValueOnce", func(t *testing.T) { pgSQLStatements(t, p) })
	t.Run("SequencesFollowAFailover", func(t *testing.T) {
		sqlSequences(t, p, `CREATE TABLE seq_items (id bigserial PRIMARY KEY, v text)`)
	})
	t.Run("SecondaryKilledMidStream", func(t *testing.T) {
		sqlSecondaryKilled(t, p,
			`CREATE TABLE sql_set (id bigserial PRIMARY KEY, v bigint UNIQUE NOT NULL, at timestamptz DEFAULT clock_timestamp())`,
			`INSERT INTO sql_set (v) VALUES ($1)`)
	})
	t.Run("RoleWithoutSuperuser", func(t *testing.T) { pgSQLWithoutSuperuser(t, pg) })
	t.Run("LargeDrainVacuumsTheCaptureTable", func(t *testing.T) { pgCaptureVacuumed(t, p) })
}

// pgCaptureVacuumed: a statement of 20,000 rows fills the capture table,
// and the drain leaves them dead; the health loop then vacuums it on both
// databases (before this, every later drain of the table read past the
// dead rows: 45 ms each after 100,000 rows, until autovacuum came).
func pgCaptureVacuumed(t *testing.T, p srvPair) {
	ctx := context.Background()
	s := srvOpen(t, p, false)
	mustExec(t, s.c, `CREATE TABLE bulk (id int PRIMARY KEY, v text)`)
	mustExec(t, s.c, `INSERT INTO bulk SELECT i, md5(i::text) FROM generate_series(1, 20000) i`)
	for name, db := range map[string]*sql.DB{"foo": s.fooDB, "bar": s.barDB} {
		var vacuums int64
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			err := db.QueryRowContext(ctx, `SELECT vacuum_count FROM pg_stat_user_tables WHERE relname = '_tandem_c_bulk'`).Scan(&vacuums)
			if err != nil {
				t.Fatal(err)
			}
			if vacuums > 0 {
				break
			}
		}
		if vacuums == 0 {
			t.Errorf("%s: the capture table of bulk was not vacuumed within 30 s of a drain of 20,000 keys", name)
		}
	}
	verifyTables(t, s, "bulk")
}

// pgSQLWithoutSuperuser: tandem connects as a role that owns its
// databases but is no superuser. Capture installs, SQL writes reach both
// databases; the secondary cannot switch the application's triggers off
// (a warning), which this table, without triggers of its own, does not
// need.
func pgSQLWithoutSuperuser(t *testing.T, pg [2]*dbserver.Server) {
	ctx := context.Background()
	name := fmt.Sprintf("t%d", srvDBs.Add(1))
	var dsns [2]string
	for i, srv := range pg {
		admin := openPlain(t, "pgx", srv.DSN("", ""))
		for _, q := range []string{
			`DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'app') THEN CREATE ROLE app LOGIN NOSUPERUSER PASSWORD 'app-secret'; END IF; END $$`,
			`CREATE DATABASE ` + name + ` OWNER app`,
		} {
			if _, err := admin.ExecContext(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		u, err := url.Parse(srv.DSN(name, ""))
		if err != nil {
			t.Fatal(err)
		}
		u.User = url.UserPassword("app", "app-secret")
		dsns[i] = u.String()
	}
	var logs strings.Builder
	var mu sync.Mutex
	cfg := &tandem.Config{Datasources: []tandem.Datasource{
		{Name: "foo", Driver: "postgres", DSN: dsns[0]},
		{Name: "bar", Driver: "postgres", DSN: dsns[1]},
	}}
	c, err := tandem.Open(ctx, cfg, tandem.WithLogger(slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, nil))))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, q := range []string{
		`CREATE TABLE notes (id bigserial PRIMARY KEY, body text, at timestamptz DEFAULT clock_timestamp())`,
		`INSERT INTO notes (body) SELECT 'n' || i FROM generate_series(1, 50) i`,
		`UPDATE notes SET body = body || '!' WHERE id % 2 = 0`,
	} {
		if _, err := c.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	rep, err := verify.Compare(ctx, cfg, verify.Options{})
	if err != nil || !rep.Identical {
		t.Fatalf("verify: %+v, %v", rep, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logs.String(), "cannot switch them off") {
		t.Errorf("no warning that the role cannot switch the application's triggers off; logs:\n%s", logs.String())
	}
}

// lockedWriter serialises a log's writes.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func pgSQLSchema(t *testing.T, c *tandem.Cluster) {
	t.Helper()
	for _, ddl := range []string{
		`CREATE TABLE items (id bigserial PRIMARY KEY, name text NOT NULL,
			created timestamptz NOT NULL DEFAULT clock_timestamp(), r double precision DEFAULT random(),
			uuid uuid DEFAULT gen_random_uuid())`,
		`CREATE TABLE ident (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v text)`,
		`CREATE TABLE kv (k text PRIMARY KEY, v text, n integer DEFAULT 0)`,
		`CREATE TABLE archive (k text PRIMARY KEY, v text, at timestamptz DEFAULT now())`,
		`CREATE TABLE parent (id integer PRIMARY KEY, name text)`,
		`CREATE TABLE child (id integer PRIMARY KEY, parent integer NOT NULL REFERENCES parent(id) ON DELETE CASCADE, r double precision DEFAULT random())`,
		`CREATE TABLE audit (id bigserial PRIMARY KEY, item bigint, what text, r double precision)`,
		`CREATE FUNCTION items_audit() RETURNS trigger LANGUAGE plpgsql AS $$
			BEGIN INSERT INTO audit (item, what, r) VALUES (NEW.id, 'insert ' || NEW.name, random()); RETURN NEW; END $$`,
		`CREATE TRIGGER items_audit AFTER INSERT ON items FOR EACH ROW EXECUTE FUNCTION items_audit()`,
		`CREATE TABLE nokey (a integer, b text)`,
	} {
		if _, err := c.Exec(context.Background(), ddl); err != nil {
			t.Fatalf("%s: %v", ddl, err)
		}
	}
}

func pgSQLStatements(t *testing.T, p srvPair) {
	ctx := context.Background()
	s := srvOpen(t, p, false)
	c := s.c
	pgSQLSchema(t, c)
	for _, tc := range []struct {
		name  string
		stmts []string
	}{
		{"defaults: clock_timestamp(), random(), gen_random_uuid(), bigserial", []string{
			`INSERT INTO items (name) VALUES ('a'), ('b'), ('c')`,
		}},
		{"GENERATED ALWAYS AS IDENTITY", []string{`INSERT INTO ident (v) SELECT 'v' || i FROM generate_series(1, 5) i`}},
		{"INSERT ... SELECT of many rows", []string{
			`INSERT INTO kv (k, v, n) SELECT 'k' || i, md5(random()::text), (random() * 1000)::int FROM generate_series(1, 2000) i`,
		}},
		{"UPDATE of a primary key", []string{`UPDATE kv SET k = 'moved-' || k WHERE k IN ('k1', 'k2', 'k3')`}},
		{"INSERT ... ON CONFLICT DO UPDATE", []string{
			`INSERT INTO kv (k, v) VALUES ('k10', 'new'), ('fresh', 'new') ON CONFLICT (k) DO UPDATE SET v = excluded.v || md5(random()::text)`,
		}},
		{"writable CTE", []string{
			`WITH moved AS (DELETE FROM kv WHERE k LIKE 'k2%' RETURNING k, v) INSERT INTO archive (k, v) SELECT k, v FROM moved`,
		}},
		{"the application's trigger writes another table", []string{`INSERT INTO items (name) VALUES ('audited')`}},
		{"ON DELETE CASCADE", []string{
			`INSERT INTO parent VALUES (1, 'one'), (2, 'two')`,
			`INSERT INTO child (id, parent) VALUES (10, 1), (11, 1), (12, 2)`,
			`DELETE FROM parent WHERE id = 1`,
		}},
		{"TRUNCATE", []string{`TRUNCATE archive`}},
		{"a column added with a volatile default", []string{`ALTER TABLE kv ADD COLUMN r2 double precision DEFAULT random()`}},
		{"DELETE without WHERE", []string{`DELETE FROM child`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, q := range tc.stmts {
				if _, err := c.Exec(ctx, q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			pgSameRows(t, s)
		})
	}
	var n int
	for _, check := range []struct {
		q    string
		want int
	}{
		{`SELECT count(*) FROM kv`, 2001 - 111},
		{`SELECT count(*) FROM audit a JOIN items i ON i.id = a.item`, 4},
		{`SELECT count(*) FROM ident`, 5},
		{`SELECT count(*) FROM archive`, 0},
		{`SELECT count(*) FROM child`, 0},
	} {
		if err := c.QueryRow(ctx, check.q).Scan(&n); err != nil || n != check.want {
			t.Errorf("%s = %d (%v), want %d", check.q, n, err, check.want)
		}
	}

	// The same inside a transaction, with a write of the new column.
	err := c.Tx(ctx, func(tx *tandem.Tx) error {
		if _, err := tx.Exec(ctx, `ALTER TABLE items ADD COLUMN r3 double precision DEFAULT random()`); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE items SET r3 = r3 * 2 WHERE id = 1`)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	pgSameRows(t, s)

	// Refused, nothing written.
	if _, err := c.Exec(ctx, `INSERT INTO nokey VALUES (1, 'x')`); err == nil || !strings.Contains(err.Error(), "nokey has no primary key") {
		t.Errorf("a write to a table without a key = %v, want refused", err)
	}
	if _, err := c.Exec(ctx, `SET TIME ZONE 'Asia/Tokyo'`); err == nil || !strings.Contains(err.Error(), "session setting") {
		t.Errorf("SET = %v, want refused", err)
	}
	if _, err := c.Exec(ctx, `INSERT INTO kv (k) VALUES ('x'); DELETE FROM kv`); err == nil || !strings.Contains(err.Error(), "2 statements") {
		t.Errorf("two statements = %v, want refused", err)
	}
	var conn *sql.Conn
	// A write around tandem is refused by the trigger; an operator's
	// emergency fix says so first.
	if _, err := s.barDB.Exec(`INSERT INTO kv (k, v) VALUES ('around', 'x')`); err == nil || !strings.Contains(err.Error(), "bypasses tandem") {
		t.Errorf("a write on bar directly = %v, want refused", err)
	}
	conn, err = s.barDB.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `SET tandem.capture = 'bypass'`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, `UPDATE kv SET v = 'fixed by hand' WHERE k = 'fresh'`); err != nil {
		t.Errorf("an emergency fix with tandem.capture = 'bypass': %v", err)
	}
}

// pgSameRows waits for the clearer, then verifies (nokey aside: it has
// no key to compare rows by).
func pgSameRows(t *testing.T, s *srvCluster) {
	t.Helper()
	foUntil(t, "no intent record left", func() bool {
		return srvCount(t, s.fooDB, "_tandem_pending") == 0 && srvCount(t, s.barDB, "_tandem_pending") == 0
	})
	rep := verifyTables(t, s, "items", "ident", "kv", "archive", "parent", "child", "audit")
	if !rep {
		t.Fatal("verify: the databases differ")
	}
}

func verifyTables(t *testing.T, s *srvCluster, tables ...string) bool {
	t.Helper()
	rep, err := verify.Compare(context.Background(), s.cfg, verify.Options{Tables: tables})
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	for _, tr := range rep.Tables {
		for i, d := range tr.Differences {
			if i < 10 {
				t.Errorf("table %s: %s %v: %v", tr.Table, d.Kind, d.Key, d)
			}
		}
	}
	return rep.Identical
}

// sqlSequences: bar receives seq_items' ids (create makes the table, its
// id given by the database) explicitly; once it is the primary, its
// sequence or counter must give ids past them.
func sqlSequences(t *testing.T, p srvPair, create string) {
	ctx := context.Background()
	s := srvOpen(t, p, false)
	c := s.c
	if _, err := c.Exec(ctx, create); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, err := c.Exec(ctx, `INSERT INTO seq_items (v) VALUES ('on foo')`); err != nil {
			t.Fatal(err)
		}
	}
	// bar becomes the primary for good: a process configured with it
	// first takes over once bar is in step. (Promote alone would not
	// last: the health loop hands writes back to the configured primary,
	// foo, as soon as it is in step.)
	c.Close()
	cfg := *s.cfg
	cfg.Primary = "bar"
	// A new ranking is a new cluster to the arbiter: a witness of its own.
	cfg.Arbiter = tandem.ArbiterConfig{Kind: "witness", Fields: map[string]any{"path": filepath.Join(t.TempDir(), "tandem.witness")}}
	c, err := tandem.Open(ctx, &cfg, faultQuietLogs())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	foWait(t, c, "bar the primary", func(st *tandem.Status) bool { return st.Primary == "bar" })
	for i := 0; i < 2; i++ {
		if _, err := c.Exec(ctx, `INSERT INTO seq_items (v) VALUES ('on bar')`); err != nil {
			t.Fatalf("insert on bar, the new primary: %v", err)
		}
	}
	var max int64
	if err := c.QueryRow(ctx, `SELECT max(id) FROM seq_items`).Scan(&max); err != nil || max != 5 {
		t.Fatalf("max id %d (%v), want 5", max, err)
	}
	if !verifyTables(t, s, "seq_items") {
		t.Fatal("verify: the databases differ")
	}
}

// sqlSecondaryKilled: 4 writers insert into sql_set (create makes it,
// insert takes the value) through Cluster.Exec while bar is killed and
// restarted; every acknowledged row is on both databases, read directly,
// and verify says identical.
func sqlSecondaryKilled(t *testing.T, p srvPair, create, insert string) {
	ctx := context.Background()
	s := srvOpen(t, p, false)
	c := s.c
	if _, err := c.Exec(ctx, create); err != nil {
		t.Fatal(err)
	}
	var next atomic.Int64
	var mu sync.Mutex
	acked := map[int64]bool{}
	failed := 0
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				v := next.Add(1)
				_, err := c.Exec(ctx, insert, v)
				mu.Lock()
				if err == nil {
					acked[v] = true
				} else {
					failed++
				}
				mu.Unlock()
			}
		}()
	}
	progress := func(what string, n int) {
		t.Helper()
		start := next.Load()
		deadline := time.Now().Add(60 * time.Second)
		for next.Load() < start+int64(n) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: fewer than %d inserts in 60 s", what, n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	progress("before the kill", 50)
	if err := p.bar.server.Kill(); err != nil {
		t.Fatal(err)
	}
	foWait(t, c, "bar down", func(st *tandem.Status) bool { return foNode(st, "bar").State != tandem.StateInSync })
	progress("with bar killed", 100)
	p.bar.server.Restart(t)
	foWait(t, c, "bar caught up", func(st *tandem.Status) bool { return foInSync(st) })
	progress("after bar caught up", 50)
	close(stop)
	wg.Wait()
	foUntil(t, "no intent record left", func() bool {
		return srvCount(t, s.fooDB, "_tandem_pending") == 0 && srvCount(t, s.barDB, "_tandem_pending") == 0
	})
	mu.Lock()
	defer mu.Unlock()
	if failed > 0 {
		t.Errorf("%d inserts failed, want none (foo survived throughout)", failed)
	}
	for _, db := range []struct {
		name string
		q    func() (map[int64]bool, error)
	}{
		{"foo", func() (map[int64]bool, error) { return setValues(ctx, s.fooDB) }},
		{"bar", func() (map[int64]bool, error) { return setValues(ctx, s.barDB) }},
	} {
		have, err := db.q()
		if err != nil {
			t.Fatal(err)
		}
		lost := 0
		for v := range acked {
			if !have[v] {
				lost++
			}
		}
		if lost > 0 {
			t.Errorf("%s lacks %d of %d acknowledged inserts", db.name, lost, len(acked))
		}
	}
	if len(acked) < 200 {
		t.Errorf("only %d inserts acknowledged", len(acked))
	}
	if !verifyTables(t, s, "sql_set") {
		t.Fatal("verify: the databases differ")
	}
	t.Logf("%d inserts acknowledged through a secondary's kill and restart", len(acked))
}

// setValues reads the values sql_set holds on one database.
func setValues(ctx context.Context, db *sql.DB) (map[int64]bool, error) {
	rows, err := db.QueryContext(ctx, `SELECT v FROM sql_set`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[int64]bool{}
	for rows.Next() {
		var v int64
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out[v] = true
	}
	return out, rows.Err()
}
