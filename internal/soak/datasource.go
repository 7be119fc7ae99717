package soak

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	_ "github.com/go-sql-driver/mysql"       // database/sql driver "mysql"
	_ "github.com/jackc/pgx/v5/stdlib"       // database/sql driver "pgx"
	_ "github.com/ncruces/go-sqlite3/driver" // database/sql driver "sqlite3"

	"github.com/tandemdb/tandem/internal/dbserver"
	"github.com/tandemdb/tandem/internal/jepsen"
	"github.com/tandemdb/tandem/internal/records"
)

// Engines are the engines the soak runs on.
var Engines = []string{"sqlite", "postgres", "mariadb"}

// datasource is one datasource of a run: how the config names it, how the
// soak reads it bypassing tandem, and how it breaks it.
type datasource struct {
	name   string
	driver string // tandem's driver: sqlite, postgres, mysql
	dsn    string // in the config: a file relative to it, or through the proxy
	// sqlDriver and direct open the database with database/sql,
	// bypassing tandem and the proxy.
	sqlDriver, direct string
	file              string           // sqlite: the database file, as configured
	mount             string           // sqlite: the directory the file really is in
	server            *dbserver.Server // servers
	proxy             *dbserver.Proxy  // servers: tandem's way to the server

	mu   sync.Mutex // the faults on this datasource
	away bool       // sqlite: its directory is renamed away
	// locker holds one connection, opened at the start of the run so
	// that a lock can be taken while the directory is away; faults that
	// lock queue on it.
	locker *sql.DB
	read   *sql.DB // for the checks
}

func (ds *datasource) restoreMount() error {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	if !ds.away {
		return nil
	}
	if err := os.Rename(ds.mount+".lost", ds.mount); err != nil {
		return fmt.Errorf("bring %s's directory back: %w", ds.name, err)
	}
	ds.away = false
	return nil
}

// open opens the handles the soak uses: one read-only handle for checks
// and, for the lock fault, one connection kept open.
func (ds *datasource) open(ctx context.Context) error {
	var lockDSN, readDSN string
	if ds.driver == "sqlite" {
		lockDSN = "file:" + ds.file + "?_pragma=busy_timeout(30000)"
		readDSN = "file:" + ds.file + "?mode=ro&_pragma=busy_timeout(30000)"
	} else {
		lockDSN, readDSN = ds.direct, ds.direct
	}
	var err error
	if ds.locker, err = sql.Open(ds.sqlDriver, lockDSN); err != nil {
		return err
	}
	ds.locker.SetMaxOpenConns(1)
	ds.locker.SetMaxIdleConns(1)
	if ds.read, err = sql.Open(ds.sqlDriver, readDSN); err != nil {
		return err
	}
	// A read opens the file (and SQLite's -wal and -shm beside it), which
	// then stay open while a lost mount takes the directory away.
	var n int
	return ds.locker.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+jepsen.AccountTable).Scan(&n)
}

func (ds *datasource) close() {
	if ds.locker != nil {
		ds.locker.Close()
	}
	if ds.read != nil {
		ds.read.Close()
	}
}

// node is the datasource for the jepsen checkers.
func (ds *datasource) node() jepsen.Node { return jepsen.SQLNode(ds.name, ds.read) }

// lockStatements take every lock a writer needs, per driver, in an open
// transaction; the soak rolls them back.
var lockStatements = map[string][]string{
	// BEGIN IMMEDIATE takes the file's write lock; the write makes the
	// transaction a writer's in every respect.
	"sqlite": {"BEGIN IMMEDIATE", "UPDATE " + jepsen.AccountTable + " SET balance = balance WHERE id = 1"},
	// EXCLUSIVE lets plain reads through and nothing else: no row lock,
	// no write.
	"postgres": {"BEGIN", "LOCK TABLE " + jepsen.AccountTable + ", " + jepsen.UniqueTable + " IN EXCLUSIVE MODE"},
	"mysql": {"BEGIN",
		"SELECT id FROM " + jepsen.AccountTable + " FOR UPDATE",
		"SELECT id FROM " + jepsen.UniqueTable + " FOR UPDATE"},
}

// lock takes the datasource's write lock (or every row lock) from a
// connection of its own, waiting for its turn, and returns its release.
// It is skipped when nobody can reach the database now (its directory
// away, its server down).
func (ds *datasource) lock(ctx context.Context) (func() error, error) {
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for attempt := 1; ; attempt++ {
		release, err := ds.tryLock(lctx)
		switch {
		case err == nil:
			return release, nil
		case ds.unreachable():
			return nil, errSkipped
		case attempt == 5 || lctx.Err() != nil:
			return nil, err
		}
		// A deadlock with the writers (MySQL), a connection a restarted
		// server broke: again.
		time.Sleep(100 * time.Millisecond)
	}
}

func (ds *datasource) unreachable() bool {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	return ds.away || (ds.server != nil && !ds.server.Running())
}

func (ds *datasource) tryLock(ctx context.Context) (func() error, error) {
	conn, err := ds.locker.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", ds.name, err)
	}
	for _, q := range lockStatements[ds.driver] {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			conn.ExecContext(context.Background(), "ROLLBACK")
			conn.Close()
			return nil, fmt.Errorf("lock %s: %s: %w", ds.name, q, err)
		}
	}
	return func() error {
		defer conn.Close()
		rctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := conn.ExecContext(rctx, "ROLLBACK"); err != nil && ds.driver == "sqlite" {
			return fmt.Errorf("release the lock on %s: %w", ds.name, err)
		}
		return nil // a server killed meanwhile took the lock with it
	}, nil
}

// bookkeeping counts the intent and missed-key records left in the
// database, read directly.
func (ds *datasource) bookkeeping(ctx context.Context) (pending, missed int64, err error) {
	for _, c := range []struct {
		table string
		n     *int64
	}{{records.Pending.Name, &pending}, {records.Missed.Name, &missed}} {
		if err := ds.read.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+c.table).Scan(c.n); err != nil {
			return 0, 0, fmt.Errorf("%s: count %s: %w", ds.name, c.table, err)
		}
	}
	return pending, missed, nil
}

// dump writes the workloads' rows and tandem's bookkeeping, read
// directly, to file: a line per row.
func (ds *datasource) dump(ctx context.Context, file string) error {
	var b strings.Builder
	for _, q := range []string{
		"SELECT 'unique', id, val FROM " + jepsen.UniqueTable + " ORDER BY id",
		"SELECT 'account', id, balance FROM " + jepsen.AccountTable + " ORDER BY id",
		"SELECT 'pending', txid, tbl, pk, at FROM " + records.Pending.Name + " ORDER BY txid, seq",
		"SELECT 'missed', node, tbl, pk, at FROM " + records.Missed.Name + " ORDER BY node, tbl, pk",
		"SELECT 'conflict', tbl, pk, node_a, row_a, node_b, row_b, resolution FROM " + records.Conflicts.Name + " ORDER BY tbl, pk",
		"SELECT 'meta', k, v FROM " + records.Meta.Name + " ORDER BY k",
	} {
		rows, err := ds.read.QueryContext(ctx, q)
		if err != nil {
			return err
		}
		cols, _ := rows.Columns()
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		for rows.Next() {
			if err := rows.Scan(ptrs...); err != nil {
				rows.Close()
				return err
			}
			for i, v := range vals {
				if i > 0 {
					b.WriteByte('\t')
				}
				if v.Valid {
					b.WriteString(v.String)
				} else {
					b.WriteString("NULL")
				}
			}
			b.WriteByte('\n')
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return err
		}
	}
	return os.WriteFile(file, []byte(b.String()), 0o644)
}

// servers are the two database servers of a soak on a server engine, and
// the proxies tandem reaches them through; every run makes databases of
// its own on them.
type servers struct {
	kind    dbserver.Kind
	dir     string
	srv     [2]*dbserver.Server
	proxies [2]*dbserver.Proxy
}

func startServers(engine, dir string) (*servers, error) {
	s := &servers{kind: dbserver.Postgres, dir: dir}
	if engine == "mariadb" {
		s.kind = dbserver.MariaDB
	}
	for i := range s.srv {
		d := filepath.Join(dir, fmt.Sprintf("srv%d", i))
		if err := os.Mkdir(d, 0o755); err != nil {
			s.close()
			return nil, err
		}
		srv, err := dbserver.Run(s.kind, d)
		if err != nil {
			s.close()
			return nil, err
		}
		s.srv[i] = srv
		if s.proxies[i], err = dbserver.Listen(srv.Addr()); err != nil {
			s.close()
			return nil, err
		}
	}
	return s, nil
}

func (s *servers) close() {
	for i := range s.srv {
		if s.proxies[i] != nil {
			s.proxies[i].Close()
		}
		if s.srv[i] != nil {
			s.srv[i].Kill()
		}
	}
	dbserver.RemoveTemplates()
}

// datasources makes the run's two datasources, foo (the primary) and bar:
// two SQLite files in directories of their own under dir, or a database
// called db on each server.
func makeDatasources(ctx context.Context, engine, dir, db string, srv *servers) ([]*datasource, error) {
	names := []string{"foo", "bar"}
	out := make([]*datasource, len(names))
	for i, name := range names {
		ds := &datasource{name: name}
		switch engine {
		case "sqlite":
			// The config names NAME/NAME.db, a symbolic link to the file
			// in NAME.mount/, the "mount" a lost mount takes away. (A
			// config naming a missing directory outright is refused, as
			// it should be; behind the link, the directory is missing
			// only when the file is opened.)
			ds.driver, ds.sqlDriver = "sqlite", "sqlite3"
			ds.dsn = name + "/" + name + ".db"
			ds.file = filepath.Join(dir, name, name+".db")
			ds.mount = filepath.Join(dir, name+".mount")
			for _, d := range []string{filepath.Dir(ds.file), ds.mount} {
				if err := os.Mkdir(d, 0o755); err != nil {
					return nil, err
				}
			}
			// An empty file is an empty database; the driver creates
			// none behind a link.
			real := filepath.Join(ds.mount, name+".db")
			if err := os.WriteFile(real, nil, 0o644); err != nil {
				return nil, err
			}
			if err := os.Symlink(real, ds.file); err != nil {
				return nil, err
			}
		case "postgres", "mariadb":
			ds.driver, ds.sqlDriver = "postgres", "pgx"
			if engine == "mariadb" {
				ds.driver, ds.sqlDriver = "mysql", "mysql"
			}
			ds.server, ds.proxy = srv.srv[i], srv.proxies[i]
			if err := ds.server.EnsureDatabase(ctx, db); err != nil {
				return nil, err
			}
			ds.dsn = ds.server.DSN(db, ds.proxy.Addr())
			ds.direct = ds.server.DSN(db, "")
		default:
			return nil, fmt.Errorf("unknown engine %q (known: %s)", engine, strings.Join(Engines, ", "))
		}
		out[i] = ds
	}
	return out, nil
}

// writeConfig writes the run's tandem config; arbiter is its arbiter entry.
func writeConfig(path string, ds []*datasource, arbiter string, timeout, health time.Duration) error {
	var b strings.Builder
	fmt.Fprintf(&b, "primary: %s\ntimeout: %v\nhealth_interval: %v\n%sdatasources:\n", ds[0].name, timeout, health, arbiter)
	for _, d := range ds {
		fmt.Fprintf(&b, "  - name: %s\n    driver: %s\n    dsn: %q\n", d.name, d.driver, d.dsn)
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}
