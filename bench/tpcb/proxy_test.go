package tpcb

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tandemdb/tandem"
	"github.com/tandemdb/tandem/internal/dbserver"
	"github.com/tandemdb/tandem/verify"
)

// TestProxyBench is pgbench's own TPC-B (its default built-in script, the
// simple query protocol) against
//
//   - one PostgreSQL server directly ("direct");
//   - tandem's PostgreSQL proxy (the tandem command, run as a process of
//     its own, "tandem proxy") over two servers ("tandem");
//   - pgpool-II in native replication mode over the same two servers
//     ("pgpool-II"; startPgpool's configuration).
//
// Every database is initialised directly with pgbench -i -s SCALE, and
// pgbench_history is given a key (hid bigserial PRIMARY KEY: tandem
// refuses writes to a table without one; direct and pgpool-II get the same
// column). tandem adopt then takes the tandem pair in, and tandem verify
// proves it identical before the runs. Each round runs every case at each
// client count, after a warm-up run, in an order that rotates from round
// to round; pgbench reports tps and average latency, and its
// per-transaction log (-l) gives the median. After every measured run each
// database of the case must hold pgbench's invariant for that run (pgbench
// truncates pgbench_history before each run, so the branches' balances
// are read before it): accounts, tellers and branches sum to the same,
// history's deltas add up to what the branches gained during the run, and
// history holds one row per transaction pgbench processed. At the end
// tandem verify must find the tandem pair identical.
//
// With PROXYBENCH=1 (bash bench/proxy.sh) it measures: it loads 1,000,000
// accounts five times and runs for about 9 minutes. Without, as part of
// go test ./..., it is a smoke run (scale 1, one round of 2 s runs, no
// warm-up, no ratios): the checks alone. Settings
// (environment): PROXYBENCH_SCALE (10), PROXYBENCH_DURATION (20s, per run),
// PROXYBENCH_WARMUP (3s, before each run), PROXYBENCH_ROUNDS (3),
// PROXYBENCH_CLIENTS (1,8), PROXYBENCH_OUT (also write the table there),
// PROXYBENCH_TANDEM (a tandem binary to use instead of building
// ./cmd/tandem).
func TestProxyBench(t *testing.T) {
	s := proxySettingsFromEnv(t)
	started := time.Now()
	pgbench := needProgram(t, "pgbench", "postgresql-client")
	requirePgpool(t)
	bin, built := tandemBinary(t)

	a, b := dbserver.Start(t, dbserver.Postgres), dbserver.Start(t, dbserver.Postgres)
	for _, db := range []string{"direct", "tandem", "pgpool"} {
		a.CreateDatabase(t, db)
		if db != "direct" {
			b.CreateDatabase(t, db)
		}
	}
	at := func(s *dbserver.Server, db string) pgTarget { return targetOf(t, s.DSN(db, "")) }

	// pgbench -i on the five databases, one server's in parallel with the
	// other's.
	t0 := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, dbs := range [][]pgTarget{
		{at(a, "direct"), at(a, "tandem"), at(a, "pgpool")},
		{at(b, "tandem"), at(b, "pgpool")},
	} {
		wg.Go(func() {
			for _, tg := range dbs {
				if err := initPgbench(pgbench, tg, s.scale); err != nil {
					errs[i] = err
					return
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	t.Logf("pgbench -i -s %d on 5 databases, with a key for pgbench_history: %v", s.scale, time.Since(t0).Round(time.Second))

	// tandem: adopt the pair, verify it, serve it through the proxy.
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "tandem.yaml")
	cfgText := fmt.Sprintf("timeout: 2s\narbiter: witness\ndatasources:\n"+
		"  - name: foo\n    driver: postgres\n    dsn: %q\n"+
		"  - name: bar\n    driver: postgres\n    dsn: %q\n", a.DSN("tandem", ""), b.DSN("tandem", ""))
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o600); err != nil {
		t.Fatal(err)
	}
	t0 = time.Now()
	if out, code := runTandem(bin, "", "adopt", "--config", cfgPath); code != 0 {
		t.Fatalf("tandem adopt: exit %d\n%s", code, out)
	} else {
		t.Logf("tandem adopt (%v): %s", time.Since(t0).Round(time.Second), strings.TrimSpace(out))
	}
	t0 = time.Now()
	if out, code := runTandem(bin, "", "verify", "--config", cfgPath); code != 0 {
		t.Fatalf("tandem verify before the runs: exit %d\n%s", code, out)
	} else {
		t.Logf("tandem verify before the runs (%v): %s", time.Since(t0).Round(time.Second), lastLine(out))
	}
	const proxyPassword = "proxy bench pw"
	verifier, code := runTandem(bin, proxyPassword+"\n", "proxy", "hash-password")
	if code != 0 {
		t.Fatalf("tandem proxy hash-password: exit %d\n%s", code, verifier)
	}
	usersPath := filepath.Join(dir, "proxy-users")
	if err := os.WriteFile(usersPath, []byte("app:"+strings.TrimSpace(verifier)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	proxyAddr, proxyLog := startProxy(t, bin, dir, cfgPath, usersPath)
	host, port, _ := net.SplitHostPort(proxyAddr)

	poolDSN := startPgpool(t, []*dbserver.Server{a, b}, "pgpool")

	cases := []*proxyCase{
		{name: "direct", via: at(a, "direct"), dbs: []pgTarget{at(a, "direct")}},
		{name: "tandem", via: pgTarget{host: host, port: port, user: "app", password: proxyPassword, db: "tandem"},
			dbs: []pgTarget{at(a, "tandem"), at(b, "tandem")}, diag: func() string { return "\ntandem proxy's log ends:\n" + proxyLog() }},
		{name: "pgpool-II", via: targetOf(t, poolDSN), dbs: []pgTarget{at(a, "pgpool"), at(b, "pgpool")}},
	}
	for _, c := range cases {
		c.results = map[int]*proxyResult{}
		for _, n := range s.clients {
			c.results[n] = &proxyResult{}
		}
	}

	ctx := context.Background()
	logDir := t.TempDir()
	for round := range s.rounds {
		for _, n := range s.clients {
			for i := range cases {
				c := cases[(i+round)%len(cases)]
				r := c.results[n]
				if s.warmup > 0 {
					if err := warmPgbench(pgbench, c.via, n, s.warmup); err != nil {
						t.Fatalf("%s, %s, warm-up: %v%s", c.name, plural(n, "client"), err, c.diagnose())
					}
				}
				before, err := branchSums(ctx, c.dbs)
				if err != nil {
					t.Fatalf("%s: %v", c.name, err)
				}
				prefix := filepath.Join(logDir, fmt.Sprintf("r%d-%s-%d", round+1, strings.ReplaceAll(c.name, "-", ""), n), "pgbench_log")
				run, err := runPgbench(pgbench, c.via, n, s.duration, prefix)
				if err != nil {
					t.Fatalf("%s, %s, round %d: %v%s", c.name, plural(n, "client"), round+1, err, c.diagnose())
				}
				if err := checkRun(ctx, c.dbs, before, run.processed); err != nil {
					c.balanceErr = errors.Join(c.balanceErr, fmt.Errorf("round %d, %s: %w", round+1, plural(n, "client"), err))
					t.Errorf("%s, %s, round %d: pgbench's invariant fails: %v", c.name, plural(n, "client"), round+1, err)
				}
				r.tps = append(r.tps, run.tps)
				r.avg = append(r.avg, run.avgMS)
				r.lat = append(r.lat, run.lat...)
				r.processed += run.processed
				t.Logf("round %d/%d: %-9s %s: %8.1f tx/s, average %.2f ms, median %.2f ms, %d transactions",
					round+1, s.rounds, c.name, plural(n, "client"), run.tps, run.avgMS, median(run.lat), run.processed)
			}
		}
	}

	if tail := strings.TrimSpace(proxyLog()); strings.Count(tail, "\n") > 0 {
		t.Logf("tandem proxy's log ends:\n%s", tail)
	}

	// The checks after the runs.
	for _, c := range cases {
		c.check = "balances"
		if c.balanceErr != nil {
			c.check = "balances WRONG"
		}
		switch c.name {
		case "tandem":
			out, code := runTandem(bin, "", "verify", "--config", cfgPath)
			if code != 0 {
				c.check += "; verify: DIFFER"
				t.Errorf("tandem verify after the runs: exit %d\n%s", code, out)
			} else {
				c.check += "; verify: identical"
				t.Logf("tandem verify after the runs: %s", lastLine(out))
			}
		case "pgpool-II":
			// pgpool-II runs with insert_lock off (startPgpool): each
			// server draws pgbench_history's hid from its own sequence,
			// in the order the inserts reach it, so the copies may
			// differ in which hid a history row got. Reported, not
			// failed: what this benchmark holds pgpool-II to is the
			// balances on each server.
			c.check += "; verify: " + compareCopies(ctx, c.dbs)
		}
	}

	table := proxyTable(s, cases, started, built)
	fmt.Print("\n" + table)
	if s.out != "" {
		if err := os.WriteFile(s.out, []byte(table), 0o644); err != nil {
			t.Error(err)
		}
	}
}

// proxySettings of a run, from the environment (bench/proxy.sh).
type proxySettings struct {
	scale    int
	duration time.Duration // per measured run (whole seconds)
	warmup   time.Duration // the warm-up run before each (whole seconds, 0: none)
	rounds   int
	clients  []int
	out      string
	smoke    bool // not PROXYBENCH=1: the ratios are not measurements
}

func proxySettingsFromEnv(t *testing.T) proxySettings {
	s := proxySettings{scale: 10, duration: 20 * time.Second, warmup: 3 * time.Second, rounds: 3, clients: []int{1, 8}, out: os.Getenv("PROXYBENCH_OUT")}
	if os.Getenv("PROXYBENCH") != "1" {
		// go test ./...: a smoke run, the checks without the measurement.
		s = proxySettings{scale: 1, duration: 2 * time.Second, rounds: 1, clients: []int{1, 8}, smoke: true}
		return s
	}
	for name, n := range map[string]*int{"PROXYBENCH_SCALE": &s.scale, "PROXYBENCH_ROUNDS": &s.rounds} {
		if v := os.Getenv(name); v != "" {
			x, err := strconv.Atoi(v)
			if err != nil || x < 1 {
				t.Fatalf("%s=%q: want a whole number >= 1", name, v)
			}
			*n = x
		}
	}
	for name, d := range map[string]*time.Duration{"PROXYBENCH_DURATION": &s.duration, "PROXYBENCH_WARMUP": &s.warmup} {
		if v := os.Getenv(name); v != "" {
			x, err := time.ParseDuration(v)
			if err != nil || x < 0 || x%time.Second != 0 || (x == 0 && d == &s.duration) {
				t.Fatalf("%s=%q: want whole seconds such as 20s (pgbench -T takes seconds)", name, v)
			}
			*d = x
		}
	}
	if v := os.Getenv("PROXYBENCH_CLIENTS"); v != "" {
		s.clients = nil
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 {
				t.Fatalf("PROXYBENCH_CLIENTS=%q: want client counts such as 1,8", v)
			}
			s.clients = append(s.clients, n)
		}
	}
	return s
}

// threads is pgbench's -j for n clients: 1 for 1 client, 2 (the
// machine's cores, in the benchmark's intent) when n is even.
func threads(n int) int {
	if n >= 2 && n%2 == 0 {
		return 2
	}
	return 1
}

// proxyCase is one system pgbench runs against.
type proxyCase struct {
	name       string
	via        pgTarget   // where pgbench connects
	dbs        []pgTarget // the databases that hold the data, reached directly
	results    map[int]*proxyResult
	balanceErr error
	check      string
	diag       func() string // more to say when pgbench fails, or nil
}

func (c *proxyCase) diagnose() string {
	if c.diag == nil {
		return ""
	}
	return c.diag()
}

// proxyResult is a case's runs at one client count.
type proxyResult struct {
	tps, avg  []float64 // per round: pgbench's tps and average latency (ms)
	lat       []int64   // every measured transaction's latency (µs), from -l
	processed int64
}

// pgTarget is where a PostgreSQL client connects.
type pgTarget struct{ host, port, user, password, db string }

// targetOf reads a URL DSN (dbserver's, pgpool's).
func targetOf(t *testing.T, dsn string) pgTarget {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil || u.User == nil {
		t.Fatal("a DSN does not parse as a URL with a user") // the error would quote it, password and all
	}
	pw, _ := u.User.Password()
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil {
		t.Fatalf("a DSN's host %q: %v", u.Host, err)
	}
	return pgTarget{host: host, port: port, user: u.User.Username(), password: pw, db: strings.TrimPrefix(u.Path, "/")}
}

func (p pgTarget) dsn() string {
	u := url.URL{Scheme: "postgres", User: url.UserPassword(p.user, p.password), Host: net.JoinHostPort(p.host, p.port),
		Path: "/" + p.db, RawQuery: "sslmode=disable"}
	return u.String()
}

// command runs a libpq program (pgbench) against p: the password in the
// environment, not on the command line; no other PG variable.
func (p pgTarget) command(bin string, args ...string) *exec.Cmd {
	cmd := exec.Command(bin, append(args, "-h", p.host, "-p", p.port, "-U", p.user, p.db)...)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env, "PGPASSWORD="+p.password, "PGSSLMODE=disable", "LC_ALL=C")
	return cmd
}

// needProgram returns name's path, or skips the test (fails it with
// TANDEM_FAIL_ON_SKIP=1) naming the Debian package.
func needProgram(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		msg := fmt.Sprintf("%s not found: apt-get install %s", name, pkg)
		if os.Getenv("TANDEM_FAIL_ON_SKIP") == "1" {
			t.Fatalf("%s (TANDEM_FAIL_ON_SKIP=1)", msg)
		}
		t.Skip(msg)
	}
	return p
}

// tandemBinary is PROXYBENCH_TANDEM, or ./cmd/tandem built for the test;
// and what it was built from.
func tandemBinary(t *testing.T) (bin, from string) {
	t.Helper()
	if p := os.Getenv("PROXYBENCH_TANDEM"); p != "" {
		return p, p + " (PROXYBENCH_TANDEM)"
	}
	// The checkout's revision, and whether files outside bench/ differ
	// from it (the build takes the working tree as it is).
	from = "the working tree"
	if out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output(); err == nil {
		from = "commit " + strings.TrimSpace(string(out))
		if out, err := exec.Command("git", "status", "--porcelain", "--", ":/", ":(exclude,top)bench").Output(); err == nil {
			if n := len(strings.Fields(strings.TrimSpace(string(out)))) / 2; n > 0 {
				from += fmt.Sprintf(" plus uncommitted changes to %s outside bench/", plural(n, "file"))
			}
		}
	}
	bin = filepath.Join(t.TempDir(), "tandem")
	t0 := time.Now()
	out, err := exec.Command("go", "build", "-o", bin, "github.com/tandemdb/tandem/cmd/tandem").CombinedOutput()
	if err != nil {
		t.Fatalf("go build ./cmd/tandem: %v\n%s", err, out)
	}
	t.Logf("built tandem from %s in %v", from, time.Since(t0).Round(time.Second))
	return bin, "tandem built from " + from
}

// runTandem runs the tandem command with stdin, and returns its output
// (stdout and stderr) and exit code.
func runTandem(bin, stdin string, args ...string) (string, int) {
	cmd := exec.Command(bin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if ee, ok := errors.AsType[*exec.ExitError](err); ok {
		return string(out), ee.ExitCode()
	} else if err != nil {
		return fmt.Sprintf("%s\n%v", out, err), -1
	}
	return string(out), 0
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// startProxy runs tandem proxy on a free loopback port until the test
// ends (then SIGINT, SIGKILL after 30 s) and returns its address and
// the tail of its output, which goes to dir/proxy.log.
func startProxy(t *testing.T, bin, dir, cfgPath, usersPath string) (string, func() string) {
	t.Helper()
	logPath := filepath.Join(dir, "proxy.log")
	log, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "proxy", "--config", cfgPath, "--users", usersPath, "--listen", "127.0.0.1:0")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		log.Close()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	addrc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(log, line)
			if _, rest, ok := strings.Cut(line, "listening on "); ok {
				select {
				case addrc <- strings.Fields(rest)[0]:
				default:
				}
			}
		}
		done <- cmd.Wait()
	}()
	tail := func() string {
		b, _ := os.ReadFile(logPath)
		return pgpoolLogTail(string(b), 30)
	}
	t.Cleanup(func() {
		defer log.Close()
		cmd.Process.Signal(syscall.SIGINT)
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("tandem proxy exited with %v; its log ends:\n%s", err, tail())
			}
		case <-time.After(30 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
			t.Errorf("tandem proxy did not stop within 30 s of SIGINT; killed it")
		}
	})
	select {
	case addr := <-addrc:
		return addr, tail
	case err := <-done:
		t.Fatalf("tandem proxy exited while starting (%v); its log ends:\n%s", err, tail())
	case <-time.After(60 * time.Second):
		t.Fatalf("tandem proxy did not listen within 60 s; its log ends:\n%s", tail())
	}
	return "", nil
}

// initPgbench runs pgbench -i -s scale on tg directly, then gives
// pgbench_history a key.
func initPgbench(pgbench string, tg pgTarget, scale int) error {
	out, err := tg.command(pgbench, "-i", "-q", "-s", strconv.Itoa(scale)).CombinedOutput()
	if err != nil {
		return fmt.Errorf("pgbench -i -s %d on %s/%s: %v\n%s", scale, net.JoinHostPort(tg.host, tg.port), tg.db, err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, tg.dsn())
	if err != nil {
		return fmt.Errorf("connect to %s/%s: %w", net.JoinHostPort(tg.host, tg.port), tg.db, err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "ALTER TABLE pgbench_history ADD COLUMN hid bigserial PRIMARY KEY"); err != nil {
		return fmt.Errorf("%s/%s: key for pgbench_history: %w", net.JoinHostPort(tg.host, tg.port), tg.db, err)
	}
	return nil
}

// warmPgbench runs pgbench as runPgbench does, for a warm-up: its report
// is not read (a short one may hold no transaction when the connections
// took most of it).
func warmPgbench(pgbench string, tg pgTarget, n int, d time.Duration) error {
	args := []string{"-c", strconv.Itoa(n), "-j", strconv.Itoa(threads(n)), "-T", strconv.Itoa(int(d / time.Second))}
	if out, err := tg.command(pgbench, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("pgbench %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// pgbenchRun is what one pgbench run reported.
type pgbenchRun struct {
	tps, avgMS float64
	processed  int64
	lat        []int64 // µs, from the per-transaction log
}

var (
	reProcessed = regexp.MustCompile(`number of transactions actually processed: (\d+)`)
	reFailed    = regexp.MustCompile(`number of failed transactions: (\d+)`)
	reAvg       = regexp.MustCompile(`latency average = ([0-9.]+) ms`)
	reTPS       = regexp.MustCompile(`tps = ([0-9.]+) \(without initial connection time\)`)
)

// runPgbench runs pgbench's default TPC-B script against tg for d with n
// clients; with logPrefix, it logs every transaction there (-l) and reads
// their latencies back.
func runPgbench(pgbench string, tg pgTarget, n int, d time.Duration, logPrefix string) (*pgbenchRun, error) {
	args := []string{"-c", strconv.Itoa(n), "-j", strconv.Itoa(threads(n)), "-T", strconv.Itoa(int(d / time.Second))}
	if logPrefix != "" {
		if err := os.MkdirAll(filepath.Dir(logPrefix), 0o755); err != nil {
			return nil, err
		}
		args = append(args, "-l", "--log-prefix", logPrefix)
	}
	out, err := tg.command(pgbench, args...).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("pgbench %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	text := string(out)
	r := &pgbenchRun{}
	num := func(re *regexp.Regexp) (string, error) {
		m := re.FindStringSubmatch(text)
		if m == nil {
			return "", fmt.Errorf("pgbench's output has no %q:\n%s", re, text)
		}
		return m[1], nil
	}
	for _, f := range []struct {
		re  *regexp.Regexp
		set func(string) error
	}{
		{reProcessed, func(v string) (err error) { r.processed, err = strconv.ParseInt(v, 10, 64); return }},
		{reAvg, func(v string) (err error) { r.avgMS, err = strconv.ParseFloat(v, 64); return }},
		{reTPS, func(v string) (err error) { r.tps, err = strconv.ParseFloat(v, 64); return }},
		{reFailed, func(v string) error {
			if v != "0" {
				return fmt.Errorf("%s transactions failed:\n%s", v, text)
			}
			return nil
		}},
	} {
		v, err := num(f.re)
		if err != nil {
			return nil, err
		}
		if err := f.set(v); err != nil {
			return nil, err
		}
	}
	if r.processed == 0 {
		return nil, fmt.Errorf("pgbench processed no transaction:\n%s", text)
	}
	if logPrefix == "" {
		return r, nil
	}
	// One file per thread: PREFIX.PID, PREFIX.PID.1, ...
	files, err := filepath.Glob(logPrefix + ".*")
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("no pgbench log %s.* (%v)", logPrefix, err)
	}
	for _, f := range files {
		lat, err := readPgbenchLog(f)
		if err != nil {
			return nil, err
		}
		r.lat = append(r.lat, lat...)
	}
	if int64(len(r.lat)) != r.processed {
		return nil, fmt.Errorf("pgbench's logs hold %d transactions, its report %d", len(r.lat), r.processed)
	}
	for _, f := range files {
		os.Remove(f)
	}
	return r, nil
}

// readPgbenchLog reads the latencies (µs, the third field) of a pgbench
// per-transaction log: client_id transaction_no time script_no time_epoch
// time_us [schedule_lag].
func readPgbenchLog(path string) ([]int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var lat []int64
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		fields := strings.Fields(sc.Text())
		if len(fields) < 3 {
			return nil, fmt.Errorf("%s:%d: %q: not a transaction", path, line, sc.Text())
		}
		us, err := strconv.ParseInt(fields[2], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %q: no latency (a failed transaction?)", path, line, sc.Text())
		}
		lat = append(lat, us)
	}
	return lat, sc.Err()
}

// median of latencies in µs, in ms.
func median(lat []int64) float64 { return percentile(lat, 50) }

func percentile(lat []int64, p int) float64 {
	if len(lat) == 0 {
		return 0
	}
	s := slices.Clone(lat)
	slices.Sort(s)
	return float64(s[min(len(s)-1, len(s)*p/100)]) / 1000
}

// branchSums reads sum(bbalance) on each database.
func branchSums(ctx context.Context, dbs []pgTarget) ([]int64, error) {
	var out []int64
	for _, db := range dbs {
		var s int64
		if err := queryRow(ctx, db, "SELECT coalesce(sum(bbalance), 0) FROM pgbench_branches", &s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// checkRun checks pgbench's invariant for a run on each database:
// accounts, tellers and branches hold the same sum; history (truncated by
// pgbench when the run began) holds one row per transaction processed, and
// its deltas add up to what the branches gained since before (their sums
// before the run). The databases of a replicated case must hold the same
// sums.
func checkRun(ctx context.Context, dbs []pgTarget, before []int64, processed int64) error {
	var errs []error
	var first [5]int64
	for i, db := range dbs {
		var v [5]int64 // accounts, tellers, branches, history's deltas, history's rows
		if err := queryRow(ctx, db, `SELECT (SELECT coalesce(sum(abalance), 0) FROM pgbench_accounts), (SELECT coalesce(sum(tbalance), 0) FROM pgbench_tellers),
			(SELECT coalesce(sum(bbalance), 0) FROM pgbench_branches), (SELECT coalesce(sum(delta), 0) FROM pgbench_history), (SELECT count(*) FROM pgbench_history)`,
			&v[0], &v[1], &v[2], &v[3], &v[4]); err != nil {
			return err
		}
		where := net.JoinHostPort(db.host, db.port) + "/" + db.db
		if v[0] != v[1] || v[1] != v[2] {
			errs = append(errs, fmt.Errorf("%s: balances differ: accounts %d, tellers %d, branches %d", where, v[0], v[1], v[2]))
		}
		if v[3] != v[2]-before[i] {
			errs = append(errs, fmt.Errorf("%s: history's deltas add up to %d, the branches gained %d", where, v[3], v[2]-before[i]))
		}
		if v[4] != processed {
			errs = append(errs, fmt.Errorf("%s: history holds %d rows, pgbench processed %d transactions", where, v[4], processed))
		}
		if i == 0 {
			first = v
		} else if v != first {
			errs = append(errs, fmt.Errorf("%s: sums %v, the first database's %v", where, v, first))
		}
	}
	return errors.Join(errs...)
}

func queryRow(ctx context.Context, db pgTarget, q string, dest ...any) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, db.dsn())
	if err != nil {
		return fmt.Errorf("connect to %s/%s: %w", net.JoinHostPort(db.host, db.port), db.db, err)
	}
	defer conn.Close(context.Background())
	if err := conn.QueryRow(ctx, q).Scan(dest...); err != nil {
		return fmt.Errorf("%s/%s: %w", net.JoinHostPort(db.host, db.port), db.db, err)
	}
	return nil
}

// compareCopies runs verify's comparison on pgbench's tables of dbs and
// says what it found.
func compareCopies(ctx context.Context, dbs []pgTarget) string {
	cfg := &tandem.Config{}
	for i, db := range dbs {
		cfg.Datasources = append(cfg.Datasources, tandem.Datasource{Name: fmt.Sprintf("db%d", i+1), Driver: "postgres", DSN: db.dsn()})
	}
	rep, err := verify.Compare(ctx, cfg, verify.Options{Tables: []string{"pgbench_accounts", "pgbench_tellers", "pgbench_branches", "pgbench_history"}})
	if err != nil {
		return fmt.Sprintf("failed (%v)", err)
	}
	if rep.Identical {
		return "identical"
	}
	var parts []string
	for _, tr := range rep.Tables {
		if len(tr.Differences) == 0 {
			continue
		}
		kinds := map[string]int{}
		var cols []string
		for _, d := range tr.Differences {
			kinds[d.Kind]++
			for _, c := range d.Columns {
				if !slices.Contains(cols, c) {
					cols = append(cols, c)
				}
			}
		}
		var what []string
		for _, k := range []string{verify.DiffChanged, verify.DiffMissing, verify.DiffExtra} {
			if kinds[k] > 0 {
				what = append(what, fmt.Sprintf("%d %s", kinds[k], k))
			}
		}
		if len(cols) > 0 {
			what = append(what, "in "+strings.Join(cols, ", "))
		}
		parts = append(parts, fmt.Sprintf("%d %s rows differ (%s)", len(tr.Differences), tr.Table, strings.Join(what, "; ")))
	}
	return strings.Join(parts, ", ")
}

func medianF(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// versions names the programs measured: the server db runs on, pgbench,
// pgpool-II.
func versions(db pgTarget) string {
	var parts []string
	var server string
	if err := queryRow(context.Background(), db, "SELECT version()", &server); err == nil {
		if i := strings.Index(server, " on "); i > 0 {
			server = server[:i]
		}
		parts = append(parts, server)
	}
	for _, c := range [][]string{{"pgbench", "--version"}, {findPgpool(), "--version"}} {
		out, err := exec.Command(c[0], c[1:]...).CombinedOutput()
		if err == nil {
			parts = append(parts, strings.TrimSpace(string(out)))
		}
	}
	return strings.Join(parts, "; ")
}

// proxyTable is the run's table: the machine, every case at every client
// count, and the targets.
func proxyTable(s proxySettings, cases []*proxyCase, started time.Time, built string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "machine: %d cores (nproc), %s, %s; %s\n", runtime.NumCPU(), runtime.Version(), started.UTC().Format(time.RFC3339), versions(cases[0].dbs[0]))
	fmt.Fprintf(&b, "%s\n", built)
	fmt.Fprintf(&b, "pgbench TPC-B (built-in script, simple protocol), scale %d (%d accounts); each run %v after a %v warm-up run; %d interleaved rounds; -j 2 at an even client count\n\n",
		s.scale, s.scale*100000, s.duration, s.warmup, s.rounds)
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "case\tclients\ttx/s\ttx/s by round\tavg ms\tp50 ms\tp99 ms\tvs direct\tcheck\t\n")
	find := func(name string, n int) *proxyResult {
		for _, c := range cases {
			if c.name == name {
				return c.results[n]
			}
		}
		return nil
	}
	for _, c := range cases {
		for _, n := range s.clients {
			r := c.results[n]
			var rounds []string
			for _, x := range r.tps {
				rounds = append(rounds, fmt.Sprintf("%.0f", x))
			}
			vs := "-"
			if d := find("direct", n); c.name != "direct" && d != nil && medianF(d.tps) > 0 {
				vs = fmt.Sprintf("%.2f", medianF(r.tps)/medianF(d.tps))
			}
			fmt.Fprintf(w, "%s\t%d\t%.0f\t%s\t%.2f\t%.2f\t%.2f\t%s\t%s\t\n", c.name, n, medianF(r.tps), strings.Join(rounds, " "),
				medianF(r.avg), median(r.lat), percentile(r.lat, 99), vs, c.check)
		}
	}
	w.Flush()
	fmt.Fprintf(&b, "\ntx/s: the median over the rounds of pgbench's tps; avg ms: the median over the rounds of pgbench's average latency;\n"+
		"p50, p99 ms: over every transaction of every round (pgbench -l).\n\n")
	ratio := func(what string, x, y float64, atLeast bool, want float64) {
		if s.smoke {
			fmt.Fprintf(&b, "%-50s  not measured (a smoke run: bash bench/proxy.sh measures)\n", what)
			return
		}
		if x == 0 || y == 0 {
			fmt.Fprintf(&b, "%-50s  not measured\n", what)
			return
		}
		got, op, verdict := x/y, ">=", "met"
		if !atLeast {
			op = "<="
		}
		if (atLeast && got < want) || (!atLeast && got > want) {
			verdict = "MISSED"
		}
		fmt.Fprintf(&b, "%-50s %5.2f  (target %s %.2f: %s)\n", what, got, op, want, verdict)
	}
	tps := func(name string, n int) float64 {
		if r := find(name, n); r != nil {
			return medianF(r.tps)
		}
		return 0
	}
	p50 := func(name string, n int) float64 {
		if r := find(name, n); r != nil {
			return median(r.lat)
		}
		return 0
	}
	ratio("tandem / pgpool-II tx/s, 8 clients", tps("tandem", 8), tps("pgpool-II", 8), true, 1.5)
	ratio("tandem / pgpool-II median latency, 1 client", p50("tandem", 1), p50("pgpool-II", 1), false, 0.6)
	ratio("tandem / direct tx/s, 8 clients", tps("tandem", 8), tps("direct", 8), true, 0.45)
	return b.String()
}
