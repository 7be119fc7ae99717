package soak

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// Target says what a kind of fault hits.
type Target int

// The targets of faults.
const (
	// OnDatasource: one of the configured datasources, drawn uniformly, so
	// the primary is hit as often as the secondary.
	OnDatasource Target = iota
	// OnWriter: one of the writer processes.
	OnWriter
	// OnArbiter: one of the etcd arbiter's members (m0, m1, m2).
	OnArbiter
)

// Fault is one fault of a run's schedule: what, where, when and for how
// long. A schedule is drawn from the run's seed alone, so a seed replays
// its schedule (not its outcome: the processes' timing differs).
type Fault struct {
	Kind   string
	Target string        // a datasource's name, a writer's ("w2") or an etcd member's ("m1")
	At     time.Duration // from the start of the fault phase
	Hold   time.Duration // how long it lasts (for a killed writer: until its restart)
	// Pick is a random number for the kind's own choices (a lost mount:
	// which writer starts while it lasts).
	Pick uint64
}

func (f Fault) String() string {
	return fmt.Sprintf("%s@%s at %v for %v", f.Kind, f.Target, f.At.Round(time.Millisecond), f.Hold.Round(time.Millisecond))
}

// Plan is what a schedule is drawn for.
type Plan struct {
	Datasources []string // in configured order
	Writers     int      // writer processes at the start
	// ArbiterMembers are the etcd arbiter's members (none without one).
	ArbiterMembers []string
	Duration       time.Duration // of the fault phase
	// PerSecond is the mean number of faults drawn per second of the
	// fault phase.
	PerSecond float64
}

// Draw draws a run's schedule from seed: a number of faults around
// plan.PerSecond per second, each of a kind drawn by weight among kinds,
// starting at a uniform moment of the fault phase, at a uniformly drawn
// target, held for a uniform time within its kind's range. The faults are
// in order of start. The same seed, kinds and plan give the same schedule.
func Draw(seed uint64, kinds []Kind, plan Plan) []Fault {
	rng := rand.New(rand.NewPCG(seed, 0x50a4))
	total := 0
	for _, k := range kinds {
		total += k.Weight
	}
	if total == 0 || plan.Duration <= 0 {
		return nil
	}
	mean := plan.PerSecond * plan.Duration.Seconds()
	n := int(mean/2 + rng.Float64()*mean + 0.5) // uniform in [mean/2, 3mean/2]
	n = max(n, 1)
	out := make([]Fault, 0, n)
	for range n {
		w := rng.IntN(total)
		var k Kind
		for _, k = range kinds {
			if w < k.Weight {
				break
			}
			w -= k.Weight
		}
		f := Fault{Kind: k.Name, At: time.Duration(rng.Int64N(int64(plan.Duration)))}
		switch k.Target {
		case OnDatasource:
			f.Target = plan.Datasources[rng.IntN(len(plan.Datasources))]
		case OnWriter:
			f.Target = writerName(rng.IntN(max(plan.Writers, 1)))
		case OnArbiter:
			f.Target = plan.ArbiterMembers[rng.IntN(len(plan.ArbiterMembers))]
		}
		f.Hold = k.MinHold
		if k.MaxHold > k.MinHold {
			f.Hold += time.Duration(rng.Int64N(int64(k.MaxHold - k.MinHold)))
		}
		f.Pick = rng.Uint64()
		out = append(out, f)
	}
	slices.SortStableFunc(out, func(a, b Fault) int { return int(a.At - b.At) })
	return out
}

// writerName names the i-th writer process (from 0): w1, w2, ...
func writerName(i int) string { return fmt.Sprintf("w%d", i+1) }

// tally renders how many faults of each kind a schedule holds, in the
// order of kinds: "kill-writer×3 lock×2".
func tally(faults []Fault, kinds []Kind) string {
	var parts []string
	for _, k := range kinds {
		n := 0
		for _, f := range faults {
			if f.Kind == k.Name {
				n++
			}
		}
		if n > 0 {
			parts = append(parts, fmt.Sprintf("%s×%d", k.Name, n))
		}
	}
	return strings.Join(parts, " ")
}
