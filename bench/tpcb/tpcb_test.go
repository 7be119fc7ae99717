package tpcb

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/tandemdb/tandem"
	"github.com/tandemdb/tandem/engine"
	"github.com/tandemdb/tandem/engine/mysql"
	"github.com/tandemdb/tandem/engine/postgres"
	"github.com/tandemdb/tandem/engine/sqlite"
	"github.com/tandemdb/tandem/internal/dbserver"
	"github.com/tandemdb/tandem/stdlib"
	"github.com/tandemdb/tandem/verify"
)

// The tables, as tandem models. The plain cases create the same tables
// with hand-written DDL (plainDDL).
type (
	Account struct {
		AID     int64  `tandem:"aid,pk"`
		BID     int64  `tandem:"bid"`
		Balance int64  `tandem:"abalance"`
		Filler  string `tandem:"filler,size=84"`
	}
	Teller struct {
		TID     int64  `tandem:"tid,pk"`
		BID     int64  `tandem:"bid"`
		Balance int64  `tandem:"tbalance"`
		Filler  string `tandem:"filler,size=84"`
	}
	Branch struct {
		BID     int64  `tandem:"bid,pk"`
		Balance int64  `tandem:"bbalance"`
		Filler  string `tandem:"filler,size=88"`
	}
	// History has a key (pgbench's has none) because verify compares rows
	// by key. The key, like the time, is decided in Go in every case: no
	// sequence, so pgpool-II needs no insert lock, and no now().
	History struct {
		HID    int64     `tandem:"hid,pk"`
		TID    int64     `tandem:"tid"`
		BID    int64     `tandem:"bid"`
		AID    int64     `tandem:"aid"`
		Delta  int64     `tandem:"delta"`
		MTime  time.Time `tandem:"mtime"`
		Filler string    `tandem:"filler,size=22"`
	}
)

func (Account) TableName() string { return "accounts" }
func (Teller) TableName() string  { return "tellers" }
func (Branch) TableName() string  { return "branches" }
func (History) TableName() string { return "history" }

var models = []any{&Account{}, &Teller{}, &Branch{}, &History{}}

// settings of a run, from the environment (bench/tpcb.sh sets them).
type settings struct {
	accounts int           // TPCB_ACCOUNTS
	duration time.Duration // TPCB_DURATION, measured time per case and client count
	rounds   int           // TPCB_ROUNDS: the duration is split into rounds, interleaved with the other cases'
	warmup   time.Duration // TPCB_WARMUP, unmeasured time before each round
	clients  []int         // TPCB_CLIENTS
	engines  []string      // TPCB_ENGINES: postgres, mariadb, sqlite
	profile  string        // TPCB_PROFILE: write a CPU profile of the cases whose name contains it
	out      string        // TPCB_OUT: also write the table here
}

func settingsFromEnv(t *testing.T) settings {
	s := settings{
		accounts: 2000,
		// Long enough that the slowest case (the driver at 8 clients,
		// under the race detector on a loaded machine) commits some.
		duration: 2 * time.Second,
		rounds:   1,
		warmup:   200 * time.Millisecond,
		clients:  []int{1, 8},
		engines:  []string{"postgres", "mariadb", "sqlite"},
		profile:  os.Getenv("TPCB_PROFILE"),
		out:      os.Getenv("TPCB_OUT"),
	}
	if v := os.Getenv("TPCB_ROUNDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("TPCB_ROUNDS=%q: want a whole number of rounds >= 1", v)
		}
		s.rounds = n
	}
	if v := os.Getenv("TPCB_ACCOUNTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("TPCB_ACCOUNTS=%q: want a whole number of accounts >= 1", v)
		}
		s.accounts = n
	}
	for name, d := range map[string]*time.Duration{"TPCB_DURATION": &s.duration, "TPCB_WARMUP": &s.warmup} {
		if v := os.Getenv(name); v != "" {
			x, err := time.ParseDuration(v)
			if err != nil || x < 0 {
				t.Fatalf("%s=%q: want a duration such as 20s", name, v)
			}
			*d = x
		}
	}
	if v := os.Getenv("TPCB_CLIENTS"); v != "" {
		s.clients = nil
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 {
				t.Fatalf("TPCB_CLIENTS=%q: want client counts such as 1,8", v)
			}
			s.clients = append(s.clients, n)
		}
	}
	if v := os.Getenv("TPCB_ENGINES"); v != "" {
		s.engines = nil
		for _, f := range strings.Split(v, ",") {
			f = strings.TrimSpace(f)
			if f != "postgres" && f != "mariadb" && f != "sqlite" {
				t.Fatalf("TPCB_ENGINES=%q: unknown engine %q (known: postgres, mariadb, sqlite)", v, f)
			}
			s.engines = append(s.engines, f)
		}
	}
	return s
}

// scale is pgbench's: one branch and ten tellers per 100,000 accounts.
func scale(accounts int) int { return max(1, accounts/100000) }

// params are one transaction's random choices, as pgbench makes them.
type params struct {
	aid, tid, bid, delta, hid int64
	at                        time.Time
}

func (s settings) draw(r *rand.Rand, hid int64) params {
	sc := scale(s.accounts)
	return params{
		aid:   r.Int64N(int64(s.accounts)) + 1,
		tid:   r.Int64N(int64(10*sc)) + 1,
		bid:   r.Int64N(int64(sc)) + 1,
		delta: r.Int64N(10001) - 5000,
		hid:   hid,
		at:    time.Now().UTC().Truncate(time.Microsecond),
	}
}

// system runs the transaction: plainly on one database (or pgpool-II), or
// through tandem.
type system interface {
	run(ctx context.Context, p params) error
}

// plain is the transaction pgbench runs, in SQL on one *sql.DB.
type plain struct {
	db *sql.DB
	q  [5]string
}

func newPlain(db *sql.DB, e engine.Engine) *plain {
	ph := e.Placeholder
	return &plain{db: db, q: [5]string{
		fmt.Sprintf("UPDATE accounts SET abalance = abalance + %s WHERE aid = %s", ph(1), ph(2)),
		fmt.Sprintf("SELECT abalance FROM accounts WHERE aid = %s", ph(1)),
		fmt.Sprintf("UPDATE tellers SET tbalance = tbalance + %s WHERE tid = %s", ph(1), ph(2)),
		fmt.Sprintf("UPDATE branches SET bbalance = bbalance + %s WHERE bid = %s", ph(1), ph(2)),
		fmt.Sprintf("INSERT INTO history (hid, tid, bid, aid, delta, mtime, filler) VALUES (%s, %s, %s, %s, %s, %s, %s)",
			ph(1), ph(2), ph(3), ph(4), ph(5), ph(6), ph(7)),
	}}
}

func (s *plain) run(ctx context.Context, p params) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, s.q[0], p.delta, p.aid); err != nil {
		return err
	}
	var balance int64
	if err := tx.QueryRowContext(ctx, s.q[1], p.aid).Scan(&balance); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, s.q[2], p.delta, p.tid); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, s.q[3], p.delta, p.bid); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, s.q[4], p.hid, p.tid, p.bid, p.aid, p.delta, p.at, ""); err != nil {
		return err
	}
	return tx.Commit()
}

// mirrored is the same transaction through tandem's models, as an
// application writes it: read each row (locked), change it, save it.
type mirrored struct{ c *tandem.Cluster }

func (s mirrored) run(ctx context.Context, p params) error {
	return s.c.Tx(ctx, func(tx *tandem.Tx) error {
		a, err := tandem.Get[Account](ctx, tx, p.aid)
		if err != nil {
			return err
		}
		a.Balance += p.delta
		if err := tx.Save(ctx, a); err != nil {
			return err
		}
		t, err := tandem.Get[Teller](ctx, tx, p.tid)
		if err != nil {
			return err
		}
		t.Balance += p.delta
		if err := tx.Save(ctx, t); err != nil {
			return err
		}
		b, err := tandem.Get[Branch](ctx, tx, p.bid)
		if err != nil {
			return err
		}
		b.Balance += p.delta
		if err := tx.Save(ctx, b); err != nil {
			return err
		}
		return tx.Save(ctx, &History{HID: p.hid, TID: p.tid, BID: p.bid, AID: p.aid, Delta: p.delta, MTime: p.at})
	})
}

// result is one case's measurement at one client count, summed over
// its rounds.
type result struct {
	engine, system string
	clients        int
	lat            []time.Duration // of the transactions measured
	measured       time.Duration   // time measured, over every round
	failed         int
	firstErr       error
	tps            float64
	p50, p99       time.Duration
	check          string
	checkErr       error
}

// finish computes the rates and percentiles.
func (r *result) finish() {
	slices.Sort(r.lat)
	if r.measured > 0 {
		r.tps = float64(len(r.lat)) / r.measured.Seconds()
	}
	if n := len(r.lat); n > 0 {
		r.p50 = r.lat[n/2]
		r.p99 = r.lat[min(n-1, n*99/100)]
	}
}

// measure runs c.sys with clients for warmup+d and adds to r the
// transactions that start and end within the measured part.
func (s settings) measure(t *testing.T, c *testCase, clients int, d time.Duration, r *result) {
	ctx := context.Background()
	name := fmt.Sprintf("%s %s %d", c.engine, c.system, clients)
	if s.profile != "" && strings.Contains(name, s.profile) {
		path := filepath.Join(profileDir(t), fmt.Sprintf("%s-%d.pprof", strings.ReplaceAll(name, " ", "_"), len(r.lat)))
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { pprof.StopCPUProfile(); f.Close(); t.Logf("CPU profile: %s", path) }()
		if err := pprof.StartCPUProfile(f); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	from, until := start.Add(s.warmup), start.Add(s.warmup+d)
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	for i := range clients {
		wg.Go(func() {
			rnd := rand.New(rand.NewPCG(uint64(start.UnixNano()), uint64(i)))
			var mine []time.Duration
			bad := 0
			var badErr error
			for time.Now().Before(until) {
				p := s.draw(rnd, c.hids.Add(1))
				t0 := time.Now()
				err := c.sys.run(ctx, p)
				took := time.Since(t0)
				if err != nil {
					if bad == 0 {
						badErr = err
					}
					bad++
					time.Sleep(time.Millisecond)
					continue
				}
				c.committed.Add(1)
				if !t0.Before(from) && t0.Add(took).Before(until) {
					mine = append(mine, took)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			r.lat = append(r.lat, mine...)
			r.failed += bad
			if r.firstErr == nil {
				r.firstErr = badErr
			}
		})
	}
	wg.Wait()
	r.measured += d
}

func profileDir(t *testing.T) string {
	dir := os.Getenv("TPCB_PROFILE_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// plainDDL creates the tables without tandem, in the dialect of driver.
func plainDDL(driver string) []string {
	integer, tail, ts := "BIGINT", "", "TIMESTAMPTZ"
	switch driver {
	case "mysql":
		tail, ts = " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_nopad_bin", "DATETIME(6)"
	case "sqlite":
		integer, ts = "INTEGER", "TEXT"
	}
	r := strings.NewReplacer("INT", integer, "TS", ts)
	return []string{
		r.Replace("CREATE TABLE accounts (aid INT PRIMARY KEY, bid INT NOT NULL, abalance INT NOT NULL, filler VARCHAR(84) NOT NULL)") + tail,
		r.Replace("CREATE TABLE tellers (tid INT PRIMARY KEY, bid INT NOT NULL, tbalance INT NOT NULL, filler VARCHAR(84) NOT NULL)") + tail,
		r.Replace("CREATE TABLE branches (bid INT PRIMARY KEY, bbalance INT NOT NULL, filler VARCHAR(88) NOT NULL)") + tail,
		r.Replace("CREATE TABLE history (hid INT PRIMARY KEY, tid INT NOT NULL, bid INT NOT NULL, aid INT NOT NULL, delta INT NOT NULL, mtime TS NOT NULL, filler VARCHAR(22) NOT NULL)") + tail,
	}
}

// load fills the tables as pgbench -i does (every balance 0), in one
// transaction, with multi-row INSERTs.
func load(ctx context.Context, db *sql.DB, e engine.Engine, accounts int) error {
	sc := scale(accounts)
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	insert := func(table, cols string, n int, row func(i int) []any) error {
		const chunk = 500
		for from := 1; from <= n; from += chunk {
			to := min(n, from+chunk-1)
			var b strings.Builder
			var args []any
			fmt.Fprintf(&b, "INSERT INTO %s (%s) VALUES ", table, cols)
			for i := from; i <= to; i++ {
				vals := row(i)
				if i > from {
					b.WriteString(", ")
				}
				b.WriteByte('(')
				for j, v := range vals {
					if j > 0 {
						b.WriteString(", ")
					}
					args = append(args, v)
					b.WriteString(e.Placeholder(len(args)))
				}
				b.WriteByte(')')
			}
			if _, err := tx.ExecContext(ctx, b.String(), args...); err != nil {
				return fmt.Errorf("load %s: %w", table, err)
			}
		}
		return nil
	}
	filler := strings.Repeat("x", 84)
	if err := insert("branches", "bid, bbalance, filler", sc, func(i int) []any { return []any{int64(i), int64(0), filler} }); err != nil {
		return err
	}
	if err := insert("tellers", "tid, bid, tbalance, filler", 10*sc, func(i int) []any {
		return []any{int64(i), int64((i-1)/10 + 1), int64(0), filler}
	}); err != nil {
		return err
	}
	if err := insert("accounts", "aid, bid, abalance, filler", accounts, func(i int) []any {
		return []any{int64(i), int64((i-1)/100000 + 1), int64(0), filler}
	}); err != nil {
		return err
	}
	return tx.Commit()
}

// balances checks pgbench's invariant on one database: the accounts,
// tellers, branches and history hold the same sum of deltas, and history
// holds one row per committed transaction.
func balances(ctx context.Context, db *sql.DB, committed int64) error {
	var a, t, b, h, n sql.NullInt64
	err := db.QueryRowContext(ctx, `SELECT (SELECT SUM(abalance) FROM accounts), (SELECT SUM(tbalance) FROM tellers),
		(SELECT SUM(bbalance) FROM branches), (SELECT COALESCE(SUM(delta), 0) FROM history), (SELECT COUNT(*) FROM history)`).Scan(&a, &t, &b, &h, &n)
	if err != nil {
		return err
	}
	if a != t || t != b || b != h {
		return fmt.Errorf("sums differ: accounts %d, tellers %d, branches %d, history %d", a.Int64, t.Int64, b.Int64, h.Int64)
	}
	if n.Int64 != committed {
		return fmt.Errorf("history holds %d rows, %d transactions committed", n.Int64, committed)
	}
	return nil
}

// backend is one database of a case: where it is and how to reach it.
type backend struct {
	driver string // tandem's
	dsn    string
}

func (b backend) engine() engine.Engine {
	switch b.driver {
	case "postgres":
		return postgres.Engine{}
	case "mysql":
		return mysql.Engine{}
	}
	return sqlite.Engine{}
}

func (b backend) open(t *testing.T) *sql.DB {
	conn, err := b.engine().Open(context.Background(), b.dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn.Write
}

// testCase is one system under test: an engine, and plain SQL on one
// database, tandem, or pgpool-II.
type testCase struct {
	engine, system string
	sys            system
	hids           atomic.Int64 // the last history key used
	committed      atomic.Int64 // transactions committed, warm-ups included
	// check runs once the case's rounds are done: verify on the copies
	// and the balances on each.
	check func(committed int64) (string, error)
}

// bench holds a run's results.
type bench struct {
	s       settings
	results []*result
}

// run measures the cases of one engine in interleaved rounds, so that a
// disk or a neighbour that speeds up or slows down during the run weighs
// on every case alike: each round runs every case at every client count
// for duration/rounds. Then it checks every case.
func (bn *bench) run(t *testing.T, cases []*testCase) {
	res := map[*testCase]map[int]*result{}
	for _, c := range cases {
		res[c] = map[int]*result{}
		for _, n := range bn.s.clients {
			r := &result{engine: c.engine, system: c.system, clients: n}
			res[c][n] = r
			bn.results = append(bn.results, r)
		}
	}
	d := bn.s.duration / time.Duration(bn.s.rounds)
	for round := range bn.s.rounds {
		for _, n := range bn.s.clients {
			for _, c := range cases {
				bn.s.measure(t, c, n, d, res[c][n])
				t.Logf("round %d/%d: %s %s at %d clients done", round+1, bn.s.rounds, c.engine, c.system, n)
			}
		}
	}
	for _, c := range cases {
		check, err := c.check(c.committed.Load())
		for _, n := range bn.s.clients {
			r := res[c][n]
			r.check, r.checkErr = check, err
			r.finish()
			bn.report(t, r)
		}
	}
}

// plainCase sets up the plain transaction on one database (or, through
// pgpool-II, on two): it creates and loads the tables on each copy.
func (bn *bench) plainCase(t *testing.T, eng, sys string, through backend, copies []backend) *testCase {
	ctx := context.Background()
	for _, b := range copies {
		db := b.open(t)
		for _, q := range plainDDL(b.driver) {
			if _, err := db.ExecContext(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		if err := load(ctx, db, b.engine(), bn.s.accounts); err != nil {
			t.Fatal(err)
		}
	}
	c := &testCase{engine: eng, system: sys, sys: newPlain(through.open(t), through.engine())}
	c.check = func(committed int64) (string, error) {
		if len(copies) > 1 {
			return verifyCopies(ctx, t, copies, committed)
		}
		return "balances", balances(ctx, copies[0].open(t), committed)
	}
	return c
}

// mirroredCase sets up tandem over copies (openLoaded), written through
// its models.
func (bn *bench) mirroredCase(t *testing.T, eng string, copies []backend) *testCase {
	c := bn.openLoaded(t, copies)
	tc := &testCase{engine: eng, system: "tandem", sys: mirrored{c}}
	tc.check = func(committed int64) (string, error) { return verifyCopies(context.Background(), t, copies, committed) }
	return tc
}

// driverCase sets up the plain transaction, as written for one database,
// through tandem's database/sql driver over copies (openLoaded, then the
// capture triggers installed).
func (bn *bench) driverCase(t *testing.T, eng string, copies []backend) *testCase {
	c := bn.openLoaded(t, copies)
	if err := c.Capture(context.Background()); err != nil {
		t.Fatal(err)
	}
	db := stdlib.OpenDB(c)
	t.Cleanup(func() { db.Close() })
	tc := &testCase{engine: eng, system: "driver", sys: newPlain(db, copies[0].engine())}
	tc.check = func(committed int64) (string, error) { return verifyCopies(context.Background(), t, copies, committed) }
	return tc
}

// openLoaded opens tandem over copies: Migrate creates the tables, which
// are loaded on each copy directly.
func (bn *bench) openLoaded(t *testing.T, copies []backend) *tandem.Cluster {
	ctx := context.Background()
	c, err := tandem.Open(ctx, config(copies), tandem.WithLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Migrate(ctx, models...); err != nil {
		t.Fatal(err)
	}
	for _, b := range copies {
		if err := load(ctx, b.open(t), b.engine(), bn.s.accounts); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func config(copies []backend) *tandem.Config {
	cfg := &tandem.Config{}
	for i, b := range copies {
		cfg.Datasources = append(cfg.Datasources, tandem.Datasource{Name: fmt.Sprintf("db%d", i+1), Driver: b.driver, DSN: b.dsn})
	}
	return cfg
}

// verifyCopies runs tandem verify on the copies and checks the balances
// on each.
func verifyCopies(ctx context.Context, t *testing.T, copies []backend, committed int64) (string, error) {
	rep, err := verify.Compare(ctx, config(copies), verify.Options{Tables: []string{"accounts", "tellers", "branches", "history"}})
	if err != nil {
		return "verify failed", err
	}
	if !rep.Identical {
		n := 0
		for _, tr := range rep.Tables {
			n += len(tr.Differences)
		}
		return fmt.Sprintf("verify: %d rows differ", n), fmt.Errorf("copies differ: %+v", rep.Tables)
	}
	for _, b := range copies {
		if err := balances(ctx, b.open(t), committed); err != nil {
			return "verify: identical; balances wrong", fmt.Errorf("%s: %w", b.driver, err)
		}
	}
	return "verify: identical", nil
}

func (bn *bench) report(t *testing.T, r *result) {
	t.Helper()
	t.Logf("%-8s %-9s clients=%d  %8.1f tx/s  p50 %s  p99 %s  failed %d  %s", r.engine, r.system, r.clients, r.tps,
		r.p50.Round(time.Microsecond), r.p99.Round(time.Microsecond), r.failed, r.check)
	if r.failed > 0 {
		t.Errorf("%s %s at %d clients: %d transactions failed, the first with: %v", r.engine, r.system, r.clients, r.failed, r.firstErr)
	}
	if r.checkErr != nil {
		t.Errorf("%s %s at %d clients: %v", r.engine, r.system, r.clients, r.checkErr)
	}
	if len(r.lat) == 0 {
		t.Errorf("%s %s at %d clients: no transaction committed in the measured time", r.engine, r.system, r.clients)
	}
}

func TestTPCB(t *testing.T) {
	s := settingsFromEnv(t)
	bn := &bench{s: s}
	if slices.Contains(s.engines, "postgres") {
		t.Run("postgres", func(t *testing.T) {
			a, b := dbserver.Start(t, dbserver.Postgres), dbserver.Start(t, dbserver.Postgres)
			for _, name := range []string{"single", "tandem", "driver", "pgpool"} {
				a.CreateDatabase(t, name)
				b.CreateDatabase(t, name)
			}
			pg := func(s *dbserver.Server, db string) backend { return backend{"postgres", s.DSN(db, "")} }
			pool := startPgpool(t, []*dbserver.Server{a, b}, "pgpool")
			bn.run(t, []*testCase{
				bn.plainCase(t, "postgres", "single", pg(a, "single"), []backend{pg(a, "single")}),
				bn.mirroredCase(t, "postgres", []backend{pg(a, "tandem"), pg(b, "tandem")}),
				bn.driverCase(t, "postgres", []backend{pg(a, "driver"), pg(b, "driver")}),
				bn.plainCase(t, "postgres", "pgpool-II", backend{"postgres", pool}, []backend{pg(a, "pgpool"), pg(b, "pgpool")}),
			})
		})
	}
	if slices.Contains(s.engines, "mariadb") {
		t.Run("mariadb", func(t *testing.T) {
			a, b := dbserver.Start(t, dbserver.MariaDB), dbserver.Start(t, dbserver.MariaDB)
			for _, name := range []string{"single", "tandem", "driver"} {
				a.CreateDatabase(t, name)
				b.CreateDatabase(t, name)
			}
			my := func(s *dbserver.Server, db string) backend { return backend{"mysql", s.DSN(db, "")} }
			bn.run(t, []*testCase{
				bn.plainCase(t, "mariadb", "single", my(a, "single"), []backend{my(a, "single")}),
				bn.mirroredCase(t, "mariadb", []backend{my(a, "tandem"), my(b, "tandem")}),
				bn.driverCase(t, "mariadb", []backend{my(a, "driver"), my(b, "driver")}),
			})
		})
	}
	if slices.Contains(s.engines, "sqlite") {
		t.Run("sqlite", func(t *testing.T) {
			dir := t.TempDir()
			file := func(name string) backend { return backend{"sqlite", filepath.Join(dir, name+".db")} }
			bn.run(t, []*testCase{
				bn.plainCase(t, "sqlite", "single", file("single"), []backend{file("single")}),
				bn.mirroredCase(t, "sqlite", []backend{file("a"), file("b")}),
				bn.driverCase(t, "sqlite", []backend{file("c"), file("d")}),
			})
		})
	}
	bn.table(t)
}

// find returns the result of a case, or nil.
func (bn *bench) find(eng, sys string, clients int) *result {
	for _, r := range bn.results {
		if r.engine == eng && r.system == sys && r.clients == clients {
			return r
		}
	}
	return nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d)/float64(time.Millisecond)) }

// table prints every case, its ratios to the single database (and, for
// PostgreSQL, tandem's to pgpool-II), and the targets.
func (bn *bench) table(t *testing.T) {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "engine\tsystem\tclients\ttx/s\tp50 ms\tp99 ms\tvs single\tcheck\t\n")
	for _, r := range bn.results {
		ratio := "-"
		if s := bn.find(r.engine, "single", r.clients); s != nil && r.system != "single" && s.tps > 0 {
			ratio = fmt.Sprintf("%.2f", r.tps/s.tps)
		}
		fmt.Fprintf(w, "%s\t%s\t%d\t%.0f\t%s\t%s\t%s\t%s\t\n", r.engine, r.system, r.clients, r.tps, ms(r.p50), ms(r.p99), ratio, r.check)
	}
	w.Flush()
	type target struct {
		what      string
		got, want float64
		atLeast   bool
	}
	var targets []target
	ratio := func(what string, x, y *result, tps, atLeast bool, want float64) {
		if x == nil || y == nil {
			return
		}
		var got float64
		if tps {
			got = x.tps / y.tps
		} else {
			got = float64(x.p50) / float64(y.p50)
		}
		targets = append(targets, target{what, got, want, atLeast})
	}
	ratio("postgres: tandem / pgpool-II throughput, 8 clients", bn.find("postgres", "tandem", 8), bn.find("postgres", "pgpool-II", 8), true, true, 1.5)
	ratio("postgres: tandem / pgpool-II median latency, 1 client", bn.find("postgres", "tandem", 1), bn.find("postgres", "pgpool-II", 1), false, false, 0.6)
	ratio("postgres: tandem / single throughput, 8 clients", bn.find("postgres", "tandem", 8), bn.find("postgres", "single", 8), true, true, 0.45)
	ratio("postgres: driver / single throughput, 8 clients", bn.find("postgres", "driver", 8), bn.find("postgres", "single", 8), true, true, 0.45)
	ratio("postgres: driver / pgpool-II throughput, 8 clients", bn.find("postgres", "driver", 8), bn.find("postgres", "pgpool-II", 8), true, true, 1.5)
	ratio("mariadb: tandem / single throughput, 8 clients", bn.find("mariadb", "tandem", 8), bn.find("mariadb", "single", 8), true, true, 0.45)
	for _, n := range bn.s.clients {
		ratio(fmt.Sprintf("sqlite: tandem / single throughput, %s", plural(n, "client")), bn.find("sqlite", "tandem", n), bn.find("sqlite", "single", n), true, true, 0.6)
	}
	fmt.Fprintf(&b, "\n%d accounts; each case %v at each client count, in %d interleaved rounds, each after %v of warm-up; %d CPUs, %s\n",
		bn.s.accounts, bn.s.duration, bn.s.rounds, bn.s.warmup, runtime.NumCPU(), runtime.Version())
	for _, tg := range targets {
		verdict, op := "met", ">="
		if !tg.atLeast {
			op = "<="
		}
		if (tg.atLeast && tg.got < tg.want) || (!tg.atLeast && tg.got > tg.want) {
			verdict = "MISSED"
		}
		fmt.Fprintf(&b, "%-56s %5.2f (target %s %.2f: %s)\n", tg.what, tg.got, op, tg.want, verdict)
	}
	fmt.Print("\n" + b.String())
	if bn.s.out != "" {
		if err := os.WriteFile(bn.s.out, []byte(b.String()), 0o644); err != nil {
			t.Error(err)
		}
	}
}

// plural is "1 client", "8 clients".
func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
