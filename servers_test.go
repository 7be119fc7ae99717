package tandem_test

// Server tests: tandem over real PostgreSQL and MariaDB servers, started by
// internal/dbserver on loopback ports, and over mixed pairs. Faults are real:
// SIGKILL and SIGSTOP of a server, a connection cut by a TCP proxy, an
// address redirected to another server. Every check reads the databases
// directly or through verify.Compare.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/tandemdb/tandem"
	"github.com/tandemdb/tandem/internal/dbserver"
	"github.com/tandemdb/tandem/internal/jepsen"
	"github.com/tandemdb/tandem/internal/testcluster"
	"github.com/tandemdb/tandem/internal/value"
	"github.com/tandemdb/tandem/verify"
)

// srvBackend is where one datasource of a server test lives.
type srvBackend struct {
	driver string           // tandem's driver name
	server *dbserver.Server // nil for sqlite
}

// srvPair is the two datasources of a server test: foo (the primary) and bar.
type srvPair struct {
	name     string
	foo, bar srvBackend
	commit   string // Config.Commit
}

var srvDBs atomic.Int64

// database creates the database called name for one datasource and returns
// its DSN (through addr when not "": a proxy in front of the server) and a
// plain handle on it for checks, closed at test end.
func (b srvBackend) database(t *testing.T, name, addr string) (dsn string, db *sql.DB) {
	t.Helper()
	if b.server == nil {
		dsn = filepath.Join(t.TempDir(), name+".db")
		db = openPlain(t, "sqlite3", "file:"+dsn)
		return dsn, db
	}
	b.server.CreateDatabase(t, name)
	dsn = b.server.DSN(name, addr)
	driver := "pgx"
	if b.driver == "mysql" {
		driver = "mysql"
	}
	return dsn, openPlain(t, driver, b.server.DSN(name, ""))
}

func openPlain(t *testing.T, driver, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// srvTimeout is the server tests' Config.Timeout: 2 s, calm on a loaded
// 2-core machine; 1 s for two-phase commit, whose prepared transactions
// left by a fault are decided only after 8 timeouts.
func srvTimeout(p srvPair) time.Duration {
	if p.commit == tandem.CommitTwoPhase {
		return time.Second
	}
	return 2 * time.Second
}

// srvCluster is one server test's cluster and what it needs to check it.
type srvCluster struct {
	cfg      *tandem.Config
	c        *tandem.Cluster
	fooDB    *sql.DB
	barDB    *sql.DB
	barProxy *dbserver.Proxy // nil unless asked for
}

// srvOpen creates fresh databases for p and opens a cluster on them with
// fault detection that stays calm on a loaded 2-core machine (a 2 s
// timeout, checks every 50 ms). With proxyBar, bar is
// reached through a TCP proxy.
func srvOpen(t *testing.T, p srvPair, proxyBar bool) *srvCluster {
	t.Helper()
	s := &srvCluster{}
	// One name on both servers: a DSN redirected to the other server
	// (srvAddressTakeover) reaches the other datasource's database.
	name := fmt.Sprintf("t%d", srvDBs.Add(1))
	fooDSN, fooDB := p.foo.database(t, name, "")
	addr := ""
	if proxyBar {
		s.barProxy = dbserver.NewProxy(t, p.bar.server.Addr())
		addr = s.barProxy.Addr()
	}
	barDSN, barDB := p.bar.database(t, name, addr)
	s.fooDB, s.barDB = fooDB, barDB
	s.cfg = &tandem.Config{
		Commit:         p.commit,
		Timeout:        srvTimeout(p),
		HealthInterval: 50 * time.Millisecond,
		// Every process of these tests runs on this machine: a witness
		// file lets the primary change when it is lost.
		Arbiter: tandem.ArbiterConfig{Kind: "witness", Fields: map[string]any{"path": filepath.Join(t.TempDir(), "tandem.witness")}},
		Datasources: []tandem.Datasource{
			{Name: "foo", Driver: p.foo.driver, DSN: fooDSN},
			{Name: "bar", Driver: p.bar.driver, DSN: barDSN},
		},
	}
	c, err := tandem.Open(context.Background(), s.cfg, faultQuietLogs())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	s.c = c
	return s
}

// identical fails unless verify.Compare finds every table identical.
func (s *srvCluster) identical(t *testing.T) {
	t.Helper()
	rep, err := verify.Compare(context.Background(), s.cfg, verify.Options{})
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if !rep.Identical {
		for _, tr := range rep.Tables {
			for i, d := range tr.Differences {
				if i == 10 {
					break
				}
				t.Errorf("table %s: %s %v: %v", tr.Table, d.Kind, d.Key, d)
			}
		}
		t.Fatalf("verify: the databases differ")
	}
}

// nodes are the two databases for the jepsen checkers.
func (s *srvCluster) nodes() []jepsen.Node {
	return []jepsen.Node{jepsen.SQLNode("foo", s.fooDB), jepsen.SQLNode("bar", s.barDB)}
}

func srvCount(t *testing.T, db *sql.DB, table string) int {
	t.Helper()
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM " + table).Scan(&n); err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return n
}

// TestServers runs tandem over real database servers: two PostgreSQL and two
// MariaDB servers, started once and shared by the subtests (each subtest
// works in databases of its own; one that breaks a server restores it).
func TestServers(t *testing.T) {
	pg := [2]*dbserver.Server{dbserver.Start(t, dbserver.Postgres), dbserver.Start(t, dbserver.Postgres)}
	my := [2]*dbserver.Server{dbserver.Start(t, dbserver.MariaDB), dbserver.Start(t, dbserver.MariaDB)}
	pgb := func(i int) srvBackend { return srvBackend{"postgres", pg[i]} }
	myb := func(i int) srvBackend { return srvBackend{"mysql", my[i]} }
	sqlite := srvBackend{driver: "sqlite"}

	pairs := []srvPair{
		{"postgres", pgb(0), pgb(1), ""},
		{"mariadb", myb(0), myb(1), ""},
		{"postgres+mariadb", pgb(0), myb(1), ""},
		{"sqlite+postgres", sqlite, pgb(1), ""},
		{"mariadb+sqlite", myb(0), sqlite, ""},
		{"postgres-two-phase", pgb(0), pgb(1), tandem.CommitTwoPhase},
	}
	for _, p := range pairs {
		t.Run(p.name, func(t *testing.T) {
			t.Run("MirrorsModelWrites", func(t *testing.T) { srvMirrorsModelWrites(t, p) })
			t.Run("TypesRoundTrip", func(t *testing.T) { srvTypesRoundTrip(t, p) })
			t.Run("RefusedValuesWriteNothing", func(t *testing.T) { srvRefusedValues(t, p) })
			t.Run("VerifyNamesEveryDifferenceAndRepairFixesIt", func(t *testing.T) { srvVerifyRepair(t, p) })
			t.Run("CatchUpConvergesOnUniqueValuesMoved", func(t *testing.T) { srvCatchUpMovedUnique(t, p) })
			if p.commit != tandem.CommitTwoPhase {
				t.Run("WriteOfKeysInDoubtEndsTheDoubt", func(t *testing.T) { srvWriteOfKeysInDoubt(t, p) })
			}
			if p.foo.driver == p.bar.driver { // its CREATE TABLE makes structures that differ across engines
				t.Run("ConstraintErrorsArePortable", func(t *testing.T) {
					s := srvOpen(t, p, false)
					constraintErrors(t, s.c, p.foo.driver, func() {
						if !verifyTables(t, s, "ce_parent", "ce_child") {
							t.Fatal("verify: the databases differ")
						}
					})
				})
			}
			if p.name == "sqlite+postgres" {
				t.Run("VerifyEndsWhenTheSidesOrderKeysDifferently", func(t *testing.T) { srvVerifyOtherCollation(t, p) })
			}
			if p.foo.server == nil || p.foo.driver != p.bar.driver {
				return // the fault scenarios run on each engine's own pair
			}
			t.Run("SecondaryKilledMidStream", func(t *testing.T) { srvSecondaryKilled(t, p) })
			t.Run("SecondaryHungWritersWaitOnlyTheTimeout", func(t *testing.T) { srvSecondaryHung(t, p) })
			t.Run("ConnectionCutByProxy", func(t *testing.T) { srvConnectionCut(t, p) })
			if p.commit != tandem.CommitTwoPhase {
				t.Run("SecondaryLostAtCommitKeepsTheNewID", func(t *testing.T) { srvSecondaryLostAtCommit(t, p) })
				t.Run("CommitUnansweredIsOutcomeUnknownAndEndsWhole", func(t *testing.T) { srvCommitUnanswered(t, p) })
			}
			t.Run("PrimaryKilledSecondaryTakesOver", func(t *testing.T) { srvPrimaryKilled(t, p) })
			t.Run("PrimaryHungSecondaryTakesOver", func(t *testing.T) { srvPrimaryHung(t, p) })
			t.Run("AddressTakenOverWritesOnceThenCatchesUp", func(t *testing.T) { srvAddressTakeover(t, p) })
			if p.commit == tandem.CommitTwoPhase {
				t.Run("ProcessKilledBetweenThePhases", func(t *testing.T) { srvKilledBetweenPhases(t, p) })
			}
		})
	}
}

// SrvItem exercises an auto id, a unique index and every logical type.
type SrvItem struct {
	ID    int64     `tandem:"id,pk,auto"`
	Code  string    `tandem:"code,size=40,unique"`
	Qty   int64     `tandem:"qty"`
	Price float64   `tandem:"price"`
	Data  []byte    `tandem:"data"`
	Done  bool      `tandem:"done"`
	At    time.Time `tandem:"at"`
	Note  *string   `tandem:"note"`
}

func (SrvItem) TableName() string { return "srv_item" }

// SrvText has a text primary key: ranges of text keys must order alike on
// every engine.
type SrvText struct {
	K string `tandem:"k,pk,size=100"`
	V int64  `tandem:"v"`
}

func (SrvText) TableName() string { return "srv_text" }

func srvMirrorsModelWrites(t *testing.T, p srvPair) {
	s := srvOpen(t, p, false)
	ctx := context.Background()
	if err := s.c.Migrate(ctx, &SrvItem{}, &SrvText{}); err != nil {
		t.Fatal(err)
	}
	note := "hello"
	at := time.Date(2026, 11, 26, 12, 0, 0, 123456000, time.UTC)
	var items []*SrvItem
	for i := range 20 {
		it := &SrvItem{Code: fmt.Sprintf("c%02d", i), Qty: int64(i), Price: float64(i) / 3, Data: []byte{byte(i), 0, 255}, Done: i%2 == 0, At: at.Add(time.Duration(i) * time.Second)}
		if i%3 == 0 {
			it.Note = &note
		}
		if err := s.c.Save(ctx, it); err != nil {
			t.Fatalf("save %d: %v", i, err)
		}
		if it.ID == 0 {
			t.Fatalf("save %d: no id assigned", i)
		}
		items = append(items, it)
	}
	// Update, delete, and a transaction of several writes.
	items[1].Qty = 100
	if err := s.c.Save(ctx, items[1]); err != nil {
		t.Fatal(err)
	}
	if err := s.c.Delete(ctx, items[2]); err != nil {
		t.Fatal(err)
	}
	err := s.c.Tx(ctx, func(tx *tandem.Tx) error {
		for _, k := range []string{"b", "a", "Z", "é", "a ", "ab", "\u00e9\u0301", "😀"} {
			if err := tx.Save(ctx, &SrvText{K: k, V: int64(len(k))}); err != nil {
				return err
			}
		}
		return tx.Delete(ctx, items[3])
	})
	if err != nil {
		t.Fatal(err)
	}
	// A unique clash is an error and writes nothing anywhere.
	dup := &SrvItem{Code: "c00"}
	if err := s.c.Save(ctx, dup); err == nil {
		t.Fatal("saving a duplicate code succeeded")
	}
	got, err := tandem.Get[SrvItem](ctx, s.c, items[1].ID)
	if err != nil || got.Qty != 100 || !got.At.Equal(items[1].At) || string(got.Data) != string(items[1].Data) {
		t.Fatalf("get: %+v, %v", got, err)
	}
	texts, err := tandem.Find[SrvText](ctx, s.c, tandem.OrderBy("k"))
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, x := range texts {
		order = append(order, x.K)
	}
	// Byte order on every engine: "Z" < "a" < "a " < "ab" < "b" < "é" < ...
	if want := "Z|a|a |ab|b|é|é́|😀"; strings.Join(order, "|") != want {
		t.Errorf("text keys in order %q, want %q", strings.Join(order, "|"), want)
	}
	for _, db := range []*sql.DB{s.fooDB, s.barDB} {
		if n := srvCount(t, db, "srv_item"); n != 18 {
			t.Errorf("srv_item has %d rows, want 18", n)
		}
		if n := srvCount(t, db, "srv_text"); n != 8 {
			t.Errorf("srv_text has %d rows, want 8", n)
		}
	}
	s.identical(t)
	st, err := s.c.Status(ctx)
	if err != nil || !foInSync(st) || !st.StructureMatch {
		t.Errorf("status: %v\n%s", err, foTable(st, err))
	}
	for _, n := range st.Nodes {
		if !n.StructureMatches {
			t.Errorf("status: %s's structure is said to differ from the primary's", n.Name)
		}
	}
}

func srvTypesRoundTrip(t *testing.T, p srvPair) {
	s := srvOpen(t, p, false)
	ctx := context.Background()
	if err := s.c.Migrate(ctx, &SrvItem{}); err != nil {
		t.Fatal(err)
	}
	empty := ""
	cases := []SrvItem{
		{Code: "min", Qty: math.MinInt64, Price: -math.MaxFloat64, Data: []byte{}, At: time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC)},
		{Code: "max", Qty: math.MaxInt64, Price: math.MaxFloat64, Data: make([]byte, 1<<20), Done: true, At: time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC)},
		{Code: "tiny", Price: math.SmallestNonzeroFloat64, Note: &empty, At: time.Date(1970, 1, 1, 0, 0, 0, 1000, time.UTC)},
		{Code: "third", Price: 1.0 / 3, Data: []byte("\x00\x01\xff"), At: time.Date(2026, 3, 29, 1, 30, 0, 0, time.FixedZone("x", 5*3600+30*60))},
		{Code: "unicode ✓ 😀", Price: -0.5, At: time.Unix(0, 0).UTC()},
	}
	for i := range cases {
		if err := s.c.Save(ctx, &cases[i]); err != nil {
			t.Fatalf("save %s: %v", cases[i].Code, err)
		}
	}
	for _, want := range cases {
		got, err := tandem.Get[SrvItem](ctx, s.c, want.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Qty != want.Qty || got.Price != want.Price || string(got.Data) != string(want.Data) || got.Done != want.Done ||
			!got.At.Equal(want.At) || (got.Note == nil) != (want.Note == nil) || got.Code != want.Code {
			t.Errorf("%s: read back %+v, wrote %+v", want.Code, got, want)
		}
	}
	s.identical(t)
}

func srvRefusedValues(t *testing.T, p srvPair) {
	s := srvOpen(t, p, false)
	ctx := context.Background()
	if err := s.c.Migrate(ctx, &SrvItem{}); err != nil {
		t.Fatal(err)
	}
	bad := []SrvItem{
		{Code: "nan", Price: math.NaN()},
		{Code: "bad utf-8 \xff"},
	}
	for _, it := range bad {
		err := s.c.Save(ctx, &it)
		var ve *tandem.ValueError
		if !errors.As(err, &ve) {
			t.Errorf("save %q: got %v, want a *tandem.ValueError naming the column", it.Code, err)
			continue
		}
		t.Logf("save %q refused: %v", it.Code, err)
	}
	for _, db := range []*sql.DB{s.fooDB, s.barDB} {
		if n := srvCount(t, db, "srv_item"); n != 0 {
			t.Errorf("srv_item has %d rows after refused writes, want 0", n)
		}
	}
}

func srvVerifyRepair(t *testing.T, p srvPair) {
	s := srvOpen(t, p, false)
	ctx := context.Background()
	if err := s.c.Migrate(ctx, &SrvText{}); err != nil {
		t.Fatal(err)
	}
	err := s.c.Tx(ctx, func(tx *tandem.Tx) error {
		for i := range 3000 {
			if err := tx.Save(ctx, &SrvText{K: fmt.Sprintf("k%05d", i), V: int64(i)}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	s.c.Close()
	s.identical(t)
	// Change bar behind tandem's back: one row changed, one deleted, one added.
	for _, q := range []string{
		"UPDATE srv_text SET v = -1 WHERE k = 'k01234'",
		"DELETE FROM srv_text WHERE k = 'k02999'",
		"INSERT INTO srv_text (k, v) VALUES ('zz-extra', 7)",
	} {
		if _, err := s.barDB.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	rep, err := verify.Compare(ctx, s.cfg, verify.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, tr := range rep.Tables {
		for _, d := range tr.Differences {
			found = append(found, fmt.Sprintf("%s %v", d.Kind, d.Key.Values))
		}
	}
	want := []string{"changed [k01234]", "missing [k02999]", "extra [zz-extra]"}
	if rep.Identical || strings.Join(found, ", ") != strings.Join(want, ", ") {
		t.Fatalf("verify found %v (identical %v), want %v", found, rep.Identical, want)
	}
	if _, err := verify.Repair(ctx, s.cfg, verify.RepairOptions{From: "foo", To: "bar"}); err != nil {
		t.Fatal(err)
	}
	s.identical(t)
}

// srvWorkloads starts the set and bank workloads on s.
func srvWorkloads(t *testing.T, ctx context.Context, s *srvCluster) (*jepsen.SetRun, *jepsen.BankRun) {
	t.Helper()
	set, bank := foWorkloads(t, ctx, s.c)
	return set.Start(ctx, s.c), bank.Start(ctx, s.c)
}

// srvSettle waits until the cluster is in sync with foo the primary and
// holds no intent record, then checks the workloads' histories against both
// databases and verifies them.
//
// Waiting for the records matters after a hung server: a write tandem
// gave up on there may still have committed on it when it resumed (a
// "zombie" commit, left with its intent record). Status counts such a
// record as in doubt only once it is 10 s old, and the health loop then
// copies its keys to the other database; compared before that, the
// databases differ by the zombie's rows.
func srvSettle(t *testing.T, s *srvCluster, set *jepsen.SetHistory, bank *jepsen.BankHistory) {
	t.Helper()
	foWait(t, s.c, "in sync with foo the primary", func(st *tandem.Status) bool { return foInSync(st) && st.Primary == "foo" })
	foUntil(t, "no intent record left (writes in doubt are repaired once 10 s old)", func() bool {
		return srvCount(t, s.fooDB, "_tandem_pending") == 0 && srvCount(t, s.barDB, "_tandem_pending") == 0
	})
	jepsen.CheckSet(t, set, s.nodes()...)
	jepsen.CheckBank(t, bank, s.nodes()...)
	s.identical(t)
	for name, db := range map[string]*sql.DB{"foo": s.fooDB, "bar": s.barDB} {
		if n := srvCount(t, db, "_tandem_missed"); n != 0 {
			t.Errorf("%s: %d missed-key records left, want none", name, n)
		}
	}
	if s.cfg.Commit == tandem.CommitTwoPhase {
		foUntil(t, "no prepared transaction left", func() bool {
			return srvPrepared(t, s.fooDB) == 0 && srvPrepared(t, s.barDB) == 0
		})
	}
}

// srvPrepared counts the transactions prepared in a PostgreSQL database.
func srvPrepared(t *testing.T, db *sql.DB) int {
	t.Helper()
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM pg_prepared_xacts WHERE database = current_database()").Scan(&n); err != nil {
		t.Fatalf("count prepared transactions: %v", err)
	}
	return n
}

func srvSecondaryKilled(t *testing.T, p srvPair) {
	s := srvOpen(t, p, false)
	ctx := context.Background()
	setRun, bankRun := srvWorkloads(t, ctx, s)
	foProgress(t, "before the kill", setRun, 20, bankRun, 10)
	if err := p.bar.server.Kill(); err != nil {
		t.Fatal(err)
	}
	foWait(t, s.c, "bar down", func(st *tandem.Status) bool { return foNode(st, "bar").State != tandem.StateInSync })
	foProgress(t, "with bar killed", setRun, 50, bankRun, 20)
	p.bar.server.Restart(t)
	foWait(t, s.c, "bar caught up", func(st *tandem.Status) bool { return foInSync(st) })
	foProgress(t, "after bar caught up", setRun, 20, bankRun, 10)
	set, bank := setRun.Stop(), bankRun.Stop()
	foNoFailures(t, set, bank)
	srvSettle(t, s, set, bank)
}

func srvSecondaryHung(t *testing.T, p srvPair) {
	s := srvOpen(t, p, false)
	ctx := context.Background()
	setRun, bankRun := srvWorkloads(t, ctx, s)
	foProgress(t, "before the pause", setRun, 20, bankRun, 10)
	if err := p.bar.server.Pause(); err != nil {
		t.Fatal(err)
	}
	resumed := false
	defer func() {
		if !resumed {
			p.bar.server.Resume()
		}
	}()
	foWait(t, s.c, "bar down", func(st *tandem.Status) bool { return foNode(st, "bar").State != tandem.StateInSync })
	// Dashboards and scrapes read the health loop's last round: bar hung
	// shows there, and they do not wait for it as Status does.
	start := time.Now()
	last, err := s.c.LastStatus()
	lastTook := time.Since(start)
	if err != nil || foNode(last, "bar").State == tandem.StateInSync {
		t.Errorf("LastStatus with bar hung: %+v, %v; want bar not in sync", last, err)
	}
	var scrape strings.Builder
	if err := s.c.WritePrometheus(ctx, &scrape); err != nil || !strings.Contains(scrape.String(), `tandem_node_in_sync{node="bar"} 0`) {
		t.Errorf("WritePrometheus with bar hung: %v\n%s", err, scrape.String())
	}
	start = time.Now()
	if _, err := s.c.Status(ctx); err != nil {
		t.Error(err)
	}
	t.Logf("with bar hung: LastStatus answered in %v, Status in %v", lastTook, time.Since(start))
	foProgress(t, "with bar hung", setRun, 50, bankRun, 20)
	if err := p.bar.server.Resume(); err != nil {
		t.Fatal(err)
	}
	resumed = true
	foWait(t, s.c, "bar caught up", func(st *tandem.Status) bool { return foInSync(st) })
	set, bank := setRun.Stop(), bankRun.Stop()
	foNoFailures(t, set, bank)
	// A write waits for a hung database at most the timeout at each of
	// its steps (begin, apply, commit); the bound is loose on purpose: it
	// fails only if a writer was held by the hung server itself.
	if limit := 2*s.cfg.Timeout + time.Second; set.MaxLatency > limit {
		t.Errorf("a write took %v with bar hung; the timeout is %v", set.MaxLatency, s.cfg.Timeout)
	}
	t.Logf("longest write: %v (timeout %v)", set.MaxLatency, s.cfg.Timeout)
	srvSettle(t, s, set, bank)
}

func srvConnectionCut(t *testing.T, p srvPair) {
	s := srvOpen(t, p, true)
	ctx := context.Background()
	setRun, bankRun := srvWorkloads(t, ctx, s)
	foProgress(t, "before the cut", setRun, 20, bankRun, 10)
	s.barProxy.Cut()
	foWait(t, s.c, "bar down", func(st *tandem.Status) bool { return foNode(st, "bar").State != tandem.StateInSync })
	foProgress(t, "with bar cut off", setRun, 50, bankRun, 20)
	s.barProxy.Restore()
	foWait(t, s.c, "bar caught up", func(st *tandem.Status) bool { return foInSync(st) })
	set, bank := setRun.Stop(), bankRun.Stop()
	foNoFailures(t, set, bank)
	srvSettle(t, s, set, bank)
}

// srvCatchUpMovedUnique: while bar is left out, saves move a unique code
// from one row to another, swap two and cycle three; catch-up copies them
// although, key by key, each new code is still held by a later row on bar
// (on PostgreSQL the refused statement ends the transaction: the copy
// retries in savepoints).
func srvCatchUpMovedUnique(t *testing.T, p srvPair) {
	s := srvOpen(t, p, false)
	ctx := context.Background()
	if err := s.c.Migrate(ctx, &SrvItem{}); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	items := map[string]*SrvItem{}
	for _, code := range []string{"x", "a", "s1", "s2", "c1", "c2", "c3"} {
		it := &SrvItem{Code: code, At: at}
		if err := s.c.Save(ctx, it); err != nil {
			t.Fatal(err)
		}
		items[code] = it
	}
	tandem.MarkDown(s.c, "bar")
	for _, m := range []struct{ item, code string }{
		{"a", "b"}, {"x", "a"}, // moved
		{"s1", "tmp1"}, {"s2", "s1"}, {"s1", "s2"}, // swapped
		{"c1", "tmp2"}, {"c3", "c1"}, {"c2", "c3"}, {"c1", "c2"}, // cycled
	} {
		it := items[m.item]
		it.Code = m.code
		if err := s.c.Save(ctx, it); err != nil {
			t.Fatalf("save %d as %s: %v", it.ID, m.code, err)
		}
	}
	st := foWait(t, s.c, "bar caught up", foInSync)
	if n := foNode(st, "bar"); n.CopyRefused != 0 {
		t.Errorf("bar: %d copies refused (%s)", n.CopyRefused, n.CopyError)
	}
	s.identical(t)
}

// srvWriteOfKeysInDoubt: accounts 1-3 hold 100 each (srv_item, qty the
// balance). W, "move 10 from account 1 to account 2", committed on one
// database only, its record fresh (a writer killed between its commits, in
// either order; written here into that database). A transfer through tandem
// then moves 5 from account 1 to account 3, and foo is lost: bar takes over.
// Both databases must hold W whole or not at all, never in part: the
// transfer finds W's record on one side only and has W's doubt ended (the
// primary's rows of its keys everywhere) before it commits. Before, the
// transfer carried only its own rows, and bar took over with a total of 290
// or 310 (the fault soak's seed 8009, PostgreSQL).
func srvWriteOfKeysInDoubt(t *testing.T, p srvPair) {
	for _, tc := range []struct {
		order, on string
		want      [3]int64
	}{
		{"primary-first", "foo", [3]int64{85, 110, 105}},
		{"secondaries-first", "bar", [3]int64{95, 100, 105}},
	} {
		t.Run(tc.order, func(t *testing.T) {
			s := srvOpen(t, p, false)
			ctx := context.Background()
			if err := s.c.Migrate(ctx, &SrvItem{}); err != nil {
				t.Fatal(err)
			}
			var ids [3]int64
			for i := range ids {
				it := &SrvItem{Code: fmt.Sprintf("account %d", i+1), Qty: 100, At: time.Now()}
				if err := s.c.Save(ctx, it); err != nil {
					t.Fatal(err)
				}
				ids[i] = it.ID
			}
			dbs := map[string]*sql.DB{"foo": s.fooDB, "bar": s.barDB}
			for name, db := range dbs { // the saves' records go with the clearer
				srvEventually(t, name+"'s intent records cleared", func() error {
					if n := srvCount(t, db, "_tandem_pending"); n > 0 {
						return fmt.Errorf("%d left", n)
					}
					return nil
				})
			}
			db := dbs[tc.on]
			now := time.Now().UnixMilli()
			for seq, m := range []struct{ id, by int64 }{{ids[0], -10}, {ids[1], 10}} {
				if _, err := db.Exec(fmt.Sprintf("UPDATE srv_item SET qty = qty + %d WHERE id = %d", m.by, m.id)); err != nil {
					t.Fatal(err)
				}
				key := strings.ReplaceAll(value.EncodeKey([]any{m.id}), "'", "''")
				if _, err := db.Exec(fmt.Sprintf("INSERT INTO _tandem_pending (txid, seq, tbl, pk, at) VALUES ('w', %d, 'srv_item', '%s', %d)", seq, key, now)); err != nil {
					t.Fatal(err)
				}
			}
			err := s.c.Tx(ctx, func(tx *tandem.Tx) error {
				from, err := tandem.Get[SrvItem](ctx, tx, ids[0])
				if err != nil {
					return err
				}
				to, err := tandem.Get[SrvItem](ctx, tx, ids[2])
				if err != nil {
					return err
				}
				from.Qty -= 5
				to.Qty += 5
				if err := tx.Save(ctx, from); err != nil {
					return err
				}
				return tx.Save(ctx, to)
			})
			if err != nil {
				t.Fatal(err)
			}
			balances := func(db *sql.DB) (got [3]int64) {
				for i, id := range ids {
					if err := db.QueryRow(fmt.Sprintf("SELECT qty FROM srv_item WHERE id = %d", id)).Scan(&got[i]); err != nil {
						t.Fatal(err)
					}
				}
				return got
			}
			for name, db := range dbs {
				if got := balances(db); got != tc.want {
					t.Errorf("%s after the transfer: %v, want %v", name, got, tc.want)
				}
				var n int
				if err := db.QueryRow("SELECT COUNT(*) FROM _tandem_pending WHERE txid = 'w'").Scan(&n); err != nil {
					t.Fatal(err)
				}
				if n != 0 {
					t.Errorf("%s still holds W's intent record (%d keys) after the transfer", name, n)
				}
			}
			// foo lost now: bar takes over holding what it holds. (The
			// health loop may hand the writes back to foo, which is only
			// marked down, so which is the primary is not checked here.)
			tandem.MarkDown(s.c, "foo")
			if got := balances(s.barDB); got != tc.want {
				t.Errorf("bar as it takes over from the lost foo: %v, want %v", got, tc.want)
			}
		})
	}
}

// srvEventually retries try for up to 30 s and fails the test if it has
// not succeeded by then.
func srvEventually(t *testing.T, what string, try func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := try()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// srvCommitUnanswered: both servers hang as a Save's commits are sent. No
// database confirms the commit: the Save returns ErrOutcomeUnknown (an
// earlier version returned ErrNotCommitted, which says it may be retried)
// and keeps the id it used. Once the servers answer again (each may carry
// its commit out then), the row is on both databases or on neither.
func srvCommitUnanswered(t *testing.T, p srvPair) {
	s := srvOpen(t, p, false)
	ctx := context.Background()
	if err := s.c.Migrate(ctx, &SrvItem{}); err != nil {
		t.Fatal(err)
	}
	if err := s.c.Save(ctx, &SrvItem{Code: "before", At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	paused := false
	tandem.SetBeforeCommit(s.c, func() {
		if !paused {
			paused = true
			for _, srv := range []*dbserver.Server{p.foo.server, p.bar.server} {
				if err := srv.Pause(); err != nil {
					t.Error(err)
				}
			}
		}
	})
	it := &SrvItem{Code: "unanswered", At: time.Now()}
	err := s.c.Save(ctx, it)
	tandem.SetBeforeCommit(s.c, nil)
	for _, srv := range []*dbserver.Server{p.foo.server, p.bar.server} {
		if err := srv.Resume(); err != nil {
			t.Fatal(err)
		}
	}
	if !paused {
		t.Fatal("the hook did not run")
	}
	if !errors.Is(err, tandem.ErrOutcomeUnknown) || errors.Is(err, tandem.ErrNotCommitted) {
		t.Fatalf("save whose commit no database answered: %v; want ErrOutcomeUnknown", err)
	}
	if it.ID == 0 {
		t.Fatal("the id the write used was reset")
	}
	foWait(t, s.c, "in sync with foo the primary", func(st *tandem.Status) bool { return foInSync(st) && st.Primary == "foo" })
	foUntil(t, "no intent record left", func() bool {
		return srvCount(t, s.fooDB, "_tandem_pending") == 0 && srvCount(t, s.barDB, "_tandem_pending") == 0
	})
	q := "SELECT COUNT(*) FROM srv_item WHERE id = " + fmt.Sprint(it.ID)
	var onFoo, onBar int
	if err := s.fooDB.QueryRow(q).Scan(&onFoo); err != nil {
		t.Fatal(err)
	}
	if err := s.barDB.QueryRow(q).Scan(&onBar); err != nil {
		t.Fatal(err)
	}
	if onFoo != onBar {
		t.Fatalf("row %d: %d on foo, %d on bar; want it whole or absent", it.ID, onFoo, onBar)
	}
	t.Logf("the unanswered write ended %s", map[bool]string{true: "committed everywhere", false: "absent everywhere"}[onFoo == 1])
	s.identical(t)
}

// srvSecondaryLostAtCommit: the secondary's connection is cut after the
// primary committed a new row and before the secondary commits it. The Save
// is acknowledged once bar is left out of the view, and it must report the
// id the row has (an earlier version reset it to 0, as for a write that did
// not commit, and acknowledged it so).
func srvSecondaryLostAtCommit(t *testing.T, p srvPair) {
	s := srvOpen(t, p, true)
	ctx := context.Background()
	if err := s.c.Migrate(ctx, &SrvItem{}); err != nil {
		t.Fatal(err)
	}
	if err := s.c.Save(ctx, &SrvItem{Code: "before", At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	hooked := 0
	tandem.SetCommitHook(s.c, func(string) {
		if hooked++; hooked == 1 {
			s.barProxy.Cut()
		}
	})
	it := &SrvItem{Code: "cut", At: time.Now()}
	if err := s.c.Save(ctx, it); err != nil {
		t.Fatalf("save with bar lost at its commit: %v (foo committed it; once bar is left out it is acknowledged)", err)
	}
	if hooked != 1 {
		t.Fatalf("the commit hook ran %d times, want 1", hooked)
	}
	if it.ID == 0 {
		t.Fatal("save acknowledged with the id reset to 0")
	}
	var code string
	if err := s.fooDB.QueryRow("SELECT code FROM srv_item WHERE id = " + fmt.Sprint(it.ID)).Scan(&code); err != nil || code != "cut" {
		t.Fatalf("foo's row %d: code %q, %v; want the row saved", it.ID, code, err)
	}
	if st, err := s.c.Status(ctx); err != nil || !foNode(st, "bar").LeftOut {
		t.Errorf("bar is not left out of the view after the acknowledged save (status error %v)", err)
	}
	s.barProxy.Restore()
	foWait(t, s.c, "bar caught up", func(st *tandem.Status) bool { return foInSync(st) })
	if err := s.barDB.QueryRow("SELECT code FROM srv_item WHERE id = " + fmt.Sprint(it.ID)).Scan(&code); err != nil || code != "cut" {
		t.Fatalf("bar's row %d after catch-up: code %q, %v", it.ID, code, err)
	}
	s.identical(t)
}

func srvPrimaryKilled(t *testing.T, p srvPair) {
	s := srvOpen(t, p, false)
	ctx := context.Background()
	if err := s.c.Migrate(ctx, &SrvItem{}); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := s.c.Save(ctx, &SrvItem{Code: fmt.Sprintf("before-%d", i), At: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	setRun, bankRun := srvWorkloads(t, ctx, s)
	foProgress(t, "before the kill", setRun, 20, bankRun, 10)
	if err := p.foo.server.Kill(); err != nil {
		t.Fatal(err)
	}
	foWait(t, s.c, "bar the primary", func(st *tandem.Status) bool { return st.Primary == "bar" })
	foProgress(t, "with foo killed", setRun, 50, bankRun, 20)
	// Auto ids on the new primary continue after the ids it received.
	var last int64
	for i := range 5 {
		it := &SrvItem{Code: fmt.Sprintf("during-%d", i), At: time.Now()}
		if err := s.c.Save(ctx, it); err != nil {
			t.Fatal(err)
		}
		if it.ID <= 5 || it.ID <= last {
			t.Fatalf("auto id %d on bar after ids 1..5 (last %d)", it.ID, last)
		}
		last = it.ID
	}
	p.foo.server.Restart(t)
	foWait(t, s.c, "foo caught up and the primary again", func(st *tandem.Status) bool { return foInSync(st) && st.Primary == "foo" })
	foProgress(t, "after foo returned", setRun, 20, bankRun, 10)
	it := &SrvItem{Code: "after", At: time.Now()}
	if err := s.c.Save(ctx, it); err != nil || it.ID <= last {
		t.Fatalf("save on foo after it returned: id %d (last %d), %v", it.ID, last, err)
	}
	set, bank := setRun.Stop(), bankRun.Stop()
	// Writes in flight when the primary died may have failed (their
	// outcome is unknown); the checks allow for those, nothing else.
	t.Logf("%d inserts and %d transfers failed with the primary killed", len(set.Failed), len(bank.Failed))
	srvSettle(t, s, set, bank)
}

// srvPrimaryHung: the primary's server stops answering mid-stream. Writes
// in flight on it fail once their statement's guard runs out; the health
// check finds foo down and bar takes the writes; when foo answers again it
// catches up and is the primary again.
func srvPrimaryHung(t *testing.T, p srvPair) {
	s := srvOpen(t, p, false)
	ctx := context.Background()
	setRun, bankRun := srvWorkloads(t, ctx, s)
	foProgress(t, "before the pause", setRun, 20, bankRun, 10)
	if err := p.foo.server.Pause(); err != nil {
		t.Fatal(err)
	}
	resumed := false
	defer func() {
		if !resumed {
			p.foo.server.Resume()
		}
	}()
	foWait(t, s.c, "bar the primary", func(st *tandem.Status) bool { return st.Primary == "bar" })
	foProgress(t, "with foo hung", setRun, 50, bankRun, 20)
	if err := p.foo.server.Resume(); err != nil {
		t.Fatal(err)
	}
	resumed = true
	foWait(t, s.c, "foo caught up and the primary again", func(st *tandem.Status) bool { return foInSync(st) && st.Primary == "foo" })
	foProgress(t, "after foo returned", setRun, 20, bankRun, 10)
	set, bank := setRun.Stop(), bankRun.Stop()
	t.Logf("%d inserts and %d transfers failed with the primary hung; longest acknowledged insert %v, transfer %v (timeout %v)",
		len(set.Failed), len(bank.Failed), set.MaxLatency.Round(time.Millisecond), bank.MaxLatency.Round(time.Millisecond), srvTimeout(p))
	// A write that committed nothing runs again under the new view; only
	// one whose commit the hung server may still carry out fails.
	failed := slices.Collect(maps.Values(set.Failed))
	for _, err := range append(failed, bank.Failed...) {
		if !errors.Is(err, tandem.ErrOutcomeUnknown) {
			t.Errorf("a write failed with the primary hung, not for an unknown outcome: %v", err)
		}
	}
	srvSettle(t, s, set, bank)
}

// srvAddressTakeover: bar is reached through a proxy that stands for its
// IP address. The proxy is redirected to foo's server, as when foo's
// machine takes over bar's address: tandem sees bar's datasource reach
// foo's database (by its identity), writes it once and records what bar
// misses. Pointed back at bar's server, bar catches up.
func srvAddressTakeover(t *testing.T, p srvPair) {
	s := srvOpen(t, p, true)
	ctx := context.Background()
	setRun, bankRun := srvWorkloads(t, ctx, s)
	foProgress(t, "before the takeover", setRun, 20, bankRun, 10)
	s.barProxy.Redirect(p.foo.server.Addr())
	foWait(t, s.c, "bar seen to reach foo's database", func(st *tandem.Status) bool {
		bar := foNode(st, "bar")
		return bar.State != tandem.StateInSync && strings.Contains(bar.Error+bar.LastError, "reaches the database of foo")
	})
	fooWrites := srvCount(t, s.fooDB, jepsen.SetTable)
	foProgress(t, "with bar's address taken over", setRun, 50, bankRun, 20)
	if n := srvCount(t, s.fooDB, jepsen.SetTable); n <= fooWrites {
		t.Fatalf("no insert reached foo during the takeover")
	}
	s.barProxy.Redirect(p.bar.server.Addr())
	foWait(t, s.c, "bar caught up", func(st *tandem.Status) bool { return foInSync(st) })
	set, bank := setRun.Stop(), bankRun.Stop()
	foNoFailures(t, set, bank)
	srvSettle(t, s, set, bank)
}

const envTwoPhaseConf = "TANDEM_TWO_PHASE_CONFIG" // config path for TestHelperTwoPhaseChild

// TestHelperTwoPhaseChild is the body of the process srvKilledBetweenPhases
// kills after the primary committed and before the prepared secondary did;
// run directly (without TANDEM_TWO_PHASE_CONFIG) it does nothing.
func TestHelperTwoPhaseChild(t *testing.T) {
	path := os.Getenv(envTwoPhaseConf)
	if path == "" {
		return
	}
	ctx := context.Background()
	c := testcluster.Open(t, path, faultQuietLogs())
	if err := c.Migrate(ctx, &FaultItem{}); err != nil {
		t.Fatal(err)
	}
	foWait(t, c, "in sync", foInSync)
	tandem.SetCommitHook(c, func(txid string) {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		time.Sleep(time.Minute)
	})
	err := c.Save(ctx, &FaultItem{ID: 7, Name: "seven"})
	t.Fatalf("the write returned (err=%v) although the commit hook kills the process", err)
}

// srvKilledBetweenPhases: a process dies after the primary committed a
// two-phase write and before the secondary's prepared transaction was
// committed. The secondary holds it prepared (invisible, its rows locked);
// the next process's health check finds the primary's intent record and
// commits it.
func srvKilledBetweenPhases(t *testing.T, p srvPair) {
	s := srvOpen(t, p, false)
	s.c.Close()
	path := filepath.Join(t.TempDir(), "tandem.yaml")
	yaml := fmt.Sprintf("commit: two-phase\ntimeout: 250ms\nhealth_interval: 50ms\narbiter: {kind: witness, path: %q}\ndatasources:\n  - name: foo\n    driver: postgres\n    dsn: %s\n  - name: bar\n    driver: postgres\n    dsn: %s\n",
		s.cfg.Arbiter.Fields["path"], s.cfg.Datasources[0].DSN, s.cfg.Datasources[1].DSN)
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperTwoPhaseChild$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), envTwoPhaseConf+"="+path)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child: %v, want killed by SIGKILL; output:\n%s", err, out)
	}
	if n := srvCount(t, s.fooDB, faultTable); n != 1 {
		t.Fatalf("foo has %d rows after the primary's commit, want 1", n)
	}
	if n := srvCount(t, s.barDB, faultTable); n != 0 {
		t.Fatalf("bar has %d rows before its prepared transaction was committed, want 0", n)
	}
	if n := srvPrepared(t, s.barDB); n != 1 {
		t.Fatalf("bar holds %d prepared transactions, want 1", n)
	}
	c := testcluster.Open(t, path, faultQuietLogs())
	foUntil(t, "bar's prepared transaction committed", func() bool {
		return srvPrepared(t, s.barDB) == 0 && srvCount(t, s.barDB, faultTable) == 1
	})
	foWait(t, c, "in sync", foInSync)
	s.identical(t)
}

// srvVerifyOtherCollation: a table made by hand whose text key PostgreSQL
// orders by a linguistic collation ('a' < 'B' < 'c') and SQLite by bytes
// ('B' < 'a' < 'c'). The logical structures match, so verify compares the
// rows; the two sides split key ranges differently, and verify must still
// end (it once divided such ranges without end) and find the same rows.
func srvVerifyOtherCollation(t *testing.T, p srvPair) {
	s := srvOpen(t, p, false)
	s.c.Close()
	var coll string
	if err := s.barDB.QueryRow(`SELECT collname FROM pg_collation WHERE collname IN ('und-x-icu', 'en_US.utf8', 'en_US') ORDER BY collname DESC LIMIT 1`).Scan(&coll); err != nil {
		t.Fatalf("no linguistic collation on the server: %v", err)
	}
	stmts := map[*sql.DB]string{
		s.fooDB: `CREATE TABLE hand (k TEXT PRIMARY KEY, v INTEGER)`,
		s.barDB: fmt.Sprintf(`CREATE TABLE hand (k TEXT COLLATE %q PRIMARY KEY, v BIGINT)`, coll),
	}
	for db, ddl := range stmts {
		if _, err := db.Exec(ddl); err != nil {
			t.Fatal(err)
		}
		tx, err := db.Begin()
		if err != nil {
			t.Fatal(err)
		}
		for i := range 3000 {
			k := fmt.Sprintf("%c%05d", "aBcDeF"[i%6], i)
			if _, err := tx.Exec(`INSERT INTO hand (k, v) VALUES ($1, $2)`, k, i); err != nil {
				t.Fatal(err)
			}
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := verify.Compare(ctx, s.cfg, verify.Options{Tables: []string{"hand"}})
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	n := 0
	for _, tr := range rep.Tables {
		n += len(tr.Differences)
	}
	if !rep.Identical || n != 0 {
		t.Errorf("verify: identical %v, %d differences, want identical (the rows are the same)", rep.Identical, n)
	}
}
