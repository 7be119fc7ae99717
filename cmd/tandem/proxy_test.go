package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tandemdb/tandem/internal/dbserver"
	"github.com/tandemdb/tandem/proxy/pgwire"
)

func hashPassword(t *testing.T, password string) (int, string, string) {
	t.Helper()
	old := stdin
	stdin = strings.NewReader(password)
	defer func() { stdin = old }()
	return runT(t, "proxy", "hash-password")
}

func TestProxyHashPasswordAndBadStarts(t *testing.T) {
	code, out, errs := hashPassword(t, "s3cret\n")
	if code != 0 {
		t.Fatalf("hash-password: exit %d %s", code, errs)
	}
	if _, err := pgwire.ParseVerifier(strings.TrimSpace(out)); err != nil || strings.Contains(out, "s3cret") {
		t.Errorf("hash-password printed %q (%v)", out, err)
	}
	if code, _, errs := hashPassword(t, ""); code != 2 || !strings.Contains(errs, "no password on stdin") {
		t.Errorf("hash-password of nothing: exit %d %s", code, errs)
	}
	dir := t.TempDir()
	cfg := writeConfig(t, dir, twoFiles)
	users := filepath.Join(dir, "users")
	if err := os.WriteFile(users, []byte("app:"+strings.TrimSpace(out)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"proxy", "--config", cfg}, "--users is required"},
		{[]string{"proxy", "--config", cfg, "--users", filepath.Join(dir, "nosuch")}, "no such file"},
		{[]string{"proxy", "--config", cfg, "--users", cfg}, "line 1: user \"datasources\": not a SCRAM-SHA-256 verifier"},
		{[]string{"proxy", "--config", cfg, "--users", users}, "datasource foo uses driver sqlite: the proxy speaks PostgreSQL's protocol"},
		{[]string{"proxy", "--config", cfg, "--users", users, "--tls-cert", cfg}, "--tls-cert and --tls-key go together"},
		{[]string{"proxy", "--config", cfg, "--users", users, "--require-tls"}, "--require-tls needs --tls-cert"},
		{[]string{"proxy", "--config", cfg, "--users", users, "--tls-cert", cfg, "--tls-key", cfg}, "--tls-cert/--tls-key:"},
	} {
		if code, _, errs := runT(t, tc.args...); code != 2 || !strings.Contains(errs, tc.want) {
			t.Errorf("tandem %s: exit %d, stderr %q; want 2 and %q", strings.Join(tc.args, " "), code, errs, tc.want)
		}
	}
}

// tandem proxy serves a PostgreSQL pair until interrupted: a client
// authenticates with the password whose verifier hash-password printed,
// writes and reads; both databases get the rows.
func TestProxyCommandServes(t *testing.T) {
	a, b := dbserver.Start(t, dbserver.Postgres), dbserver.Start(t, dbserver.Postgres)
	a.CreateDatabase(t, "app")
	b.CreateDatabase(t, "app")
	dir := t.TempDir()
	cfg := writeConfig(t, dir, fmt.Sprintf("datasources:\n  - name: foo\n    driver: postgres\n    dsn: %q\n  - name: bar\n    driver: postgres\n    dsn: %q\n", a.DSN("app", ""), b.DSN("app", "")))
	_, verifier, _ := hashPassword(t, "app pw\n")
	users := filepath.Join(dir, "users")
	if err := os.WriteFile(users, []byte("app:"+verifier), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errs syncBuf
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"proxy", "--config", cfg, "--users", users, "--listen", "127.0.0.1:0"}, &out, &errs)
	}()
	var addr string
	for deadline := time.Now().Add(30 * time.Second); addr == "" && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if s := out.String(); strings.Contains(s, "listening on ") {
			addr = strings.Fields(strings.SplitN(s, "listening on ", 2)[1])[0]
		}
	}
	if addr == "" {
		t.Fatalf("the proxy did not start:\n%s%s", out.String(), errs.String())
	}
	pc, err := pgx.ParseConfig("postgres://app:app%20pw@" + addr + "/app?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.ConnectConfig(ctx, pc) // the extended protocol, pgx's default
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `CREATE TABLE t (id bigserial PRIMARY KEY, v text)`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO t (v) VALUES ($1), ($2)`, "a", "b"); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	for _, s := range []*dbserver.Server{a, b} {
		c, err := pgx.Connect(ctx, s.DSN("app", ""))
		if err != nil {
			t.Fatal(err)
		}
		var n int
		if err := c.QueryRow(ctx, `SELECT count(*) FROM t`).Scan(&n); err != nil || n != 2 {
			t.Errorf("%s holds %d rows (%v), want 2", s.Addr(), n, err)
		}
		c.Close(ctx)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("tandem proxy: exit %d\n%s", code, errs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("tandem proxy did not stop when interrupted")
	}
}

// syncBuf is a bytes.Buffer safe for a writer and a reader at once.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
