package jepsen_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tandemdb/tandem"
	"github.com/tandemdb/tandem/internal/jepsen"
	"github.com/tandemdb/tandem/internal/testcluster"
)

// recorder collects what a checker reports instead of failing the test.
type recorder struct {
	testing.TB
	errs []string
}

func (r *recorder) Helper()                      {}
func (r *recorder) Logf(string, ...any)          {}
func (r *recorder) Errorf(f string, args ...any) { r.errs = append(r.errs, fmt.Sprintf(f, args...)) }

// expect fails t unless the recorder got exactly one error per entry of
// want, each containing every string of its entry.
func (r *recorder) expect(t *testing.T, want ...[]string) {
	t.Helper()
	if len(r.errs) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%s", len(r.errs), len(want), strings.Join(r.errs, "\n"))
	}
	for i, parts := range want {
		for _, p := range parts {
			if !strings.Contains(r.errs[i], p) {
				t.Errorf("error %d %q does not mention %q", i, r.errs[i], p)
			}
		}
	}
}

func setNode(name string, rows map[int64]string) jepsen.Node {
	return jepsen.Node{Name: name, Set: func(context.Context) (map[int64]string, error) { return rows, nil }}
}

func bankNode(name string, bal map[int64]int64) jepsen.Node {
	return jepsen.Node{Name: name, Balances: func(context.Context) (map[int64]int64, error) { return bal, nil }}
}

func TestCheckSetReportsLostWrongAndNeverAttemptedIDs(t *testing.T) {
	h := &jepsen.SetHistory{
		Acked:  map[int64]string{1: "s-1", 2: "s-2", 3: "s-3"},
		Failed: map[int64]error{4: errors.New("timeout")},
		Vals:   map[int64]string{1: "s-1", 2: "s-2", 3: "s-3", 4: "s-4"},
	}
	for _, tc := range []struct {
		node jepsen.Node
		want [][]string
	}{
		// A failed write may or may not have landed.
		{setNode("good", map[int64]string{1: "s-1", 2: "s-2", 3: "s-3", 4: "s-4"}), nil},
		{setNode("good-without-failed", map[int64]string{1: "s-1", 2: "s-2", 3: "s-3"}), nil},
		{setNode("lossy", map[int64]string{1: "s-1", 3: "s-3"}), [][]string{{"lossy", "1 of 3 acknowledged ids missing", "[2]"}}},
		{setNode("phantom", map[int64]string{1: "s-1", 2: "s-2", 3: "s-3", 99: "s-99"}), [][]string{{"phantom", "never attempted", "[99]"}}},
		{setNode("stale", map[int64]string{1: "s-1", 2: "other", 3: "s-3", 4: "other"}), [][]string{
			{"stale", "acknowledged ids hold a value other than the one written", "[2]"},
			{"stale", "hold a value never written", "[2 4]"},
		}},
	} {
		t.Run(tc.node.Name, func(t *testing.T) {
			r := &recorder{TB: t}
			jepsen.CheckSet(r, h, tc.node)
			r.expect(t, tc.want...)
		})
	}
	t.Run("nothing acknowledged", func(t *testing.T) {
		r := &recorder{TB: t}
		jepsen.CheckSet(r, &jepsen.SetHistory{}, setNode("empty", nil))
		r.expect(t, []string{"no insert was acknowledged"})
	})
}

func TestCheckBankReportsWrongTotalsMissingAndNegativeAccounts(t *testing.T) {
	h := &jepsen.BankHistory{Accounts: 3, Total: 300, Transfers: 10, Reads: 10}
	for _, tc := range []struct {
		node jepsen.Node
		want [][]string
	}{
		{bankNode("good", map[int64]int64{1: 0, 2: 120, 3: 180}), nil},
		{bankNode("rich", map[int64]int64{1: 100, 2: 120, 3: 180}), [][]string{{"rich", "total 400, want 300", "1:100 2:120 3:180"}}},
		{bankNode("short", map[int64]int64{1: 300}), [][]string{{"short", "account 2 missing", "account 3 missing"}}},
		{bankNode("overdrawn", map[int64]int64{1: -20, 2: 140, 3: 180}), [][]string{{"overdrawn", "account 1 negative (-20)"}}},
	} {
		t.Run(tc.node.Name, func(t *testing.T) {
			r := &recorder{TB: t}
			jepsen.CheckBank(r, h, tc.node)
			r.expect(t, tc.want...)
		})
	}
	t.Run("bad reads and no work", func(t *testing.T) {
		r := &recorder{TB: t}
		jepsen.CheckBank(r, &jepsen.BankHistory{Accounts: 3, Total: 300, BadReads: []string{"read 1: total 290, want 300"}})
		r.expect(t, []string{"no transfer"}, []string{"no read"}, []string{"total 290"})
	})
}

func TestWorkloadsPassTheirChecksOnAHealthyCluster(t *testing.T) {
	c, path := testcluster.New(t, tandem.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	dir := filepath.Dir(path)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	set := jepsen.Set{Workers: 3, Batch: 2}
	bank := jepsen.Bank{Accounts: 4, Balance: 50}
	if err := set.Setup(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := bank.Setup(ctx, c); err != nil {
		t.Fatal(err)
	}
	sr, br := set.Start(ctx, c), bank.Start(ctx, c)
	for sr.Acked() < 100 || br.Transfers() < 50 {
		if ctx.Err() != nil {
			t.Fatalf("workloads made no progress: %d inserts, %d transfers", sr.Acked(), br.Transfers())
		}
		time.Sleep(10 * time.Millisecond)
	}
	sh, bh := sr.Stop(), br.Stop()
	if len(sh.Failed) > 0 || len(bh.Failed) > 0 || len(bh.ReadErrors) > 0 {
		t.Errorf("failures on a healthy cluster: %d inserts, %d transfers, %d reads", len(sh.Failed), len(bh.Failed), len(bh.ReadErrors))
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	nodes := []jepsen.Node{
		jepsen.SQLiteNode(t, "foo", filepath.Join(dir, "foo.db")),
		jepsen.SQLiteNode(t, "bar", filepath.Join(dir, "bar.db")),
	}
	jepsen.CheckSet(t, sh, nodes...)
	jepsen.CheckBank(t, bh, nodes...)
}
