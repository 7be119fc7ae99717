package pgwire

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tandemdb/tandem"
	"github.com/tandemdb/tandem/internal/dbserver"
	"github.com/tandemdb/tandem/stdlib"
	"github.com/tandemdb/tandem/verify"
)

// proxyPair starts two PostgreSQL servers, a tandem cluster over them and
// the proxy in front of it (user app, password "app pw"); it returns the
// proxy's address and the cluster's config.
func proxyPair(t *testing.T) (string, *tandem.Config) {
	t.Helper()
	a, b := dbserver.Start(t, dbserver.Postgres), dbserver.Start(t, dbserver.Postgres)
	a.CreateDatabase(t, "app")
	b.CreateDatabase(t, "app")
	cfg := &tandem.Config{
		Timeout: 2 * time.Second,
		Arbiter: tandem.ArbiterConfig{Kind: "witness", Fields: map[string]any{"path": filepath.Join(t.TempDir(), "tandem.witness")}},
		Datasources: []tandem.Datasource{
			{Name: "foo", Driver: "postgres", DSN: a.DSN("app", "")},
			{Name: "bar", Driver: "postgres", DSN: b.DSN("app", "")},
		},
	}
	c, err := tandem.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	db := stdlib.OpenDB(c)
	t.Cleanup(func() { db.Close() })
	v, err := NewVerifier("app pw")
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go (&Server{DB: db, Users: Users{"app": v}}).Serve(l)
	return l.Addr().String(), cfg
}

func identical(t *testing.T, cfg *tandem.Config) {
	t.Helper()
	rep, err := verify.Compare(context.Background(), cfg, verify.Options{})
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if !rep.Identical {
		t.Fatalf("verify: the databases differ: %+v", rep.Tables)
	}
}

// psql, a client nobody here wrote, runs a scripted session through the
// proxy: DDL, values the primary decides (bigserial, clock_timestamp(),
// random()), a transaction, an error inside one (the transaction is then
// aborted until ROLLBACK), INSERT ... RETURNING, DELETE; both databases
// end identical.
func TestPsqlThroughTheProxy(t *testing.T) {
	psql, err := exec.LookPath("psql")
	if err != nil {
		if os.Getenv("TANDEM_FAIL_ON_SKIP") == "1" {
			t.Fatal("psql not found: apt-get install postgresql-client (TANDEM_FAIL_ON_SKIP=1)")
		}
		t.Skip("psql not found")
	}
	addr, cfg := proxyPair(t)
	host, port, _ := net.SplitHostPort(addr)
	script := `CREATE TABLE notes (id bigserial PRIMARY KEY, body text NOT NULL, at timestamptz DEFAULT clock_timestamp(), r double precision DEFAULT random());
INSERT INTO notes (body) VALUES ('one'), ('two');
BEGIN;
INSERT INTO notes (body) VALUES ('three');
UPDATE notes SET body = body || '!' WHERE id = 1;
COMMIT;
BEGIN;
INSERT INTO notes (body) VALUES ('never');
SELECT 1/0;
INSERT INTO notes (body) VALUES ('ignored');
ROLLBACK;
INSERT INTO notes (body) VALUES ('r') RETURNING body;
DELETE FROM notes WHERE body = 'two';
SELECT body FROM notes ORDER BY id;
SELECT count(*) AS n, bool_and(r >= 0 AND r < 1) AS ok FROM notes;
`
	cmd := exec.Command(psql, "-X", "-A", "-v", "ON_ERROR_STOP=0",
		fmt.Sprintf("host=%s port=%s user=app dbname=app sslmode=prefer", host, port))
	cmd.Env = append(os.Environ(), "PGPASSWORD=app pw")
	cmd.Stdin = strings.NewReader(script)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("psql: %v\n%s", err, out)
	}
	text := string(out)
	for _, want := range []string{
		"CREATE TABLE", "INSERT 0 2", "BEGIN", "UPDATE 1", "COMMIT",
		"division by zero", "current transaction is aborted", "ROLLBACK",
		"body\nr\n(1 row)\nINSERT 0 1", "DELETE 1",
		"body\none!\nthree\nr\n(3 rows)", "n|ok\n3|t\n(1 row)",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("psql's output lacks %q:\n%s", want, text)
		}
	}
	for _, line := range strings.Split(text, "\n") {
		if line == "never" || line == "ignored" {
			t.Errorf("a rolled back insert shows (%q):\n%s", line, text)
		}
	}
	identical(t, cfg)
}

// pgx, with its simple protocol, writes and reads through the proxy; its
// default (extended) protocol is refused with an error that says so.
func TestPgxThroughTheProxy(t *testing.T) {
	addr, cfg := proxyPair(t)
	host, port, _ := net.SplitHostPort(addr)
	dsn := fmt.Sprintf("host=%s port=%s user=app password='app pw' dbname=app sslmode=disable", host, port)
	ctx := context.Background()
	pc, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	pc.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	conn, err := pgx.ConnectConfig(ctx, pc)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE TABLE kv (k text PRIMARY KEY, v bigint, at timestamptz DEFAULT now())`); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		tag, err := conn.Exec(ctx, `INSERT INTO kv (k, v) VALUES ($1, $2)`, fmt.Sprint("k", i), i)
		if err != nil || tag.String() != "INSERT 0 1" {
			t.Fatalf("insert %d: %v %v", i, tag, err)
		}
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `UPDATE kv SET v = v * 10 WHERE v < $1`, 5); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	var sum int64
	var at time.Time
	if err := conn.QueryRow(ctx, `SELECT sum(v), max(at) FROM kv`).Scan(&sum, &at); err != nil || sum != 190+(0+1+2+3+4)*9 || at.IsZero() {
		t.Errorf("sum %d, at %v (%v); want %d and a time", sum, at, err, 190+(0+1+2+3+4)*9)
	}
	// A duplicate key: PostgreSQL's own SQLSTATE comes through.
	if _, err := conn.Exec(ctx, `INSERT INTO kv (k, v) VALUES ('k1', 0)`); err == nil || !strings.Contains(err.Error(), "23505") {
		t.Errorf("a duplicate key: %v, want SQLSTATE 23505", err)
	}
	identical(t, cfg)

	ext, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer ext.Close(ctx)
	if _, err := ext.Exec(ctx, `SELECT $1::int`, 1); err == nil || !strings.Contains(err.Error(), "extended query protocol") {
		t.Errorf("the extended protocol: %v, want refused saying so", err)
	}
}
