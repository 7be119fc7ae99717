package dbserver

import (
	"context"
	"fmt"
	"os/exec"
	"syscall"
)

// engine is what differs between the kinds of server: their binaries, how to
// make a data directory, run the server and administer it.
type engine interface {
	// initDataDir makes a fresh data directory dir, as the account.
	initDataDir(dir string, as account) error
	// command runs the server on dataDir, listening on 127.0.0.1:port and
	// on a unix socket in socketDir.
	command(dataDir, socketDir string, port int) *exec.Cmd
	// stopSignal asks the server to shut down cleanly and promptly.
	stopSignal() syscall.Signal
	// ping connects as the administrator and succeeds once the server
	// accepts connections.
	ping(ctx context.Context, at adminTarget) error
	createUser(ctx context.Context, at adminTarget, user, password string) error
	createDatabase(ctx context.Context, at adminTarget, name string) error
	dsn(user, password, addr, db string) string
}

// adminTarget is where a server's administrator connects: its unix socket.
type adminTarget struct {
	socketDir string
	port      int
}

// engineFor finds the binaries of kind, or says which Debian package to
// install.
func engineFor(kind Kind) (engine, error) {
	switch kind {
	case Postgres:
		return findPostgres()
	case MariaDB:
		return findMariaDB()
	}
	return nil, fmt.Errorf("dbserver: unknown kind of server %q", kind)
}

// runTool runs a short-lived tool such as initdb as the account and returns
// its output with the error.
func runTool(cmd *exec.Cmd, as account, home string) error {
	cmd.Env = serverEnv(home)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: as.cred}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w\n%s", cmd, err, tail(string(out), 30))
	}
	return nil
}
