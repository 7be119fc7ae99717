package tandem_test

// Verify on a live cluster: rows a write has committed on one database and
// not yet on the other are not differences.

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/tandemdb/tandem"
	"github.com/tandemdb/tandem/internal/testcluster"
	"github.com/tandemdb/tandem/verify"
)

// TestVerifyNamesWhatABehindDatabaseMissesAndNothingOnceCaughtUp runs
// Verify on a live cluster: after bar's mount was lost, and while its
// catch-up waits for a lock another process holds, its missed rows are
// named, each as missing or changed; once bar has caught up, with writers
// still going, Verify finds the copies identical (a row in flight between
// the two commits is read again, not reported).
func TestVerifyNamesWhatABehindDatabaseMissesAndNothingOnceCaughtUp(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*foPatience)
	defer cancel()
	dir := t.TempDir()
	cfg, lose, restore := foMounted(t, dir, "tandem.yaml", "")
	c := foOpen(t, cfg, "the cluster")
	if err := c.Migrate(ctx, &FailoverItem{}); err != nil {
		t.Fatal(err)
	}
	for id := int64(1); id <= 100; id++ {
		if err := c.Save(ctx, &FailoverItem{ID: id, Val: "base", UpdatedAt: foEpoch}); err != nil {
			t.Fatal(err)
		}
	}
	lose["bar"]()
	foWait(t, c, "bar left out", func(st *tandem.Status) bool { return foNode(st, "bar").LeftOut })
	for id := int64(51); id <= 120; id++ { // 50 changed, 20 new
		if err := c.Save(ctx, &FailoverItem{ID: id, Val: "while bar is lost", UpdatedAt: foEpoch}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Delete(ctx, &FailoverItem{ID: 1}); err != nil {
		t.Fatal(err)
	}
	// bar's mount returns, but its catch-up waits for a lock another
	// connection holds: bar stays behind while Verify reads it.
	release := faultHoldLock(t, filepath.Join(dir, "bar.db"))
	restore["bar"]()
	rep := testcluster.Verify(t, cfg)
	var want []string
	want = append(want, "failover_item extra id=1")
	for id := 51; id <= 120; id++ {
		if id <= 100 {
			want = append(want, fmt.Sprintf("failover_item changed id=%d val", id))
		} else {
			want = append(want, fmt.Sprintf("failover_item missing id=%d", id))
		}
	}
	testcluster.SameLines(t, "while bar is behind", testcluster.Diffs(rep), want)

	// Writers go on while bar returns and catches up, and while Verify runs.
	stop := make(chan struct{})
	done := make(chan error)
	go func() {
		var err error
		for i := int64(0); err == nil; i++ {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			err = c.Save(ctx, &FailoverItem{ID: 1000 + i%50, Val: fmt.Sprint(i), UpdatedAt: foEpoch})
		}
		done <- err
	}()
	release()
	foWait(t, c, "bar caught up", func(st *tandem.Status) bool { return foNode(st, "bar").State == tandem.StateInSync })
	for range 3 {
		if rep := testcluster.Verify(t, cfg); !rep.Identical {
			t.Errorf("caught up, under writes: %v", testcluster.Diffs(rep))
		}
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if rep := testcluster.Verify(t, cfg); !rep.Identical {
		t.Errorf("caught up, writes stopped: %v", testcluster.Diffs(rep))
	}
}

// TestVerifyWaitsForAWriteBetweenItsCommits runs Verify while a write has
// committed on foo and not yet on bar (held there by the commit hook for
// 300 ms): the row differs, but its intent record says the write is in
// flight, so Verify reads it again until the write has committed on bar,
// and finds the copies identical.
func TestVerifyWaitsForAWriteBetweenItsCommits(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cfg := foConfig(t, dir, "tandem.yaml", "foo.db", "bar.db", "")
	c := foOpen(t, cfg, "the cluster")
	if err := c.Migrate(ctx, &FailoverItem{}); err != nil {
		t.Fatal(err)
	}
	for id := int64(1); id <= 10; id++ {
		if err := c.Save(ctx, &FailoverItem{ID: id, Val: "base", UpdatedAt: foEpoch}); err != nil {
			t.Fatal(err)
		}
	}
	type result struct {
		rep            *verify.Report
		err            error
		onFoo, onBar   int
		verifyTookLong bool
	}
	done := make(chan result, 1)
	tandem.SetCommitHook(c, func(string) {
		r := result{onFoo: testcluster.Count(t, filepath.Join(dir, "foo.db"), "failover_item"), onBar: testcluster.Count(t, filepath.Join(dir, "bar.db"), "failover_item")}
		go func() {
			start := time.Now()
			r.rep, r.err = verify.Compare(ctx, testcluster.LoadConfig(t, cfg), verify.Options{})
			r.verifyTookLong = time.Since(start) > 200*time.Millisecond
			done <- r
		}()
		time.Sleep(300 * time.Millisecond)
	})
	if err := c.Save(ctx, &FailoverItem{ID: 11, Val: "in flight", UpdatedAt: foEpoch}); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.onFoo != 11 || r.onBar != 10 {
		t.Fatalf("in the commit hook: %d rows on foo, %d on bar; want 11 and 10", r.onFoo, r.onBar)
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	if !r.rep.Identical {
		t.Errorf("verify during the write: %v", testcluster.Diffs(r.rep))
	}
	if !r.verifyTookLong {
		t.Errorf("verify returned before the write committed on bar")
	}
}
