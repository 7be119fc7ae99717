package tandem_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tandemdb/tandem"
	"github.com/tandemdb/tandem/internal/testcluster"
)

// evKinds renders events as "kind node" lines, for messages.
func evKinds(events []tandem.Event) string {
	var b strings.Builder
	for _, e := range events {
		fmt.Fprintf(&b, "  %s  %-18s %-4s %s\n", e.At.Format("15:04:05.000"), e.Kind, e.Node, e.Message)
	}
	return b.String()
}

// evIndex returns the index of the first event of kind about node at or
// after from, or -1.
func evIndex(events []tandem.Event, from int, kind, node string) int {
	for i := max(from, 0); i < len(events); i++ {
		if events[i].Kind == kind && events[i].Node == node {
			return i
		}
	}
	return -1
}

// evDrain reads what ch holds now, without waiting.
func evDrain(ch <-chan tandem.Event) (got []tandem.Event, closed bool) {
	for {
		select {
		case e, ok := <-ch:
			if !ok {
				return got, true
			}
			got = append(got, e)
		default:
			return got, false
		}
	}
}

// TestEventsAndMetricsOfALockedSecondary: another connection holds bar's
// write lock while writes go on. bar goes down (one event, however many
// writes skip it), the first write that met the lock counts as a failure on
// bar and the others as skipped, Status and /metrics say bar is behind;
// once the lock is released bar comes back, catches up and counts the keys
// it received; the events come in that order, to Events and to a
// subscriber alike.
func TestEventsAndMetricsOfALostSecondary(t *testing.T) {
	dir := t.TempDir()
	path, lose, restore := foMounted(t, dir, "tandem.yaml", "")
	c := foOpen(t, path, "the cluster")
	ctx := context.Background()
	ch, stop := c.Subscribe()
	defer stop()
	if err := c.Migrate(ctx, &FailoverItem{}); err != nil {
		t.Fatal(err)
	}
	const before, during = 5, 20
	for i := range before {
		if err := c.Save(ctx, &FailoverItem{ID: int64(i + 1), Val: "before"}); err != nil {
			t.Fatal(err)
		}
	}

	lose["bar"]()
	foWait(t, c, "bar left out of the writes", func(st *tandem.Status) bool { return foNode(st, "bar").LeftOut })
	for i := range during {
		if err := c.Save(ctx, &FailoverItem{ID: int64(i + 1), Val: fmt.Sprintf("during %d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	m := c.Metrics()
	foo, bar := m.Nodes["foo"], m.Nodes["bar"]
	t.Logf("while bar.db is lost: foo %+v, bar %+v", foo, bar)
	if foo.Writes != before+during || foo.WriteFailures != 0 || foo.Skipped != 0 || foo.CaughtUpRows != 0 {
		t.Errorf("foo has %+v, want %d writes and nothing else", foo, before+during)
	}
	if bar.Writes != before || bar.Skipped != during || bar.CaughtUpRows != 0 {
		t.Errorf("bar has %+v, want %d writes and %d skipped", bar, before, during)
	}
	got, text := promMetrics(t, c)
	if got[`tandem_rows_behind{node="bar"}`] <= 0 {
		t.Errorf("tandem_rows_behind of bar is not above 0 while it is lost:\n%s", text)
	}
	promExpect(t, got, text, map[string]float64{
		`tandem_node_up{node="foo"}`:              1,
		`tandem_node_up{node="bar"}`:              0,
		`tandem_node_in_sync{node="foo"}`:         1,
		`tandem_node_in_sync{node="bar"}`:         0,
		`tandem_rows_behind{node="foo"}`:          0,
		`tandem_primary{node="foo"}`:              1,
		`tandem_primary{node="bar"}`:              0,
		`tandem_writes_total{node="foo"}`:         before + during,
		`tandem_writes_total{node="bar"}`:         before,
		`tandem_write_failures_total{node="bar"}`: float64(bar.WriteFailures),
		`tandem_writes_skipped_total{node="bar"}`: float64(bar.Skipped),
		`tandem_catchup_rows_total{node="bar"}`:   0,
		`tandem_conflicts_unresolved`:             0,
	})
	if i := evIndex(c.Events(), 0, tandem.EventDown, "bar"); i < 0 {
		t.Errorf("no down event of bar while it is lost:\n%s", evKinds(c.Events()))
	}

	restore["bar"]()
	foWait(t, c, "bar in sync again", func(st *tandem.Status) bool {
		return foInSync(st) && st.Primary == "foo"
	})
	foUntil(t, "the catch-up finished event", func() bool {
		return evIndex(c.Events(), 0, tandem.EventCatchUpFinished, "bar") >= 0
	})
	events := c.Events()
	t.Logf("events:\n%s", evKinds(events))
	down := evIndex(events, 0, tandem.EventDown, "bar")
	up := evIndex(events, down, tandem.EventUp, "bar")
	started := evIndex(events, up, tandem.EventCatchUpStarted, "bar")
	finished := evIndex(events, started, tandem.EventCatchUpFinished, "bar")
	if down < 0 || up < 0 || started < 0 || finished < 0 {
		t.Errorf("want down, up, catch-up started, catch-up finished of bar in that order; got (%d, %d, %d, %d)", down, up, started, finished)
	}
	counts := map[string]int{}
	for i, e := range events {
		counts[e.Kind+" "+e.Node]++
		if e.At.IsZero() || e.Message == "" || strings.Contains(e.Message, "\n") {
			t.Errorf("event %d %+v: want a time and a one-line message", i, e)
		}
		if strings.Contains(e.Message, dir) {
			t.Errorf("event %d names a file path (a DSN): %q", i, e.Message)
		}
		if i > 0 && e.At.Before(events[i-1].At) {
			t.Errorf("event %d is older than the one before it", i)
		}
	}
	for _, k := range []string{"down bar", "up bar", "catch-up started bar", "catch-up finished bar"} {
		if counts[k] != 1 {
			t.Errorf("%d events %q, want 1", counts[k], k)
		}
	}
	for k, n := range counts {
		if strings.HasPrefix(k, tandem.EventPrimary) || strings.HasPrefix(k, tandem.EventConflict) || strings.HasSuffix(k, " foo") {
			t.Errorf("%d unexpected events %q", n, k)
		}
	}
	if f := events[finished].Message; !strings.Contains(f, "keys copied") {
		t.Errorf("the finished event says %q, want the keys copied and the time it took", f)
	}

	bar = c.Metrics().Nodes["bar"]
	if bar.CaughtUpRows <= 0 || bar.CaughtUpRows > during {
		t.Errorf("bar caught up %d rows, want 1..%d", bar.CaughtUpRows, during)
	}
	if foo := c.Metrics().Nodes["foo"]; foo.CaughtUpRows != 0 {
		t.Errorf("foo caught up %d rows, want 0", foo.CaughtUpRows)
	}
	got, text = promMetrics(t, c)
	promExpect(t, got, text, map[string]float64{
		`tandem_node_up{node="bar"}`:            1,
		`tandem_node_in_sync{node="bar"}`:       1,
		`tandem_rows_behind{node="bar"}`:        0,
		`tandem_catchup_rows_total{node="bar"}`: float64(bar.CaughtUpRows),
	})

	// The subscriber got the same events, in the same order.
	sub, closed := evDrain(ch)
	if closed {
		t.Fatal("the subscriber's channel is closed before stop")
	}
	if evKinds(sub) != evKinds(events) {
		t.Errorf("the subscriber got\n%swhile Events says\n%s", evKinds(sub), evKinds(events))
	}
	stop()
	if _, closed := evDrain(ch); !closed {
		t.Error("the subscriber's channel is still open after stop")
	}
	stop() // again: nothing happens

	b, err := json.Marshal(events[down])
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(b, &back); err != nil || back["kind"] != "down" || back["node"] != "bar" || back["message"] == "" || back["at"] == "" {
		t.Errorf("an event in JSON: %s (%v)", b, err)
	}
}

// TestEventsKeepTheLast200AndSlowSubscribersMissEvents: many events block
// nothing; Events keeps the newest 200, oldest first; a subscriber that
// does not read gets what its buffer holds; Close closes the channels.
func TestEventsKeepTheLast200AndSlowSubscribersMissEvents(t *testing.T) {
	c, _ := testcluster.New(t, faultQuietLogs(), tandem.WithoutBackground())
	ctx := context.Background()
	slow, _ := c.Subscribe()
	fast, stopFast := c.Subscribe()
	defer stopFast()
	var read []tandem.Event
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		for e := range fast {
			read = append(read, e)
		}
	}()

	// A cluster opened without background work has no view until it
	// needs one: the first (foo the primary) is no change, and no event.
	if err := c.Promote(ctx, "foo", false); err != nil {
		t.Fatal(err)
	}
	// Each forced promotion (of bar, then foo, and so on) changes the
	// primary: two events, primary changed and promoted.
	const promotions = 125
	start := time.Now()
	for i := range promotions {
		if err := c.Promote(ctx, evPromoted(i), true); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d promotions in %v", promotions, time.Since(start).Round(time.Millisecond))
	events := c.Events()
	if len(events) != 200 {
		t.Fatalf("Events returned %d events, want the last 200", len(events))
	}
	for i, e := range events {
		n := 2*promotions - 200 + i // the event's index among all
		kind := map[bool]string{true: tandem.EventPrimary, false: tandem.EventPromoted}[n%2 == 0]
		if want := evPromoted(n / 2); e.Kind != kind || e.Node != want {
			t.Fatalf("event %d is %+v, want %s of %s", i, e, kind, want)
		}
		if i > 0 && e.At.Before(events[i-1].At) {
			t.Fatalf("event %d is older than event %d", i, i-1)
		}
	}
	if got, _ := evDrain(slow); len(got) != 64 {
		t.Errorf("a subscriber that did not read got %d events, want the 64 its channel holds", len(got))
	}

	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-readDone:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not close a subscriber's channel")
	}
	if len(read) != 2*promotions {
		t.Errorf("a subscriber that kept reading got %d events, want %d", len(read), 2*promotions)
	}
	if _, closed := evDrain(slow); !closed {
		t.Error("Close did not close the slow subscriber's channel")
	}
	after, stopAfter := c.Subscribe()
	if _, closed := evDrain(after); !closed {
		t.Error("Subscribe after Close returned an open channel")
	}
	stopAfter()
	stopFast() // after Close: nothing happens
}

// evPromoted is the datasource the i-th promotion promotes.
func evPromoted(i int) string { return [2]string{"bar", "foo"}[i%2] }

// evOrder fails unless events holds, in this order, an event of each of
// want ("kind node"); it returns the indexes.
func evOrder(t *testing.T, events []tandem.Event, want ...string) []int {
	t.Helper()
	var at []int
	from := 0
	for _, w := range want {
		kind, node, _ := strings.Cut(w, "|")
		i := evIndex(events, from, kind, node)
		if i < 0 {
			t.Errorf("no event %q after event %d; events:\n%s", w, from-1, evKinds(events))
			return at
		}
		at = append(at, i)
		from = i + 1
	}
	return at
}

// TestEventsOfAFailover: foo's lost mount makes bar the primary, and foo
// takes the writes back once it has caught up.
func TestEventsOfAFailover(t *testing.T) {
	dir := t.TempDir()
	path, lose, restore := foMounted(t, dir, "tandem.yaml", "")
	c := foOpen(t, path, "the cluster")
	ctx := context.Background()
	if err := c.Migrate(ctx, &FailoverItem{}); err != nil {
		t.Fatal(err)
	}
	lose["foo"]()
	foWait(t, c, "bar the primary", func(st *tandem.Status) bool { return st.Primary == "bar" })
	const during = 10
	for i := range during {
		if err := c.Save(ctx, &FailoverItem{ID: int64(i + 1), Val: "during"}); err != nil {
			t.Fatal(err)
		}
	}
	foo, bar := c.Metrics().Nodes["foo"], c.Metrics().Nodes["bar"]
	t.Logf("while foo.db is lost: foo %+v, bar %+v", foo, bar)
	if foo.Writes != 0 || foo.Skipped != during || bar.Writes != during {
		t.Errorf("foo has %+v and bar %+v: want no write on foo, %d writes that skipped it, and %d on bar", foo, bar, during, during)
	}
	restore["foo"]()
	foWait(t, c, "foo caught up and the primary again", func(st *tandem.Status) bool {
		return foInSync(st) && st.Primary == "foo"
	})
	foUntil(t, "foo the primary again in the events", func() bool {
		return evIndex(c.Events(), evIndex(c.Events(), 0, tandem.EventUp, "foo"), tandem.EventPrimary, "foo") >= 0
	})
	events := c.Events()
	t.Logf("events:\n%s", evKinds(events))
	evOrder(t, events, "down|foo", "primary changed|bar", "up|foo", "catch-up started|foo", "catch-up finished|foo", "primary changed|foo")
	if foo := c.Metrics().Nodes["foo"]; foo.CaughtUpRows != during {
		t.Errorf("foo caught up %d rows, want %d", foo.CaughtUpRows, during)
	}
}

// TestEventsOfASplitBrain: each half of a partition writes key 1 (a
// conflict) and a key of its own; when both databases are reachable again
// the conflict is an event, resolved by the policy or by an operator.
func TestEventsOfASplitBrain(t *testing.T) {
	for _, policy := range []string{tandem.ConflictManual, tandem.ConflictPrimary} {
		t.Run(policy, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			yaml := "conflicts: {policy: " + policy + "}\n"
			realCfg := foConfig(t, dir, "tandem.yaml", "foo.db", "bar.db", yaml)
			// A split brain needs two views: each half has a witness of its
			// own, as two machines each with a witness would.
			halves := []string{
				foConfig(t, dir, "a.yaml", "foo.db", foUnreachable(t, dir, "bar"), yaml+"arbiter: {kind: witness, path: a.witness}\n"),
				foConfig(t, dir, "b.yaml", foUnreachable(t, dir, "foo"), "bar.db", yaml+"arbiter: {kind: witness, path: b.witness}\n"),
			}
			c := foOpen(t, realCfg, "the cluster before the partition")
			if err := c.Migrate(ctx, &FailoverItem{}); err != nil {
				t.Fatal(err)
			}
			if err := c.Save(ctx, &FailoverItem{ID: 1, Val: "base", UpdatedAt: foEpoch}); err != nil {
				t.Fatal(err)
			}
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			for i, cfg := range halves {
				half := foOpen(t, cfg, fmt.Sprintf("half %c", 'A'+i))
				// Cut off from the other database, with an arbiter of its
				// own: an operator forces it.
				if err := half.Promote(ctx, []string{"foo", "bar"}[i], true); err != nil {
					t.Fatal(err)
				}
				for _, it := range []FailoverItem{{ID: 1, Val: fmt.Sprintf("half %c", 'A'+i)}, {ID: int64(10 + i), Val: "one side"}} {
					if err := half.Save(ctx, &it); err != nil {
						t.Fatal(err)
					}
				}
				if err := half.Close(); err != nil {
					t.Fatal(err)
				}
			}

			c = foOpen(t, realCfg, "the merged cluster")
			if policy == tandem.ConflictManual {
				foWait(t, c, "the conflict found", func(st *tandem.Status) bool { return st.Conflicts == 1 })
				if n, err := c.Resolve(ctx, "", "", "foo"); err != nil || n != 1 {
					t.Fatalf("Resolve: %d, %v; want 1 resolved", n, err)
				}
			}
			foWait(t, c, "in sync", func(st *tandem.Status) bool { return foInSync(st) && st.Conflicts == 0 })
			foUntil(t, "bar's catch-up finished", func() bool {
				return evIndex(c.Events(), 0, tandem.EventCatchUpFinished, "bar") >= 0
			})
			events := c.Events()
			t.Logf("events:\n%s", evKinds(events))
			want := []string{"catch-up started|bar", "conflict|bar"}
			if policy == tandem.ConflictManual {
				want = append(want, "conflict|foo") // resolved by an operator, keeping foo's row
			}
			at := evOrder(t, append(events, tandem.Event{}), append(want, "catch-up finished|bar")...)
			if len(at) > 1 {
				msg := events[at[1]].Message
				wantWords := "tandem resolve"
				if policy == tandem.ConflictPrimary {
					wantWords = "primary policy: kept foo's row"
				}
				if !strings.Contains(msg, "failover_item") || !strings.Contains(msg, wantWords) {
					t.Errorf("the conflict event says %q, want the table and %q", msg, wantWords)
				}
			}
			m := c.Metrics()
			if m.Nodes["bar"].CaughtUpRows < 1 || m.Nodes["foo"].CaughtUpRows < 1 {
				t.Errorf("caught up rows: foo %d, bar %d; want each at least 1 (the key the other side wrote alone)", m.Nodes["foo"].CaughtUpRows, m.Nodes["bar"].CaughtUpRows)
			}
		})
	}
}
