package compat_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandemdb/tandem"
	"github.com/tandemdb/tandem/internal/dbserver"
	"github.com/tandemdb/tandem/stdlib"
	"github.com/tandemdb/tandem/verify"
)

// pair is two databases kept identical by tandem, reached by a library
// through db (tandem's driver), and directly through foo and bar for the
// checks.
type pair struct {
	engine   string // "sqlite" or "postgres": the dialect the library speaks
	cfg      *tandem.Config
	c        *tandem.Cluster
	db       *sql.DB
	foo, bar *sql.DB
	// fault takes bar down (a SQLite file locked by another process for
	// longer than the timeout; a PostgreSQL server killed); heal brings
	// it back.
	fault, heal func(t *testing.T)
}

var dbCount atomic.Int64

func openPair(t *testing.T, cfg *tandem.Config, p *pair) *pair {
	t.Helper()
	cfg.Timeout = 2 * time.Second // calm on a loaded 2-core machine
	cfg.HealthInterval = 50 * time.Millisecond
	cfg.Arbiter = tandem.ArbiterConfig{Kind: "witness", Fields: map[string]any{"path": filepath.Join(t.TempDir(), "tandem.witness")}}
	c, err := tandem.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	p.cfg, p.c, p.db = cfg, c, stdlib.OpenDB(c)
	t.Cleanup(func() { p.db.Close() })
	return p
}

// sqlitePair is two SQLite files, bar's reached through a symbolic link
// (as through a mount): the fault points the link at nothing, the heal
// back at the file.
func sqlitePair(t *testing.T) *pair {
	t.Helper()
	dir := t.TempDir()
	foo, bar := filepath.Join(dir, "foo.db"), filepath.Join(dir, "bar.db")
	if err := os.WriteFile(bar, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "mnt"), 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "mnt", "bar.db")
	point := func(t *testing.T, target string) {
		tmp := link + ".new"
		os.Remove(tmp)
		if err := os.Symlink(target, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, link); err != nil {
			t.Fatal(err)
		}
	}
	point(t, bar)
	p := &pair{engine: "sqlite"}
	p.fault = func(t *testing.T) { point(t, filepath.Join(dir, "lost", "bar.db")) }
	p.heal = func(t *testing.T) { point(t, bar) }
	p = openPair(t, &tandem.Config{Datasources: []tandem.Datasource{
		{Name: "foo", Driver: "sqlite", DSN: foo},
		{Name: "bar", Driver: "sqlite", DSN: link},
	}}, p)
	p.foo, p.bar = plain(t, "sqlite3", "file:"+foo), plain(t, "sqlite3", "file:"+bar)
	return p
}

// postgresPair is two databases on two PostgreSQL servers.
func postgresPair(t *testing.T, srv [2]*dbserver.Server) *pair {
	t.Helper()
	name := fmt.Sprintf("compat%d", dbCount.Add(1))
	for _, s := range srv {
		s.CreateDatabase(t, name)
	}
	p := &pair{engine: "postgres"}
	p.fault = func(t *testing.T) {
		if err := srv[1].Kill(); err != nil {
			t.Fatal(err)
		}
	}
	p.heal = func(t *testing.T) { srv[1].Restart(t) }
	p = openPair(t, &tandem.Config{Datasources: []tandem.Datasource{
		{Name: "foo", Driver: "postgres", DSN: srv[0].DSN(name, "")},
		{Name: "bar", Driver: "postgres", DSN: srv[1].DSN(name, "")},
	}}, p)
	p.foo, p.bar = plain(t, "pgx", srv[0].DSN(name, "")), plain(t, "pgx", srv[1].DSN(name, ""))
	return p
}

func plain(t *testing.T, driver, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// identical fails unless verify finds the pair's databases identical.
func (p *pair) identical(t *testing.T, tables ...string) {
	t.Helper()
	rep, err := verify.Compare(context.Background(), p.cfg, verify.Options{Tables: tables})
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if !rep.Identical {
		for _, tr := range rep.Tables {
			for i, d := range tr.Differences {
				if i < 10 {
					t.Errorf("table %s: %s %v", tr.Table, d.Kind, d.Key)
				}
			}
		}
		t.Fatal("verify: the databases differ")
	}
}

// waitStatus polls the cluster's status until ok holds.
func (p *pair) waitStatus(t *testing.T, what string, ok func(*tandem.Status) bool) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		st, err := p.c.Status(context.Background())
		if err == nil && ok(st) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited 90 s for %s (%v)", what, err)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func barState(st *tandem.Status) string {
	for _, n := range st.Nodes {
		if n.Name == "bar" {
			return n.State
		}
	}
	return ""
}

func inSync(st *tandem.Status) bool {
	for _, n := range st.Nodes {
		if n.State != tandem.StateInSync || n.Behind != 0 || n.InDoubt != 0 {
			return false
		}
	}
	return len(st.Nodes) > 0 && st.Primary == "foo"
}

// faultRun runs insert (a library's insert of the value v into the
// table called table, column v) from three writers while bar goes down
// and comes back, then checks that every acknowledged value is on both
// databases, read directly (a Jepsen-style set), that every insert that
// failed as not committed (a transaction of the driver that met bar's
// loss) is on neither, that no insert failed otherwise, and that verify
// finds the databases identical.
func (p *pair) faultRun(t *testing.T, table string, insert func(ctx context.Context, v int64) error) {
	t.Helper()
	ctx := context.Background()
	var next atomic.Int64
	var mu sync.Mutex
	acked, refused := map[int64]bool{}, map[int64]bool{}
	var failures []error
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 3 {
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
				err := insert(ctx, v)
				mu.Lock()
				switch {
				case err == nil:
					acked[v] = true
				case errors.Is(err, tandem.ErrNotCommitted):
					// A transaction the driver cannot run again (its
					// statements came one by one): nothing written.
					refused[v] = true
				default:
					failures = append(failures, err)
				}
				mu.Unlock()
			}
		}()
	}
	progress := func(what string, n int64) {
		t.Helper()
		start := next.Load()
		deadline := time.Now().Add(90 * time.Second)
		for next.Load() < start+n {
			if time.Now().After(deadline) {
				close(stop)
				wg.Wait()
				t.Fatalf("%s: fewer than %d inserts in 90 s (failures: %v)", what, n, failures)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	progress("before the fault", 30)
	p.fault(t)
	p.waitStatus(t, "bar down", func(st *tandem.Status) bool { return barState(st) != tandem.StateInSync })
	progress("with bar down", 30)
	p.heal(t)
	p.waitStatus(t, "bar caught up", inSync)
	progress("after bar caught up", 30)
	close(stop)
	wg.Wait()

	for i, err := range failures {
		if i < 5 {
			t.Errorf("an insert failed, want none (foo was up throughout): %v", err)
		}
	}
	for name, db := range map[string]*sql.DB{"foo": p.foo, "bar": p.bar} {
		rows, err := db.QueryContext(ctx, "SELECT v FROM "+table)
		if err != nil {
			t.Fatal(err)
		}
		have := map[int64]bool{}
		for rows.Next() {
			var v int64
			if err := rows.Scan(&v); err != nil {
				t.Fatal(err)
			}
			have[v] = true
		}
		rows.Close()
		lost, ghosts := 0, 0
		for v := range acked {
			if !have[v] {
				lost++
			}
		}
		for v := range refused {
			if have[v] {
				ghosts++
			}
		}
		if lost > 0 {
			t.Errorf("%s lacks %d of %d acknowledged inserts", name, lost, len(acked))
		}
		if ghosts > 0 {
			t.Errorf("%s holds %d of %d inserts that failed as not committed", name, ghosts, len(refused))
		}
	}
	if len(acked) < 90 {
		t.Errorf("only %d inserts acknowledged", len(acked))
	}
	p.waitStatus(t, "in sync", inSync)
	p.identical(t)
	t.Logf("%s: %d inserts acknowledged through bar's fault, %d not committed (and absent)", p.engine, len(acked), len(refused))
}

// onBoth runs f on a SQLite pair and on a PostgreSQL pair (two servers
// started for the test).
func onBoth(t *testing.T, f func(t *testing.T, p *pair)) {
	t.Run("sqlite", func(t *testing.T) { f(t, sqlitePair(t)) })
	srv := [2]*dbserver.Server{dbserver.Start(t, dbserver.Postgres), dbserver.Start(t, dbserver.Postgres)}
	t.Run("postgres", func(t *testing.T) { f(t, postgresPair(t, srv)) })
}
