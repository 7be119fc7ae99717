// Package dbserver is tandem's test harness for real database servers: it
// starts throw-away PostgreSQL and MariaDB servers for a test, and injects
// the faults tandem must survive. It also starts etcd clusters, where the
// etcd arbiter keeps a cluster's view (see StartEtcd): the same faults on
// each member, and the partition of one member from the others.
//
// Start gives each test a fresh server of its own, listening on a free
// loopback port (127.0.0.1) with its data, socket and log in a temporary
// directory of the test. The server has a user "tandem" with a random
// password and every privilege (a PostgreSQL superuser; in MariaDB ALL on
// *.* WITH GRANT OPTION), so DSN returns DSNs that authenticate like
// production ones. The password is the same on every server of a test
// binary, so a client's DSN still works after a Proxy's Redirect. PostgreSQL keeps fsync on and MariaDB flushes its log at
// every commit: a row committed before Kill is there after Restart.
//
// The data directory of each kind is made once per test binary (initdb,
// mariadb-install-db) and copied for every server, so a server starts in
// well under a second. PostgreSQL refuses to run as root: when the tests run
// as root, servers run as the unprivileged user nobody (group nogroup);
// otherwise as the current user.
//
// Faults are injected as signals to the server's processes (PostgreSQL's
// backends too): Kill (SIGKILL, a crash), Pause and Resume (SIGSTOP and
// SIGCONT: a hung server whose port still accepts connections), Stop (a clean
// shutdown) and Restart. A Proxy between client and server
// cuts connections, delays traffic and redirects to another server, as a
// failed network or an IP takeover does.
package dbserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Kind names a database server.
type Kind string

// The kinds of server Start runs.
const (
	Postgres Kind = "postgres"
	MariaDB  Kind = "mariadb"
)

// User is the name of the user every server is given; its password differs
// per server (see DSN).
const User = "tandem"

// Generous, because CI runs many servers at once with -race on two cores;
// a server that starts at all is ready in about a second.
const (
	startTimeout = 90 * time.Second
	stopTimeout  = 60 * time.Second
)

// errPortInUse reports that a server could not listen on its port, which
// another process took between choosing it and the server binding it.
var errPortInUse = errors.New("port already in use")

// Require skips the test when the server binaries for kind are missing. With
// TANDEM_FAIL_ON_SKIP=1 it fails the test instead, naming the Debian package
// to install.
func Require(t testing.TB, kind Kind) {
	t.Helper()
	_, err := engineFor(kind)
	skipOn(t, err)
}

// skipOn skips the test when err (a missing binary) is not nil, or fails it
// with TANDEM_FAIL_ON_SKIP=1.
func skipOn(t testing.TB, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if os.Getenv("TANDEM_FAIL_ON_SKIP") == "1" {
		t.Fatalf("%v (TANDEM_FAIL_ON_SKIP=1)", err)
	}
	t.Skip(err)
}

// Server is one running (or stopped) database server of a test. Its methods
// are safe for concurrent use.
type Server struct {
	kind     Kind
	eng      engine
	as       account
	dir      string // holds data/, the log and the unix socket
	port     int
	password string

	mu   sync.Mutex
	proc *process // nil when not running
}

// Start starts a fresh server of kind for the test and waits until it
// accepts connections as User. The server is killed and its files removed
// when the test ends. Start skips the test, as Require does, when the
// server's binaries are missing.
func Start(t testing.TB, kind Kind) *Server {
	t.Helper()
	Require(t, kind)
	eng, _ := engineFor(kind)
	as, err := runAccount()
	if err != nil {
		t.Fatalf("start %s: %v", kind, err)
	}
	dir, err := serverDir(t, as)
	if err != nil {
		t.Fatalf("start %s: %v", kind, err)
	}
	s, err := start(kind, eng, as, dir)
	if err != nil {
		t.Fatalf("start %s: %v", kind, err)
	}
	t.Cleanup(func() {
		if err := s.Kill(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// Run starts a fresh server of kind, as Start does, for a program that is
// not a test (a soak): its data, unix socket and log go in dir, which must
// exist and be short (a socket path holds at most 107 bytes). The caller
// stops the server (Kill or Stop) and removes dir.
func Run(kind Kind, dir string) (*Server, error) {
	eng, err := engineFor(kind)
	if err != nil {
		return nil, err
	}
	as, err := runAccount()
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", kind, err)
	}
	if err := as.own(dir); err != nil {
		return nil, fmt.Errorf("start %s: %w", kind, err)
	}
	if err := as.traverse(dir); err != nil {
		return nil, fmt.Errorf("start %s: %w", kind, err)
	}
	s, err := start(kind, eng, as, dir)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", kind, err)
	}
	return s, nil
}

// start copies the template data directory into dir, starts the server on
// a free port and creates User; on an error nothing is left running.
func start(kind Kind, eng engine, as account, dir string) (*Server, error) {
	tmpl, password, err := template(kind, eng, as)
	if err != nil {
		return nil, err
	}
	if err := copyTree(tmpl, filepath.Join(dir, "data")); err != nil {
		return nil, fmt.Errorf("copy the template data directory: %w", err)
	}
	s := &Server{kind: kind, eng: eng, as: as, dir: dir, password: password}
	// The port is free when chosen but may be taken before the server binds
	// it; then try another.
	for attempt := 1; ; attempt++ {
		s.port, err = freePort()
		if err != nil {
			return nil, err
		}
		err = s.launch()
		if err == nil || !errors.Is(err, errPortInUse) || attempt == 5 {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := eng.createUser(ctx, s.adminTarget(), User, s.password); err != nil {
		s.Kill()
		return nil, fmt.Errorf("create user %s: %w\n%s", User, err, s.logTail())
	}
	return s, nil
}

// Kind returns the kind of the server.
func (s *Server) Kind() Kind { return s.kind }

// Addr returns the server's TCP address, "127.0.0.1:port".
func (s *Server) Addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
}

// Dir returns the directory holding the server's data directory ("data") and
// its log ("server.log").
func (s *Server) Dir() string { return s.dir }

// DSN returns a DSN that connects as User to database db on the server
// through addr: s.Addr() when addr is "", or a proxy's address. The form is
// the one of the driver tandem uses for the kind:
//
//	postgres: postgres://tandem:PASSWORD@ADDR/DB?sslmode=disable   (pgx)
//	mariadb:  tandem:PASSWORD@tcp(ADDR)/DB                         (go-sql-driver/mysql)
//
// With db "" the DSN names the server's default database (postgres) or, in
// MariaDB, none.
func (s *Server) DSN(db, addr string) string {
	if addr == "" {
		addr = s.Addr()
	}
	return s.eng.dsn(User, s.password, addr, db)
}

// CreateDatabase creates database name on the server unless it exists, and
// fails the test when it cannot.
func (s *Server) CreateDatabase(t testing.TB, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.EnsureDatabase(ctx, name); err != nil {
		t.Fatal(err)
	}
}

// EnsureDatabase creates database name on the server unless it exists.
func (s *Server) EnsureDatabase(ctx context.Context, name string) error {
	if err := s.eng.createDatabase(ctx, s.adminTarget(), name); err != nil {
		return fmt.Errorf("create database %s on %s server at %s: %w", name, s.kind, s.Addr(), err)
	}
	return nil
}

// Running reports whether the server's process is alive (paused counts as
// alive).
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc != nil && !s.proc.exited()
}

// Stop shuts the server down cleanly (PostgreSQL's fast shutdown, SIGINT;
// MariaDB's SIGTERM) and waits for it to exit. A server that does not exit
// within a minute is killed. Stop on a stopped server does nothing.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.proc
	if p == nil {
		return nil
	}
	s.proc = nil
	// A paused server cannot act on the shutdown signal.
	pids, _ := p.signalTree(syscall.SIGCONT)
	if err := p.cmd.Process.Signal(s.eng.stopSignal()); err != nil && !p.exited() {
		return fmt.Errorf("stop %s server at %s: %w", s.kind, s.Addr(), err)
	}
	select {
	case <-p.done:
	case <-time.After(stopTimeout):
		p.kill()
		return fmt.Errorf("stop %s server at %s: still running after %v; killed it\n%s",
			s.kind, s.Addr(), stopTimeout, s.logTail())
	}
	waitGone(pids)
	return nil
}

// Kill kills every process of the server (PostgreSQL's backends too) with
// SIGKILL, as a crash does, and waits until all have exited. Kill on a
// stopped server does nothing.
func (s *Server) Kill() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.proc
	if p == nil {
		return nil
	}
	s.proc = nil
	if err := p.kill(); err != nil {
		return fmt.Errorf("kill %s server at %s: %w", s.kind, s.Addr(), err)
	}
	return nil
}

// Pause stops every process of the server (PostgreSQL's backends too) with
// SIGSTOP: the server hangs, yet the kernel still accepts TCP connections on
// its port. Kill, Stop and the test's end work on a paused server.
func (s *Server) Pause() error { return s.signal(syscall.SIGSTOP) }

// Resume continues a paused server with SIGCONT.
func (s *Server) Resume() error { return s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil || s.proc.exited() {
		return fmt.Errorf("signal %v to %s server at %s: not running", sig, s.kind, s.Addr())
	}
	if _, err := s.proc.signalTree(sig); err != nil {
		return fmt.Errorf("signal %v to %s server at %s: %w", sig, s.kind, s.Addr(), err)
	}
	return nil
}

// Restart starts the server again on its data directory and port after Stop
// or Kill, and waits until it accepts connections (after crash recovery, if
// it was killed).
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	if err := s.Relaunch(); err != nil {
		t.Fatal(err)
	}
}

// Relaunch is Restart for a program that is not a test.
func (s *Server) Relaunch() error {
	if s.Running() {
		return fmt.Errorf("restart %s server at %s: still running", s.kind, s.Addr())
	}
	// The port stays the same: clients and proxies hold the address.
	var err error
	for attempt := 1; attempt <= 5; attempt++ {
		if err = s.launch(); err == nil || !errors.Is(err, errPortInUse) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("restart %s: %w", s.kind, err)
	}
	return nil
}

// launch starts the server process and waits until it accepts connections
// over its unix socket.
func (s *Server) launch() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil && !s.proc.exited() {
		return fmt.Errorf("%s server at %s is already running", s.kind, s.Addr())
	}
	log, err := os.OpenFile(s.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer log.Close() // the child holds its own copy
	fmt.Fprintf(log, "---- dbserver: starting %s on port %d at %s\n", s.kind, s.port, time.Now().Format(time.RFC3339Nano))
	start, _ := log.Seek(0, io.SeekEnd)

	cmd := s.eng.command(filepath.Join(s.dir, "data"), s.dir, s.port)
	cmd.Stdout, cmd.Stderr = log, log
	p, err := startProcess(cmd, s.as, s.dir)
	if err != nil {
		return fmt.Errorf("run %s: %w", cmd.Path, err)
	}
	s.proc = p

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	tick := time.NewTicker(15 * time.Millisecond)
	defer tick.Stop()
	var pingErr error
	for {
		select {
		case <-p.done:
			s.proc = nil
			logged := s.logSince(start)
			if strings.Contains(logged, "Address already in use") {
				return fmt.Errorf("%s server on port %d: %w", s.kind, s.port, errPortInUse)
			}
			return fmt.Errorf("%s server on port %d exited while starting (%v); its log ends:\n%s",
				s.kind, s.port, p.err, tail(logged, 30))
		case <-ctx.Done():
			s.proc = nil
			p.kill()
			return fmt.Errorf("%s server on port %d did not accept connections within %v (last: %v); killed it; its log ends:\n%s",
				s.kind, s.port, startTimeout, pingErr, tail(s.logSince(start), 30))
		case <-tick.C:
			pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
			pingErr = s.eng.ping(pctx, s.adminTarget())
			pcancel()
			if pingErr == nil {
				return nil
			}
		}
	}
}

// adminTarget says how to reach the server as its administrator: over the
// unix socket in the server's directory.
func (s *Server) adminTarget() adminTarget {
	return adminTarget{socketDir: s.dir, port: s.port}
}

func (s *Server) logPath() string { return filepath.Join(s.dir, "server.log") }

func (s *Server) logSince(offset int64) string {
	b, err := os.ReadFile(s.logPath())
	if err != nil {
		return fmt.Sprintf("(cannot read the server log: %v)", err)
	}
	if offset > int64(len(b)) {
		offset = 0
	}
	return string(b[offset:])
}

func (s *Server) logTail() string {
	return "server log ends:\n" + tail(s.logSince(0), 30)
}

// tail returns the last n lines of text.
func tail(text string, n int) string {
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// serverDir makes the test's directory for one server, owned by the account
// the server runs as.
func serverDir(t testing.TB, as account) (string, error) {
	dir := t.TempDir()
	// A unix socket path is limited to 107 bytes; PostgreSQL's is
	// dir/.s.PGSQL.PORT. Long test names or GOTMPDIR can exceed it.
	if len(dir)+len("/.s.PGSQL.65535") > 100 {
		short, err := os.MkdirTemp("", "dbserver")
		if err != nil {
			return "", err
		}
		t.Cleanup(func() { os.RemoveAll(short) })
		dir = short
	}
	if err := as.own(dir); err != nil {
		return "", err
	}
	// t.TempDir's parent is 0700 and ours: let the server's user through.
	if err := as.traverse(dir); err != nil {
		return "", err
	}
	return dir, nil
}

// freePort returns a loopback TCP port nothing listens on right now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// findBinary returns the first of candidates that is an executable file;
// a candidate without a slash is looked up on PATH.
func findBinary(candidates ...string) string {
	for _, c := range candidates {
		if !strings.Contains(c, "/") {
			if p, err := exec.LookPath(c); err == nil {
				return p
			}
			continue
		}
		if fi, err := os.Stat(c); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return c
		}
	}
	return ""
}
