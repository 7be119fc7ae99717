package tandem

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync/atomic"
)

// NodeMetrics are one datasource's counters since Open, as this process
// counted them (each process counts its own writes). A datasource that is
// the same database as an earlier one (Status's SameAs) reports that
// database's counters.
//
// A write is a Cluster.Save or Cluster.Delete call, counted once whether it
// was committed alone or as a member of a group commit (SQLite commits
// up to 64 concurrent Saves and Deletes in one transaction: that counts as
// one write per member whose row went through), or a Cluster.Tx call,
// counted once however many rows it writes. Not counted: a write that
// changed nothing (a Delete of a row that is not there, a Tx that wrote
// nothing), a write refused before anything was committed (a value that
// does not fit, a unique violation, an error returned by the callback, a
// group member that failed alone), and a run of a write that the primary
// refused because it turned out to be behind (the write runs again on the
// next primary, and counts there).
type NodeMetrics struct {
	// Writes counts the writes committed on this datasource.
	Writes int64
	// WriteFailures counts the writes that failed on this datasource and
	// left it out (it was marked down): no answer within Config.Timeout,
	// an error while mirroring, recording missed keys or committing, an
	// I/O error on the primary. A failure at the mirroring or the commit,
	// when the group's members are known, counts each member; one at the
	// primary's begin or in a statement on the primary counts once, for
	// the transaction that met it. The write itself goes on without the
	// datasource (or, for the primary's begin, on the next primary).
	WriteFailures int64
	// Skipped counts the writes committed elsewhere that went on without
	// this datasource because it was already known to be down, or behind:
	// the keys they wrote are recorded as missed by it, and catch-up copies
	// them (Status's Behind counts those keys, each once however often it
	// changed). So for a secondary, Writes + WriteFailures + Skipped is
	// about the primary's Writes.
	Skipped int64
	// CaughtUpRows counts the keys catch-up committed to this datasource:
	// the current row copied (or a deleted row deleted), or for a key both
	// sides of a split brain changed, the conflict recorded (and resolved
	// if the policy could). After a split brain, the keys only the other
	// side changed count on each datasource they were copied to.
	CaughtUpRows int64
	// CommitSeconds: how long this datasource took to commit each
	// transaction tandem committed there (writes, catch-up, bookkeeping).
	CommitSeconds Histogram
	// CatchUpBatchSeconds: how long each catch-up batch that copied keys
	// to this datasource took, from taking the locks to the commit.
	CatchUpBatchSeconds Histogram
}

// Metrics are the cluster's counters, by datasource name, and the
// latency of the writes this process made.
type Metrics struct {
	Nodes map[string]NodeMetrics
	// WriteSeconds: how long each acknowledged write took, from the call
	// (Save, Delete, Insert, Update, Tx, Exec, a driver transaction's
	// commit) to its return, runs again included.
	WriteSeconds Histogram
}

// nodeCounters are a database node's counters: an atomic add per write,
// no lock and no allocation on the write path.
type nodeCounters struct {
	writes, failures, skipped, caughtUp atomic.Int64
	commit, catchUp                     histogram
}

func (n *Node) countFailures(w int64) { n.counters.failures.Add(w) }

// weight is how many writes tx counts as: one for a Cluster.Tx, else one
// per row written on the primary, which for a group commit is one per
// member whose write went through (each sends exactly one op, or none), and
// for a Cluster.Save or Cluster.Delete alone one, or none.
func (tx *Tx) weight() int64 {
	if tx.whole {
		return 1
	}
	return int64(tx.nops - tx.memberOps + tx.members)
}

// countCommit counts tx's outcome: a write on each database that
// committed; a failure on each that did not (and on the primary if perr);
// and, if the write committed anywhere, a skipped write on each database
// the view skipped.
func (tx *Tx) countCommit(committed, lost []*Node, perr error) {
	w := tx.weight()
	for _, n := range committed {
		n.counters.writes.Add(w)
	}
	for _, n := range lost {
		n.counters.failures.Add(w)
	}
	if perr != nil {
		tx.primary.counters.failures.Add(w)
	}
	if len(committed) > 0 {
		for _, n := range tx.view.skip {
			n.counters.skipped.Add(w)
		}
	}
}

// countCaughtUp counts keys a catch-up batch committed to each of nodes.
func countCaughtUp(nodes []*Node, keys int) {
	for _, n := range nodes {
		n.counters.caughtUp.Add(int64(keys))
	}
}

// Metrics returns every datasource's counters (see NodeMetrics).
func (c *Cluster) Metrics() Metrics {
	m := Metrics{Nodes: make(map[string]NodeMetrics, len(c.nodes))}
	for _, n := range c.nodes {
		k := &n.database().counters
		m.Nodes[n.name] = NodeMetrics{
			Writes:        k.writes.Load(),
			WriteFailures: k.failures.Load(),
			Skipped:       k.skipped.Load(),
			CaughtUpRows:  k.caughtUp.Load(),

			CommitSeconds:       k.commit.snapshot(),
			CatchUpBatchSeconds: k.catchUp.snapshot(),
		}
	}
	m.WriteSeconds = c.writeLatency.snapshot()
	return m
}

// WritePrometheus writes the cluster's metrics in the Prometheus text
// exposition format (version 0.0.4), for a /metrics endpoint:
//
//	tandem_writes_total{node}          counter  NodeMetrics.Writes
//	tandem_write_failures_total{node}  counter  NodeMetrics.WriteFailures
//	tandem_writes_skipped_total{node}  counter  NodeMetrics.Skipped
//	tandem_catchup_rows_total{node}    counter  NodeMetrics.CaughtUpRows
//	tandem_node_up{node}               gauge    1 unless Status says down
//	tandem_node_in_sync{node}          gauge    1 when Status says in sync
//	tandem_rows_behind{node}           gauge    NodeStatus.Behind: keys it missed
//	tandem_copy_refused{node}          gauge    NodeStatus.CopyRefused
//	tandem_conflicts_unresolved        gauge    Status.Conflicts
//	tandem_primary{node}               gauge    1 for the primary
//	tandem_write_seconds               histogram Metrics.WriteSeconds
//	tandem_commit_seconds{node}        histogram NodeMetrics.CommitSeconds
//	tandem_catchup_batch_seconds{node} histogram NodeMetrics.CatchUpBatchSeconds
//
// The gauges come from LastStatus: what the health loop last found, so a
// scrape answers at once and never waits on a datasource that is down.
// Metrics come in that order, each with its # HELP and # TYPE lines, and
// the nodes in configured order. Nothing is written once the cluster is
// closed.
func (c *Cluster) WritePrometheus(_ context.Context, w io.Writer) error {
	st, err := c.LastStatus()
	if err != nil {
		return err
	}
	m := c.Metrics()
	var b strings.Builder
	perNode := func(name, typ, help string, value func(i int) int64) {
		promHeader(&b, name, typ, help)
		for i, n := range c.nodes {
			b.WriteString(name)
			b.WriteString(`{node="`)
			b.WriteString(promLabel(n.name))
			b.WriteString(`"} `)
			b.WriteString(strconv.FormatInt(value(i), 10))
			b.WriteByte('\n')
		}
	}
	counter := func(name, help string, get func(NodeMetrics) int64) {
		perNode(name, "counter", help, func(i int) int64 { return get(m.Nodes[c.nodes[i].name]) })
	}
	bit := func(ok bool) int64 {
		if ok {
			return 1
		}
		return 0
	}
	counter("tandem_writes_total", "Writes (Save, Delete, each member of a group commit, Tx) committed on the datasource by this process.",
		func(x NodeMetrics) int64 { return x.Writes })
	counter("tandem_write_failures_total", "Writes that failed on the datasource and left it out (it was marked down).",
		func(x NodeMetrics) int64 { return x.WriteFailures })
	counter("tandem_writes_skipped_total", "Writes committed elsewhere that went on without the datasource (down or behind); its missed keys are recorded.",
		func(x NodeMetrics) int64 { return x.Skipped })
	counter("tandem_catchup_rows_total", "Keys catch-up copied to the datasource.",
		func(x NodeMetrics) int64 { return x.CaughtUpRows })
	perNode("tandem_node_up", "gauge", "1 unless the datasource is down.",
		func(i int) int64 { return bit(st.Nodes[i].State != StateDown) })
	perNode("tandem_node_in_sync", "gauge", "1 when the datasource is in sync: written by every write, missing nothing.",
		func(i int) int64 { return bit(st.Nodes[i].State == StateInSync) })
	perNode("tandem_rows_behind", "gauge", "Keys the datasource missed, as recorded on the reachable datasources.",
		func(i int) int64 { return st.Nodes[i].Behind })
	perNode("tandem_copy_refused", "gauge", "Keys the last catch-up could not copy: a database refused the row for a constraint.",
		func(i int) int64 { return st.Nodes[i].CopyRefused })
	promHeader(&b, "tandem_conflicts_unresolved", "gauge", "Unresolved conflicts (keys both sides of a split brain changed).")
	b.WriteString("tandem_conflicts_unresolved " + strconv.FormatInt(st.Conflicts, 10) + "\n")
	perNode("tandem_primary", "gauge", "1 for the primary (the datasource that takes writes first and serves reads).",
		func(i int) int64 { return bit(st.Nodes[i].Primary) })
	promHeader(&b, "tandem_write_seconds", "histogram", "Time from a write's call to its acknowledgement, runs again included.")
	promHistogram(&b, "tandem_write_seconds", "", m.WriteSeconds)
	for _, h := range []struct {
		name, help string
		get        func(NodeMetrics) Histogram
	}{
		{"tandem_commit_seconds", "Time the datasource took to commit a transaction of tandem's.", func(x NodeMetrics) Histogram { return x.CommitSeconds }},
		{"tandem_catchup_batch_seconds", "Time a catch-up batch that copied keys to the datasource took, locks to commit.", func(x NodeMetrics) Histogram { return x.CatchUpBatchSeconds }},
	} {
		promHeader(&b, h.name, "histogram", h.help)
		for _, n := range c.nodes {
			promHistogram(&b, h.name, `node="`+promLabel(n.name)+`"`, h.get(m.Nodes[n.name]))
		}
	}
	_, err = io.WriteString(w, b.String())
	return err
}

// promHistogram writes a histogram's samples: a bucket per bound and
// +Inf, the sum in seconds and the count; labels, if any, go first.
func promHistogram(b *strings.Builder, name, labels string, h Histogram) {
	sep := ""
	if labels != "" {
		sep = ","
	}
	for i, bound := range h.Bounds {
		fmt.Fprintf(b, "%s_bucket{%s%sle=\"%s\"} %d\n", name, labels, sep, strconv.FormatFloat(bound, 'g', -1, 64), h.Cumulative[i])
	}
	fmt.Fprintf(b, "%s_bucket{%s%sle=\"+Inf\"} %d\n", name, labels, sep, h.Count)
	lb := ""
	if labels != "" {
		lb = "{" + labels + "}"
	}
	fmt.Fprintf(b, "%s_sum%s %s\n", name, lb, strconv.FormatFloat(h.Sum.Seconds(), 'g', -1, 64))
	fmt.Fprintf(b, "%s_count%s %d\n", name, lb, h.Count)
}

func promHeader(b *strings.Builder, name, typ, help string) {
	b.WriteString("# HELP " + name + " " + promHelp(help) + "\n")
	b.WriteString("# TYPE " + name + " " + typ + "\n")
}

// promHelp escapes a HELP text: backslash and line feed.
func promHelp(s string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(s)
}

// promLabel escapes a label value: backslash, double quote and line feed.
func promLabel(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}
