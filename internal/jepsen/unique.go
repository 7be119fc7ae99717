package jepsen

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandemdb/tandem"
)

// UniqueTable is the table of the unique workload's model.
const UniqueTable = "jepsen_unique"

// UniqueItem is the row the unique workload inserts: the primary assigns
// its id, and its value is never written twice.
type UniqueItem struct {
	ID  int64  `tandem:"id,pk,auto"`
	Val string `tandem:"val,size=64,unique"`
}

// TableName implements tandem's table naming.
func (UniqueItem) TableName() string { return UniqueTable }

// The kinds of Op.
const (
	OpInsert   = "insert"
	OpTransfer = "transfer"
	OpRead     = "read"
)

// Op is one operation of a workload, as its Observe hook sees it.
type Op struct {
	Kind  string // OpInsert, OpTransfer or OpRead
	Start time.Time
	Took  time.Duration
	// Err is nil when the operation was acknowledged.
	Err error
	// Problem describes what was wrong with a read's result ("" when
	// nothing was).
	Problem string
	// Detail says what the operation did, for a log: a transfer's
	// "FROM>TO:AMOUNT" (":none" appended when FROM had less).
	Detail string
}

// Unique is the unique workload's configuration. The zero value is usable
// by one process; concurrent workloads on one cluster need distinct Tags.
type Unique struct {
	// Workers is the number of inserting goroutines (default 4).
	Workers int
	// Tag starts every value written (default "u"): values are Tag-1,
	// Tag-2, ...
	Tag string
	// Pause is how long each goroutine waits between writes (default 0).
	Pause time.Duration
	// Backoff is how long a goroutine waits after a failed insert, as an
	// application's caller would, instead of retrying at once (default 0).
	Backoff time.Duration
	// Acked, when set, is called with each acknowledged item (Save
	// returned nil) before the workload counts it. When it returns an
	// error the item is not counted as acknowledged and its goroutine
	// stops.
	Acked func(UniqueItem) error
	// Observe, when set, is called after every insert.
	Observe func(Op)
}

// Setup creates the unique workload's table.
func (u Unique) Setup(ctx context.Context, c *tandem.Cluster) error {
	return c.Migrate(ctx, &UniqueItem{})
}

// UniqueHistory is what a unique workload did.
type UniqueHistory struct {
	// Acked maps each acknowledged value to the id its Save returned.
	Acked map[string]int64
	// Failed maps each value whose Save returned an error to that error:
	// the row may or may not exist.
	Failed map[string]error
	// MaxLatency is the longest time an insert took to be acknowledged.
	MaxLatency time.Duration
}

// UniqueRun is a running unique workload.
type UniqueRun struct {
	stop  chan struct{}
	wg    sync.WaitGroup
	next  atomic.Int64
	acked atomic.Int64

	mu sync.Mutex
	h  UniqueHistory
}

// Start starts the workload's goroutines on c, which must have been set up
// with Setup; they insert until Stop.
func (u Unique) Start(ctx context.Context, c *tandem.Cluster) *UniqueRun {
	workers, tag := u.Workers, u.Tag
	if workers <= 0 {
		workers = 4
	}
	if tag == "" {
		tag = "u"
	}
	r := &UniqueRun{stop: make(chan struct{}), h: UniqueHistory{Acked: map[string]int64{}, Failed: map[string]error{}}}
	for range workers {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			for running(ctx, r.stop) {
				it := &UniqueItem{Val: fmt.Sprintf("%s-%d", tag, r.next.Add(1))}
				start := time.Now()
				err := c.Save(ctx, it)
				took := time.Since(start)
				if u.Observe != nil {
					u.Observe(Op{Kind: OpInsert, Start: start, Took: took, Err: err})
				}
				var hookErr error
				if err == nil && u.Acked != nil {
					hookErr = u.Acked(*it)
				}
				r.mu.Lock()
				switch {
				case err != nil:
					r.h.Failed[it.Val] = err
				case hookErr != nil:
					r.h.Failed[it.Val] = fmt.Errorf("acknowledged, but the Acked hook failed: %w", hookErr)
				default:
					r.h.Acked[it.Val] = it.ID
					r.h.MaxLatency = max(r.h.MaxLatency, took)
					r.acked.Add(1)
				}
				r.mu.Unlock()
				if hookErr != nil {
					return
				}
				pause := u.Pause
				if err != nil {
					pause += u.Backoff
				}
				if pause > 0 {
					select {
					case <-time.After(pause):
					case <-r.stop:
					}
				}
			}
		}()
	}
	return r
}

// Acked returns how many inserts have been acknowledged so far.
func (r *UniqueRun) Acked() int64 { return r.acked.Load() }

// Stop stops the workload, waits for the inserts in flight and returns the
// history. It may be called once.
func (r *UniqueRun) Stop() *UniqueHistory {
	close(r.stop)
	r.wg.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	h := r.h
	return &h
}

// UniqueReport is what CompareUnique found.
type UniqueReport struct {
	// Lost holds, sorted, each acknowledged value that some node does not
	// hold exactly once under the id acknowledged.
	Lost []string
	// Divergent holds, sorted, each id whose row differs between nodes
	// (present on some only, or with different values).
	Divergent []int64
	// Problems describes every problem found, one per line.
	Problems []string
	// Rows counts each node's rows, by node name.
	Rows map[string]int
}

// OK reports whether nothing was found.
func (r *UniqueReport) OK() bool { return len(r.Problems) == 0 }

// CompareUnique reads UniqueTable on every node and checks it against
// acked, each acknowledged value with the id its write returned: every
// acknowledged value is on every node, exactly once, under that id; no id
// was acknowledged for two values; no id holds different rows on
// different nodes. It fails only when a node cannot be read.
func CompareUnique(ctx context.Context, acked map[string]int64, nodes ...Node) (*UniqueReport, error) {
	rep := &UniqueReport{Rows: map[string]int{}}
	lost := map[string]bool{}

	byID := map[int64][]string{}
	for v, id := range acked {
		byID[id] = append(byID[id], v)
	}
	for _, id := range slices.Sorted(maps.Keys(byID)) {
		if vs := byID[id]; len(vs) > 1 {
			slices.Sort(vs)
			rep.Problems = append(rep.Problems, fmt.Sprintf("id %d acknowledged for %d values: %s", id, len(vs), strings.Join(vs, ", ")))
		}
	}

	tables := make([]map[int64]string, len(nodes))
	for i, n := range nodes {
		rows, err := n.Unique(ctx)
		if err != nil {
			return nil, fmt.Errorf("%s: read %s: %w", n.Name, UniqueTable, err)
		}
		tables[i] = rows
		rep.Rows[n.Name] = len(rows)
		where := map[string][]int64{} // value to the ids holding it
		for id, v := range rows {
			where[v] = append(where[v], id)
		}
		var missing, moved, twice []string
		for _, v := range slices.Sorted(maps.Keys(acked)) {
			id := acked[v]
			switch at := where[v]; {
			case len(at) == 0:
				missing = append(missing, fmt.Sprintf("%s (id %d)", v, id))
			case len(at) > 1:
				slices.Sort(at)
				twice = append(twice, fmt.Sprintf("%s (ids %v)", v, at))
			case at[0] != id:
				moved = append(moved, fmt.Sprintf("%s (acknowledged id %d, held under %d, where the node holds %q)", v, id, at[0], rows[id]))
			default:
				continue
			}
			lost[v] = true
		}
		for _, l := range []struct {
			what string
			vals []string
		}{
			{"missing", missing},
			{"held more than once", twice},
			{"under another id than acknowledged", moved},
		} {
			if len(l.vals) > 0 {
				rep.Problems = append(rep.Problems, fmt.Sprintf("%s: %d acknowledged values %s: %s", n.Name, len(l.vals), l.what, some(l.vals)))
			}
		}
	}

	ids := map[int64]bool{}
	for _, t := range tables {
		for id := range t {
			ids[id] = true
		}
	}
	for _, id := range slices.Sorted(maps.Keys(ids)) {
		var held []string
		differ := false
		for i, t := range tables {
			v, ok := t[id]
			if !ok {
				held = append(held, nodes[i].Name+": no row")
			} else {
				held = append(held, fmt.Sprintf("%s: %q", nodes[i].Name, v))
			}
			if i > 0 {
				v0, ok0 := tables[0][id]
				differ = differ || ok != ok0 || v != v0
			}
		}
		if differ {
			rep.Divergent = append(rep.Divergent, id)
			if len(rep.Divergent) <= 20 {
				rep.Problems = append(rep.Problems, fmt.Sprintf("id %d differs between nodes: %s", id, strings.Join(held, ", ")))
			}
		}
	}
	if n := len(rep.Divergent); n > 20 {
		rep.Problems = append(rep.Problems, fmt.Sprintf("... and %d more ids that differ between nodes", n-20))
	}
	rep.Lost = slices.Sorted(maps.Keys(lost))
	return rep, nil
}

// CheckUnique checks every node against the unique workload's history h
// (see CompareUnique), reporting each problem with t.Errorf.
func CheckUnique(t testing.TB, h *UniqueHistory, nodes ...Node) {
	t.Helper()
	if len(h.Acked) == 0 {
		t.Errorf("unique: no insert was acknowledged (%d failed): the workload did not run, so nothing was checked", len(h.Failed))
	}
	rep, err := CompareUnique(context.Background(), h.Acked, nodes...)
	if err != nil {
		t.Errorf("unique: %v", err)
		return
	}
	for _, p := range rep.Problems {
		t.Errorf("unique: %s", p)
	}
	t.Logf("unique: rows %v; %d acknowledged values, %d failed; slowest acknowledged write %v",
		rep.Rows, len(h.Acked), len(h.Failed), h.MaxLatency.Round(time.Millisecond))
}

// some renders a list for a message: at most 10 entries.
func some(list []string) string {
	if len(list) > 10 {
		return strings.Join(list[:10], ", ") + fmt.Sprintf(" and %d more", len(list)-10)
	}
	return strings.Join(list, ", ")
}
