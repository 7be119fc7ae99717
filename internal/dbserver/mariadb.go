package dbserver

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/go-sql-driver/mysql"
)

// mariadb runs MariaDB's server, mariadbd.
type mariadb struct {
	server, installDB string
}

func findMariaDB() (*mariadb, error) {
	m := &mariadb{
		server:    findBinary("mariadbd", "/usr/sbin/mariadbd", "/usr/local/sbin/mariadbd"),
		installDB: findBinary("mariadb-install-db", "/usr/bin/mariadb-install-db", "/usr/local/bin/mariadb-install-db"),
	}
	if m.server == "" || m.installDB == "" {
		return nil, errors.New("dbserver: MariaDB's mariadbd and mariadb-install-db not found " +
			"(looked on PATH, in /usr/sbin and /usr/bin); " +
			"install the Debian package mariadb-server (apt-get install mariadb-server)")
	}
	return m, nil
}

// innodbOptions are given both to mariadb-install-db and to the server: the
// redo log is made at the size the server expects (the default 96MB would
// make every copy of the template slow).
var innodbOptions = []string{
	"--innodb-log-file-size=8M",
	"--innodb-buffer-pool-size=32M",
	// Durable, as in production: crash tests rely on it.
	"--innodb-flush-log-at-trx-commit=1",
	// io_uring and libaio are often unavailable in containers (seccomp);
	// tests gain nothing from them.
	"--innodb-use-native-aio=0",
}

func (m *mariadb) initDataDir(dir string, as account) error {
	// root@localhost without a password: the harness administers over
	// the socket as whichever user it runs as. No test database, no
	// anonymous users, no host names in the grant tables.
	args := append([]string{"--no-defaults", "--datadir=" + dir,
		"--auth-root-authentication-method=normal", "--skip-test-db", "--skip-name-resolve"},
		innodbOptions...)
	return runTool(exec.Command(m.installDB, args...), as, filepath.Dir(dir))
}

func (m *mariadb) command(dataDir, socketDir string, port int) *exec.Cmd {
	args := append([]string{
		"--no-defaults",
		"--datadir=" + dataDir,
		"--socket=" + filepath.Join(socketDir, "mariadbd.sock"),
		"--pid-file=" + filepath.Join(socketDir, "mariadbd.pid"),
		"--port=" + strconv.Itoa(port),
		"--bind-address=127.0.0.1",
		"--skip-name-resolve",
		"--max-connections=100",
		// Debian's defaults, which --no-defaults drops.
		"--character-set-server=utf8mb4",
		"--collation-server=utf8mb4_general_ci",
		// The temporary tablespace is written in full at every start:
		// start it small.
		"--innodb-temp-data-file-path=ibtmp1:1M:autoextend",
		// Logged to stderr, the harness's file.
	}, innodbOptions...)
	return exec.Command(m.server, args...)
}

func (m *mariadb) stopSignal() syscall.Signal { return syscall.SIGTERM }

func (m *mariadb) admin(at adminTarget) *sql.DB {
	cfg := mysql.NewConfig()
	cfg.User = "root"
	cfg.Net = "unix"
	cfg.Addr = filepath.Join(at.socketDir, "mariadbd.sock")
	c, _ := mysql.NewConnector(cfg) // fails only on a bad config
	return sql.OpenDB(c)
}

func (m *mariadb) ping(ctx context.Context, at adminTarget) error {
	db := m.admin(at)
	defer db.Close()
	return db.PingContext(ctx)
}

func (m *mariadb) createUser(ctx context.Context, at adminTarget, user, password string) error {
	// ALL includes what XA RECOVER needs (SUPER); MariaDB has no
	// XA_RECOVER_ADMIN privilege.
	return m.exec(ctx, at,
		fmt.Sprintf("CREATE USER %s@'%%' IDENTIFIED BY %s", myString(user), myString(password)),
		fmt.Sprintf("GRANT ALL PRIVILEGES ON *.* TO %s@'%%' WITH GRANT OPTION", myString(user)))
}

func (m *mariadb) createDatabase(ctx context.Context, at adminTarget, name string) error {
	return m.exec(ctx, at, "CREATE DATABASE IF NOT EXISTS "+myIdent(name))
}

func (m *mariadb) exec(ctx context.Context, at adminTarget, stmts ...string) error {
	db := m.admin(at)
	defer db.Close()
	for _, s := range stmts {
		if _, err := db.ExecContext(ctx, s); err != nil {
			return err
		}
	}
	return nil
}

func (m *mariadb) dsn(user, password, addr, db string) string {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd = user, password
	cfg.Net, cfg.Addr = "tcp", addr
	cfg.DBName = db
	return cfg.FormatDSN()
}

func myIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }
func myString(s string) string {
	return "'" + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), "'", `\'`) + "'"
}
