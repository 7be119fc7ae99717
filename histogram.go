package tandem

import (
	"sync/atomic"
	"time"
)

// latencyBounds are the histograms' upper bounds, in seconds: from half a
// millisecond (a write to a SQLite pair) to 10 s (a write that waited out
// timeouts), about 2.5 times apart.
var latencyBounds = [...]float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// histogram is a latency histogram: an atomic add per observation, no
// lock and no allocation.
type histogram struct {
	counts [len(latencyBounds) + 1]atomic.Int64 // per bucket, the last past every bound
	sum    atomic.Int64                         // nanoseconds
}

func (h *histogram) observe(d time.Duration) {
	s := d.Seconds()
	i := 0
	for i < len(latencyBounds) && s > latencyBounds[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sum.Add(int64(d))
}

// since observes the time since start.
func (h *histogram) since(start time.Time) { h.observe(time.Since(start)) }

// Histogram is a latency distribution since Open, as Prometheus keeps
// one: Cumulative[i] observations took at most Bounds[i] seconds; Count
// is every observation (those past the last bound too); Sum their total.
type Histogram struct {
	Bounds     []float64
	Cumulative []int64
	Count      int64
	Sum        time.Duration
}

func (h *histogram) snapshot() Histogram {
	out := Histogram{Bounds: latencyBounds[:], Cumulative: make([]int64, len(latencyBounds)), Sum: time.Duration(h.sum.Load())}
	var n int64
	for i := range h.counts {
		n += h.counts[i].Load()
		if i < len(latencyBounds) {
			out.Cumulative[i] = n
		}
	}
	out.Count = n
	return out
}
