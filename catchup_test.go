package tandem_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tandemdb/tandem"
	"github.com/tandemdb/tandem/internal/testcluster"
)

// MovedEmail has a unique column whose values move between rows.
type MovedEmail struct {
	ID    int64  `tandem:"id,pk"`
	Email string `tandem:"email,size=64,unique"`
}

func (MovedEmail) TableName() string { return "moved_email" }

// movedPair opens the SQLite pair with rows (id → email) saved on both
// files, then leaves bar out of the writes, as a lost secondary is.
func movedPair(t *testing.T, rows map[int64]string) (*tandem.Cluster, string) {
	t.Helper()
	ctx := context.Background()
	c, path := testcluster.New(t, faultQuietLogs())
	if err := c.Migrate(ctx, &MovedEmail{}); err != nil {
		t.Fatal(err)
	}
	for id, email := range rows {
		if err := c.Save(ctx, &MovedEmail{ID: id, Email: email}); err != nil {
			t.Fatal(err)
		}
	}
	tandem.MarkDown(c, "bar")
	return c, filepath.Dir(path)
}

func movedExec(t *testing.T, file, q string) {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+file+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(q); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// TestCatchUpConvergesOnUniqueValuesMovedBetweenRows: while bar is left
// out, acknowledged saves move a unique value from one row to another,
// swap two, and cycle three. Catch-up copies them in key order, where
// each key's new value is still held by bar's stale row of a later key.
// An earlier version rolled the batch back and retried it every round for
// ever, bar outdated and the error only in the log.
func TestCatchUpConvergesOnUniqueValuesMovedBetweenRows(t *testing.T) {
	ctx := context.Background()
	c, dir := movedPair(t, map[int64]string{1: "x", 2: "a", 3: "s1", 4: "s2", 5: "c1", 6: "c2", 7: "c3"})
	for _, it := range []MovedEmail{
		{2, "b"}, {1, "a"}, // moved: the scenario
		{3, "tmp"}, {4, "s1"}, {3, "s2"}, // swapped
		{5, "tmp"}, {7, "c1"}, {6, "c3"}, {5, "c2"}, // cycled
	} {
		if err := c.Save(ctx, &it); err != nil {
			t.Fatalf("save %+v: %v", it, err)
		}
	}
	st := foWait(t, c, "bar caught up", foInSync)
	if n := foNode(st, "bar"); n.CopyRefused != 0 {
		t.Errorf("bar: %d copies refused (%s), want none", n.CopyRefused, n.CopyError)
	}
	if err := c.Close(); err != nil { // clears the records of writes committed everywhere
		t.Fatal(err)
	}
	faultSameDumps(t, dir)
	faultNoRecords(t, dir)
}

// TestCatchUpShowsACopyItCannotMake: bar holds a row foo lacks (written
// around tandem) with the unique value a missed key now has. Catch-up
// cannot copy that key: status, the metrics and the events say so, the
// other keys are copied, and once the row is removed the key is copied
// too.
func TestCatchUpShowsACopyItCannotMake(t *testing.T) {
	ctx := context.Background()
	c, dir := movedPair(t, map[int64]string{1: "x"})
	movedExec(t, filepath.Join(dir, "bar.db"), "INSERT INTO moved_email (id, email) VALUES (9, 'a')")
	for _, it := range []MovedEmail{{1, "a"}, {2, "b"}} {
		if err := c.Save(ctx, &it); err != nil {
			t.Fatalf("save %+v: %v", it, err)
		}
	}
	st := foWait(t, c, "bar's catch-up refused a key", func(st *tandem.Status) bool { return foNode(st, "bar").CopyRefused > 0 })
	bar := foNode(st, "bar")
	if bar.CopyRefused != 1 || !strings.Contains(bar.CopyError, "moved_email [1]") || bar.State == tandem.StateInSync || st.Healthy() {
		t.Errorf("bar: state %s, %d copies refused (%q); want 1, naming moved_email [1], and not in sync", bar.State, bar.CopyRefused, bar.CopyError)
	}
	var b strings.Builder
	if err := c.WritePrometheus(ctx, &b); err != nil || !strings.Contains(b.String(), `tandem_copy_refused{node="bar"} 1`) {
		t.Errorf("metrics lack tandem_copy_refused{node=\"bar\"} 1 (%v):\n%s", err, b.String())
	}
	found := false
	for _, e := range c.Events() {
		found = found || e.Kind == tandem.EventCopyRefused && e.Node == "bar"
	}
	if !found {
		t.Errorf("no %q event for bar in %v", tandem.EventCopyRefused, c.Events())
	}
	if got := testcluster.Count(t, filepath.Join(dir, "bar.db"), "moved_email"); got != 3 {
		t.Errorf("bar holds %d rows, want 3: key 2 copied, key 1 left as it was, row 9", got)
	}

	movedExec(t, filepath.Join(dir, "bar.db"), "DELETE FROM moved_email WHERE id = 9")
	st = foWait(t, c, "bar caught up once row 9 is gone", foInSync)
	if n := foNode(st, "bar"); n.CopyRefused != 0 || n.CopyError != "" {
		t.Errorf("bar after the repair: %d copies refused (%q), want none", n.CopyRefused, n.CopyError)
	}
	faultSameDumps(t, dir)
}
