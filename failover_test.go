package tandem_test

// Failover tests: the Jepsen-style workloads of internal/jepsen run while
// real faults happen (another connection holds a database's write lock, a
// datasource cannot be reached, a process stops in the middle of a
// catch-up). Each test ends by reading both database files directly: the
// workloads' checks hold on each, the files hold identical rows, and the
// status says every datasource is in sync.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tandemdb/tandem"
	"github.com/tandemdb/tandem/internal/jepsen"
	"github.com/tandemdb/tandem/internal/testcluster"
)

// foPatience bounds every wait for the cluster to reach a state. It is a
// deadline against hanging, not a performance assertion.
const foPatience = 30 * time.Second

// foFast makes faults show quickly: a datasource that does not answer in
// 500 ms is left out, and every datasource is checked every 50 ms.
const foFast = "timeout: 500ms\nhealth_interval: 50ms\n"

// foConfig writes the config file dir/file for datasources foo (the
// primary) and bar with the given DSNs (relative to dir) and extra
// top-level YAML.
func foConfig(t *testing.T, dir, file, fooDSN, barDSN, extra string) string {
	t.Helper()
	path := filepath.Join(dir, file)
	cfg := foFast + extra + fmt.Sprintf("datasources:\n  - name: foo\n    driver: sqlite\n    dsn: %s\n  - name: bar\n    driver: sqlite\n    dsn: %s\n", fooDSN, barDSN)
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// foMounted writes the config file dir/file for datasources foo (the
// primary) and bar, each reaching its file dir/NAME.db through a mount the
// test can lose (faultMount), with extra top-level YAML; it returns the
// config's path and each datasource's lose and restore.
func foMounted(t *testing.T, dir, file, extra string) (path string, lose, restore map[string]func()) {
	t.Helper()
	lose, restore = map[string]func(){}, map[string]func(){}
	var dsns []string
	for _, n := range []string{"foo", "bar"} {
		dsn, l, r := faultMount(t, dir, n)
		dsns, lose[n], restore[n] = append(dsns, dsn), l, r
	}
	return foConfig(t, dir, file, dsns[0], dsns[1], extra), lose, restore
}

// foUnreachable returns a DSN, relative to dir, through which the database
// called name cannot be reached: a symbolic link into a directory that does
// not exist, so opening it fails with "unable to open database file" on
// every attempt. (A DSN naming a missing directory outright is refused by
// config validation; behind the link, the directory is missing only when
// the file is opened, as when a mount or a network path is gone.)
func foUnreachable(t *testing.T, dir, name string) string {
	t.Helper()
	cut := filepath.Join(dir, "cut")
	if err := os.MkdirAll(cut, 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(cut, name+".db")
	if _, err := os.Lstat(link); err != nil {
		if err := os.Symlink(filepath.Join(dir, "absent", name+".db"), link); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join("cut", name+".db")
}

// foLogBuf collects a cluster's logs; they are printed if the test fails.
type foLogBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *foLogBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *foLogBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// foLogs returns a logger option whose output is shown if t fails (or
// always, with TANDEM_TEST_LOGS=1). Call it before opening the cluster, so
// that it prints after Close.
func foLogs(t *testing.T, who string) tandem.Option {
	buf := &foLogBuf{}
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("TANDEM_TEST_LOGS") == "1" {
			t.Logf("log of %s:\n%s", who, buf.String())
		}
	})
	return tandem.WithLogger(slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
}

func foOpen(t *testing.T, path, who string) *tandem.Cluster {
	t.Helper()
	return testcluster.Open(t, path, foLogs(t, who))
}

// foTable renders a status for messages.
func foTable(st *tandem.Status, err error) string {
	if err != nil {
		return "status: " + err.Error()
	}
	var b strings.Builder
	st.WriteTable(&b)
	fmt.Fprintf(&b, "primary: %q\n", st.Primary)
	return b.String()
}

// foNode returns the status of the datasource called name.
func foNode(st *tandem.Status, name string) tandem.NodeStatus {
	for _, n := range st.Nodes {
		if n.Name == name {
			return n
		}
	}
	return tandem.NodeStatus{Name: name, State: "absent from status"}
}

// foWait polls c's status until ok holds, and returns that status; it
// fails the test at once if that does not happen within foPatience.
func foWait(t *testing.T, c *tandem.Cluster, what string, ok func(*tandem.Status) bool) *tandem.Status {
	t.Helper()
	st, reached := foTry(t, c, what, ok)
	if !reached {
		t.FailNow()
	}
	return st
}

// foTry is foWait that lets the test go on: if ok does not hold within
// foPatience it reports an error and returns false.
func foTry(t *testing.T, c *tandem.Cluster, what string, ok func(*tandem.Status) bool) (*tandem.Status, bool) {
	t.Helper()
	deadline := time.Now().Add(foPatience)
	for {
		st, err := c.Status(context.Background())
		if err == nil && ok(st) {
			return st, true
		}
		if time.Now().After(deadline) {
			t.Errorf("waited %v for %s; last status:\n%s", foPatience, what, foTable(st, err))
			return st, false
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// foInSync: every datasource in sync, behind by nothing, nothing in doubt,
// a primary.
func foInSync(st *tandem.Status) bool {
	for _, n := range st.Nodes {
		if n.State != tandem.StateInSync || n.Behind != 0 || n.InDoubt != 0 {
			return false
		}
	}
	return len(st.Nodes) > 0 && st.Primary != ""
}

// foAssertInSync fails unless st says what `tandem status` says of a
// healthy cluster: foo the primary, every datasource in sync.
func foAssertInSync(t *testing.T, st *tandem.Status) {
	t.Helper()
	if !foInSync(st) || !st.Healthy() || st.Primary != "foo" {
		t.Errorf("status is not in sync with foo the primary:\n%s", foTable(st, nil))
	}
}

// foUntil polls cond until it holds.
func foUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(foPatience)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", foPatience, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// foProgress waits until the running workloads have acknowledged more
// writes (at least sets inserts and transfers transfers) than when called.
func foProgress(t *testing.T, what string, set *jepsen.SetRun, sets int64, bank *jepsen.BankRun, transfers int64) {
	t.Helper()
	s0 := set.Acked()
	var b0 int64
	if bank != nil {
		b0 = bank.Transfers()
	}
	foUntil(t, fmt.Sprintf("%d inserts and %d transfers acknowledged %s", sets, transfers, what), func() bool {
		return set.Acked()-s0 >= sets && (bank == nil || bank.Transfers()-b0 >= transfers)
	})
	t.Logf("%s: %d inserts and %d transfers acknowledged so far", what, set.Acked(), func() int64 {
		if bank == nil {
			return 0
		}
		return bank.Transfers()
	}())
}

// foNoFailures fails for every write of the histories that was not
// acknowledged: in these tests one datasource always survives, so writes
// never fail.
func foNoFailures(t *testing.T, set *jepsen.SetHistory, bank *jepsen.BankHistory) {
	t.Helper()
	if set != nil && len(set.Failed) > 0 {
		var some []string
		for id, err := range set.Failed {
			if len(some) < 5 {
				some = append(some, fmt.Sprintf("id %d: %v", id, err))
			}
		}
		slices.Sort(some)
		t.Errorf("%d inserts failed, want none (a datasource survived throughout); e.g.\n%s", len(set.Failed), strings.Join(some, "\n"))
	}
	if bank != nil {
		for i, err := range bank.Failed {
			if i == 5 {
				t.Errorf("... %d transfers failed in all", len(bank.Failed))
				break
			}
			t.Errorf("transfer failed, want none: %v", err)
		}
		for i, err := range bank.ReadErrors {
			if i == 5 {
				t.Errorf("... %d reads failed in all", len(bank.ReadErrors))
				break
			}
			t.Errorf("read through the cluster failed, want none: %v", err)
		}
	}
}

// foBookkeeping fails if file records keys some datasource missed: a
// cluster that was in sync when closed leaves none. (Intent records may
// stay: a batch the clearer could not delete, because a database was
// locked, waits for the sweeper; they are counted only.)
func foBookkeeping(t *testing.T, file string) {
	t.Helper()
	db := faultRO(t, file)
	var missed, pending int
	if err := db.QueryRow("SELECT (SELECT COUNT(*) FROM _tandem_missed), (SELECT COUNT(*) FROM _tandem_pending)").Scan(&missed, &pending); err != nil {
		t.Errorf("%s: %v", file, err)
		return
	}
	if missed > 0 {
		t.Errorf("%s: %d missed-key records left, want none", file, missed)
	}
	if pending > 0 {
		t.Logf("%s: %d intent records left for the sweeper", file, pending)
	}
}

// foCheckFiles reads foo.db and bar.db directly: the workloads' checks
// hold on each, and both hold identical rows.
func foCheckFiles(t *testing.T, dir string, set *jepsen.SetHistory, bank *jepsen.BankHistory) {
	t.Helper()
	nodes := []jepsen.Node{
		jepsen.SQLiteNode(t, "foo", filepath.Join(dir, "foo.db")),
		jepsen.SQLiteNode(t, "bar", filepath.Join(dir, "bar.db")),
	}
	if set != nil {
		jepsen.CheckSet(t, set, nodes...)
	}
	if bank != nil {
		jepsen.CheckBank(t, bank, nodes...)
	}
	faultSameDumps(t, dir)
	for _, f := range []string{"foo.db", "bar.db"} {
		foBookkeeping(t, filepath.Join(dir, f))
	}
}

func foWorkloads(t *testing.T, ctx context.Context, c *tandem.Cluster) (jepsen.Set, jepsen.Bank) {
	t.Helper()
	set := jepsen.Set{Workers: 3, Pause: time.Millisecond}
	bank := jepsen.Bank{Accounts: 6, Balance: 100, Transferers: 3, Readers: 2, Pause: time.Millisecond}
	if err := set.Setup(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := bank.Setup(ctx, c); err != nil {
		t.Fatal(err)
	}
	return set, bank
}

// foLostRun runs the set and bank workloads on a fresh cluster while the
// mount of lost (foo or bar) is gone for about three seconds (faultMount). While the lock is held the status must come to satisfy
// during; after its return, with the workloads still writing, recovered.
// Then the workloads stop, the cluster must be in sync with foo the
// primary, and the files pass every check. A cluster that does not recover
// while written fails the test, but the checks still run once the
// workloads have stopped.
func foLostRun(t *testing.T, lost, duringWhat string, during func(*tandem.Status) bool, recoveredWhat string, recovered func(*tandem.Status) bool) {
	dir := t.TempDir()
	path, lose, restore := foMounted(t, dir, "tandem.yaml", "")
	c := foOpen(t, path, "the cluster")
	ctx, cancel := context.WithTimeout(context.Background(), 5*foPatience)
	defer cancel()
	set, bank := foWorkloads(t, ctx, c)
	sets, banks := set.Start(ctx, c), bank.Start(ctx, c)
	stopped := false
	defer func() {
		if !stopped {
			sets.Stop()
			banks.Stop()
		}
	}()
	foProgress(t, "before the fault", sets, 20, banks, 5)

	lose[lost]()
	lostAt := time.Now()
	t.Logf("%s.db's mount lost", lost)
	foTry(t, c, duringWhat, during)
	foProgress(t, "while "+lost+".db is lost", sets, 20, banks, 5)
	time.Sleep(time.Until(lostAt.Add(3 * time.Second)))
	restore[lost]()
	t.Logf("%s.db back after %v", lost, time.Since(lostAt).Round(time.Millisecond))

	if _, ok := foTry(t, c, recoveredWhat+", the workloads still writing", recovered); ok {
		foProgress(t, "after the recovery", sets, 20, banks, 5)
	}
	sh, bh := sets.Stop(), banks.Stop()
	stopped = true
	foNoFailures(t, sh, bh)
	foAssertInSync(t, foWait(t, c, "in sync with foo the primary once the workloads stopped", func(st *tandem.Status) bool {
		return foInSync(st) && st.Primary == "foo"
	}))
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	foCheckFiles(t, dir, sh, bh)
}

func TestSecondaryLostWritesContinueAndCatchUp(t *testing.T) {
	foLostRun(t, "bar",
		// Writes skip bar and go on: foo stays the primary.
		"foo the primary and bar not in sync while bar.db is lost", func(st *tandem.Status) bool {
			return st.Primary == "foo" && foNode(st, "bar").State != tandem.StateInSync
		},
		// bar catches up and rejoins the writes.
		"bar in sync again with foo the primary", func(st *tandem.Status) bool {
			return foInSync(st) && st.Primary == "foo"
		})
}

func TestPrimaryLostWritesFailOverAndFailBack(t *testing.T) {
	foLostRun(t, "foo",
		// Writes fail over to bar (the witness beside the config lets it).
		"bar the primary while foo.db is lost", func(st *tandem.Status) bool {
			return st.Primary == "bar" && foNode(st, "foo").State != tandem.StateInSync
		},
		// foo catches up and is the primary again.
		"foo caught up and the primary again", func(st *tandem.Status) bool {
			return foInSync(st) && st.Primary == "foo"
		})
}

// FailoverItem is a row both halves of a partition write.
type FailoverItem struct {
	ID        int64     `tandem:"id,pk"`
	Val       string    `tandem:"val,size=40"`
	UpdatedAt time.Time `tandem:"updated_at"`
}

// foWrite is one write of a key by one half of a partition.
type foWrite struct {
	del bool
	val string
	at  int // minutes after foEpoch: UpdatedAt
}

var foEpoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// foKey is a key and what each half wrote to it, in order.
type foKey struct {
	id   int64
	a, b []foWrite
	// deletes: the case involves a delete on one side only, which the
	// newest policy cannot order (it leaves it to an operator).
	deletes bool
}

// foBaseline is the number of rows (ids 1..foBaseline, val "base") both
// databases hold before the partition.
const foBaseline = 20

var foKeys = []foKey{
	// Written on one side only: copied to the other, never a conflict.
	{id: 1, a: []foWrite{{val: "a1-first", at: 1}, {val: "a1", at: 2}}},
	{id: 2, a: []foWrite{{val: "a2", at: 1}}},
	{id: 3, a: []foWrite{{del: true}}},
	{id: 101, a: []foWrite{{val: "a101", at: 1}}},
	{id: 4, b: []foWrite{{val: "b4", at: 1}}},
	{id: 5, b: []foWrite{{val: "b5-first", at: 1}, {val: "b5", at: 3}}},
	{id: 6, b: []foWrite{{del: true}}},
	{id: 201, b: []foWrite{{val: "b201", at: 1}}},
	// Written identically on both sides: not a conflict.
	{id: 7, a: []foWrite{{val: "same7", at: 5}}, b: []foWrite{{val: "same7", at: 5}}},
	{id: 8, a: []foWrite{{del: true}}, b: []foWrite{{del: true}}},
	{id: 9, a: []foWrite{{val: "a9-first", at: 1}, {val: "same9", at: 5}}, b: []foWrite{{val: "same9", at: 5}}},
	{id: 301, a: []foWrite{{val: "same301", at: 5}}, b: []foWrite{{val: "same301", at: 5}}},
	// Written differently on both sides: conflicts.
	{id: 10, a: []foWrite{{val: "a10", at: 1}}, b: []foWrite{{val: "b10", at: 2}}},
	{id: 11, a: []foWrite{{val: "a11", at: 3}}, b: []foWrite{{val: "b11", at: 2}}},
	{id: 12, a: []foWrite{{val: "a12", at: 2}}, b: []foWrite{{val: "b12-first", at: 1}, {val: "b12", at: 4}}},
	{id: 401, a: []foWrite{{val: "a401", at: 5}}, b: []foWrite{{val: "b401", at: 4}}},
	{id: 402, a: []foWrite{{val: "a402", at: 4}}, b: []foWrite{{val: "b402", at: 6}}},
	{id: 13, a: []foWrite{{del: true}}, b: []foWrite{{val: "b13", at: 2}}, deletes: true},
	{id: 14, a: []foWrite{{val: "a14", at: 2}}, b: []foWrite{{del: true}}, deletes: true},
}

// last is the row a side's writes leave: "" for no row; ok false when the
// side did not write the key.
func foLast(ws []foWrite) (val string, at int, ok bool) {
	if len(ws) == 0 {
		return "", 0, false
	}
	w := ws[len(ws)-1]
	if w.del {
		return "", 0, true
	}
	return w.val, w.at, true
}

// conflict reports whether both sides wrote k and left different rows.
func (k foKey) conflict() bool {
	av, aat, aok := foLast(k.a)
	bv, bat, bok := foLast(k.b)
	return aok && bok && (av != bv || aat != bat)
}

// foApply makes one side's writes through c.
func foApply(ctx context.Context, c *tandem.Cluster, id int64, ws []foWrite) error {
	for _, w := range ws {
		var err error
		if w.del {
			err = c.Delete(ctx, &FailoverItem{ID: id})
		} else {
			err = c.Save(ctx, &FailoverItem{ID: id, Val: w.val, UpdatedAt: foEpoch.Add(time.Duration(w.at) * time.Minute)})
		}
		if err != nil {
			return fmt.Errorf("write %d: %w", id, err)
		}
	}
	return nil
}

// foItems reads id -> val of every failover_item row of file directly.
func foItems(t *testing.T, file string) map[int64]string {
	t.Helper()
	rows, err := faultRO(t, file).Query("SELECT id, val FROM failover_item")
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	defer rows.Close()
	out := map[int64]string{}
	for rows.Next() {
		var id int64
		var v string
		if err := rows.Scan(&id, &v); err != nil {
			t.Fatal(err)
		}
		out[id] = v
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// foExpectRow checks that file holds val for id ("" for no row).
func foExpectRow(t *testing.T, file string, rows map[int64]string, id int64, val, why string) {
	t.Helper()
	got, ok := rows[id]
	switch {
	case val == "" && ok:
		t.Errorf("%s: id %d holds %q, want no row (%s)", file, id, got, why)
	case val != "" && !ok:
		t.Errorf("%s: id %d has no row, want %q (%s)", file, id, val, why)
	case val != "" && got != val:
		t.Errorf("%s: id %d holds %q, want %q (%s)", file, id, got, val, why)
	}
}

// foRowVal returns the val of a conflict's row as JSON ("" for null).
func foRowVal(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	if string(raw) == "null" || len(raw) == 0 {
		return ""
	}
	var row map[string]any
	if err := json.Unmarshal(raw, &row); err != nil {
		t.Errorf("conflict row %s: %v", raw, err)
		return ""
	}
	v, _ := row["val"].(string)
	return v
}

// foConflictKeys checks that list names each key of want exactly once,
// and nothing else; it returns the conflicts by key.
func foConflictKeys(t *testing.T, what string, list []tandem.Conflict, want []foKey) map[string]tandem.Conflict {
	t.Helper()
	byKey := map[string]tandem.Conflict{}
	for _, cf := range list {
		if cf.Table != "failover_item" {
			t.Errorf("%s: conflict on table %q (key %s), want failover_item only", what, cf.Table, cf.Key)
			continue
		}
		if _, dup := byKey[cf.Key]; dup {
			t.Errorf("%s: key %s listed twice", what, cf.Key)
		}
		byKey[cf.Key] = cf
	}
	wantKeys := map[string]bool{}
	for _, k := range want {
		key := fmt.Sprintf("[%d]", k.id)
		wantKeys[key] = true
		if _, ok := byKey[key]; !ok {
			t.Errorf("%s: key %s, written differently on both sides, is not listed", what, key)
		}
	}
	for key := range byKey {
		if !wantKeys[key] {
			t.Errorf("%s: key %s is listed, but it was not written differently on both sides", what, key)
		}
	}
	return byKey
}

func TestPartitionMergesAndReportsConflicts(t *testing.T) {
	for _, tc := range []struct {
		policy string
		yaml   string
		// winner names the side ("a" or "b") whose row a conflict keeps.
		winner func(k foKey) string
	}{
		{tandem.ConflictManual, "", func(foKey) string { return "a" }}, // resolved by an operator: foo
		{tandem.ConflictPrimary, "conflicts: {policy: primary}\n", func(foKey) string { return "a" }},
		{tandem.ConflictNewest, "conflicts: {policy: newest, column: updated_at}\n", func(k foKey) string {
			_, aat, _ := foLast(k.a)
			_, bat, _ := foLast(k.b)
			if aat > bat {
				return "a"
			}
			return "b"
		}},
	} {
		t.Run(tc.policy, func(t *testing.T) {
			var keys, conflicts []foKey
			for _, k := range foKeys {
				if k.deletes && tc.policy == tandem.ConflictNewest {
					continue // newest cannot order a row against its absence
				}
				keys = append(keys, k)
				if k.conflict() {
					conflicts = append(conflicts, k)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*foPatience)
			defer cancel()
			dir := t.TempDir()
			realCfg := foConfig(t, dir, "tandem.yaml", "foo.db", "bar.db", tc.yaml)
			// Each half of the partition reaches one database only; both
			// configs name the same datasources. A split brain needs two
			// views: each half has a witness of its own, as two machines
			// each with a witness would (one arbiter for both halves lets
			// one half only take writes).
			halfA := foConfig(t, dir, "a.yaml", "foo.db", foUnreachable(t, dir, "bar"), tc.yaml+"arbiter: {kind: witness, path: a.witness}\n")
			halfB := foConfig(t, dir, "b.yaml", foUnreachable(t, dir, "foo"), "bar.db", tc.yaml+"arbiter: {kind: witness, path: b.witness}\n")
			foo, bar := filepath.Join(dir, "foo.db"), filepath.Join(dir, "bar.db")

			// Before the partition: both databases hold the baseline.
			c := foOpen(t, realCfg, "the cluster before the partition")
			if err := c.Migrate(ctx, &FailoverItem{}, &jepsen.SetItem{}); err != nil {
				t.Fatal(err)
			}
			for id := int64(1); id <= foBaseline; id++ {
				if err := c.Save(ctx, &FailoverItem{ID: id, Val: "base", UpdatedAt: foEpoch}); err != nil {
					t.Fatal(err)
				}
			}
			foAssertInSync(t, foWait(t, c, "in sync before the partition", foInSync))
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}

			// The partition: half A writes to foo only, half B to bar
			// only, at the same time.
			ca := foOpen(t, halfA, "half A")
			cb := foOpen(t, halfB, "half B")
			// Cut off from the other database, each with an arbiter of its
			// own: an operator forces each.
			if err := ca.Promote(ctx, "foo", true); err != nil {
				t.Fatal(err)
			}
			if err := cb.Promote(ctx, "bar", true); err != nil {
				t.Fatal(err)
			}
			for _, half := range []*tandem.Cluster{ca, cb} {
				if err := half.Migrate(ctx, &FailoverItem{}, &jepsen.SetItem{}); err != nil {
					t.Fatal(err)
				}
			}
			sa := jepsen.Set{Workers: 2, FirstID: 1_000_000, Tag: "A"}.Start(ctx, ca)
			sb := jepsen.Set{Workers: 2, FirstID: 2_000_000, Tag: "B"}.Start(ctx, cb)
			var wg sync.WaitGroup
			errs := make([]error, 2)
			for i, half := range []*tandem.Cluster{ca, cb} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for _, k := range keys {
						ws := k.a
						if i == 1 {
							ws = k.b
						}
						if err := foApply(ctx, half, k.id, ws); err != nil {
							errs[i] = err
							return
						}
					}
				}()
			}
			wg.Wait()
			foProgress(t, "on half A", sa, 20, nil, 0)
			foProgress(t, "on half B", sb, 20, nil, 0)
			ha, hb := sa.Stop(), sb.Stop()
			for i, err := range errs {
				if err != nil {
					t.Fatalf("half %c: %v", 'A'+i, err)
				}
			}
			foNoFailures(t, ha, nil)
			foNoFailures(t, hb, nil)
			for _, h := range []struct {
				c         *tandem.Cluster
				up, down  string
				halfLabel string
			}{{ca, "foo", "bar", "A"}, {cb, "bar", "foo", "B"}} {
				st, err := h.c.Status(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if st.Primary != h.up || foNode(st, h.down).State != tandem.StateDown {
					t.Errorf("half %s: want %s the primary and %s down:\n%s", h.halfLabel, h.up, h.down, foTable(st, nil))
				}
			}
			for _, half := range []*tandem.Cluster{ca, cb} {
				if err := half.Close(); err != nil {
					t.Fatal(err)
				}
			}

			// The partition heals: both databases are reachable again.
			c = foOpen(t, realCfg, "the merged cluster")
			var st *tandem.Status
			if tc.policy == tandem.ConflictManual {
				st = foWait(t, c, "catch-up done but for the conflicts", func(st *tandem.Status) bool {
					return foNode(st, "foo").Behind == 0 && foNode(st, "bar").Behind == 0 && st.Conflicts == int64(len(conflicts)) &&
						foNode(st, "foo").State == tandem.StateInSync
				})
				// No silent overwrite: until an operator decides, each
				// database keeps its own row of every conflict, bar is not
				// in sync and foo stays the primary.
				if st.Primary != "foo" || foNode(st, "foo").State != tandem.StateInSync || foNode(st, "bar").State == tandem.StateInSync {
					t.Errorf("with conflicts waiting: want foo the primary and in sync, bar not in sync:\n%s", foTable(st, nil))
				}
				fooRows, barRows := foItems(t, foo), foItems(t, bar)
				for _, k := range conflicts {
					av, _, _ := foLast(k.a)
					bv, _, _ := foLast(k.b)
					foExpectRow(t, foo, fooRows, k.id, av, "a conflict waiting for an operator keeps foo's row")
					foExpectRow(t, bar, barRows, k.id, bv, "a conflict waiting for an operator keeps bar's row")
				}
				list, err := c.Conflicts(ctx, false)
				if err != nil {
					t.Fatal(err)
				}
				byKey := foConflictKeys(t, "unresolved conflicts", list, conflicts)
				for _, k := range conflicts {
					cf := byKey[fmt.Sprintf("[%d]", k.id)]
					av, _, _ := foLast(k.a)
					bv, _, _ := foLast(k.b)
					if cf.Resolution != "" || cf.NodeA != "foo" || cf.NodeB != "bar" || foRowVal(t, cf.RowA) != av || foRowVal(t, cf.RowB) != bv {
						t.Errorf("conflict %s: got %s %s=%s %s=%s resolution %q; want unresolved, foo=%q, bar=%q",
							cf.Key, cf.Table, cf.NodeA, cf.RowA, cf.NodeB, cf.RowB, cf.Resolution, av, bv)
					}
				}
				n, err := c.Resolve(ctx, "", "", "foo")
				if err != nil {
					t.Fatalf("resolve keeping foo's rows: %v", err)
				}
				if n != len(conflicts) {
					t.Errorf("resolve resolved %d conflicts, want %d", n, len(conflicts))
				}
			}
			st = foWait(t, c, "in sync after the merge, foo the primary", func(st *tandem.Status) bool {
				return foInSync(st) && st.Primary == "foo"
			})
			foAssertInSync(t, st)
			if list, err := c.Conflicts(ctx, false); err != nil || len(list) > 0 {
				t.Errorf("unresolved conflicts after the merge: %v %+v", err, list)
			}
			all, err := c.Conflicts(ctx, true)
			if err != nil {
				t.Fatal(err)
			}
			byKey := foConflictKeys(t, "recorded conflicts", all, conflicts)
			for _, k := range conflicts {
				cf := byKey[fmt.Sprintf("[%d]", k.id)]
				keep := map[string]string{"a": "foo", "b": "bar"}[tc.winner(k)]
				if cf.Resolution == "" || cf.ResolvedAt == nil || !strings.Contains(cf.Resolution, "kept "+keep+"'s row") {
					t.Errorf("conflict %s: resolution %q (at %v), want one that kept %s's row", cf.Key, cf.Resolution, cf.ResolvedAt, keep)
				}
				if tc.policy != tandem.ConflictManual && !strings.Contains(cf.Resolution, tc.policy) {
					t.Errorf("conflict %s: resolution %q does not name the %s policy", cf.Key, cf.Resolution, tc.policy)
				}
			}
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}

			// Every key holds the row the rules say, on both files.
			for _, file := range []string{foo, bar} {
				rows := foItems(t, file)
				for _, k := range keys {
					av, _, aok := foLast(k.a)
					bv, _, bok := foLast(k.b)
					switch {
					case k.conflict() && tc.winner(k) == "a":
						foExpectRow(t, file, rows, k.id, av, "conflict: "+tc.policy+" keeps half A's row")
					case k.conflict():
						foExpectRow(t, file, rows, k.id, bv, "conflict: "+tc.policy+" keeps half B's row")
					case aok:
						foExpectRow(t, file, rows, k.id, av, "written by half A")
					case bok:
						foExpectRow(t, file, rows, k.id, bv, "written by half B")
					}
				}
				for id := int64(1); id <= foBaseline; id++ {
					if !slices.ContainsFunc(keys, func(k foKey) bool { return k.id == id }) {
						foExpectRow(t, file, rows, id, "base", "written by neither half")
					}
				}
			}
			foCheckFiles(t, dir, jepsen.MergeSets(ha, hb), nil)
		})
	}
}

func TestOutdatedNodeIsNotPromotedUnlessForced(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*foPatience)
	defer cancel()
	dir := t.TempDir()
	realCfg, lose, restore := foMounted(t, dir, "tandem.yaml", "")
	noFoo := foConfig(t, dir, "nofoo.yaml", foUnreachable(t, dir, "foo"), "mnt/bar.db", "")
	foo, bar := filepath.Join(dir, "foo.db"), filepath.Join(dir, "bar.db")

	// bar misses writes: its mount is lost while thousands of rows are
	// inserted, in transactions of 500; the view leaves it out.
	c := foOpen(t, realCfg, "the cluster")
	set := jepsen.Set{Workers: 2, Batch: 500, Tag: "missed"}
	if err := set.Setup(ctx, c); err != nil {
		t.Fatal(err)
	}
	run := set.Start(ctx, c)
	foProgress(t, "before bar.db is lost", run, 1000, nil, 0)
	lose["bar"]()
	foWait(t, c, "bar left out", func(st *tandem.Status) bool { return foNode(st, "bar").LeftOut })
	foProgress(t, "while bar.db is lost", run, 4000, nil, 0)
	h1 := run.Stop()
	foNoFailures(t, h1, nil)
	st := foWait(t, c, "bar behind", func(st *tandem.Status) bool { return foNode(st, "bar").Behind > 0 })
	behind := foNode(st, "bar").Behind
	t.Logf("bar misses %d keys", behind)

	// bar's mount returns and catch-up starts. The application stops
	// (Close) while bar is still catching up: the view still leaves it out.
	restore["bar"]()
	foUntil(t, "bar's catch-up started", func() bool {
		st, err := c.Status(ctx)
		return err == nil && foNode(st, "bar").Behind < behind
	})
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	var left int
	if err := faultRO(t, foo).QueryRow("SELECT COUNT(*) FROM _tandem_missed WHERE node = 'bar'").Scan(&left); err != nil {
		t.Fatal(err)
	}
	t.Logf("closed during the catch-up: foo.db still records %d keys bar misses", left)
	if left == 0 {
		t.Fatal("the catch-up finished before Close: the test needs one in progress")
	}

	// foo becomes unreachable. bar, left out, must not take writes.
	c = foOpen(t, noFoo, "the cluster without foo")
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Primary != "foo" || foNode(st, "foo").State != tandem.StateDown || foNode(st, "bar").State != tandem.StateOutdated || !foNode(st, "bar").LeftOut {
		t.Errorf("with foo unreachable and bar left out: want foo the primary and down, bar outdated and left out:\n%s", foTable(st, nil))
	}
	refused := &jepsen.SetItem{ID: 999_999_999, Val: "refused"}
	err = c.Save(ctx, refused)
	if !errors.Is(err, tandem.ErrNodeDown) || !strings.Contains(err.Error(), "promote --force") {
		t.Errorf("write with only an outdated datasource reachable returned %v; want ErrNodeDown naming `promote --force`", err)
	}
	if err := c.Promote(ctx, "bar", false); !errors.Is(err, tandem.ErrOutdated) {
		t.Errorf("Promote(bar) without force returned %v, want ErrOutdated", err)
	}
	if err := c.Save(ctx, refused); !errors.Is(err, tandem.ErrNodeDown) {
		t.Errorf("write after a refused promotion returned %v, want ErrNodeDown", err)
	}
	if got := foItemsSet(t, bar); got[refused.ID] != "" {
		t.Errorf("bar.db holds the refused write %d=%q", refused.ID, got[refused.ID])
	}

	// The operator forces it: bar takes writes.
	if err := c.Promote(ctx, "bar", true); err != nil {
		t.Fatalf("Promote(bar, force): %v", err)
	}
	st = foWait(t, c, "bar the primary after a forced promotion", func(st *tandem.Status) bool { return st.Primary == "bar" })
	if o := foNode(st, "bar").Outdated; o != "" {
		t.Errorf("bar still marked outdated after a forced promotion: %q", o)
	}
	forced := jepsen.Set{Workers: 2, FirstID: 2_000_000_000, Tag: "forced"}.Start(ctx, c)
	foProgress(t, "on bar alone", forced, 50, nil, 0)
	h2 := forced.Stop()
	foNoFailures(t, h2, nil)
	// bar holds what it took alone (and what it had before).
	onBar := *h2
	onBar.Vals = jepsen.MergeSets(h1, h2).Vals
	jepsen.CheckSet(t, &onBar, jepsen.SQLiteNode(t, "bar", bar))
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	// foo returns: what bar missed is not lost, what bar took alone
	// reaches foo, and the databases converge.
	c = foOpen(t, realCfg, "the healed cluster")
	// Once foo misses nothing it takes the writes back (the next round
	// of the health loop after the one that let it rejoin).
	foAssertInSync(t, foWait(t, c, "in sync once foo is back, foo the primary again", func(st *tandem.Status) bool {
		return foInSync(st) && st.Primary == "foo"
	}))
	if list, err := c.Conflicts(ctx, true); err != nil || len(list) > 0 {
		t.Errorf("conflicts after merging disjoint writes: %v %+v", err, list)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	foCheckFiles(t, dir, jepsen.MergeSets(h1, h2), nil)
	for _, f := range []string{foo, bar} {
		if got := foItemsSet(t, f); got[refused.ID] != "" {
			t.Errorf("%s holds the refused write %d=%q", f, refused.ID, got[refused.ID])
		}
	}
}

// foItemsSet reads id -> val of the set workload's table of file directly.
func foItemsSet(t *testing.T, file string) map[int64]string {
	t.Helper()
	got, err := jepsen.SQLiteNode(t, filepath.Base(file), file).Set(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return got
}
