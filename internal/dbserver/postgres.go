package dbserver

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
)

// postgres runs PostgreSQL from its bin directory.
type postgres struct {
	bin string // holds initdb and postgres
}

// findPostgres finds PostgreSQL's bin directory: Debian's newest
// /usr/lib/postgresql/VERSION/bin, else pg_config --bindir, else PATH.
func findPostgres() (*postgres, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgVersion(dirs[i]) > pgVersion(dirs[j]) })
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		dirs = append(dirs, strings.TrimSpace(string(out)))
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if p, err := filepath.EvalSymlinks(p); err == nil {
			dirs = append(dirs, filepath.Dir(p))
		}
	}
	for _, d := range dirs {
		if findBinary(filepath.Join(d, "initdb")) != "" && findBinary(filepath.Join(d, "postgres")) != "" {
			return &postgres{bin: d}, nil
		}
	}
	return nil, errors.New("dbserver: PostgreSQL's initdb and postgres not found " +
		"(looked in /usr/lib/postgresql/*/bin, pg_config --bindir and PATH); " +
		"install the Debian package postgresql (apt-get install postgresql)")
}

// pgVersion is the major version in /usr/lib/postgresql/VERSION/bin.
func pgVersion(bin string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(bin)))
	return v
}

func (pg *postgres) initDataDir(dir string, as account) error {
	// Local (socket) connections are the harness's, trusted; TCP ones
	// need a password, as in production. No fsync: the template is copied,
	// never run. WAL segments of 1MB instead of 16MB make each copy less
	// than half the size.
	cmd := exec.Command(filepath.Join(pg.bin, "initdb"), "-D", dir,
		"--username=postgres", "--auth-local=trust", "--auth-host=scram-sha-256",
		"--encoding=UTF8", "--no-locale", "--wal-segsize=1",
		"--no-sync", "--no-instructions")
	return runTool(cmd, as, filepath.Dir(dir))
}

func (pg *postgres) command(dataDir, socketDir string, port int) *exec.Cmd {
	settings := []string{
		"listen_addresses=127.0.0.1",
		"unix_socket_directories=" + socketDir,
		// Durable, as in production: crash tests rely on it.
		"fsync=on",
		"synchronous_commit=on",
		"full_page_writes=on",
		// Small, since tests run many servers at once.
		"shared_buffers=16MB",
		"max_connections=100",
		// Two-phase commit (PREPARE TRANSACTION) is off by default.
		"max_prepared_transactions=20",
		"huge_pages=off",
		"logging_collector=off", // the log goes to stderr, the harness's file
	}
	args := []string{"-D", dataDir, "-p", strconv.Itoa(port)}
	for _, s := range settings {
		args = append(args, "-c", s)
	}
	return exec.Command(filepath.Join(pg.bin, "postgres"), args...)
}

// stopSignal is SIGINT, PostgreSQL's fast shutdown: SIGTERM's smart shutdown
// would wait for every client to disconnect.
func (pg *postgres) stopSignal() syscall.Signal { return syscall.SIGINT }

func (pg *postgres) admin(ctx context.Context, at adminTarget) (*pgconn.PgConn, error) {
	return pgconn.Connect(ctx, fmt.Sprintf("host=%s port=%d user=postgres dbname=postgres sslmode=disable",
		at.socketDir, at.port))
}

func (pg *postgres) ping(ctx context.Context, at adminTarget) error {
	c, err := pg.admin(ctx, at)
	if err != nil {
		return err
	}
	return c.Close(ctx)
}

func (pg *postgres) createUser(ctx context.Context, at adminTarget, user, password string) error {
	// Superuser: tests create databases and prepare transactions.
	return pg.exec(ctx, at, fmt.Sprintf("CREATE ROLE %s LOGIN SUPERUSER PASSWORD %s",
		pgIdent(user), pgString(password)))
}

func (pg *postgres) createDatabase(ctx context.Context, at adminTarget, name string) error {
	err := pg.exec(ctx, at, "CREATE DATABASE "+pgIdent(name))
	if pgErr, ok := errors.AsType[*pgconn.PgError](err); ok && pgErr.Code == "42P04" { // duplicate_database
		return nil
	}
	return err
}

func (pg *postgres) exec(ctx context.Context, at adminTarget, sql string) error {
	c, err := pg.admin(ctx, at)
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	_, err = c.Exec(ctx, sql).ReadAll()
	return err
}

func (pg *postgres) dsn(user, password, addr, db string) string {
	if db == "" {
		db = "postgres"
	}
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(user, password),
		Host:     addr,
		Path:     "/" + db,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

func pgIdent(s string) string  { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
func pgString(s string) string { return `'` + strings.ReplaceAll(s, `'`, `''`) + `'` }
