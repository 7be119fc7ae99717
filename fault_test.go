package tandem_test

// Fault tests: real process deaths, real SQLite locks, real callback
// failures. Nothing is mocked; every assertion reads the database files.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/ncruces/go-sqlite3/driver"

	"github.com/tandemdb/tandem"
	"github.com/tandemdb/tandem/internal/testcluster"
)

// FaultItem is a row whose key the application chooses, so every test
// knows which keys a write touches.
type FaultItem struct {
	ID   int64  `tandem:"id,pk"`
	Name string `tandem:"name,size=40"`
}

const faultTable = "fault_item"

const (
	envFaultConf = "TANDEM_FAULT_CONFIG" // config path; absent: the helper does nothing
	envFaultMode = "TANDEM_FAULT_MODE"   // which write the child is killed in
	envFaultTxid = "TANDEM_FAULT_TXID"   // file the child writes the killed write's txid to
)

// faultQuietLogs discards the cluster's logs, unless TANDEM_TEST_LOGS is
// set (then they go to standard error).
func faultQuietLogs() tandem.Option {
	if os.Getenv("TANDEM_TEST_LOGS") != "" {
		return tandem.WithLogger(slog.New(slog.NewTextHandler(os.Stderr, nil)))
	}
	return tandem.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))
}

// faultRO opens a SQLite file read-only, bypassing tandem; closed at test end.
func faultRO(t *testing.T, file string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+file+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// faultRows returns id=name of every fault_item row of file, in id order.
func faultRows(t *testing.T, file string) []string {
	t.Helper()
	rows, err := faultRO(t, file).Query(`SELECT id, name FROM ` + faultTable + ` ORDER BY id`)
	if err != nil {
		t.Fatalf("%s: %v", filepath.Base(file), err)
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var id int64
		var name string
		if err := rows.Scan(&id, &name); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%d=%s", id, name))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// faultRecord is one row of _tandem_pending.
type faultRecord struct {
	Txid string
	Seq  int64
	Tbl  string
	PK   string
	At   int64
}

func faultRecords(t *testing.T, file string) []faultRecord {
	t.Helper()
	rows, err := faultRO(t, file).Query(`SELECT txid, seq, tbl, pk, at FROM _tandem_pending ORDER BY txid, seq`)
	if err != nil {
		t.Fatalf("%s: %v", filepath.Base(file), err)
	}
	defer rows.Close()
	var out []faultRecord
	for rows.Next() {
		var r faultRecord
		if err := rows.Scan(&r.Txid, &r.Seq, &r.Tbl, &r.PK, &r.At); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// faultSameDumps fails unless foo.db and bar.db in dir hold identical rows.
func faultSameDumps(t *testing.T, dir string) {
	t.Helper()
	d := testcluster.DumpDir(t, dir, "foo", "bar")
	if d[0] != d[1] {
		t.Errorf("foo.db and bar.db differ:\nfoo:\n%s\nbar:\n%s", d[0], d[1])
	}
	// And tandem verify says so (guarantee 2).
	cfg := filepath.Join(t.TempDir(), "verify.yaml")
	yaml := fmt.Sprintf("datasources:\n  - {name: foo, driver: sqlite, dsn: %q}\n  - {name: bar, driver: sqlite, dsn: %q}\n",
		filepath.Join(dir, "foo.db"), filepath.Join(dir, "bar.db"))
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	rep := testcluster.Verify(t, cfg)
	if !rep.Identical || len(rep.Tables) == 0 {
		t.Errorf("tandem verify: identical=%v over %d tables: %v", rep.Identical, len(rep.Tables), testcluster.Diffs(rep))
	}
}

// faultNoRecords fails unless foo.db and bar.db in dir hold no intent
// record and no missed-key record: nothing is in doubt or missing.
func faultNoRecords(t *testing.T, dir string) {
	t.Helper()
	for _, f := range []string{"foo.db", "bar.db"} {
		if recs := faultRecords(t, filepath.Join(dir, f)); len(recs) > 0 {
			t.Errorf("%s: %d intent records left, want none: %+v", f, len(recs), recs)
		}
		var missed int
		if err := faultRO(t, filepath.Join(dir, f)).QueryRow(`SELECT COUNT(*) FROM _tandem_missed`).Scan(&missed); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if missed > 0 {
			t.Errorf("%s: %d missed-key records left, want none", f, missed)
		}
	}
}

// faultKilledWrites are the writes the child process is killed in, between
// the primary's commit and the secondary's. Row 1 is committed everywhere
// before.
var faultKilledWrites = map[string]struct {
	write   func(ctx context.Context, c *tandem.Cluster) error
	foo     []string // fault_item rows foo.db must hold afterwards
	touched []string // pk of every key the write touched, as recorded
}{
	"save": {
		write: func(ctx context.Context, c *tandem.Cluster) error {
			return c.Save(ctx, &FaultItem{ID: 2, Name: "two"})
		},
		foo:     []string{"1=one", "2=two"},
		touched: []string{"[2]"},
	},
	"tx": {
		write: func(ctx context.Context, c *tandem.Cluster) error {
			return c.Tx(ctx, func(tx *tandem.Tx) error {
				for _, it := range []FaultItem{{2, "two"}, {3, "three"}, {4, "four"}} {
					if err := tx.Save(ctx, &it); err != nil {
						return err
					}
				}
				return tx.Delete(ctx, &FaultItem{ID: 1})
			})
		},
		foo:     []string{"2=two", "3=three", "4=four"},
		touched: []string{"[1]", "[2]", "[3]", "[4]"},
	},
}

// TestHelperFaultKilledChild is the body of the process that
// TestProcessKilledBetweenCommitsIsRepairedByTheNextProcess kills; run
// directly (without TANDEM_FAULT_CONFIG) it does nothing.
func TestHelperFaultKilledChild(t *testing.T) {
	path := os.Getenv(envFaultConf)
	if path == "" {
		return
	}
	ctx := context.Background()
	dir := filepath.Dir(path)
	w, ok := faultKilledWrites[os.Getenv(envFaultMode)]
	if !ok {
		t.Fatalf("unknown %s=%q", envFaultMode, os.Getenv(envFaultMode))
	}

	c := testcluster.Open(t, path, faultQuietLogs())
	if err := c.Migrate(ctx, &FaultItem{}); err != nil {
		t.Fatal(err)
	}
	if err := c.Save(ctx, &FaultItem{ID: 1, Name: "one"}); err != nil {
		t.Fatal(err)
	}
	// Close clears the records of writes committed everywhere: row 1 is
	// now fully committed and leaves no record.
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	faultNoRecords(t, dir)
	if t.Failed() {
		t.FailNow()
	}

	c = testcluster.Open(t, path, faultQuietLogs())
	txidFile := os.Getenv(envFaultTxid)
	tandem.SetCommitHook(c, func(txid string) {
		if err := os.WriteFile(txidFile, []byte(txid), 0o644); err != nil {
			panic(err)
		}
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		time.Sleep(time.Minute) // nothing else may commit while the signal lands
	})
	err := w.write(ctx, c)
	t.Fatalf("the write returned (err=%v) although the commit hook kills the process", err)
}

func TestProcessKilledBetweenCommitsIsRepairedByTheNextProcess(t *testing.T) {
	for _, mode := range []string{"save", "tx"} {
		t.Run(mode, func(t *testing.T) {
			w := faultKilledWrites[mode]
			path := testcluster.Config(t) // foo primary, bar secondary
			dir := filepath.Dir(path)
			txidFile := filepath.Join(dir, "txid")
			start := time.Now()

			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperFaultKilledChild$", "-test.count=1", "-test.timeout=80s", "-test.v")
			cmd.Env = append(os.Environ(), envFaultConf+"="+path, envFaultMode+"="+mode, envFaultTxid+"="+txidFile)
			var out strings.Builder
			cmd.Stdout, cmd.Stderr = &out, &out
			err := cmd.Run()
			if ctx.Err() != nil {
				t.Fatalf("child did not finish in time (killed by the test): %v\n%s", err, out.String())
			}
			var ee *exec.ExitError
			if !errors.As(err, &ee) {
				t.Fatalf("child exited with %v, want death by SIGKILL\n%s", err, out.String())
			}
			ws, ok := ee.Sys().(syscall.WaitStatus)
			if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
				t.Fatalf("child exited with %v, want death by SIGKILL\n%s", err, out.String())
			}
			data, err := os.ReadFile(txidFile)
			if err != nil || len(data) == 0 {
				t.Fatalf("child wrote no txid (%v): it was not killed by the commit hook\n%s", err, out.String())
			}
			txid := string(data)
			t.Logf("child killed by SIGKILL after committing txid %s on foo only (%v)", txid, time.Since(start).Round(time.Millisecond))

			foo, bar := filepath.Join(dir, "foo.db"), filepath.Join(dir, "bar.db")
			if got := faultRows(t, foo); !slices.Equal(got, w.foo) {
				t.Errorf("foo.db (primary, committed) holds %v, want %v", got, w.foo)
			}
			if got, want := faultRows(t, bar), []string{"1=one"}; !slices.Equal(got, want) {
				t.Errorf("bar.db (secondary, never committed) holds %v, want %v", got, want)
			}

			// The primary's record names exactly the keys the killed write
			// touched, under its txid, and nothing else.
			var pks []string
			var seqs []int64
			for _, r := range faultRecords(t, foo) {
				if r.Txid != txid {
					t.Errorf("foo.db: record of another transaction %+v (row 1's records were cleared before)", r)
					continue
				}
				if r.Tbl != faultTable {
					t.Errorf("foo.db: record %+v names table %q, want %q", r, r.Tbl, faultTable)
				}
				if r.At < start.Add(-time.Second).UnixMilli() || r.At > time.Now().UnixMilli() {
					t.Errorf("foo.db: record %+v has at=%d outside the child's lifetime", r, r.At)
				}
				pks = append(pks, r.PK)
				seqs = append(seqs, r.Seq)
			}
			slices.Sort(pks)
			if !slices.Equal(pks, w.touched) {
				t.Errorf("foo.db: intent records of %s name keys %v, want exactly %v", txid, pks, w.touched)
			}
			slices.Sort(seqs)
			if len(slices.Compact(slices.Clone(seqs))) != len(seqs) {
				t.Errorf("foo.db: intent records of %s repeat a seq: %v", txid, seqs)
			}
			for _, r := range faultRecords(t, bar) {
				if r.Txid == txid {
					t.Errorf("bar.db holds record %+v of the write it never committed", r)
				}
			}
			if t.Failed() {
				t.FailNow()
			}

			// The next process repairs it: its health loop finds the
			// record (made old enough at once here) and copies the keys.
			c := testcluster.Open(t, path, faultQuietLogs())
			tandem.SetSweepAfter(c, 0)
			for !slices.Equal(faultRows(t, bar), w.foo) || len(faultRecords(t, foo)) > 0 {
				if ctx.Err() != nil {
					t.Fatalf("not repaired in time: bar.db holds %v, foo.db records %v", faultRows(t, bar), faultRecords(t, foo))
				}
				time.Sleep(20 * time.Millisecond)
			}
			t.Logf("repaired by the next process after %v", time.Since(start).Round(time.Millisecond))
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			faultSameDumps(t, dir)
			faultNoRecords(t, dir)
		})
	}
}

// faultHoldLock opens file with a connection of its own and holds its
// write lock (BEGIN EXCLUSIVE) until the returned release is called. It
// waits for its turn (up to 30 s) if writers hold the lock now.
func faultHoldLock(t *testing.T, file string) (release func()) {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+file+"?_pragma=busy_timeout(30000)&_txlock=exclusive")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	lock, err := db.Begin()
	if err != nil {
		db.Close()
		t.Fatalf("BEGIN EXCLUSIVE on %s: %v", filepath.Base(file), err)
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			if err := lock.Rollback(); err != nil {
				t.Errorf("release lock on %s: %v", filepath.Base(file), err)
			}
			db.Close()
		})
	}
	t.Cleanup(release)
	return release
}

// faultMount makes the datasource called name reach its database file
// dir/NAME.db through the symbolic link dir/mnt/NAME.db, and returns its DSN
// (relative to dir) with two faults: lose points the link at a directory
// that does not exist, as when a mount is lost (connections already open
// keep reaching the file; a process, or a connection, that opens it now
// cannot), and restore points it back. (SQLite names the write-ahead log
// after the file the link resolves to, so every connection shares one.)
func faultMount(t *testing.T, dir, name string) (dsn string, lose, restore func()) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "mnt"), 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "mnt", name+".db")
	point := func(target string) {
		tmp := link + ".new"
		os.Remove(tmp)
		if err := os.Symlink(target, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, link); err != nil {
			t.Fatal(err)
		}
	}
	file := filepath.Join(dir, name+".db")
	// An empty file is an empty database; SQLite creates none through a
	// link whose target does not exist.
	if _, err := os.Stat(file); err != nil {
		if err := os.WriteFile(file, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	point(file)
	return filepath.Join("mnt", name+".db"),
		func() { point(filepath.Join(dir, "lost", name+".db")) },
		func() { point(file) }
}

// faultWaitState polls c's status until the datasource called name is in
// state, and returns that status.
func faultWaitState(ctx context.Context, t *testing.T, c *tandem.Cluster, name, state string) *tandem.Status {
	t.Helper()
	for {
		st, err := c.Status(ctx)
		if err == nil {
			for _, n := range st.Nodes {
				if n.Name == name && n.State == state {
					return st
				}
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("%s never %s: %+v (err %v)", name, state, st, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// faultConfig writes a config of foo.db (primary) and bar.db with the given
// DSNs in a new temporary directory.
func faultConfig(t *testing.T, fooDSN, barDSN string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tandem.yaml")
	cfg := fmt.Sprintf("datasources:\n  - name: foo\n    driver: sqlite\n    dsn: %s\n  - name: bar\n    driver: sqlite\n    dsn: %s\n", fooDSN, barDSN)
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestPrimaryLockedMakesWritersWaitNotDiverge(t *testing.T) {
	c, path := testcluster.New(t, faultQuietLogs()) // foo's busy_timeout: 5000 ms
	dir := filepath.Dir(path)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Migrate(ctx, &FaultItem{}); err != nil {
		t.Fatal(err)
	}

	const writers, hold = 4, 300 * time.Millisecond
	release := faultHoldLock(t, filepath.Join(dir, "foo.db"))
	start := time.Now()
	errs := make([]error, writers)
	finished := make([]time.Time, writers)
	var wg sync.WaitGroup
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.Save(ctx, &FaultItem{ID: int64(i + 1), Name: fmt.Sprintf("w%d", i)})
			finished[i] = time.Now()
		}()
	}
	time.Sleep(hold)
	released := time.Now()
	release()
	wg.Wait()
	t.Logf("%d saves done %v after the lock was released (held %v)", writers, time.Since(released).Round(time.Millisecond), released.Sub(start).Round(time.Millisecond))
	for i, err := range errs {
		if err != nil {
			t.Errorf("writer %d: %v", i, err)
		} else if finished[i].Before(released) {
			t.Errorf("writer %d returned %v before the lock on foo.db was released", i, released.Sub(finished[i]))
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	want := []string{"1=w0", "2=w1", "3=w2", "4=w3"}
	for _, f := range []string{"foo.db", "bar.db"} {
		if got := faultRows(t, filepath.Join(dir, f)); !slices.Equal(got, want) {
			t.Errorf("%s holds %v, want %v", f, got, want)
		}
	}
	faultSameDumps(t, dir)
	faultNoRecords(t, dir)
}

var errFaultCallback = errors.New("callback refuses")

func TestCallbackErrorAndPanicWriteNothingAnywhere(t *testing.T) {
	c, path := testcluster.New(t, faultQuietLogs())
	dir := filepath.Dir(path)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Migrate(ctx, &FaultItem{}); err != nil {
		t.Fatal(err)
	}
	if err := c.Save(ctx, &FaultItem{ID: 1, Name: "one"}); err != nil {
		t.Fatal(err)
	}
	before := testcluster.DumpDir(t, dir, "foo", "bar")

	// The writes touch a new row, an existing one and a delete.
	writes := func(tx *tandem.Tx) error {
		for _, it := range []FaultItem{{2, "two"}, {1, "changed"}, {3, "three"}} {
			if err := tx.Save(ctx, &it); err != nil {
				return err
			}
		}
		return tx.Delete(ctx, &FaultItem{ID: 3})
	}
	unchanged := func(what string) {
		t.Helper()
		after := testcluster.DumpDir(t, dir, "foo", "bar")
		for i, f := range []string{"foo.db", "bar.db"} {
			if after[i] != before[i] {
				t.Errorf("%s: %s changed it:\nbefore:\n%s\nafter:\n%s", f, what, before[i], after[i])
			}
		}
		for _, f := range []string{"foo.db", "bar.db"} {
			for _, r := range faultRecords(t, filepath.Join(dir, f)) {
				if r.PK != "[1]" { // row 1's record may still wait for the clearer
					t.Errorf("%s: %s left intent record %+v", f, what, r)
				}
			}
		}
	}

	err := c.Tx(ctx, func(tx *tandem.Tx) error {
		if err := writes(tx); err != nil {
			return err
		}
		return errFaultCallback
	})
	if !errors.Is(err, errFaultCallback) {
		t.Errorf("Tx whose callback fails returned %v, want the callback's error", err)
	}
	unchanged("a callback returning an error")

	recovered := func() (r any) {
		defer func() { r = recover() }()
		err := c.Tx(ctx, func(tx *tandem.Tx) error {
			if err := writes(tx); err != nil {
				return err
			}
			panic("callback panics")
		})
		t.Errorf("Tx whose callback panics returned %v instead of panicking", err)
		return nil
	}()
	if recovered != "callback panics" {
		t.Errorf("Tx whose callback panics: recovered %v, want the callback's panic value", recovered)
	}
	unchanged("a callback panicking")

	// The cluster keeps working.
	if err := c.Save(ctx, &FaultItem{ID: 4, Name: "four"}); err != nil {
		t.Fatalf("Save after the failed transactions: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"foo.db", "bar.db"} {
		if got, want := faultRows(t, filepath.Join(dir, f)), []string{"1=one", "4=four"}; !slices.Equal(got, want) {
			t.Errorf("%s holds %v, want %v", f, got, want)
		}
	}
	faultSameDumps(t, dir)
	faultNoRecords(t, dir) // every committed write's records cleared by Close
}

func TestContextCancelledAfterCommitStartsStillCommitsEverywhere(t *testing.T) {
	for _, tc := range []struct {
		name  string
		write func(ctx context.Context, c *tandem.Cluster) error
		want  []string
	}{
		{"save", func(ctx context.Context, c *tandem.Cluster) error {
			return c.Save(ctx, &FaultItem{ID: 2, Name: "two"})
		}, []string{"1=one", "2=two"}},
		{"tx", func(ctx context.Context, c *tandem.Cluster) error {
			return c.Tx(ctx, func(tx *tandem.Tx) error {
				for _, it := range []FaultItem{{2, "two"}, {3, "three"}} {
					if err := tx.Save(ctx, &it); err != nil {
						return err
					}
				}
				return tx.Delete(ctx, &FaultItem{ID: 1})
			})
		}, []string{"2=two", "3=three"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, path := testcluster.New(t, faultQuietLogs())
			dir := filepath.Dir(path)
			bg, stop := context.WithTimeout(context.Background(), 30*time.Second)
			defer stop()
			if err := c.Migrate(bg, &FaultItem{}); err != nil {
				t.Fatal(err)
			}
			if err := c.Save(bg, &FaultItem{ID: 1, Name: "one"}); err != nil {
				t.Fatal(err)
			}

			ctx, cancel := context.WithCancel(bg)
			hooked := ""
			tandem.SetCommitHook(c, func(txid string) {
				hooked = txid
				cancel() // the primary has committed; the secondary has not
			})
			err := tc.write(ctx, c)
			if hooked == "" {
				t.Fatal("the commit hook was not called")
			}
			if ctx.Err() == nil {
				t.Fatal("the caller's context was not cancelled")
			}
			if err != nil {
				t.Errorf("write whose context was cancelled after the primary's commit returned %v; it committed on foo, so it must finish on bar and return nil", err)
			}
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			for _, f := range []string{"foo.db", "bar.db"} {
				if got := faultRows(t, filepath.Join(dir, f)); !slices.Equal(got, tc.want) {
					t.Errorf("%s holds %v, want %v", f, got, tc.want)
				}
			}
			faultSameDumps(t, dir)
			faultNoRecords(t, dir)
		})
	}
}
