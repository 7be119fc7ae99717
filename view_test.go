package tandem_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tandemdb/tandem"
	"github.com/tandemdb/tandem/internal/testcluster"
)

// stateConfig writes a config of foo (primary) and bar with a short
// timeout and health interval, and returns its path.
func stateConfig(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tandem.yaml")
	cfg := "timeout: 300ms\nhealth_interval: 50ms\ndatasources:\n" +
		"  - {name: foo, driver: sqlite, dsn: foo.db}\n  - {name: bar, driver: sqlite, dsn: bar.db}\n"
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// stateMounted writes a config of foo (primary) and bar, and baz too with
// three, each file behind a mount that the test can lose (faultMount); it
// returns the config's path, the directory holding the files (NAME.db),
// and each datasource's lose and restore.
func stateMounted(t *testing.T, names ...string) (path, disks string, lose, restore map[string]func()) {
	t.Helper()
	if len(names) == 0 {
		names = []string{"foo", "bar"}
	}
	dir := t.TempDir()
	lose, restore = map[string]func(){}, map[string]func(){}
	cfg := "timeout: 300ms\nhealth_interval: 50ms\ndatasources:\n"
	for _, n := range names {
		dsn, l, r := faultMount(t, dir, n)
		lose[n], restore[n] = l, r
		cfg += fmt.Sprintf("  - {name: %s, driver: sqlite, dsn: %s}\n", n, dsn)
	}
	path = filepath.Join(dir, "tandem.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, dir, lose, restore
}

// nodeState returns the status of the datasource called name.
func nodeState(t *testing.T, st *tandem.Status, name string) tandem.NodeStatus {
	t.Helper()
	for _, n := range st.Nodes {
		if n.Name == name {
			return n
		}
	}
	t.Fatalf("status has no datasource %s", name)
	return tandem.NodeStatus{}
}

// waitHealthy polls c's status until every datasource is in sync.
func waitHealthy(ctx context.Context, t *testing.T, c *tandem.Cluster) {
	t.Helper()
	for {
		st, err := c.Status(ctx)
		if err == nil && st.Healthy() {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("not in sync in time: %+v (err %v)", st, err)
		}
		if st != nil && os.Getenv("TANDEM_TEST_LOGS") != "" {
			st.WriteTable(os.Stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A process that starts while another has written around a datasource
// learns from the cluster's view and the databases alone which datasource
// is primary and which is behind: nothing of the first process's memory
// is needed.
func TestProcessesAgreeOnPrimaryAndBehindFromDatabaseState(t *testing.T) {
	for _, tc := range []struct {
		lost, wantPrimary string
	}{
		{lost: "bar", wantPrimary: "foo"}, // a secondary missed writes
		{lost: "foo", wantPrimary: "bar"}, // the primary missed writes: bar took over
	} {
		t.Run(tc.lost+" lost", func(t *testing.T) {
			path, dir, lose, restore := stateMounted(t)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			first := testcluster.Open(t, path, faultQuietLogs())
			if err := first.Migrate(ctx, &FaultItem{}); err != nil {
				t.Fatal(err)
			}
			lose[tc.lost]()
			faultWaitState(ctx, t, first, tc.lost, tandem.StateDown)
			const n = 20
			for i := 1; i <= n; i++ {
				if err := first.Save(ctx, &FaultItem{ID: int64(i), Name: fmt.Sprint("first ", i)}); err != nil {
					t.Fatalf("save %d with %s lost: %v", i, tc.lost, err)
				}
			}

			// A second process, started now, sees the same cluster.
			second := testcluster.Open(t, path, faultQuietLogs())
			st, err := second.Status(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if st.Primary != tc.wantPrimary {
				t.Errorf("second process: primary %q, want %q", st.Primary, tc.wantPrimary)
			}
			if ns := nodeState(t, st, tc.lost); ns.State == tandem.StateInSync || ns.Behind != n {
				t.Errorf("second process: %s is %q, behind %d; want not in sync, behind %d", tc.lost, ns.State, ns.Behind, n)
			}
			// Its writes also go around the lost datasource, and never fail.
			for i := n + 1; i <= 2*n; i++ {
				if err := second.Save(ctx, &FaultItem{ID: int64(i), Name: fmt.Sprint("second ", i)}); err != nil {
					t.Fatalf("second process: save %d with %s lost: %v", i, tc.lost, err)
				}
			}

			restore[tc.lost]()
			waitHealthy(ctx, t, first)
			waitHealthy(ctx, t, second)
			for _, c := range []*tandem.Cluster{first, second} {
				st, err := c.Status(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if st.Primary != "foo" {
					t.Errorf("after catch-up: primary %q, want foo (first in rank)", st.Primary)
				}
			}
			if err := first.Close(); err != nil {
				t.Fatal(err)
			}
			if err := second.Close(); err != nil {
				t.Fatal(err)
			}
			if got := len(faultRows(t, filepath.Join(dir, "bar.db"))); got != 2*n {
				t.Errorf("bar.db holds %d rows, want %d", got, 2*n)
			}
			faultSameDumps(t, dir)
			faultNoRecords(t, dir)
		})
	}
}

// A datasource that missed writes which only an unreachable database holds
// does not take over: the view leaves it out until it has caught up, or
// until an operator forces it. The keys both sides then
// changed are listed as conflicts when the other returns.
func TestNodeBehindAnUnreachableDatabaseTakesNoWritesUnlessForced(t *testing.T) {
	path, dir, lose, restore := stateMounted(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := testcluster.Open(t, path, faultQuietLogs())
	if err := c.Migrate(ctx, &FaultItem{}); err != nil {
		t.Fatal(err)
	}
	for i := int64(1); i <= 3; i++ {
		if err := c.Save(ctx, &FaultItem{ID: i, Name: "both"}); err != nil {
			t.Fatal(err)
		}
	}

	// foo is lost: bar takes the writes, recording what foo misses.
	lose["foo"]()
	faultWaitState(ctx, t, c, "foo", tandem.StateDown)
	for _, it := range []FaultItem{{1, "bar alone"}, {2, "bar alone"}} {
		if err := c.Save(ctx, &it); err != nil {
			t.Fatalf("save with foo lost: %v", err)
		}
	}
	for {
		st, err := c.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if nodeState(t, st, "foo").Behind == 2 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("foo never reported behind by 2: %+v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// bar is lost too, then foo returns: foo is behind bar, which cannot
	// be reached, so foo must not take writes.
	lose["bar"]()
	faultWaitState(ctx, t, c, "bar", tandem.StateDown)
	if err := c.Save(ctx, &FaultItem{ID: 9, Name: "nowhere"}); err == nil {
		t.Fatal("save with both files lost succeeded")
	}
	restore["foo"]()
	var err error
	for {
		err = c.Save(ctx, &FaultItem{ID: 3, Name: "foo alone"})
		st, _ := c.Status(ctx)
		if st != nil && nodeState(t, st, "foo").State != tandem.StateDown {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("foo not reachable again: %+v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	err = c.Save(ctx, &FaultItem{ID: 3, Name: "foo alone"})
	if !errors.Is(err, tandem.ErrNodeDown) || !strings.Contains(err.Error(), "promote --force foo") {
		t.Fatalf("save while foo misses writes only bar holds: err = %v, want ErrNodeDown naming `promote --force foo`", err)
	}
	if got := faultRows(t, filepath.Join(dir, "foo.db")); !slices.Equal(got, []string{"1=both", "2=both", "3=both"}) {
		t.Errorf("foo.db changed while it could not take writes: %v", got)
	}

	// The operator forces foo: it takes writes.
	if err := c.Promote(ctx, "foo", true); err != nil {
		t.Fatal(err)
	}
	for _, it := range []FaultItem{{2, "foo alone"}, {3, "foo alone"}} {
		if err := c.Save(ctx, &it); err != nil {
			t.Fatalf("save after promote --force: %v", err)
		}
	}

	// bar returns: key 1 only bar changed (copied to foo), key 3 only foo
	// (copied to bar), key 2 both: a conflict, kept on both sides.
	restore["bar"]()
	var conflicts []tandem.Conflict
	for {
		conflicts, err = c.Conflicts(ctx, false)
		if err != nil {
			t.Fatal(err)
		}
		if len(conflicts) > 0 {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("no conflict found after bar returned")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(conflicts) != 1 || conflicts[0].Key != "[2]" {
		t.Fatalf("conflicts %+v, want exactly key [2]", conflicts)
	}
	if n, err := c.Resolve(ctx, "", "", "foo"); err != nil || n != 1 {
		t.Fatalf("resolve: %d, %v", n, err)
	}
	waitHealthy(ctx, t, c)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	want := []string{"1=bar alone", "2=foo alone", "3=foo alone"}
	for _, f := range []string{"foo.db", "bar.db"} {
		if got := faultRows(t, filepath.Join(dir, f)); !slices.Equal(got, want) {
			t.Errorf("%s holds %v, want %v", f, got, want)
		}
	}
	faultSameDumps(t, dir)
	faultNoRecords(t, dir)
}

// A datasource that cannot be reached when the application starts, and
// then appears as an empty database (a mount comes back), is initialised,
// given the tables Migrate made meanwhile, and caught up with every row
// written while it was away.
func TestDatasourceDownAtStartIsCreatedMigratedAndCaughtUp(t *testing.T) {
	dir := t.TempDir()
	link := filepath.Join(dir, "bar.db")
	if err := os.Symlink(filepath.Join(dir, "mnt", "bar.db"), link); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "tandem.yaml")
	cfg := "timeout: 300ms\nhealth_interval: 50ms\ndatasources:\n" +
		"  - {name: foo, driver: sqlite, dsn: foo.db}\n  - {name: bar, driver: sqlite, dsn: bar.db}\n"
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := testcluster.Open(t, path, faultQuietLogs())
	if err := c.Migrate(ctx, &FaultItem{}); err != nil {
		t.Fatalf("migrate with bar unreachable: %v", err)
	}
	for i := int64(1); i <= 50; i++ {
		if err := c.Save(ctx, &FaultItem{ID: i, Name: fmt.Sprint("row ", i)}); err != nil {
			t.Fatalf("save %d with bar unreachable: %v", i, err)
		}
	}
	if err := c.Delete(ctx, &FaultItem{ID: 7}); err != nil {
		t.Fatal(err)
	}
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ns := nodeState(t, st, "bar"); ns.State != tandem.StateDown {
		t.Errorf("bar with its directory missing: state %q, want down", ns.State)
	}

	// The mount returns with an empty file (the SQLite driver does not
	// create a database through a dangling symbolic link).
	if err := os.Mkdir(filepath.Join(dir, "mnt"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "mnt", "bar.db"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitHealthy(ctx, t, c)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if got := len(faultRows(t, filepath.Join(dir, "mnt", "bar.db"))); got != 49 {
		t.Errorf("bar.db holds %d rows, want 49", got)
	}
	faultSameDumps(t, dir)
	faultNoRecords(t, dir)
}

// With three datasources, losing any one leaves writes going to the other
// two, and each returns and catches up; the primary's loss hands writes to
// the next in rank, which still mirrors them to the third.
func TestThreeDatasourcesSurviveTheLossOfEach(t *testing.T) {
	path, dir, lose, restore := stateMounted(t, "foo", "bar", "baz")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	c := testcluster.Open(t, path, faultQuietLogs())
	if err := c.Migrate(ctx, &FaultItem{}); err != nil {
		t.Fatal(err)
	}
	id := int64(0)
	for _, lost := range []string{"baz", "bar", "foo"} {
		lose[lost]()
		faultWaitState(ctx, t, c, lost, tandem.StateDown)
		for range 30 {
			id++
			if err := c.Save(ctx, &FaultItem{ID: id, Name: "without " + lost}); err != nil {
				t.Fatalf("save %d with %s lost: %v", id, lost, err)
			}
		}
		st, err := c.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if want := map[bool]string{true: "bar", false: "foo"}[lost == "foo"]; st.Primary != want {
			t.Errorf("%s lost: primary %q, want %q", lost, st.Primary, want)
		}
		for _, ns := range st.Nodes {
			if ns.Name != lost && ns.State != tandem.StateInSync {
				t.Errorf("%s lost: %s is %q, want in sync", lost, ns.Name, ns.State)
			}
		}
		restore[lost]()
		waitHealthy(ctx, t, c)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	d := testcluster.DumpDir(t, dir, "foo", "bar", "baz")
	if d[0] != d[1] || d[0] != d[2] {
		t.Errorf("the three files differ:\nfoo:\n%s\nbar:\n%s\nbaz:\n%s", d[0], d[1], d[2])
	}
	if got := len(faultRows(t, filepath.Join(dir, "baz.db"))); got != int(id) {
		t.Errorf("baz.db holds %d rows, want %d", got, id)
	}
	for _, f := range []string{"foo.db", "bar.db", "baz.db"} {
		var missed int
		if err := faultRO(t, filepath.Join(dir, f)).QueryRow(`SELECT COUNT(*) FROM _tandem_missed`).Scan(&missed); err != nil || missed > 0 {
			t.Errorf("%s: %d missed-key records left (%v)", f, missed, err)
		}
	}
}
