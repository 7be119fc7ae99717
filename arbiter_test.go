package tandem_test

// The arbiters a cluster's view lives in, seen through a cluster: the
// processes must share one config, and an etcd cluster holds the view
// across machines.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tandemdb/tandem"
	_ "github.com/tandemdb/tandem/arbiter/etcd"
	"github.com/tandemdb/tandem/internal/dbserver"
	"github.com/tandemdb/tandem/internal/testcluster"
)

// A process whose config ranks the datasources otherwise than the view
// the others share is refused, with both orders named; nothing is written.
func TestProcessWithAnotherRankingIsRefused(t *testing.T) {
	path := testcluster.Config(t) // foo, bar
	c := testcluster.Open(t, path, faultQuietLogs())
	if err := c.Migrate(context.Background(), &FaultItem{}); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(path)
	other := filepath.Join(dir, "other.yaml")
	cfg := "primary: bar\ndatasources:\n  - {name: foo, driver: sqlite, dsn: foo.db}\n  - {name: bar, driver: sqlite, dsn: bar.db}\n"
	if err := os.WriteFile(other, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	loaded, err := tandem.LoadConfig(other)
	if err != nil {
		t.Fatal(err)
	}
	_, err = tandem.Open(context.Background(), loaded, faultQuietLogs())
	if !errors.Is(err, tandem.ErrConfig) || !strings.Contains(err.Error(), "ranks bar, foo") || !strings.Contains(err.Error(), "ranks foo, bar") {
		t.Fatalf("Open with the datasources ranked otherwise: %v; want ErrConfig naming both orders", err)
	}
	if got := faultRows(t, filepath.Join(dir, "bar.db")); len(got) != 0 {
		t.Errorf("bar.db holds %v after a refused Open", got)
	}
}

// With the view in a 3-member etcd cluster: the primary's lost mount hands
// the writes to bar through etcd; a member killed meanwhile changes
// nothing for the writers; foo returns, catches up and takes the writes
// back.
func TestEtcdArbiterFailsOverAndSurvivesAMemberLoss(t *testing.T) {
	etcd := dbserver.StartEtcd(t, 3)
	dir := t.TempDir()
	eps := `"` + strings.Join(etcd.Endpoints(), `", "`) + `"`
	arb := fmt.Sprintf("arbiter: {kind: etcd, endpoints: [%s], key: /tandem/test, request_timeout: 2s}\n", eps)
	ctx, cancel := context.WithTimeout(context.Background(), 2*foPatience)
	defer cancel()
	c, st, lose, restore := arbCluster(ctx, t, dir, arb)
	if !strings.HasPrefix(st.Arbiter, "etcd ") || st.Failover != "automatic, through the arbiter" {
		t.Fatalf("status: arbiter %q, failover %q; want etcd, automatic", st.Arbiter, st.Failover)
	}
	id := int64(0)
	save := func(what string, n int) {
		t.Helper()
		for range n {
			id++
			if err := c.Save(ctx, &FaultItem{ID: id, Name: what}); err != nil {
				t.Fatalf("save %d %s: %v", id, what, err)
			}
		}
	}
	save("before", 10)
	lose["foo"]()
	foWait(t, c, "bar the primary", func(st *tandem.Status) bool { return st.Primary == "bar" })
	save("foo lost", 10)
	if err := etcd.Member(0).Kill(); err != nil {
		t.Fatal(err)
	}
	save("foo lost, an etcd member killed", 10)
	restore["foo"]()
	foWait(t, c, "foo caught up and the primary again", func(st *tandem.Status) bool { return foInSync(st) && st.Primary == "foo" })
	save("after", 10)
	arbClosedWhole(t, c, dir, id)
}

// Without an arbiter the view lives in the primary's database: a lost
// secondary is still left out and caught up, but the primary's loss stops
// writes until an operator promotes another datasource.
func TestWithoutAnArbiterOnlyPromoteChangesThePrimary(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*foPatience)
	defer cancel()
	c, st, lose, restore := arbCluster(ctx, t, dir, "arbiter: none\n")
	if !strings.Contains(st.Failover, "only by `tandem promote`") {
		t.Fatalf("status: failover %q, want only by tandem promote", st.Failover)
	}
	id := int64(0)
	save := func(what string) error {
		id++
		return c.Save(ctx, &FaultItem{ID: id, Name: what})
	}
	// A lost secondary: left out, writes go on, it catches up.
	lose["bar"]()
	foWait(t, c, "bar left out", func(st *tandem.Status) bool { return foNode(st, "bar").LeftOut })
	for range 5 {
		if err := save("bar lost"); err != nil {
			t.Fatal(err)
		}
	}
	restore["bar"]()
	foWait(t, c, "bar back in sync", foInSync)

	// The primary lost: writes stop, naming the way out.
	lose["foo"]()
	foWait(t, c, "foo down", func(st *tandem.Status) bool { return foNode(st, "foo").State == tandem.StateDown })
	err := save("refused")
	if !errors.Is(err, tandem.ErrNodeDown) || !strings.Contains(err.Error(), "tandem promote") {
		t.Fatalf("save with the primary lost and no arbiter: %v; want ErrNodeDown naming tandem promote", err)
	}
	id-- // not written
	if st, _ := c.Status(ctx); st == nil || st.Primary != "foo" {
		t.Fatalf("the primary changed without an operator: %+v", st)
	}
	// The operator promotes bar: writes go on.
	if err := c.Promote(ctx, "bar", false); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if err := save("bar promoted"); err != nil {
			t.Fatal(err)
		}
	}
	restore["foo"]()
	st = foWait(t, c, "foo back in sync", foInSync)
	if st.Primary != "bar" {
		t.Errorf("primary %q after foo returned; want bar: without an arbiter only promote changes it", st.Primary)
	}
	arbClosedWhole(t, c, dir, id)
}

// arbCluster opens a cluster of foo and bar behind mounts in dir
// (foMounted) with the arbiter YAML arb, migrates FaultItem and returns
// its first status.
func arbCluster(ctx context.Context, t *testing.T, dir, arb string) (*tandem.Cluster, *tandem.Status, map[string]func(), map[string]func()) {
	t.Helper()
	path, lose, restore := foMounted(t, dir, "tandem.yaml", arb)
	c := foOpen(t, path, "the cluster")
	if err := c.Migrate(ctx, &FaultItem{}); err != nil {
		t.Fatal(err)
	}
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return c, st, lose, restore
}

// arbClosedWhole closes c and checks the pair it wrote: foo.db holds the
// rows saved (ids 1..rows), both files hold the same rows, and no intent
// or missed-key record is left.
func arbClosedWhole(t *testing.T, c *tandem.Cluster, dir string, rows int64) {
	t.Helper()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if got := len(faultRows(t, filepath.Join(dir, "foo.db"))); got != int(rows) {
		t.Errorf("foo.db holds %d rows, want %d", got, rows)
	}
	faultSameDumps(t, dir)
	faultNoRecords(t, dir)
}
