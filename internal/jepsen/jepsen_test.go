package jepsen_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync/atomic"
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

func uniqueNode(name string, rows map[int64]string) jepsen.Node {
	return jepsen.Node{Name: name, Unique: func(context.Context) (map[int64]string, error) { return rows, nil }}
}

func TestCompareUniqueReportsLostMovedAndDivergentRows(t *testing.T) {
	acked := map[string]int64{"a": 1, "b": 2, "c": 3}
	good := map[int64]string{1: "a", 2: "b", 3: "c", 4: "unacknowledged"}
	for _, tc := range []struct {
		name      string
		other     map[int64]string
		lost      []string
		divergent []int64
		problems  []string
	}{
		{"identical", map[int64]string{1: "a", 2: "b", 3: "c", 4: "unacknowledged"}, nil, nil, nil},
		{"missing", map[int64]string{1: "a", 3: "c", 4: "unacknowledged"}, []string{"b"}, []int64{2},
			[]string{"other: 1 acknowledged values missing: b (id 2)", "id 2 differs between nodes"}},
		// Both sides assigned id 3: the other holds another write's value there.
		{"same id, other value", map[int64]string{1: "a", 2: "b", 3: "z", 5: "c", 4: "unacknowledged"}, []string{"c"}, []int64{3, 5},
			[]string{`other: 1 acknowledged values under another id than acknowledged: c (acknowledged id 3, held under 5, where the node holds "z")`,
				`id 3 differs between nodes: good: "c", other: "z"`, "id 5 differs"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := jepsen.CompareUnique(context.Background(), acked, uniqueNode("good", good), uniqueNode("other", tc.other))
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(rep.Lost) != fmt.Sprint(tc.lost) || fmt.Sprint(rep.Divergent) != fmt.Sprint(tc.divergent) {
				t.Errorf("lost %v, divergent %v; want %v, %v", rep.Lost, rep.Divergent, tc.lost, tc.divergent)
			}
			if len(rep.Problems) != len(tc.problems) {
				t.Fatalf("problems %q, want %d", rep.Problems, len(tc.problems))
			}
			for i, p := range tc.problems {
				if !strings.Contains(rep.Problems[i], p) {
					t.Errorf("problem %d %q does not mention %q", i, rep.Problems[i], p)
				}
			}
		})
	}
	t.Run("one id acknowledged twice", func(t *testing.T) {
		rep, err := jepsen.CompareUnique(context.Background(), map[string]int64{"a": 1, "b": 1}, uniqueNode("n", map[int64]string{1: "a"}))
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Problems) != 2 || !strings.Contains(rep.Problems[0], "id 1 acknowledged for 2 values: a, b") || fmt.Sprint(rep.Lost) != "[b]" {
			t.Errorf("problems %q, lost %v", rep.Problems, rep.Lost)
		}
	})
}

func TestUniqueWorkloadAndReadsInTransactionsPassOnAHealthyCluster(t *testing.T) {
	c, path := testcluster.New(t, tandem.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	dir := filepath.Dir(path)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var hooked, observed, reads atomic.Int64
	uniq := jepsen.Unique{Workers: 3, Tag: "w1",
		Acked:   func(jepsen.UniqueItem) error { hooked.Add(1); return nil },
		Observe: func(op jepsen.Op) { observed.Add(1) },
	}
	bank := jepsen.Bank{Accounts: 4, Balance: 50, Readers: 1, ReadInTx: true,
		Observe: func(op jepsen.Op) {
			if op.Kind == jepsen.OpRead && op.Err == nil && op.Problem == "" {
				reads.Add(1)
			}
		},
	}
	if err := uniq.Setup(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := bank.Setup(ctx, c); err != nil {
		t.Fatal(err)
	}
	ur, br := uniq.Start(ctx, c), bank.Start(ctx, c)
	for ur.Acked() < 100 || br.Transfers() < 50 || reads.Load() < 5 {
		if ctx.Err() != nil {
			t.Fatalf("workloads made no progress: %d inserts, %d transfers, %d reads", ur.Acked(), br.Transfers(), reads.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	uh, bh := ur.Stop(), br.Stop()
	if len(uh.Failed) > 0 || len(bh.Failed) > 0 || len(bh.ReadErrors) > 0 {
		t.Errorf("failures on a healthy cluster: %d inserts, %d transfers, %d reads", len(uh.Failed), len(bh.Failed), len(bh.ReadErrors))
	}
	if hooked.Load() != int64(len(uh.Acked)) || observed.Load() != int64(len(uh.Acked)+len(uh.Failed)) {
		t.Errorf("hooks saw %d acknowledgements and %d inserts; the history holds %d and %d", hooked.Load(), observed.Load(), len(uh.Acked), len(uh.Acked)+len(uh.Failed))
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	nodes := []jepsen.Node{
		jepsen.SQLiteNode(t, "foo", filepath.Join(dir, "foo.db")),
		jepsen.SQLiteNode(t, "bar", filepath.Join(dir, "bar.db")),
	}
	jepsen.CheckUnique(t, uh, nodes...)
	jepsen.CheckBank(t, bh, nodes...)
}
