// Package prom exports a tandem cluster's metrics to an application's own
// Prometheus registry (github.com/prometheus/client_golang), the metrics
// Cluster.WritePrometheus writes, under the same names:
//
//	reg := prometheus.NewRegistry()
//	reg.MustRegister(prom.NewCollector(cluster))
//	http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
//
// tandem's core does not import client_golang: only a program that imports
// this package links it. A scrape reads the cluster's counters and its
// last status (Cluster.LastStatus), so it never waits on a datasource.
package prom

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tandemdb/tandem"
)

// Collector is a prometheus.Collector of one cluster's metrics.
type Collector struct {
	c *tandem.Cluster

	writes, failures, skipped, caughtUp *prometheus.Desc
	up, inSync, behind, refused         *prometheus.Desc
	conflicts, primary                  *prometheus.Desc
	write, commit, catchUp              *prometheus.Desc
}

var _ prometheus.Collector = (*Collector)(nil)

// NewCollector returns a collector of c's metrics.
func NewCollector(c *tandem.Cluster) *Collector {
	node := []string{"node"}
	d := func(name, help string, labels []string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &Collector{
		c:         c,
		writes:    d("tandem_writes_total", "Writes (Save, Delete, each member of a group commit, Tx) committed on the datasource by this process.", node),
		failures:  d("tandem_write_failures_total", "Writes that failed on the datasource and left it out (it was marked down).", node),
		skipped:   d("tandem_writes_skipped_total", "Writes committed elsewhere that went on without the datasource (down or behind); its missed keys are recorded.", node),
		caughtUp:  d("tandem_catchup_rows_total", "Keys catch-up copied to the datasource.", node),
		up:        d("tandem_node_up", "1 unless the datasource is down.", node),
		inSync:    d("tandem_node_in_sync", "1 when the datasource is in sync: written by every write, missing nothing.", node),
		behind:    d("tandem_rows_behind", "Keys the datasource missed, as recorded on the reachable datasources.", node),
		refused:   d("tandem_copy_refused", "Keys the last catch-up could not copy: a database refused the row for a constraint.", node),
		conflicts: d("tandem_conflicts_unresolved", "Unresolved conflicts (keys both sides of a split brain changed).", nil),
		primary:   d("tandem_primary", "1 for the primary (the datasource that takes writes first and serves reads).", node),
		write:     d("tandem_write_seconds", "Time from a write's call to its acknowledgement, runs again included.", nil),
		commit:    d("tandem_commit_seconds", "Time the datasource took to commit a transaction of tandem's.", node),
		catchUp:   d("tandem_catchup_batch_seconds", "Time a catch-up batch that copied keys to the datasource took, locks to commit.", node),
	}
}

// Describe implements prometheus.Collector.
func (x *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{x.writes, x.failures, x.skipped, x.caughtUp, x.up, x.inSync, x.behind, x.refused, x.conflicts, x.primary, x.write, x.commit, x.catchUp} {
		ch <- d
	}
}

// Collect implements prometheus.Collector. A closed cluster yields
// nothing.
func (x *Collector) Collect(ch chan<- prometheus.Metric) {
	st, err := x.c.LastStatus()
	if err != nil {
		return
	}
	m := x.c.Metrics()
	bit := func(ok bool) float64 {
		if ok {
			return 1
		}
		return 0
	}
	for _, n := range st.Nodes {
		nm := m.Nodes[n.Name]
		ch <- prometheus.MustNewConstMetric(x.writes, prometheus.CounterValue, float64(nm.Writes), n.Name)
		ch <- prometheus.MustNewConstMetric(x.failures, prometheus.CounterValue, float64(nm.WriteFailures), n.Name)
		ch <- prometheus.MustNewConstMetric(x.skipped, prometheus.CounterValue, float64(nm.Skipped), n.Name)
		ch <- prometheus.MustNewConstMetric(x.caughtUp, prometheus.CounterValue, float64(nm.CaughtUpRows), n.Name)
		ch <- prometheus.MustNewConstMetric(x.up, prometheus.GaugeValue, bit(n.State != tandem.StateDown), n.Name)
		ch <- prometheus.MustNewConstMetric(x.inSync, prometheus.GaugeValue, bit(n.State == tandem.StateInSync), n.Name)
		ch <- prometheus.MustNewConstMetric(x.behind, prometheus.GaugeValue, float64(n.Behind), n.Name)
		ch <- prometheus.MustNewConstMetric(x.refused, prometheus.GaugeValue, float64(n.CopyRefused), n.Name)
		ch <- prometheus.MustNewConstMetric(x.primary, prometheus.GaugeValue, bit(n.Primary), n.Name)
		ch <- histogram(x.commit, nm.CommitSeconds, n.Name)
		ch <- histogram(x.catchUp, nm.CatchUpBatchSeconds, n.Name)
	}
	ch <- prometheus.MustNewConstMetric(x.conflicts, prometheus.GaugeValue, float64(st.Conflicts))
	ch <- histogram(x.write, m.WriteSeconds)
}

func histogram(d *prometheus.Desc, h tandem.Histogram, labels ...string) prometheus.Metric {
	buckets := make(map[float64]uint64, len(h.Bounds))
	for i, b := range h.Bounds {
		buckets[b] = uint64(h.Cumulative[i])
	}
	return prometheus.MustNewConstHistogram(d, uint64(h.Count), h.Sum.Seconds(), buckets, labels...)
}
