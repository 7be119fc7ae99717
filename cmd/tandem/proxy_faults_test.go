package main

// Faults through the proxy, as deployed: two `tandem proxy` processes (one
// per application server) over two PostgreSQL servers, clients of both
// running the Jepsen set and bank workloads with pgx (the extended
// protocol and its statement cache), while faults drawn from a seed hit
// the databases: the primary or the secondary SIGKILLed and restarted,
// the primary SIGSTOPped and resumed, the network to either cut and
// restored. Afterwards every database is read directly: every
// acknowledged insert on each, the bank's total on each, and verify
// identical. During a fault of a secondary alone, no client of the set
// sees an error: its transactions run again in the proxy (replay.go).

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tandemdb/tandem/internal/dbserver"
	"github.com/tandemdb/tandem/internal/jepsen"
)

// TestMain lets a test start this package's test binary as the tandem
// command (TANDEM_TEST_AS_CLI=1): a process of its own, as deployed.
func TestMain(m *testing.M) {
	if os.Getenv("TANDEM_TEST_AS_CLI") == "1" {
		main()
	}
	os.Exit(m.Run())
}

// proxyProcess is a `tandem proxy` process serving on addr.
type proxyProcess struct {
	addr string
	cmd  *exec.Cmd
	log  *syncBuf
}

// startProxyProcess starts `tandem proxy` with the config and users files.
func startProxyProcess(t *testing.T, config, users string) *proxyProcess {
	t.Helper()
	p := &proxyProcess{log: &syncBuf{}}
	var out syncBuf
	p.cmd = exec.Command(os.Args[0], "proxy", "--config", config, "--users", users, "--listen", "127.0.0.1:0")
	p.cmd.Env = append(os.Environ(), "TANDEM_TEST_AS_CLI=1")
	p.cmd.Stdout, p.cmd.Stderr = &out, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.cmd.Process.Signal(os.Interrupt)
		done := make(chan error, 1)
		go func() { done <- p.cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			p.cmd.Process.Kill()
			<-done
		}
	})
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if s := out.String(); strings.Contains(s, "listening on ") {
			p.addr = strings.Fields(strings.SplitN(s, "listening on ", 2)[1])[0]
			return p
		}
	}
	t.Fatalf("the proxy did not start:\n%s", p.log.String())
	return nil
}

func (p *proxyProcess) dsn() string {
	return "postgres://app:app%20pw@" + p.addr + "/app?sslmode=disable"
}

// nodeRow is a row of SHOW tandem_nodes.
type nodeRow struct{ name, role, state, behind string }

func showNodes(ctx context.Context, dsn string) ([]nodeRow, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, err
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SHOW tandem_nodes", pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		return nil, err
	}
	var out []nodeRow
	for rows.Next() {
		v, err := rows.Values()
		if err != nil {
			return nil, err
		}
		out = append(out, nodeRow{fmt.Sprint(v[0]), fmt.Sprint(v[2]), fmt.Sprint(v[3]), fmt.Sprint(v[4])})
	}
	return out, rows.Err()
}

// TestProxyFaults runs the faults with each arbiter that decides a
// failover: the witness file both proxies share, and a 3-member etcd.
func TestProxyFaults(t *testing.T) {
	for _, arbiter := range []string{"witness", "etcd"} {
		t.Run(arbiter, func(t *testing.T) { proxyFaults(t, arbiter) })
	}
}

func proxyFaults(t *testing.T, arbiter string) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("TANDEM_PROXY_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("TANDEM_PROXY_SEED=%q: %v", s, err)
		}
	}
	t.Logf("seed %d (run again with TANDEM_PROXY_SEED=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 7))
	ctx := context.Background()

	srv := map[string]*dbserver.Server{"foo": dbserver.Start(t, dbserver.Postgres), "bar": dbserver.Start(t, dbserver.Postgres)}
	net := map[string]*dbserver.Proxy{}
	direct := map[string]*sql.DB{}
	var cfgText strings.Builder
	cfgText.WriteString("timeout: 2s\n")
	if arbiter == "etcd" {
		etcd := dbserver.StartEtcd(t, 3)
		fmt.Fprintf(&cfgText, "arbiter: {kind: etcd, endpoints: [%s], key: /tandem/proxy, request_timeout: 2s}\n", strings.Join(etcd.Endpoints(), ", "))
	} else {
		cfgText.WriteString("arbiter: witness\n")
	}
	cfgText.WriteString("datasources:\n")
	for _, name := range []string{"foo", "bar"} {
		s := srv[name]
		s.CreateDatabase(t, "app")
		net[name] = dbserver.NewProxy(t, s.Addr())
		fmt.Fprintf(&cfgText, "  - name: %s\n    driver: postgres\n    dsn: %q\n", name, s.DSN("app", net[name].Addr()))
		db, err := sql.Open("pgx", s.DSN("app", ""))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		direct[name] = db
	}
	dir := t.TempDir()
	config := writeConfig(t, dir, cfgText.String())
	_, verifier, _ := hashPassword(t, "app pw\n")
	users := filepath.Join(dir, "users")
	if err := os.WriteFile(users, []byte("app:"+verifier), 0o600); err != nil {
		t.Fatal(err)
	}
	proxies := []*proxyProcess{startProxyProcess(t, config, users), startProxyProcess(t, config, users)}
	defer func() {
		if t.Failed() {
			for i, p := range proxies {
				t.Logf("proxy %d's log:\n%s", i+1, p.log.String())
			}
		}
	}()

	const accounts, balance = 5, 100
	setup, err := pgx.Connect(ctx, proxies[0].dsn())
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`CREATE TABLE jepsen_set (id bigint PRIMARY KEY, val text NOT NULL)`,
		`CREATE TABLE jepsen_account (id bigint PRIMARY KEY, balance bigint NOT NULL)`,
		fmt.Sprintf(`INSERT INTO jepsen_account SELECT g, %d FROM generate_series(1, %d) g`, balance, accounts),
	} {
		if _, err := setup.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	setup.Close(ctx)

	// The workloads, on both proxies.
	var (
		mu       sync.Mutex
		setH     = &jepsen.SetHistory{Acked: map[int64]string{}, Failed: map[int64]error{}, Vals: map[int64]string{}}
		bankH    = &jepsen.BankHistory{Accounts: accounts, Total: accounts * balance}
		nextID   atomic.Int64
		acks     atomic.Int64 // set writes acknowledged
		secOnly  atomic.Bool  // a fault of a secondary alone is on
		setErrs  []string     // set errors while secOnly
		stop     = make(chan struct{})
		wg       sync.WaitGroup
		failures = map[string]int{}
		examples = map[string]string{} // an error message of each kind of failure
	)
	running := func() bool {
		select {
		case <-stop:
			return false
		default:
			return true
		}
	}
	code := func(err error) string {
		c := "conn"
		var pe *pgconn.PgError
		if errors.As(err, &pe) {
			c = pe.Code
		}
		return c
	}
	fail := func(kind string, err error) { // with mu held
		k := kind + " " + code(err)
		failures[k]++
		if _, ok := examples[k]; !ok {
			examples[k] = err.Error()
		}
	}
	// connect returns a connection of proxy p, reconnecting a lost one.
	connect := func(p *proxyProcess, conn **pgx.Conn) bool {
		if *conn != nil && !(*conn).IsClosed() {
			return true
		}
		c, err := pgx.Connect(ctx, p.dsn())
		if err != nil {
			time.Sleep(50 * time.Millisecond)
			return false
		}
		*conn = c
		return true
	}
	for pi, p := range proxies {
		for w := range 2 {
			wg.Go(func() { // set writer
				var conn *pgx.Conn
				defer func() {
					if conn != nil {
						conn.Close(ctx)
					}
				}()
				for i := 0; running(); i++ {
					if !connect(p, &conn) {
						continue
					}
					id := nextID.Add(1)
					val := fmt.Sprintf("p%d-w%d-%d", pi, w, i)
					mu.Lock()
					setH.Vals[id] = val
					mu.Unlock()
					during := secOnly.Load()
					start := time.Now()
					var err error
					if i%2 == 0 {
						_, err = conn.Exec(ctx, `INSERT INTO jepsen_set (id, val) VALUES ($1, $2)`, id, val)
					} else {
						err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
							if _, err := tx.Exec(ctx, `INSERT INTO jepsen_set (id, val) VALUES ($1, $2)`, id, val); err != nil {
								return err
							}
							var n int
							if err := tx.QueryRow(ctx, `SELECT count(*) FROM jepsen_set WHERE id = $1`, id).Scan(&n); err != nil {
								return err
							}
							if n != 1 {
								return fmt.Errorf("id %d: %d rows inside its transaction", id, n)
							}
							return nil
						})
					}
					mu.Lock()
					if err != nil {
						setH.Failed[id] = err
						fail("set", err)
						if during || secOnly.Load() { // the write overlapped a secondary's fault
							setErrs = append(setErrs, fmt.Sprintf("id %d: %v", id, err))
						}
					} else {
						setH.Acked[id] = val
						acks.Add(1)
						setH.MaxLatency = max(setH.MaxLatency, time.Since(start))
					}
					mu.Unlock()
				}
			})
		}
		wg.Go(func() { // bank transferer
			var conn *pgx.Conn
			defer func() {
				if conn != nil {
					conn.Close(ctx)
				}
			}()
			r := rand.New(rand.NewPCG(seed, uint64(pi)+100))
			for running() {
				if !connect(p, &conn) {
					continue
				}
				from, to := r.Int64N(accounts)+1, r.Int64N(accounts)+1
				if from == to {
					continue
				}
				amount := r.Int64N(20) + 1
				lo, hi := min(from, to), max(from, to)
				start := time.Now()
				err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
					bal := map[int64]int64{}
					for _, id := range []int64{lo, hi} {
						var b int64
						if err := tx.QueryRow(ctx, `SELECT balance FROM jepsen_account WHERE id = $1 FOR UPDATE`, id).Scan(&b); err != nil {
							return err
						}
						bal[id] = b
					}
					if bal[from] < amount {
						return nil
					}
					if _, err := tx.Exec(ctx, `UPDATE jepsen_account SET balance = balance - $1 WHERE id = $2`, amount, from); err != nil {
						return err
					}
					_, err := tx.Exec(ctx, `UPDATE jepsen_account SET balance = balance + $1 WHERE id = $2`, amount, to)
					return err
				})
				mu.Lock()
				if err != nil {
					bankH.Failed = append(bankH.Failed, err)
					fail("transfer", err)
				} else {
					bankH.Transfers++
					bankH.MaxLatency = max(bankH.MaxLatency, time.Since(start))
				}
				mu.Unlock()
			}
		})
		wg.Go(func() { // bank reader
			var conn *pgx.Conn
			defer func() {
				if conn != nil {
					conn.Close(ctx)
				}
			}()
			for running() {
				if !connect(p, &conn) {
					continue
				}
				var n, total int64
				err := conn.QueryRow(ctx, `SELECT count(*), coalesce(sum(balance), 0) FROM jepsen_account`).Scan(&n, &total)
				mu.Lock()
				bankH.Reads++
				switch {
				case err != nil:
					bankH.ReadErrors = append(bankH.ReadErrors, err)
					fail("read", err)
				case n != accounts || total != accounts*balance:
					bankH.BadReads = append(bankH.BadReads, fmt.Sprintf("read through proxy %d at %s: %d accounts, total %d", pi+1, time.Now().Format("15:04:05.000"), n, total))
				}
				mu.Unlock()
				time.Sleep(5 * time.Millisecond)
			}
		})
	}

	// settled waits until both proxies see every datasource in sync and
	// foo primary.
	settled := func(what string) {
		t.Helper()
		var last []nodeRow
		for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			ok := true
			for _, p := range proxies {
				rows, err := showNodes(ctx, p.dsn())
				last = rows
				if err != nil || len(rows) != 2 {
					ok = false
					break
				}
				for _, r := range rows {
					// In sync, and writes handed back to the configured
					// primary (which the health loop does once foo is in
					// step): the next fault's victim is then what it is
					// called.
					if r.state != "in sync" || r.behind != "0" || (r.name == "foo") != (r.role == "primary") {
						ok = false
					}
				}
			}
			if ok {
				return
			}
		}
		t.Fatalf("after %s the datasources did not settle in 90 s: %+v", what, last)
	}
	primary := func() string {
		for range 50 {
			rows, err := showNodes(ctx, proxies[0].dsn())
			if err == nil {
				for _, r := range rows {
					if r.role == "primary" {
						return r.name
					}
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatal("no primary shown")
		return ""
	}
	other := map[string]string{"foo": "bar", "bar": "foo"}

	time.Sleep(time.Second)
	kinds := []string{"kill secondary", "kill primary", "pause primary", "cut secondary", "cut primary"}
	faults := 4
	if testing.Short() {
		faults = 2
	}
	for i := range faults {
		kind := kinds[rng.IntN(len(kinds))]
		hold := time.Duration(3000+rng.IntN(3000)) * time.Millisecond
		p := primary()
		victim := p
		if strings.HasSuffix(kind, "secondary") {
			victim = other[p]
			secOnly.Store(true)
		}
		mu.Lock()
		before := bankH.Transfers
		mu.Unlock()
		t.Logf("fault %d: %s (%s) for %v", i+1, kind, victim, hold)
		switch kind {
		case "kill secondary", "kill primary":
			if err := srv[victim].Kill(); err != nil {
				t.Fatal(err)
			}
			a := acks.Load()
			time.Sleep(hold)
			// The other database took over: writes went on without the
			// killed one.
			if n := acks.Load() - a; n == 0 {
				t.Errorf("fault %d: no set write was acknowledged in the %v %s was down", i+1, hold, victim)
			} else {
				t.Logf("fault %d: %d set writes acknowledged while %s was down", i+1, n, victim)
			}
			srv[victim].Restart(t)
		case "pause primary":
			if err := srv[victim].Pause(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(hold)
			if err := srv[victim].Resume(); err != nil {
				t.Fatal(err)
			}
		case "cut secondary", "cut primary":
			net[victim].Cut()
			time.Sleep(hold)
			net[victim].Restore()
		}
		settled(kind)
		secOnly.Store(false)
		mu.Lock()
		t.Logf("fault %d healed: %d transfers since it began; failures so far %v", i+1, bankH.Transfers-before, failures)
		mu.Unlock()
		time.Sleep(time.Second)
	}
	close(stop)
	wg.Wait()
	settled("the workloads")

	mu.Lock()
	defer mu.Unlock()
	if len(setErrs) > 0 {
		t.Errorf("%d set writes failed while only a secondary was lost (a client must not notice): %s", len(setErrs), strings.Join(setErrs[:min(len(setErrs), 5)], "; "))
	}
	nodes := []jepsen.Node{jepsen.SQLNode("foo", direct["foo"]), jepsen.SQLNode("bar", direct["bar"])}
	jepsen.CheckSet(t, setH, nodes...)
	jepsen.CheckBank(t, bankH, nodes...)
	t.Logf("failures by kind and SQLSTATE: %v", failures)
	for k, e := range examples {
		t.Logf("a failure (%s): %s", k, e)
		// Only the transactions a fault of the primary caught fail, each
		// with an SQLSTATE that tells the client what to do: 40001 run it
		// again (nothing was committed), 40003 its outcome is unknown.
		if c := k[strings.LastIndexByte(k, ' ')+1:]; c != "40001" && c != "40003" {
			t.Errorf("%d failures (%s) with SQLSTATE %s, neither 40001 nor 40003: %s", failures[k], k, c, e)
		}
	}
	if code, out, errs := runT(t, "verify", "--config", config); code != 0 {
		t.Errorf("tandem verify: exit %d\n%s%s", code, out, errs)
	}
}
