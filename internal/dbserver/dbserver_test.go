package dbserver_test

import (
	"context"
	"database/sql"
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/tandemdb/tandem/internal/dbserver"
)

var kinds = []dbserver.Kind{dbserver.Postgres, dbserver.MariaDB}

// forEachKind runs test for every kind of server, in parallel.
func forEachKind(t *testing.T, test func(t *testing.T, kind dbserver.Kind)) {
	t.Parallel()
	for _, kind := range kinds {
		t.Run(string(kind), func(t *testing.T) {
			t.Parallel()
			test(t, kind)
		})
	}
}

// open opens dsn with the driver for kind, closed at test end.
func open(t *testing.T, kind dbserver.Kind, dsn string) *sql.DB {
	t.Helper()
	driver := map[dbserver.Kind]string{dbserver.Postgres: "pgx", dbserver.MariaDB: "mysql"}[kind]
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// startWithRow starts a server with database app holding table t with the
// one row (1, value), and returns it with a pool connected as the tandem user.
func startWithRow(t *testing.T, kind dbserver.Kind, value string) (*dbserver.Server, *sql.DB) {
	t.Helper()
	s := dbserver.Start(t, kind)
	s.CreateDatabase(t, "app")
	db := open(t, kind, s.DSN("app", ""))
	exec(t, db, "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20))")
	exec(t, db, "INSERT INTO t VALUES (1, '"+value+"')")
	return s, db
}

func exec(t *testing.T, db *sql.DB, query string) {
	t.Helper()
	if _, err := db.ExecContext(context.Background(), query); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

// value returns t's value of row id.
func value(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, id string) (string, error) {
	var v string
	err := q.QueryRowContext(ctx, "SELECT v FROM t WHERE id = "+id).Scan(&v)
	return v, err
}

func wantValue(t *testing.T, db *sql.DB, want string) {
	t.Helper()
	got, err := value(context.Background(), db, "1")
	if err != nil || got != want {
		t.Fatalf("row 1 = %q, %v; want %q", got, err, want)
	}
}

func TestStartServesADatabaseOverTheDSN(t *testing.T) {
	forEachKind(t, func(t *testing.T, kind dbserver.Kind) {
		s, db := startWithRow(t, kind, "one")
		if s.Kind() != kind || !s.Running() {
			t.Fatalf("Kind() = %s, Running() = %v; want %s, true", s.Kind(), s.Running(), kind)
		}
		s.CreateDatabase(t, "app") // exists: no error
		wantValue(t, db, "one")

		// The DSN's password is checked: a wrong one is refused.
		bad := open(t, kind, withPassword(t, kind, s.DSN("app", ""), "wrong"))
		if err := bad.Ping(); err == nil {
			t.Fatal("connecting with a wrong password succeeded")
		}
	})
}

// withPassword returns dsn with its password replaced.
func withPassword(t *testing.T, kind dbserver.Kind, dsn, password string) string {
	t.Helper()
	if kind == dbserver.Postgres {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatal(err)
		}
		u.User = url.UserPassword(u.User.Username(), password)
		return u.String()
	}
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Passwd = password
	return cfg.FormatDSN()
}

func TestKillThenRestartKeepsCommittedRows(t *testing.T) {
	forEachKind(t, func(t *testing.T, kind dbserver.Kind) {
		s, db := startWithRow(t, kind, "before")
		exec(t, db, "UPDATE t SET v = 'committed' WHERE id = 1")

		if err := s.Kill(); err != nil {
			t.Fatal(err)
		}
		if s.Running() {
			t.Fatal("Running() after Kill")
		}
		if err := db.Ping(); err == nil {
			t.Fatal("ping succeeded on a killed server")
		}

		s.Restart(t)
		if !s.Running() {
			t.Fatal("not Running() after Restart")
		}
		// A new pool: the old one's connections died with the server.
		wantValue(t, open(t, kind, s.DSN("app", "")), "committed")
	})
}

func TestStopThenRestart(t *testing.T) {
	forEachKind(t, func(t *testing.T, kind dbserver.Kind) {
		s, db := startWithRow(t, kind, "kept")
		if err := s.Stop(); err != nil {
			t.Fatal(err)
		}
		if s.Running() {
			t.Fatal("Running() after Stop")
		}
		if err := s.Stop(); err != nil {
			t.Fatalf("second Stop: %v", err)
		}
		s.Restart(t)
		db = open(t, kind, s.DSN("app", ""))
		wantValue(t, db, "kept")
		exec(t, db, "INSERT INTO t VALUES (2, 'after')")
	})
}

func TestPauseHangsQueriesUntilResume(t *testing.T) {
	forEachKind(t, func(t *testing.T, kind dbserver.Kind) {
		s, db := startWithRow(t, kind, "one")
		if err := s.Pause(); err != nil {
			t.Fatal(err)
		}
		if !s.Running() {
			t.Fatal("a paused server is not Running()")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		_, err := value(ctx, db, "1")
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("query on a paused server: %v; want a context deadline error", err)
		}

		if err := s.Resume(); err != nil {
			t.Fatal(err)
		}
		wantValue(t, db, "one")
	})
}

func TestProxyForwardsAndCutBreaksConnections(t *testing.T) {
	forEachKind(t, func(t *testing.T, kind dbserver.Kind) {
		s, _ := startWithRow(t, kind, "one")
		p := dbserver.NewProxy(t, s.Addr())
		if p.Target() != s.Addr() {
			t.Fatalf("Target() = %s; want %s", p.Target(), s.Addr())
		}
		db := open(t, kind, s.DSN("app", p.Addr()))
		ctx := context.Background()
		conn, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if v, err := value(ctx, conn, "1"); err != nil || v != "one" {
			t.Fatalf("through the proxy: %q, %v", v, err)
		}
		if n := p.Conns(); n != 1 {
			t.Fatalf("Conns() = %d with one open connection", n)
		}

		p.Cut()
		if _, err := value(ctx, conn, "1"); err == nil {
			t.Fatal("query on a cut connection succeeded")
		}
		if err := db.PingContext(ctx); err == nil {
			t.Fatal("new connection through a cut proxy succeeded")
		}
		if n := p.Conns(); n != 0 {
			t.Fatalf("Conns() = %d after Cut", n)
		}

		p.Restore()
		if err := db.PingContext(ctx); err != nil {
			t.Fatalf("new connection after Restore: %v", err)
		}
		wantValue(t, db, "one")
	})
}

func TestProxyRedirectReachesAnotherServer(t *testing.T) {
	forEachKind(t, func(t *testing.T, kind dbserver.Kind) {
		first, _ := startWithRow(t, kind, "first")
		second, _ := startWithRow(t, kind, "second")
		p := dbserver.NewProxy(t, first.Addr())
		db := open(t, kind, first.DSN("app", p.Addr()))
		ctx := context.Background()
		conn, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if v, err := value(ctx, conn, "1"); err != nil || v != "first" {
			t.Fatalf("before Redirect: %q, %v; want first", v, err)
		}

		p.Redirect(second.Addr())
		if p.Target() != second.Addr() {
			t.Fatalf("Target() = %s; want %s", p.Target(), second.Addr())
		}
		if _, err := value(ctx, conn, "1"); err == nil {
			t.Fatal("a connection opened before Redirect still works")
		}
		// The same DSN, a new connection: the other server answers.
		wantValue(t, db, "second")
	})
}

func TestProxyDelaySlowsEveryRoundTrip(t *testing.T) {
	forEachKind(t, func(t *testing.T, kind dbserver.Kind) {
		s, _ := startWithRow(t, kind, "one")
		p := dbserver.NewProxy(t, s.Addr())
		db := open(t, kind, s.DSN("app", p.Addr()))
		ctx := context.Background()
		conn, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := value(ctx, conn, "1"); err != nil {
			t.Fatal(err)
		}

		const d = 100 * time.Millisecond
		p.Delay(d)
		start := time.Now()
		if _, err := value(ctx, conn, "1"); err != nil {
			t.Fatal(err)
		}
		// A query and its answer: at least one chunk each way.
		if took := time.Since(start); took < 2*d {
			t.Fatalf("a query through a proxy delaying %v took %v; want at least %v", d, took, 2*d)
		}

		p.Delay(0)
		wantValue(t, db, "one")
	})
}
