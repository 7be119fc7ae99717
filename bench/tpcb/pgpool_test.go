package tpcb

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/tandemdb/tandem/internal/dbserver"
)

// The pgpool harness: startPgpool runs pgpool-II (Debian package pgpool2) in
// native replication mode over PostgreSQL servers of internal/dbserver, so a
// benchmark can drive the same workload through pgpool as through tandem.

const (
	// pgpoolStartTimeout bounds pgpool's start until it serves SELECT 1.
	pgpoolStartTimeout = 60 * time.Second
	// pgpoolStopTimeout bounds its fast shutdown at the test's end; then it
	// is killed.
	pgpoolStopTimeout = 20 * time.Second
)

// findPgpool returns pgpool's path: Debian's /usr/sbin/pgpool, else pgpool
// on PATH; "" when neither exists.
func findPgpool() string {
	if fi, err := os.Stat("/usr/sbin/pgpool"); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
		return "/usr/sbin/pgpool"
	}
	if p, err := exec.LookPath("pgpool"); err == nil {
		return p
	}
	return ""
}

// requirePgpool returns pgpool's path, or skips the test when pgpool is
// missing; with TANDEM_FAIL_ON_SKIP=1 it fails the test instead.
func requirePgpool(t testing.TB) string {
	t.Helper()
	bin := findPgpool()
	if bin == "" {
		msg := "pgpool not found (looked for /usr/sbin/pgpool and pgpool on PATH); " +
			"install the Debian package pgpool2 (apt-get install pgpool2)"
		if os.Getenv("TANDEM_FAIL_ON_SKIP") == "1" {
			t.Fatalf("%s (TANDEM_FAIL_ON_SKIP=1)", msg)
		}
		t.Skip(msg)
	}
	return bin
}

// startPgpool starts pgpool-II in native replication mode over backends, in
// order (backend 0 is the main node: it runs every read), and returns a pgx
// DSN through pgpool to database db as dbserver.User, with the backends'
// password. Database db must exist on every backend. pgpool runs in the
// foreground with its files (configuration, pool_passwd, pid file, status
// file, unix sockets, log "pgpool.log") in a temporary directory of the
// test, and is shut down (killed, if it does not exit) when the test ends.
//
// pgpool runs as the current user: unlike PostgreSQL it does not refuse
// root.
func startPgpool(t testing.TB, backends []*dbserver.Server, db string) (dsn string) {
	t.Helper()
	bin := requirePgpool(t)
	if len(backends) == 0 {
		t.Fatal("start pgpool: no backends")
	}

	// The password is only in the backends' DSNs. pool_passwd holds one
	// password per user, so every backend must have the same (dbserver
	// gives every server of a test binary the same password).
	var user, password string
	for i, b := range backends {
		u, err := url.Parse(b.DSN(db, ""))
		if err != nil || u.User == nil {
			// The error would quote the DSN, password and all.
			t.Fatalf("start pgpool: backend %d at %s: DSN does not parse as a URL with a user", i, b.Addr())
		}
		p, _ := u.User.Password()
		if i == 0 {
			user, password = u.User.Username(), p
		} else if u.User.Username() != user || p != password {
			t.Fatalf("start pgpool: backend %d at %s has another user or password than backend 0; "+
				"pool_passwd holds one password per user", i, b.Addr())
		}
	}
	if password == "" || strings.ContainsAny(password, ":\n") || strings.ContainsAny(user, ":\n") {
		t.Fatal("start pgpool: the backends' user or password is empty or holds ':' or a newline, which pool_passwd cannot hold")
	}
	redact := func(s string) string {
		s = strings.ReplaceAll(s, password, "xxxxx")
		return strings.ReplaceAll(s, url.QueryEscape(password), "xxxxx")
	}

	dir := pgpoolDir(t)
	logPath := filepath.Join(dir, "pgpool.log")
	// pool_passwd: pgpool authenticates to the backends itself (they ask
	// for SCRAM over TCP), so it needs the password in clear; the TEXT
	// prefix says so. It also lets pgpool run SCRAM with its clients.
	if err := os.WriteFile(filepath.Join(dir, "pool_passwd"),
		[]byte(user+":TEXT"+password+"\n"), 0o600); err != nil {
		t.Fatalf("start pgpool: write pool_passwd: %v", redact(err.Error()))
	}
	// pcp.conf: pgpool requires the file; no pcp user is needed.
	if err := os.WriteFile(filepath.Join(dir, "pcp.conf"), nil, 0o600); err != nil {
		t.Fatalf("start pgpool: write pcp.conf: %v", err)
	}

	// The ports are free when chosen but may be taken before pgpool binds
	// them; then try others.
	var (
		proc *pgpoolProcess
		port int
		err  error
	)
	for attempt := 1; ; attempt++ {
		var pcpPort int
		port, pcpPort, err = twoFreePgpoolPorts()
		if err != nil {
			t.Fatalf("start pgpool: %v", err)
		}
		conf := pgpoolConf(dir, port, pcpPort, backends)
		if err := os.WriteFile(filepath.Join(dir, "pgpool.conf"), []byte(conf), 0o600); err != nil {
			t.Fatalf("start pgpool: write pgpool.conf: %v", err)
		}
		proc, err = launchPgpool(bin, dir, logPath, port, user, password, db)
		if err == nil || !errors.Is(err, errPgpoolPortInUse) || attempt == 5 {
			break
		}
	}
	if proc != nil {
		t.Cleanup(func() {
			if err := proc.stop(); err != nil {
				t.Errorf("stop pgpool on port %d: %s", port, redact(err.Error()))
			}
		})
	}
	if err != nil {
		t.Fatalf("start pgpool: %s", redact(err.Error()))
	}
	return pgpoolDSN(user, password, port, db)
}

// pgpoolDir makes the test's directory for pgpool's files.
func pgpoolDir(t testing.TB) string {
	dir := t.TempDir()
	// A unix socket path is limited to 107 bytes; pgpool's are
	// dir/.s.PGSQL.PORT. Long test names or a long TMPDIR can exceed it.
	if len(dir)+len("/.s.PGSQL.65535") > 100 {
		short, err := os.MkdirTemp("", "pgpool")
		if err != nil {
			t.Fatalf("start pgpool: %v", err)
		}
		t.Cleanup(func() { os.RemoveAll(short) })
		dir = short
	}
	return dir
}

// pgpoolConf returns pgpool.conf for pgpool's files in dir. Settings left
// out keep pgpool's defaults.
func pgpoolConf(dir string, port, pcpPort int, backends []*dbserver.Server) string {
	var b strings.Builder
	set := func(name string, value any) {
		switch v := value.(type) {
		case string:
			fmt.Fprintf(&b, "%s = '%s'\n", name, strings.ReplaceAll(v, "'", "''"))
		default:
			fmt.Fprintf(&b, "%s = %v\n", name, v)
		}
	}
	// pgpool replicates every write to every backend itself (the
	// backends are independent servers, no streaming replication).
	set("backend_clustering_mode", "native_replication")

	// Loopback only, on ports free now; unix sockets, pid file and the
	// status file in the test's directory, not in /var/run/postgresql
	// and /tmp, where other pgpools would collide.
	set("listen_addresses", "127.0.0.1")
	set("port", port)
	set("socket_dir", dir)
	set("pcp_listen_addresses", "127.0.0.1")
	set("pcp_port", pcpPort)
	set("pcp_socket_dir", dir)
	set("wd_ipc_socket_dir", dir)
	set("pid_file_name", filepath.Join(dir, "pgpool.pid"))
	set("logdir", dir) // pgpool_status, the nodes' up/down state
	set("memqcache_oiddir", filepath.Join(dir, "oiddir"))

	// Backend 0 is the main node. A node's TCP address, so pgpool
	// authenticates to it with the password, as a client does.
	for i, s := range backends {
		host, p, _ := net.SplitHostPort(s.Addr())
		portNum, _ := strconv.Atoi(p)
		set(fmt.Sprintf("backend_hostname%d", i), host)
		set(fmt.Sprintf("backend_port%d", i), portNum)
		set(fmt.Sprintf("backend_weight%d", i), 1)
		set(fmt.Sprintf("backend_application_name%d", i), fmt.Sprintf("server%d", i))
	}

	// Authentication: no pool_hba.conf; pool_passwd (the default file
	// name, next to pgpool.conf) has the password, so clients
	// authenticate with SCRAM as to PostgreSQL, and no clear-text
	// password crosses the wire.
	set("enable_pool_hba", false)
	set("pool_passwd", "pool_passwd")
	set("allow_clear_text_frontend_auth", false)

	// The benchmark runs 8 concurrent clients; each needs a pgpool child
	// of its own for its whole connection (a 17th client would wait).
	// 16 leaves room for database/sql opening a connection while another
	// closes, and for pgx's cancel requests, which take a child too.
	set("num_init_children", 16)
	// Cached backend connections per child, one per (user, database):
	// two, so a check over database postgres does not evict the
	// benchmark's. Each backend sees at most 16*2 = 32 connections from
	// pgpool, within dbserver's max_connections = 100.
	set("max_pool", 2)
	// Keep backend connections across client connections, as a pooler
	// in production does (default, stated since the benchmark relies on it).
	set("connection_cache", true)

	// Every read goes to the main node only: no load balancing, no
	// SELECT replication (both defaults in native replication, stated).
	set("load_balance_mode", false)
	set("replicate_select", false)
	// The benchmark decides every key and timestamp in Go (no sequences,
	// no now()), so INSERTs need no table lock to keep the nodes equal;
	// the lock would serialize every INSERT into a table.
	set("insert_lock", false)

	// No failover: health checks off (0, the default), no failover
	// commands, and no node is ever detached. A detached node would stop
	// getting writes while pgpool kept serving from the other: the
	// benchmark would silently measure a one-node pgpool and the nodes
	// would differ. So a backend error only ends the client's session
	// (failover_on_backend_error defaults to on), and a mismatch between
	// the nodes' replies (a statement failing on one node only) ends the
	// session too rather than degenerating the node
	// (replication_stop_on_mismatch, failover_if_affected_tuples_mismatch:
	// defaults, stated). Clients see an error; the test compares the nodes.
	set("health_check_period", 0)
	set("failover_command", "")
	set("failback_command", "")
	set("failover_on_backend_error", false)
	set("replication_stop_on_mismatch", false)
	set("failover_if_affected_tuples_mismatch", false)
	set("auto_failback", false)
	set("use_watchdog", false)

	// The shared relation cache lives in the query cache's shared memory,
	// 64MB plus a 64MB hash table (memqcache_max_num_cache * 64 bytes) by
	// default; the benchmark's few tables need a fraction of it. The
	// query cache itself stays off (default).
	set("memory_cache_enabled", false)
	set("memqcache_total_size", "8MB")
	set("memqcache_max_num_cache", 10000)

	// The log goes to stderr, the harness's file.
	set("log_destination", "stderr")
	set("logging_collector", false)
	return b.String()
}

// errPgpoolPortInUse reports that pgpool could not listen on its ports,
// which another process took between choosing and binding them.
var errPgpoolPortInUse = errors.New("port already in use")

// launchPgpool starts pgpool on the configuration in dir and waits until a
// pgx connection through it runs SELECT 1. On failure it kills pgpool, and
// its error has the log's tail (which the caller redacts).
func launchPgpool(bin, dir, logPath string, port int, user, password, db string) (*pgpoolProcess, error) {
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer log.Close() // pgpool holds its own copy
	fmt.Fprintf(log, "---- tpcb: starting pgpool on port %d at %s\n", port, time.Now().Format(time.RFC3339Nano))
	logStart, _ := log.Seek(0, 2)

	// -n: foreground, logging to stderr; -D: ignore a pgpool_status left
	// by an earlier start (so no node starts detached).
	cmd := exec.Command(bin, "-n", "-D",
		"-f", filepath.Join(dir, "pgpool.conf"),
		"-F", filepath.Join(dir, "pcp.conf"))
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Env = pgpoolEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Its own process group, which pgpool's children stay in: the
		// terminal's ^C goes to the test, and stop kills the group.
		Setpgid: true,
		// A test binary that dies takes pgpool with it. SIGINT is
		// pgpool's fast shutdown, which, unlike SIGKILL, removes its
		// System V shared memory and semaphores.
		Pdeathsig: syscall.SIGINT,
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("run %s: %w", bin, err)
	}
	p := &pgpoolProcess{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()

	logTail := func() string {
		b, err := os.ReadFile(logPath)
		if err != nil {
			return fmt.Sprintf("(cannot read pgpool's log: %v)", err)
		}
		if logStart > int64(len(b)) {
			logStart = 0
		}
		return pgpoolLogTail(string(b[logStart:]), 30)
	}
	fail := func(format string, args ...any) (*pgpoolProcess, error) {
		stopErr := p.stop()
		msg := fmt.Sprintf(format, args...)
		if stopErr != nil {
			msg += fmt.Sprintf(" (and stopping it: %v)", stopErr)
		}
		return nil, fmt.Errorf("%s; pgpool's log (%s) ends:\n%s", msg, logPath, logTail())
	}

	dsn := pgpoolDSN(user, password, port, db)
	ctx, cancel := context.WithTimeout(context.Background(), pgpoolStartTimeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var lastErr error
	for {
		select {
		case <-p.done:
			if strings.Contains(logTail(), "Address already in use") {
				p.stop()
				return nil, fmt.Errorf("pgpool on port %d: %w", port, errPgpoolPortInUse)
			}
			return fail("pgpool on port %d exited while starting (%v)", port, p.err)
		case <-ctx.Done():
			return fail("pgpool on port %d did not run SELECT 1 within %v (last error: %v); killed it",
				port, pgpoolStartTimeout, lastErr)
		case <-tick.C:
			if lastErr = pingPgpool(ctx, dsn); lastErr == nil {
				return p, nil
			}
		}
	}
}

// pingPgpool connects to dsn with pgx, as the benchmark does (extended
// protocol), and runs SELECT 1.
func pingPgpool(ctx context.Context, dsn string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	var one int
	if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		return err
	}
	if one != 1 {
		return fmt.Errorf("SELECT 1 returned %d", one)
	}
	return nil
}

func pgpoolDSN(user, password string, port int, db string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(user, password),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		Path:     "/" + db,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// pgpoolEnv is the test's environment without the PG variables, which
// would point pgpool's libpq-like defaults elsewhere.
func pgpoolEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") {
			env = append(env, kv)
		}
	}
	return append(env, "LC_ALL=C")
}

// twoFreePgpoolPorts returns two distinct loopback TCP ports nothing listens on
// right now.
func twoFreePgpoolPorts() (int, int, error) {
	var ports [2]int
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, 0, fmt.Errorf("find a free port: %w", err)
		}
		defer l.Close()
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports[0], ports[1], nil
}

func pgpoolLogTail(text string, n int) string {
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// pgpoolProcess is a started pgpool: its main process, the leader of a
// process group that holds its children too.
type pgpoolProcess struct {
	cmd     *exec.Cmd
	done    chan struct{} // closed when cmd has exited; err is set then
	err     error
	once    sync.Once
	stopErr error
}

func (p *pgpoolProcess) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop shuts pgpool down with SIGINT (fast shutdown: it ends its children
// and clients' sessions, and removes its shared memory and semaphores),
// then kills with SIGKILL whatever is left of its process group and waits
// until all of it is gone. A pgpool that does not exit within
// pgpoolStopTimeout is killed, its shared memory segments removed, and
// stop returns an error.
func (p *pgpoolProcess) stop() error {
	p.once.Do(func() { p.stopErr = p.doStop() })
	return p.stopErr
}

func (p *pgpoolProcess) doStop() error {
	pid := p.cmd.Process.Pid // also the process group's id
	graceful := true
	if !p.exited() {
		syscall.Kill(pid, syscall.SIGINT)
		select {
		case <-p.done:
		case <-time.After(pgpoolStopTimeout):
			graceful = false
		}
	}
	// Stopped first, the group forks no new processes before the kill.
	syscall.Kill(-pid, syscall.SIGSTOP)
	syscall.Kill(-pid, syscall.SIGKILL)
	<-p.done
	deadline := time.Now().Add(10 * time.Second)
	for pgpoolGroupAlive(pid) {
		if time.Now().After(deadline) {
			return fmt.Errorf("processes of pgpool's process group %d still alive 10s after SIGKILL", pid)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !graceful {
		removePgpoolShm(pid)
		return fmt.Errorf("pgpool (pid %d) did not shut down within %v; killed it", pid, pgpoolStopTimeout)
	}
	return nil
}

// pgpoolGroupAlive reports whether a process of process group pgid exists and is
// not a zombie.
func pgpoolGroupAlive(pgid int) bool {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return false
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// "pid (comm) state ppid pgrp ...", where comm may hold spaces
		// and parentheses.
		i := strings.LastIndexByte(string(b), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 3 || f[0] == "Z" || f[0] == "X" {
			continue
		}
		if g, _ := strconv.Atoi(f[2]); g == pgid && pid > 0 {
			return true
		}
	}
	return false
}

// removePgpoolShm removes the System V shared memory segments process pid
// created: pgpool's main process makes them, and only a clean shutdown
// removes them.
func removePgpoolShm(pid int) {
	f, err := os.Open("/proc/sysvipc/shm")
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan() // header: key shmid perms size cpid lpid nattch ...
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		id, err1 := strconv.Atoi(fields[1])
		cpid, err2 := strconv.Atoi(fields[4])
		if err1 == nil && err2 == nil && cpid == pid {
			const ipcRmid = 0 // IPC_RMID, absent from package syscall
			syscall.Syscall(syscall.SYS_SHMCTL, uintptr(id), ipcRmid, 0)
		}
	}
}

// TestPgpoolReplicatesWrites runs concurrent read-write transactions
// through pgpool in native replication mode, with pgx's prepared
// statements, and checks that both backends end up with the same rows.
func TestPgpoolReplicatesWrites(t *testing.T) {
	requirePgpool(t)
	backends := []*dbserver.Server{dbserver.Start(t, dbserver.Postgres), dbserver.Start(t, dbserver.Postgres)}
	for _, b := range backends {
		b.CreateDatabase(t, "bench")
	}
	start := time.Now()
	dsn := startPgpool(t, backends, "bench")
	t.Logf("pgpool started in %v", time.Since(start).Round(time.Millisecond))

	pool, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal("open pgpool's DSN failed") // the error may quote the DSN
	}
	t.Cleanup(func() { pool.Close() })
	pool.SetMaxOpenConns(8)
	pool.SetMaxIdleConns(8)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	exec := func(query string, args ...any) {
		t.Helper()
		if _, err := pool.ExecContext(ctx, query, args...); err != nil {
			t.Fatalf("through pgpool: %s: %v", query, err)
		}
	}
	exec("CREATE TABLE replicated (id bigint PRIMARY KEY, v bigint NOT NULL, note text)")
	const seeded = 50
	for id := 1; id <= seeded; id++ {
		exec("INSERT INTO replicated (id, v, note) VALUES ($1, $2, $3)", id, 0, "seed")
	}

	// A write through pgpool reaches both backends.
	exec("INSERT INTO replicated (id, v, note) VALUES ($1, $2, $3)", 0, 42, "marker")
	for i, b := range backends {
		direct := openPgpoolBackend(t, b)
		var v int64
		var note string
		if err := direct.QueryRowContext(ctx, "SELECT v, note FROM replicated WHERE id = 0").Scan(&v, &note); err != nil {
			t.Fatalf("backend %d at %s: the marker row written through pgpool: %v", i, b.Addr(), err)
		}
		if v != 42 || note != "marker" {
			t.Fatalf("backend %d at %s: marker row = (%d, %q), want (42, \"marker\")", i, b.Addr(), v, note)
		}
	}

	// pgpool authenticates its clients with SCRAM, and refuses a wrong
	// password.
	checkPgpoolAuth(t, ctx, dsn)

	// Every read goes to the main node (backend 0): a row only backend 1
	// has is never seen through pgpool.
	direct1 := openPgpoolBackend(t, backends[1])
	if _, err := direct1.ExecContext(ctx, "INSERT INTO replicated (id, v, note) VALUES (-1, 0, 'backend 1 only')"); err != nil {
		t.Fatalf("backend 1: %v", err)
	}
	for i := range 20 {
		var n int
		if err := pool.QueryRowContext(ctx, "SELECT count(*) FROM replicated WHERE id = $1", -1).Scan(&n); err != nil {
			t.Fatalf("through pgpool: %v", err)
		}
		if n != 0 {
			t.Fatalf("read %d through pgpool saw the row only backend 1 has: pgpool read from backend 1", i)
		}
	}
	if _, err := direct1.ExecContext(ctx, "DELETE FROM replicated WHERE id = -1"); err != nil {
		t.Fatalf("backend 1: %v", err)
	}

	const (
		clients = 8
		txs     = 200
	)
	var added [seeded + 1]atomic.Int64 // committed deltas, by id
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	txStart := time.Now()
	for g := range clients {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 1))
			for i := range txs {
				id := 1 + rng.Int64N(seeded)
				delta := rng.Int64N(1000) - 500
				newID := int64(1_000_000 + g*10_000 + i)
				if err := pgpoolTx(ctx, pool, id, delta, newID, g, i); err != nil {
					errs <- fmt.Errorf("client %d, transaction %d: %w", g, i, err)
					return
				}
				added[id].Add(delta)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
	elapsed := time.Since(txStart)
	t.Logf("%d transactions through pgpool in %v (%.0f/s)", clients*txs,
		elapsed.Round(time.Millisecond), float64(clients*txs)/elapsed.Seconds())

	// pgpool still has both nodes: none was detached.
	checkPgpoolNodes(t, ctx, pool, len(backends))

	// Both backends hold the same rows, and the ones the transactions
	// meant.
	var rows [][]pgpoolRow
	for _, b := range backends {
		rows = append(rows, readPgpoolRows(t, ctx, openPgpoolBackend(t, b)))
	}
	if want := 1 + seeded + clients*txs; len(rows[0]) != want {
		t.Fatalf("backend 0 has %d rows, want %d", len(rows[0]), want)
	}
	for i := 1; i < len(rows); i++ {
		if !reflect.DeepEqual(rows[0], rows[i]) {
			t.Fatalf("backend %d's rows differ from backend 0's: %s", i, firstPgpoolRowDiff(rows[0], rows[i]))
		}
	}
	for _, r := range rows[0] {
		if r.id >= 1 && r.id <= seeded && r.v != added[r.id].Load() {
			t.Errorf("row %d: v = %d, want the sum of its committed deltas %d", r.id, r.v, added[r.id].Load())
		}
	}
}

// pgpoolTx is one transaction of the test's workload: an update, a read
// of the updated row (on the main node only) and an insert of a new row
// holding what it read.
func pgpoolTx(ctx context.Context, pool *sql.DB, id, delta, newID int64, client, i int) error {
	tx, err := pool.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, "UPDATE replicated SET v = v + $1 WHERE id = $2", delta, id)
	if err != nil {
		return fmt.Errorf("update: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return fmt.Errorf("update of row %d affected %d rows (%v), want 1", id, n, err)
	}
	var v int64
	if err := tx.QueryRowContext(ctx, "SELECT v FROM replicated WHERE id = $1", id).Scan(&v); err != nil {
		return fmt.Errorf("select: %w", err)
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO replicated (id, v, note) VALUES ($1, $2, $3)",
		newID, v, fmt.Sprintf("client %d tx %d read row %d", client, i, id)); err != nil {
		return fmt.Errorf("insert: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// checkPgpoolNodes checks through pgpool's SHOW pool_nodes that none of
// its n nodes is down.
func checkPgpoolNodes(t *testing.T, ctx context.Context, pool *sql.DB, n int) {
	t.Helper()
	// pgpool answers SHOW pool_nodes itself; over the simple protocol,
	// as psql sends it.
	rs, err := pool.QueryContext(ctx, "SHOW pool_nodes", pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		t.Fatalf("SHOW pool_nodes: %v", err)
	}
	defer rs.Close()
	cols, err := rs.Columns()
	if err != nil {
		t.Fatal(err)
	}
	nodes := 0
	for rs.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rs.Scan(ptrs...); err != nil {
			t.Fatalf("SHOW pool_nodes: %v", err)
		}
		row := map[string]string{}
		for i, c := range cols {
			row[c] = vals[i].String
		}
		nodes++
		// "waiting": up, but no client has connected to it yet.
		if s := row["status"]; s != "up" && s != "waiting" {
			t.Errorf("pgpool's node %s (%s:%s) has status %q, want up", row["node_id"], row["hostname"], row["port"], s)
		}
	}
	if err := rs.Err(); err != nil {
		t.Fatalf("SHOW pool_nodes: %v", err)
	}
	if nodes != n {
		t.Errorf("SHOW pool_nodes lists %d nodes, want %d", nodes, n)
	}
}

// checkPgpoolAuth checks that pgpool asks a client connecting to dsn for
// SCRAM-SHA-256, as PostgreSQL does, and refuses a wrong password.
func checkPgpoolAuth(t *testing.T, ctx context.Context, dsn string) {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal("pgpool's DSN does not parse") // the error would quote it
	}
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", u.Host)
	if err != nil {
		t.Fatalf("dial pgpool: %v", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fe := pgproto3.NewFrontend(conn, conn)
	fe.Send(&pgproto3.StartupMessage{
		ProtocolVersion: pgproto3.ProtocolVersionNumber,
		Parameters:      map[string]string{"user": u.User.Username(), "database": strings.TrimPrefix(u.Path, "/")},
	})
	if err := fe.Flush(); err != nil {
		t.Fatalf("startup message to pgpool: %v", err)
	}
	msg, err := fe.Receive()
	if err != nil {
		t.Fatalf("pgpool's answer to the startup message: %v", err)
	}
	if sasl, ok := msg.(*pgproto3.AuthenticationSASL); !ok || !slices.Contains(sasl.AuthMechanisms, "SCRAM-SHA-256") {
		t.Errorf("pgpool answered the startup message with %#v, want SCRAM-SHA-256 authentication", msg)
	}

	u.User = url.UserPassword(u.User.Username(), "not-the-password")
	if err := pingPgpool(ctx, u.String()); err == nil {
		t.Error("pgpool let a client in with a wrong password")
	}
}

type pgpoolRow struct {
	id, v int64
	note  string
}

func readPgpoolRows(t *testing.T, ctx context.Context, db *sql.DB) []pgpoolRow {
	t.Helper()
	rs, err := db.QueryContext(ctx, "SELECT id, v, note FROM replicated ORDER BY id")
	if err != nil {
		t.Fatalf("read table replicated: %v", err)
	}
	defer rs.Close()
	var out []pgpoolRow
	for rs.Next() {
		var r pgpoolRow
		if err := rs.Scan(&r.id, &r.v, &r.note); err != nil {
			t.Fatalf("read table replicated: %v", err)
		}
		out = append(out, r)
	}
	if err := rs.Err(); err != nil {
		t.Fatalf("read table replicated: %v", err)
	}
	if len(out) == 0 {
		t.Fatal("read table replicated: no rows")
	}
	return out
}

func firstPgpoolRowDiff(a, b []pgpoolRow) string {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return fmt.Sprintf("row %d: %+v vs %+v", i, a[i], b[i])
		}
	}
	return fmt.Sprintf("%d rows vs %d", len(a), len(b))
}

// openPgpoolBackend opens a pool straight to backend b's database bench, closed
// at the test's end.
func openPgpoolBackend(t *testing.T, b *dbserver.Server) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", b.DSN("bench", ""))
	if err != nil {
		t.Fatalf("open backend at %s failed", b.Addr()) // the error may quote the DSN
	}
	t.Cleanup(func() { db.Close() })
	return db
}
