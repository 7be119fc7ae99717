package pgwire

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

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
	p := proxyPairOf(t)
	return p.addr, p.cfg
}

// pair is what proxyPairOf starts.
type pair struct {
	addr string
	cfg  *tandem.Config
	a, b *dbserver.Server // foo's and bar's
	db   *sql.DB          // the proxy's: tandem's driver over the cluster
}

// proxyPairOf is proxyPair, also returning the servers and the proxy's DB.
func proxyPairOf(t *testing.T) *pair {
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
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	go (&Server{DB: db, Users: Users{"app": v}, Log: log, Describe: DescribeOn(ctx, a.DSN("app", ""), b.DSN("app", "")), Status: c.LastStatus}).Serve(l)
	return &pair{l.Addr().String(), cfg, a, b, db}
}

// needTool skips the test when a client program is missing (err), or
// fails it with TANDEM_FAIL_ON_SKIP=1, naming the Debian packages.
func needTool(t *testing.T, err error, packages string) {
	t.Helper()
	if err == nil {
		return
	}
	if os.Getenv("TANDEM_FAIL_ON_SKIP") == "1" {
		t.Fatalf("%v: apt-get install %s (TANDEM_FAIL_ON_SKIP=1)", err, packages)
	}
	t.Skip(err, ": apt-get install", packages)
}

// needPHP returns php's path, needing PDO's pgsql driver (needTool).
func needPHP(t *testing.T) string {
	t.Helper()
	php, err := exec.LookPath("php")
	if err == nil {
		if out, _ := exec.Command(php, "-m").Output(); !strings.Contains(string(out), "pdo_pgsql") {
			err = fmt.Errorf("php has no pdo_pgsql")
		}
	}
	needTool(t, err, "php-cli php-pgsql")
	return php
}

// psqlScript runs script through psql (ON_ERROR_STOP off, unaligned) as
// user app on the proxy at addr, and returns its output.
func psqlScript(t *testing.T, addr, sslmode, script string) string {
	t.Helper()
	psql, err := exec.LookPath("psql")
	needTool(t, err, "postgresql-client")
	host, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(psql, "-X", "-A", "-v", "ON_ERROR_STOP=0",
		fmt.Sprintf("host=%s port=%s user=app dbname=app sslmode=%s", host, port, sslmode))
	cmd.Env = append(os.Environ(), "PGPASSWORD=app pw")
	cmd.Stdin = strings.NewReader(script)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("psql: %v\n%s", err, out)
	}
	return string(out)
}

// testWriter logs through t.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// proxyDSN is the DSN of proxyPair's proxy at addr, as user app.
func proxyDSN(addr string) string {
	host, port, _ := net.SplitHostPort(addr)
	return fmt.Sprintf("host=%s port=%s user=app password='app pw' dbname=app sslmode=disable", host, port)
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
	addr, cfg := proxyPair(t)
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
SHOW tandem_nodes;
`
	text := psqlScript(t, addr, "prefer", script)
	for _, want := range []string{
		"CREATE TABLE", "INSERT 0 2", "BEGIN", "UPDATE 1", "COMMIT",
		"division by zero", "current transaction is aborted", "ROLLBACK",
		"body\nr\n(1 row)\nINSERT 0 1", "DELETE 1",
		"body\none!\nthree\nr\n(3 rows)", "n|ok\n3|t\n(1 row)",
		"node|driver|role|state|behind|conflicts|in_doubt|error\nfoo|postgres|primary|in sync|0|0|0|\nbar|postgres|secondary|in sync|0|0|0|\n(2 rows)",
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

// pgx, with its simple protocol, writes and reads through the proxy.
func TestPgxThroughTheProxy(t *testing.T) {
	addr, cfg := proxyPair(t)
	dsn := proxyDSN(addr)
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

}

// pgx in its default mode (the extended protocol: Parse, Describe, Bind
// with binary arguments, Execute, statements cached by name) writes and
// reads values of many types through the proxy, in and out of
// transactions; a failed statement aborts its transaction.
func TestPgxExtendedProtocolThroughTheProxy(t *testing.T) {
	addr, cfg := proxyPair(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, proxyDSN(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE TABLE vals (id bigserial PRIMARY KEY, t text, n bigint, f double precision, b boolean, at timestamptz, raw bytea, d numeric(10,2))`); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 7, 10, 11, 12, 345678000, time.UTC)
	for i := range 5 {
		tag, err := conn.Exec(ctx, `INSERT INTO vals (t, n, f, b, at, raw, d) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			fmt.Sprintf("row %d, 'quoted'", i), int64(i)*1000000000000, float64(i)+0.25, i%2 == 0, at.Add(time.Duration(i)*time.Hour), []byte{0, 1, byte(i)}, "12.50")
		if err != nil || tag.String() != "INSERT 0 1" {
			t.Fatalf("insert %d: %v %v", i, tag, err)
		}
	}
	var (
		id   int64
		text string
		n    int64
		f    float64
		b    bool
		when time.Time
		raw  []byte
		d    string
	)
	err = conn.QueryRow(ctx, `SELECT id, t, n, f, b, at, raw, d::text FROM vals WHERE n = $1`, int64(3000000000000)).Scan(&id, &text, &n, &f, &b, &when, &raw, &d)
	if err != nil || text != "row 3, 'quoted'" || n != 3000000000000 || f != 3.25 || b || !when.Equal(at.Add(3*time.Hour)) || !bytes.Equal(raw, []byte{0, 1, 3}) || d != "12.50" {
		t.Errorf("read back: %d %q %d %v %v %v %v %q (%v)", id, text, n, f, b, when, raw, d, err)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `UPDATE vals SET f = f * $1 WHERE b = $2`, 2.0, true); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO vals (id, t) VALUES ($1, $2)`, id, "taken"); err == nil || !strings.Contains(err.Error(), "23505") {
		t.Errorf("a duplicate key in a transaction: %v, want 23505", err)
	}
	if _, err := tx.Exec(ctx, `UPDATE vals SET f = 0`); err == nil || !strings.Contains(err.Error(), "25P02") {
		t.Errorf("a statement after the error: %v, want 25P02", err)
	}
	tx.Rollback(ctx)
	var sum float64
	if err := conn.QueryRow(ctx, `SELECT sum(f) FROM vals`).Scan(&sum); err != nil || sum != 0.25+1.25+2.25+3.25+4.25 {
		t.Errorf("after the rolled back transaction: sum %v (%v)", sum, err)
	}
	rows, err := conn.Query(ctx, `SELECT id, t FROM vals ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	count := 0
	for rows.Next() {
		count++
	}
	if rows.Err() != nil || count != 5 {
		t.Errorf("%d rows (%v), want 5", count, rows.Err())
	}
	identical(t, cfg)
}

// phpScript is a PHP application in the style of a Propel one, through
// PDO's pgsql driver (server-side prepared statements: the extended
// protocol): ids from the sequence before each insert, as Propel's pgsql
// adapter takes them, timestamps, a transaction, a delete. It prints the
// ids it saved and the final count.
const phpScript = `<?php
[$dsn, $user, $pass] = [$argv[1], $argv[2], $argv[3]];
$pdo = new PDO($dsn, $user, $pass, [PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION]);
$pdo->exec("CREATE TABLE book (id serial PRIMARY KEY, title varchar(255) NOT NULL, isbn varchar(24) UNIQUE, created_at timestamp NOT NULL DEFAULT now(), price numeric(8,2))");
$ids = [];
for ($i = 1; $i <= 6; $i++) {
	$id = $pdo->query("SELECT nextval('book_id_seq')")->fetchColumn();
	$st = $pdo->prepare("INSERT INTO book (id, title, isbn, created_at, price) VALUES (:p1, :p2, :p3, :p4, :p5)");
	$st->bindValue(':p1', $id, PDO::PARAM_INT);
	$st->bindValue(':p2', "Book $i", PDO::PARAM_STR);
	$st->bindValue(':p3', "978-$i", PDO::PARAM_STR);
	$st->bindValue(':p4', gmdate('Y-m-d H:i:s'), PDO::PARAM_STR);
	$st->bindValue(':p5', 10 + $i / 4, PDO::PARAM_STR);
	$st->execute();
	$ids[] = $id;
}
$pdo->beginTransaction();
$pdo->prepare("UPDATE book SET price = price * 2 WHERE id <= :max")->execute([':max' => $ids[1]]);
$pdo->prepare("INSERT INTO book (title) VALUES (:t)")->execute([':t' => 'in the transaction']);
$pdo->commit();
try {
	$pdo->prepare("INSERT INTO book (title, isbn) VALUES (:t, :i)")->execute([':t' => 'dup', ':i' => '978-1']);
	echo "duplicate accepted\n";
} catch (PDOException $e) {
	echo "duplicate refused: " . $e->getCode() . "\n";
}
$pdo->prepare("DELETE FROM book WHERE id = :id")->execute([':id' => $ids[5]]);
$row = $pdo->query("SELECT count(*) AS n, sum(price) AS total FROM book")->fetch(PDO::FETCH_ASSOC);
echo "ids " . implode(",", $ids) . "\n";
echo "count {$row['n']} total {$row['total']}\n";
`

// PHP's PDO (Debian's php-cli and php-pgsql), a client nobody here wrote,
// runs a Propel-style script through the proxy; both databases end
// identical.
func TestPHPPDOThroughTheProxy(t *testing.T) {
	php := needPHP(t)
	addr, cfg := proxyPair(t)
	host, port, _ := net.SplitHostPort(addr)
	script := filepath.Join(t.TempDir(), "app.php")
	if err := os.WriteFile(script, []byte(phpScript), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(php, script, fmt.Sprintf("pgsql:host=%s;port=%s;dbname=app;sslmode=prefer", host, port), "app", "app pw").CombinedOutput()
	if err != nil {
		t.Fatalf("php: %v\n%s", err, out)
	}
	text := string(out)
	for _, want := range []string{"duplicate refused: 23505", "ids 1,2,3,4,5,6", "count 6 total 74.50"} {
		if !strings.Contains(text, want) {
			t.Errorf("the script's output lacks %q:\n%s", want, text)
		}
	}
	identical(t, cfg)
}

// A client that sends a message too large, or of an unknown type, is
// answered with an error and disconnected; another client goes on.
func TestBadClientInputClosesThatClientOnly(t *testing.T) {
	addr, _ := proxyPair(t)
	dsn := proxyDSN(addr)
	ctx := context.Background()
	good, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close(ctx)
	for _, tc := range []struct {
		name string
		msg  []byte
	}{
		{"too large", []byte{'Q', 0x7f, 0xff, 0xff, 0xff}},
		{"unknown type", []byte{'!', 0, 0, 0, 4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad, err := pgx.Connect(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			raw, err := bad.PgConn().Hijack()
			if err != nil {
				t.Fatal(err)
			}
			c := raw.Conn
			defer c.Close()
			if _, err := c.Write(tc.msg); err != nil {
				t.Fatal(err)
			}
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			reply := make([]byte, 1024)
			n, _ := c.Read(reply)
			if n == 0 || reply[0] != 'E' {
				t.Errorf("reply %q, want an ErrorResponse", reply[:n])
			}
			for {
				if _, err := c.Read(reply); err != nil {
					break // closed by the proxy
				}
			}
		})
	}
	var one int
	if err := good.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Errorf("the other client after the bad ones: %d, %v", one, err)
	}
}

// A cancel request (on a connection of its own, with the key the session
// was given) ends the statement running: the client gets 57014 and its
// session goes on.
func TestCancelRequest(t *testing.T) {
	addr, _ := proxyPair(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, proxyDSN(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	errs := make(chan error, 1)
	go func() {
		_, err := conn.Exec(ctx, "SELECT pg_sleep(60)")
		errs <- err
	}()
	time.Sleep(500 * time.Millisecond) // the statement has begun (not a timing assertion: a cancel that comes first is retried)
	var got error
	for deadline := time.Now().Add(20 * time.Second); got == nil && time.Now().Before(deadline); {
		if err := conn.PgConn().CancelRequest(ctx); err != nil {
			t.Fatal(err)
		}
		select {
		case got = <-errs:
		case <-time.After(2 * time.Second):
		}
	}
	if got == nil || !strings.Contains(got.Error(), "57014") {
		t.Fatalf("the cancelled statement: %v, want 57014", got)
	}
	var one int
	if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Errorf("the session after the cancel: %d %v", one, err)
	}
}

// COPY through the proxy: psql's \copy in and out (text and csv, inside a
// transaction and not, a duplicate key refusing the whole COPY), pgx's
// CopyFrom (binary format) and a COPY the client fails half way; the
// secondary gets every row the primary took, values decided there
// (clock_timestamp()) included.
func TestCopyThroughTheProxy(t *testing.T) {
	addr, cfg := proxyPair(t)
	dir := t.TempDir()
	var in1, in2 strings.Builder
	for i := 1; i <= 1000; i++ {
		fmt.Fprintf(&in1, "%d,item %d,%d.50\n", i, i, i)
	}
	for i := 1001; i <= 1500; i++ {
		fmt.Fprintf(&in2, "%d,\"item, %d\",%d\n", i, i, i)
	}
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	p1, p2, bad := write("in1.csv", in1.String()), write("in2.csv", in2.String()), write("bad.csv", "2000,new,1\n5,taken,1\n")
	out := filepath.Join(dir, "out.csv")
	script := fmt.Sprintf(`CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, price numeric, added timestamptz DEFAULT clock_timestamp());
\copy items (id, name, price) FROM '%s' WITH (FORMAT csv)
BEGIN;
\copy items (id, name, price) FROM '%s' WITH (FORMAT csv)
UPDATE items SET price = price * 2 WHERE id <= 10;
COMMIT;
\copy items (id, name, price) FROM '%s' WITH (FORMAT csv)
\copy (SELECT id, name, price FROM items WHERE id IN (1, 1001, 1500) ORDER BY id) TO '%s' WITH (FORMAT csv)
\copy nosuch FROM '%s'
SELECT count(*) AS n FROM items;
`, p1, p2, bad, out, p1)
	text := psqlScript(t, addr, "disable", script)
	for _, want := range []string{"COPY 1000", "BEGIN", "COPY 500", "UPDATE 10", "COMMIT",
		"duplicate key value violates unique constraint", "COPY 3", `relation "nosuch" does not exist`, "n\n1500\n(1 row)"} {
		if !strings.Contains(text, want) {
			t.Errorf("psql's output lacks %q:\n%s", want, text)
		}
	}
	csv, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if want := "1,item 1,3.00\n1001,\"item, 1001\",1001\n1500,\"item, 1500\",1500\n"; string(csv) != want {
		t.Errorf("\\copy out wrote %q, want %q", csv, want)
	}

	// pgx's CopyFrom sends the binary format; a source that fails half way
	// has pgx send CopyFail: nothing of it is written.
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, proxyDSN(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var rows [][]any
	for i := 3001; i <= 3200; i++ {
		rows = append(rows, []any{int32(i), fmt.Sprintf("binary %d", i)})
	}
	n, err := conn.CopyFrom(ctx, pgx.Identifier{"items"}, []string{"id", "name"}, pgx.CopyFromRows(rows))
	if err != nil || n != 200 {
		t.Fatalf("pgx CopyFrom: %d rows, %v; want 200", n, err)
	}
	i := 0
	_, err = conn.CopyFrom(ctx, pgx.Identifier{"items"}, []string{"id", "name"}, pgx.CopyFromFunc(func() ([]any, error) {
		if i++; i > 50 {
			return nil, fmt.Errorf("the source ran dry")
		}
		return []any{int32(4000 + i), "never"}, nil
	}))
	if err == nil || !strings.Contains(err.Error(), "the source ran dry") {
		t.Fatalf("a failed CopyFrom: %v; want the source's error", err)
	}
	var total, never int
	if err := conn.QueryRow(ctx, "SELECT count(*), count(*) FILTER (WHERE name = 'never') FROM items").Scan(&total, &never); err != nil {
		t.Fatal(err)
	}
	if total != 1700 || never != 0 {
		t.Errorf("items holds %d rows (%d of the failed COPY); want 1700 (0)", total, never)
	}
	identical(t, cfg)
}

// pgbench, a client nobody here wrote, initialises its tables through the
// proxy (its steps in two runs, tables then keys and data: tandem
// refuses writes to a table without a primary key, so pgbench_history gets
// one in between, and the keys come before the data) and runs its TPC-B transactions, with its
// VACUUMs and TRUNCATE; both databases end identical, and pgbench's
// balance invariant holds on each.
func TestPgbenchThroughTheProxy(t *testing.T) {
	pgbench, err := exec.LookPath("pgbench")
	needTool(t, err, "postgresql")
	psql, err := exec.LookPath("psql")
	needTool(t, err, "postgresql-client")
	p := proxyPairOf(t)
	cfg := p.cfg
	host, port, _ := net.SplitHostPort(p.addr)
	run := func(name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(name, append(args, "-h", host, "-p", port, "-U", "app", "app")...)
		cmd.Env = append(os.Environ(), "PGPASSWORD=app pw", "PGSSLMODE=disable")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	// invariant checks pgbench's balances on each database, with want
	// history rows.
	invariant := func(want int64) {
		t.Helper()
		for _, ds := range cfg.Datasources {
			conn, err := pgx.Connect(context.Background(), ds.DSN)
			if err != nil {
				t.Fatal(err)
			}
			var a, b, tl, h, n int64
			err = conn.QueryRow(context.Background(), `SELECT (SELECT sum(abalance) FROM pgbench_accounts), (SELECT sum(bbalance) FROM pgbench_branches),
				(SELECT sum(tbalance) FROM pgbench_tellers), (SELECT coalesce(sum(delta), 0) FROM pgbench_history), (SELECT count(*) FROM pgbench_history)`).Scan(&a, &b, &tl, &h, &n)
			conn.Close(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if a != b || b != tl || tl != h || n != want {
				t.Errorf("%s: balances accounts %d, branches %d, tellers %d, history %d (%d rows, want %d): pgbench's invariant fails", ds.Name, a, b, tl, h, n, want)
			}
		}
	}
	run(pgbench, "-i", "-I", "dt")
	run(psql, "-X", "-v", "ON_ERROR_STOP=1", "-c", "ALTER TABLE pgbench_history ADD COLUMN hid bigserial PRIMARY KEY")
	run(pgbench, "-i", "-I", "pgv", "-s", "1")
	out := run(pgbench, "-c", "4", "-j", "2", "-t", "200")
	if !strings.Contains(out, "number of transactions actually processed: 800/800") {
		t.Fatalf("pgbench did not run its 800 transactions:\n%s", out)
	}
	t.Logf("pgbench:\n%s", out)
	identical(t, cfg)
	invariant(800)

	// Again, for 10 s, while the secondary is SIGKILLed and restarted:
	// pgbench, which gives up on a client at its first error, sees none
	// (-n: no VACUUM or TRUNCATE, so that history keeps the first run's
	// rows).
	go func() {
		time.Sleep(2 * time.Second)
		if err := p.b.Kill(); err != nil {
			t.Error(err)
			return
		}
		time.Sleep(4 * time.Second)
		if err := p.b.Relaunch(); err != nil {
			t.Error(err)
		}
	}()
	out = run(pgbench, "-n", "-c", "4", "-j", "2", "-T", "10")
	t.Logf("pgbench while bar was killed:\n%s", out)
	var processed int64
	for _, line := range strings.Split(out, "\n") {
		if _, err := fmt.Sscanf(strings.TrimSpace(line), "number of transactions actually processed: %d", &processed); err == nil {
			break
		}
	}
	if processed == 0 || !strings.Contains(out, "number of failed transactions: 0 ") {
		t.Fatalf("pgbench while bar was killed: %d transactions, or some failed:\n%s", processed, out)
	}
	// bar catches up.
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		if rep, err := verify.Compare(context.Background(), cfg, verify.Options{}); err == nil && rep.Identical {
			break
		}
	}
	identical(t, cfg)
	invariant(800 + processed)
}

// phpLoop is a Propel-style PHP application that keeps working: an id
// from the sequence, an insert, a transaction (an update, an insert of a
// review), a delete of every fifth book. It prints each id it saved and
// deleted, and "done" at the end; any error ends it with the exception.
const phpLoop = `<?php
[$dsn, $user, $pass, $n] = [$argv[1], $argv[2], $argv[3], (int)$argv[4]];
$pdo = new PDO($dsn, $user, $pass, [PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION]);
$pdo->exec("CREATE TABLE book (id serial PRIMARY KEY, title varchar(255) NOT NULL, created_at timestamp NOT NULL DEFAULT now(), price numeric(8,2))");
$pdo->exec("CREATE TABLE review (id serial PRIMARY KEY, book_id int NOT NULL, stars int NOT NULL, at timestamptz DEFAULT clock_timestamp())");
echo "ready\n";
for ($i = 1; $i <= $n; $i++) {
	$id = $pdo->query("SELECT nextval('book_id_seq')")->fetchColumn();
	$st = $pdo->prepare("INSERT INTO book (id, title, created_at, price) VALUES (:p1, :p2, :p3, :p4)");
	$st->execute([':p1' => $id, ':p2' => "Book $i", ':p3' => gmdate('Y-m-d H:i:s'), ':p4' => 10 + $i / 4]);
	$pdo->beginTransaction();
	$pdo->prepare("UPDATE book SET price = price + 1 WHERE id = :id")->execute([':id' => $id]);
	$pdo->prepare("INSERT INTO review (book_id, stars) VALUES (:b, :s)")->execute([':b' => $id, ':s' => $i % 5 + 1]);
	$pdo->commit();
	echo "saved $id\n";
	if ($i % 5 == 0) {
		$pdo->prepare("DELETE FROM book WHERE id = :id")->execute([':id' => $id]);
		echo "deleted $id\n";
	}
	usleep(10000);
}
echo "done\n";
`

// The PHP application runs on, unchanged and without an error, while the
// secondary is SIGKILLed and restarted under it: every book it saved is
// on both databases (those it deleted on neither), and they end identical.
func TestPHPPDOWhileTheSecondaryIsKilled(t *testing.T) {
	php := needPHP(t)
	p := proxyPairOf(t)
	addr, cfg, a, b := p.addr, p.cfg, p.a, p.b
	host, port, _ := net.SplitHostPort(addr)
	script := filepath.Join(t.TempDir(), "loop.php")
	if err := os.WriteFile(script, []byte(phpLoop), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(php, script, fmt.Sprintf("pgsql:host=%s;port=%s;dbname=app;sslmode=disable", host, port), "app", "app pw", "400")
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// A change of structure needs every database: the loss comes after
	// the tables are made.
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(out.String(), "ready") && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second)
	if err := b.Kill(); err != nil {
		t.Fatal(err)
	}
	t.Log("bar SIGKILLed")
	time.Sleep(3 * time.Second)
	b.Restart(t)
	t.Log("bar restarted")
	if err := cmd.Wait(); err != nil {
		t.Fatalf("php: %v\n%s", err, out.String())
	}
	saved, deleted := map[int]bool{}, map[int]bool{}
	for _, line := range strings.Split(out.String(), "\n") {
		var id int
		if n, _ := fmt.Sscanf(line, "saved %d", &id); n == 1 {
			saved[id] = true
		} else if n, _ := fmt.Sscanf(line, "deleted %d", &id); n == 1 {
			deleted[id] = true
		}
	}
	if !strings.Contains(out.String(), "done") || len(saved) != 400 {
		t.Fatalf("the script saved %d books, want 400:\n%s", len(saved), out.String())
	}
	ctx := context.Background()
	// Catch-up brings bar back: wait until it holds every book.
	for _, s := range []*dbserver.Server{a, b} {
		conn, err := pgx.Connect(ctx, s.DSN("app", ""))
		if err != nil {
			t.Fatal(err)
		}
		var books, reviews int
		for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			err = conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM book), (SELECT count(*) FROM review)`).Scan(&books, &reviews)
			if err == nil && books == len(saved)-len(deleted) && reviews == len(saved) || time.Now().After(deadline) {
				break
			}
		}
		if err != nil || books != len(saved)-len(deleted) || reviews != len(saved) {
			t.Errorf("%s: %d books, %d reviews (%v); want %d and %d", s.Addr(), books, reviews, err, len(saved)-len(deleted), len(saved))
		}
		rows, err := conn.Query(ctx, `SELECT id FROM book`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var id int
			rows.Scan(&id)
			if !saved[id] || deleted[id] {
				t.Errorf("%s holds book %d, which the script did not keep (saved %v, deleted %v)", s.Addr(), id, saved[id], deleted[id])
			}
		}
		rows.Close()
		conn.Close(ctx)
	}
	identical(t, cfg)
}

// syncBuffer is a bytes.Buffer a process writes while a test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Savepoints through the proxy: ROLLBACK TO undoes what followed the
// savepoint (an error included) on every database, RELEASE keeps it, and
// psql's ON_ERROR_ROLLBACK (a savepoint around each statement) lets a
// transaction go on past a failed statement.
func TestSavepointsThroughTheProxy(t *testing.T) {
	addr, cfg := proxyPair(t)
	script := `CREATE TABLE sp (id int PRIMARY KEY, at timestamptz DEFAULT clock_timestamp());
SAVEPOINT outside;
BEGIN;
INSERT INTO sp (id) VALUES (1);
SAVEPOINT s1;
INSERT INTO sp (id) VALUES (2);
SELECT 1/0;
ROLLBACK TO SAVEPOINT s1;
INSERT INTO sp (id) VALUES (3);
SAVEPOINT "S2";
INSERT INTO sp (id) VALUES (4);
RELEASE SAVEPOINT "S2";
ROLLBACK TO nosuch;
ROLLBACK TO s1;
INSERT INTO sp (id) VALUES (5);
COMMIT;
\set ON_ERROR_ROLLBACK on
BEGIN;
INSERT INTO sp (id) VALUES (6);
INSERT INTO sp (id) VALUES (1);
INSERT INTO sp (id) VALUES (7);
COMMIT;
SELECT string_agg(id::text, ',' ORDER BY id) AS ids FROM sp;
BEGIN;
DECLARE cur CURSOR FOR SELECT id AS fetched FROM sp ORDER BY id;
FETCH 2 FROM cur;
FETCH 2 FROM cur;
CLOSE cur;
COMMIT;
`
	text := psqlScript(t, addr, "disable", script)
	for _, want := range []string{
		"SAVEPOINT can only be used in transaction blocks", "division by zero", `savepoint "nosuch" does not exist`,
		"duplicate key value", "ids\n1,5,6,7\n(1 row)", "fetched\n1\n5\n(2 rows)", "fetched\n6\n7\n(2 rows)",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("psql's output lacks %q:\n%s", want, text)
		}
	}
	identical(t, cfg)
}

// Execute with a row limit (how JDBC's setFetchSize reads): the portal
// sends that many rows, is suspended, and sends on at the next Execute;
// another statement may run in between.
func TestExecuteWithARowLimit(t *testing.T) {
	addr, _ := proxyPair(t)
	ctx := context.Background()
	conn, err := pgconn.Connect(ctx, proxyDSN(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := conn.Exec(ctx, `CREATE TABLE lim (id int PRIMARY KEY)`).Close(); err != nil {
		t.Fatal(err)
	}
	if err := conn.Exec(ctx, `INSERT INTO lim SELECT generate_series(1, 5)`).Close(); err != nil {
		t.Fatal(err)
	}
	hc, err := conn.Hijack()
	if err != nil {
		t.Fatal(err)
	}
	defer hc.Conn.Close()
	fe := hc.Frontend
	// read collects the messages up to one of the kinds in until, as text.
	read := func(until ...string) []string {
		t.Helper()
		var got []string
		for {
			msg, err := fe.Receive()
			if err != nil {
				t.Fatalf("receive after %v: %v", got, err)
			}
			var s string
			switch m := msg.(type) {
			case *pgproto3.DataRow:
				s = "row " + string(m.Values[0])
			case *pgproto3.CommandComplete:
				s = "complete " + string(m.CommandTag)
			case *pgproto3.ErrorResponse:
				s = "error " + m.Message
			default:
				s = strings.TrimPrefix(fmt.Sprintf("%T", msg), "*pgproto3.")
			}
			got = append(got, s)
			for _, u := range until {
				if strings.HasPrefix(s, u) {
					return got
				}
			}
		}
	}
	fe.Send(&pgproto3.Query{String: "BEGIN"})
	fe.Flush()
	read("ReadyForQuery")
	fe.Send(&pgproto3.Parse{Name: "s", Query: "SELECT id FROM lim ORDER BY id"})
	fe.Send(&pgproto3.Bind{PreparedStatement: "s", DestinationPortal: "c"})
	fe.Send(&pgproto3.Execute{Portal: "c", MaxRows: 2})
	fe.Send(&pgproto3.Sync{})
	fe.Flush()
	if got, want := strings.Join(read("ReadyForQuery"), "|"), "ParseComplete|BindComplete|row 1|row 2|PortalSuspended|ReadyForQuery"; got != want {
		t.Fatalf("the first fetch: %s, want %s", got, want)
	}
	fe.Send(&pgproto3.Query{String: "INSERT INTO lim VALUES (6)"})
	fe.Flush()
	if got := strings.Join(read("ReadyForQuery"), "|"); !strings.Contains(got, "complete INSERT 0 1") {
		t.Fatalf("an insert between fetches: %s", got)
	}
	for _, want := range []string{"row 3|row 4|PortalSuspended|ReadyForQuery", "row 5|complete SELECT 1|ReadyForQuery", "complete SELECT 0|ReadyForQuery"} {
		fe.Send(&pgproto3.Execute{Portal: "c", MaxRows: 2})
		fe.Send(&pgproto3.Sync{})
		fe.Flush()
		if got := strings.Join(read("ReadyForQuery"), "|"); got != want {
			t.Fatalf("a fetch: %s, want %s", got, want)
		}
	}
	fe.Send(&pgproto3.Query{String: "COMMIT"})
	fe.Flush()
	if got := strings.Join(read("ReadyForQuery"), "|"); !strings.Contains(got, "complete COMMIT") {
		t.Fatalf("commit: %s", got)
	}
}
