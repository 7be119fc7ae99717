package tandem_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/ncruces/go-sqlite3/driver"

	"github.com/tandemdb/tandem"
	"github.com/tandemdb/tandem/internal/testcluster"
)

// Slot is a row on a small key space that every writer fights over: its
// key is chosen by the application, not by the database.
type Slot struct {
	ID     int64     `tandem:"id,pk"`
	Val    int64     `tandem:"val"`
	Note   string    `tandem:"note,size=40"`
	Weight *float64  `tandem:"weight"`
	Flag   bool      `tandem:"flag"`
	At     time.Time `tandem:"at,default=now"`
}

// Entry is an append-only row whose id the primary assigns.
type Entry struct {
	ID     int64  `tandem:"id,pk,auto"`
	Worker string `tandem:"worker,size=40,unique=entry_worker_seq"`
	Seq    int64  `tandem:"seq,unique=entry_worker_seq"`
	Note   string `tandem:"note"`
}

const (
	hammerKeys    = 50 // Slot ids 1..hammerKeys
	envHammerConf = "TANDEM_HAMMER_CONFIG"
	envHammerName = "TANDEM_HAMMER_NAME"
	envHammerOut  = "TANDEM_HAMMER_OUT"
	envHammerFor  = "TANDEM_HAMMER_FOR"
)

var errRollback = errors.New("hammer: deliberate rollback")

// hammerStats counts what one process's writers did.
type hammerStats struct {
	Attempts   int64 // Save, Delete and Tx calls
	OK         int64 // calls that returned nil
	Rollbacks  int64 // transactions rolled back on purpose
	Busy       int64 // calls refused because another writer held the lock too long
	Other      int64 // any other error
	Samples    []string
	Acked      []Entry // inserts acknowledged (the call returned nil)
	RolledBack []Entry // inserts of transactions rolled back on purpose
}

func (s *hammerStats) String() string {
	return fmt.Sprintf("attempts=%d ok=%d rollbacks=%d busy=%d other=%d acked_inserts=%d",
		s.Attempts, s.OK, s.Rollbacks, s.Busy, s.Other, len(s.Acked))
}

func (s *hammerStats) add(o *hammerStats) {
	s.Attempts += o.Attempts
	s.OK += o.OK
	s.Rollbacks += o.Rollbacks
	s.Busy += o.Busy
	s.Other += o.Other
	s.Samples = append(s.Samples, o.Samples...)
	s.Acked = append(s.Acked, o.Acked...)
	s.RolledBack = append(s.RolledBack, o.RolledBack...)
}

func isLockError(err error) bool {
	msg := strings.ToLower(err.Error())
	return strings.Contains(msg, "database is locked") || strings.Contains(msg, "busy")
}

func randomSlot(rng *rand.Rand) Slot {
	s := Slot{
		ID:   1 + rng.Int64N(hammerKeys),
		Val:  rng.Int64(),
		Note: strconv.FormatUint(rng.Uint64(), 36),
		Flag: rng.IntN(2) == 0,
	}
	if rng.IntN(3) > 0 {
		w := rng.NormFloat64() * 1e6
		s.Weight = &w
	}
	return s
}

// hammer runs workers goroutines writing through c for d: saves and
// deletes of Slots on a small key space, auto-increment inserts of
// Entries, and multi-row transactions, some rolled back on purpose.
func hammer(c *tandem.Cluster, name string, workers int, d time.Duration) *hammerStats {
	ctx := context.Background()
	deadline := time.Now().Add(d)
	total := &hammerStats{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	seed := uint64(time.Now().UnixNano())
	for g := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(g)))
			worker := fmt.Sprintf("%s/%d", name, g)
			st := &hammerStats{}
			var seq int64
			newEntry := func() Entry {
				seq++
				return Entry{Worker: worker, Seq: seq, Note: strconv.FormatUint(rng.Uint64(), 16)}
			}
			for time.Now().Before(deadline) {
				var err error
				var inserted []Entry
				rollback := false
				switch op := rng.IntN(100); {
				case op < 35:
					s := randomSlot(rng)
					err = c.Save(ctx, &s)
				case op < 50:
					err = c.Delete(ctx, &Slot{ID: 1 + rng.Int64N(hammerKeys)})
				case op < 70:
					e := newEntry()
					err = c.Save(ctx, &e)
					inserted = append(inserted, e)
				default:
					rollback = rng.IntN(5) == 0
					err = c.Tx(ctx, func(tx *tandem.Tx) error {
						inserted = inserted[:0] // fn may run again (see Cluster.Tx)
						for range 2 + rng.IntN(3) {
							s := randomSlot(rng)
							if err := tx.Save(ctx, &s); err != nil {
								return err
							}
						}
						if err := tx.Delete(ctx, &Slot{ID: 1 + rng.Int64N(hammerKeys)}); err != nil {
							return err
						}
						if rng.IntN(2) == 0 {
							e := newEntry()
							if err := tx.Save(ctx, &e); err != nil {
								return err
							}
							inserted = append(inserted, e)
						}
						if rollback {
							return errRollback
						}
						return nil
					})
				}
				st.Attempts++
				switch {
				case err == nil:
					st.OK++
					for _, e := range inserted {
						if e.ID <= 0 {
							st.Other++
							st.Samples = append(st.Samples, fmt.Sprintf("acknowledged insert without id: %+v", e))
						}
					}
					st.Acked = append(st.Acked, inserted...)
				case errors.Is(err, errRollback):
					st.Rollbacks++
					st.RolledBack = append(st.RolledBack, inserted...)
				case isLockError(err):
					st.Busy++
				default:
					st.Other++
					if len(st.Samples) < 5 {
						st.Samples = append(st.Samples, err.Error())
					}
				}
			}
			mu.Lock()
			total.add(st)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return total
}

func discardLogs() tandem.Option {
	return tandem.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))
}

// checkHammered compares the two files after every writer has closed:
// identical rows, not empty, every acknowledged insert present on both with
// its id, no insert of a rolled-back transaction anywhere.
func checkHammered(t *testing.T, dir string, st *hammerStats) {
	t.Helper()
	foo, bar := filepath.Join(dir, "foo.db"), filepath.Join(dir, "bar.db")
	dumps := testcluster.DumpDir(t, dir, "foo", "bar")
	if dumps[0] != dumps[1] {
		t.Errorf("foo.db and bar.db differ after concurrent writes:\n%s", firstDumpDiff(dumps[0], dumps[1]))
	}
	slots, entries := testcluster.Count(t, foo, "slot"), testcluster.Count(t, foo, "entry")
	t.Logf("foo.db holds %d slots and %d entries; bar.db %d and %d", slots, entries,
		testcluster.Count(t, bar, "slot"), testcluster.Count(t, bar, "entry"))
	if slots == 0 || entries == 0 {
		t.Errorf("expected rows in both tables, got %d slots and %d entries", slots, entries)
	}
	for _, file := range []string{foo, bar} {
		rows := entryRows(t, file)
		missing := 0
		for _, e := range st.Acked {
			got, ok := rows[e.ID]
			if !ok || got.Worker != e.Worker || got.Seq != e.Seq || got.Note != e.Note {
				if missing < 5 {
					t.Errorf("%s: acknowledged insert %+v: found %+v (present: %v)", filepath.Base(file), e, got, ok)
				}
				missing++
			}
		}
		if missing > 0 {
			t.Errorf("%s: %d of %d acknowledged inserts missing or different", filepath.Base(file), missing, len(st.Acked))
		}
		byWorkerSeq := map[string]bool{}
		for _, e := range rows {
			byWorkerSeq[fmt.Sprintf("%s#%d", e.Worker, e.Seq)] = true
		}
		for _, e := range st.RolledBack {
			if byWorkerSeq[fmt.Sprintf("%s#%d", e.Worker, e.Seq)] {
				t.Errorf("%s: insert %+v of a rolled-back transaction is present", filepath.Base(file), e)
			}
		}
	}
	for _, file := range []string{foo, bar} {
		if n := testcluster.Count(t, file, "_tandem_pending"); n > 0 {
			t.Logf("%s: %d intent records left after every writer closed", filepath.Base(file), n)
		}
	}
}

// entryRows reads the entry table of a SQLite file by id.
func entryRows(t *testing.T, file string) map[int64]Entry {
	t.Helper()
	db := openRawSQLite(t, file)
	rows, err := db.Query(`SELECT id, worker, seq, note FROM entry`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[int64]Entry{}
	for rows.Next() {
		var e Entry
		if err := rows.Scan(&e.ID, &e.Worker, &e.Seq, &e.Note); err != nil {
			t.Fatal(err)
		}
		out[e.ID] = e
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// openRawSQLite opens a SQLite file directly, bypassing tandem; closed at test end.
func openRawSQLite(t *testing.T, file string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+file+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db
}

// firstDumpDiff shows the first differing line of two dumps.
func firstDumpDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := 0; i < max(len(al), len(bl)); i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			return fmt.Sprintf("line %d:\n  foo: %s\n  bar: %s\n(%d and %d lines)", i+1, x, y, len(al), len(bl))
		}
	}
	return "(no line differs)"
}

// runHammers runs two hammer processes, p1 and p2, on the config at path
// for d, and meanwhile during (when set); it returns their stats added up,
// and fails the test for a process that failed or wrote none.
func runHammers(t *testing.T, path string, d time.Duration, during func()) *hammerStats {
	t.Helper()
	dir := filepath.Dir(path)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	names := []string{"p1", "p2"}
	cmds := make([]*exec.Cmd, len(names))
	outs := make([]strings.Builder, len(names))
	for i, name := range names {
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperHammer$", "-test.count=1", "-test.timeout=100s")
		cmd.Env = append(os.Environ(),
			envHammerConf+"="+path,
			envHammerName+"="+name,
			envHammerFor+"="+d.String(),
			envHammerOut+"="+filepath.Join(dir, name+".json"),
		)
		cmd.Stdout, cmd.Stderr = &outs[i], &outs[i]
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds[i] = cmd
	}
	if during != nil {
		during()
	}
	total := &hammerStats{}
	for i, cmd := range cmds {
		err := cmd.Wait()
		if err != nil {
			t.Errorf("process %s: %v\n%s", names[i], err, outs[i].String())
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, names[i]+".json"))
		if err != nil {
			t.Errorf("process %s wrote no stats: %v\n%s", names[i], err, outs[i].String())
			continue
		}
		var st hammerStats
		if err := json.Unmarshal(data, &st); err != nil {
			t.Fatal(err)
		}
		t.Logf("process %s: %s", names[i], &st)
		for _, s := range st.Samples {
			t.Logf("process %s: error: %s", names[i], s)
		}
		total.add(&st)
	}
	return total
}

// migrateHammer creates the hammer's tables through a short-lived cluster.
func migrateHammer(t *testing.T, path string) {
	t.Helper()
	c := testcluster.Open(t, path, discardLogs())
	if err := c.Migrate(context.Background(), &Slot{}, &Entry{}); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestHelperHammer is the body of each process started by
// TestTwoProcessesHammeringOverlappingRowsLeaveIdenticalFiles; run
// directly (without TANDEM_HAMMER_CONFIG) it does nothing.
func TestHelperHammer(t *testing.T) {
	path := os.Getenv(envHammerConf)
	if path == "" {
		return
	}
	d, err := time.ParseDuration(os.Getenv(envHammerFor))
	if err != nil {
		t.Fatal(err)
	}
	c := testcluster.Open(t, path, discardLogs())
	st := hammer(c, os.Getenv(envHammerName), 8, d)
	if err := c.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	data, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(os.Getenv(envHammerOut), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestTwoProcessesHammeringOverlappingRowsLeaveIdenticalFiles(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two processes for several seconds")
	}
	path := testcluster.Config(t) // foo primary, bar secondary
	dir := filepath.Dir(path)
	migrateHammer(t, path)

	total := runHammers(t, path, 3*time.Second, nil)
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("total: %s", total)
	assertHealthy(t, total)
	// The test proves something only if the processes wrote at the same
	// time: their inserts, in id order, must alternate many times.
	byID := map[int64]string{}
	var maxID int64
	for _, e := range total.Acked {
		byID[e.ID], maxID = strings.SplitN(e.Worker, "/", 2)[0], max(maxID, e.ID)
	}
	switches, last := 0, ""
	for id := int64(1); id <= maxID; id++ {
		if p, ok := byID[id]; ok {
			if last != "" && p != last {
				switches++
			}
			last = p
		}
	}
	t.Logf("inserts alternate between the processes %d times", switches)
	if switches < 20 {
		t.Errorf("the processes barely overlapped (%d alternations of inserts); the test proves little", switches)
	}
	checkHammered(t, dir, total)
}

func TestSameProcessHammeringKeepsFilesIdenticalAndEveryAcknowledgedInsert(t *testing.T) {
	path := testcluster.Config(t)
	dir := filepath.Dir(path)
	migrateHammer(t, path)
	c := testcluster.Open(t, path, discardLogs())
	start := time.Now()
	st := hammer(c, "solo", 16, 2*time.Second)
	t.Logf("%s in %v", st, time.Since(start).Round(time.Millisecond))
	for _, s := range st.Samples {
		t.Logf("error: %s", s)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	assertHealthy(t, st)
	if st.Busy > 0 {
		t.Errorf("%d writes failed with a lock error although one process writes alone", st.Busy)
	}
	checkHammered(t, dir, st)
	for _, file := range []string{"foo.db", "bar.db"} {
		if n := testcluster.Count(t, filepath.Join(dir, file), "_tandem_pending"); n > 0 {
			t.Errorf("%s: %d intent records left after a clean Close: Status will later report writes in doubt", file, n)
		}
	}
}

// assertHealthy checks that the hammer mostly succeeded: lock timeouts are
// tolerated, other errors are not.
func assertHealthy(t *testing.T, st *hammerStats) {
	t.Helper()
	if st.Other > 0 {
		t.Errorf("%d writes failed with an unexpected error, e.g. %q", st.Other, st.Samples)
	}
	if st.OK <= 200 {
		t.Errorf("only %d successful writes; want more than 200", st.OK)
	}
	if tried := st.Attempts - st.Rollbacks; st.OK*2 <= tried {
		t.Errorf("only %d of %d writes succeeded; want a majority", st.OK, tried)
	}
}

// witnessGen reads the generation of the view the witness beside the
// config at path holds.
func witnessGen(t *testing.T, path string) int64 {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(filepath.Dir(path), "tandem.witness"))
	if err != nil {
		t.Fatal(err)
	}
	var v struct{ Generation int64 }
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	return v.Generation
}

// TestProcessesBlockedBehindALockedDatabaseNeverSplit is the failure that
// split clusters: two processes write; another connection holds one
// file's write lock for 2.5 s. Process A holds foo's lock while it waits
// for bar; process B, queued behind A on foo, times out. Each time-out is
// contention, not failure: a read on a connection of its own answers, so
// the write fails with ErrBusy and the view never changes. No process
// writes one side alone, every acknowledged insert is on both files, and
// the files are identical.
func TestProcessesBlockedBehindALockedDatabaseNeverSplit(t *testing.T) {
	for _, locked := range []string{"bar", "foo"} {
		t.Run(locked+" locked", func(t *testing.T) {
			path := testcluster.Config(t)
			dir := filepath.Dir(path)
			migrateHammer(t, path)
			gen := witnessGen(t, path)

			total := runHammers(t, path, 5*time.Second, func() {
				time.Sleep(time.Second)
				release := faultHoldLock(t, filepath.Join(dir, locked+".db"))
				time.Sleep(2500 * time.Millisecond)
				release()
			})
			if t.Failed() {
				t.FailNow()
			}
			t.Logf("total: %s", total)
			if total.Other > 0 {
				t.Errorf("%d writes failed with an unexpected error, e.g. %q", total.Other, total.Samples)
			}
			if total.Busy == 0 {
				t.Errorf("no write met the lock on %s: the test proves nothing", locked)
			}
			if got := witnessGen(t, path); got != gen {
				t.Errorf("the view changed from generation %d to %d while %s was only locked", gen, got, locked)
			}
			checkHammered(t, dir, total)
		})
	}
}
