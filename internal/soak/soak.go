// Package soak is tandem's randomized multi-process fault soak: each run
// starts two or three writer processes on one cluster (two SQLite files,
// or two PostgreSQL or MariaDB servers), injects a schedule of faults
// drawn from the run's seed (a database's lock held by another
// connection, writers killed or stopped, a lost mount, servers killed or
// paused, connections cut), heals them, waits for the cluster to settle
// and reads every database directly: every acknowledged write must be on
// every database under the id acknowledged, the databases identical, the
// bank's total intact. A failing seed replays its schedule.
//
// It runs as a program (internal/soak/cmd/soak, through scripts/soak.sh),
// not as a test: a soak is too long for go test ./..., and the writers
// are the same binary re-executed (WriterMain).
package soak

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Options configure a soak.
type Options struct {
	Engine string // sqlite, postgres or mariadb
	// Arbiter is the runs' arbiter: witness, etcd (a 3-member cluster the
	// soak starts) or none; "": the engine's default.
	Arbiter string
	Runs    int
	// Seed is the first run's seed; run i uses Seed+i.
	Seed uint64
	// Repeat runs each seed this many times in a row (default 1): a
	// replay's outcome depends on timing, its schedule does not.
	Repeat int
	// MinWriters and MaxWriters bound the writer processes a run starts
	// with (drawn from its seed).
	MinWriters, MaxWriters int
	// Goroutines is each writer's number of inserting goroutines, and of
	// transferring ones.
	Goroutines int
	// Duration is the fault phase's; Tail how long writers run after
	// every fault is healed; Settle how long the cluster has to settle.
	Duration, Tail, Settle time.Duration
	// FaultsPerSecond is the mean number of faults drawn per second of
	// the fault phase.
	FaultsPerSecond float64
	// Timeout and HealthInterval go in the runs' configs.
	Timeout, HealthInterval time.Duration
	Verbose                 bool
	// Keep keeps a failing run's directory.
	Keep bool
	// Exe is the binary re-executed as writers (`Exe writer ...`).
	Exe string
	// TempDir holds the runs' directories ("": the system's).
	TempDir string
	// Replay is the command that replays one run, printed for each
	// failing seed with -seed SEED appended.
	Replay string
	Out    io.Writer

	servers *servers
	etcd    *etcdArbiter
}

// Summary is what a soak found.
type Summary struct {
	Engine      string
	Arbiter     string
	Runs        int
	Passed      int
	Lost        int // acknowledged writes missing from some database, over all runs
	Divergent   int // runs whose databases differ at the end
	Invariant   int // runs with the bank's invariant broken
	Unsettled   int // runs whose cluster did not settle in time
	Broken      int // runs that did not go as planned (see Result.Broken)
	FailedSeeds []uint64
	Avail       *Availability
	Took        time.Duration
}

// Line is the summary on one line:
//
//	soak engine=sqlite arbiter=witness runs=40 passed=32 lost=84 divergent=5 invariant=3 unsettled=2 failed_seeds=7,19
func (s *Summary) Line() string {
	seeds := make([]string, len(s.FailedSeeds))
	for i, seed := range s.FailedSeeds {
		seeds[i] = strconv.FormatUint(seed, 10)
	}
	return fmt.Sprintf("soak engine=%s arbiter=%s runs=%d passed=%d lost=%d divergent=%d invariant=%d unsettled=%d failed_seeds=%s",
		s.Engine, s.Arbiter, s.Runs, s.Passed, s.Lost, s.Divergent, s.Invariant, s.Unsettled, strings.Join(seeds, ","))
}

func (s *Summary) add(res *Result) {
	s.Runs++
	if !res.Failed() {
		s.Passed++
	} else if !slices.Contains(s.FailedSeeds, res.Seed) {
		s.FailedSeeds = append(s.FailedSeeds, res.Seed)
	}
	s.Lost += res.Lost
	if res.Divergent {
		s.Divergent++
	}
	if res.Invariant {
		s.Invariant++
	}
	if res.Unsettled {
		s.Unsettled++
	}
	if len(res.Broken) > 0 {
		s.Broken++
	}
	s.Avail.add(res)
}

// Soak runs o.Runs runs, printing a line per run and, at the end, the
// summary line, the availability per fault kind and the command that
// replays each failing seed. It returns an error only when it cannot run
// at all (servers that do not start); an interrupted soak (ctx) returns
// what it did.
func Soak(ctx context.Context, o Options) (*Summary, error) {
	if !slices.Contains(Engines, o.Engine) {
		return nil, fmt.Errorf("unknown engine %q (known: %s)", o.Engine, strings.Join(Engines, ", "))
	}
	if o.Arbiter == "" {
		o.Arbiter = DefaultArbiter(o.Engine)
	}
	if !slices.Contains(Arbiters, o.Arbiter) {
		return nil, fmt.Errorf("unknown arbiter %q (known: %s)", o.Arbiter, strings.Join(Arbiters, ", "))
	}
	start := time.Now()
	kinds := KindsFor(o.Engine, o.Arbiter)
	sum := &Summary{Engine: o.Engine, Arbiter: o.Arbiter, Avail: newAvailability(kinds)}
	if o.Engine != "sqlite" || o.Arbiter == "etcd" {
		dir, err := os.MkdirTemp(o.TempDir, "soak-servers-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		if o.Engine != "sqlite" {
			srv, err := startServers(o.Engine, dir)
			if err != nil {
				return nil, err
			}
			defer srv.close()
			o.servers = srv
		}
		if o.Arbiter == "etcd" {
			e, err := startEtcd(dir)
			if err != nil {
				return nil, err
			}
			defer e.close()
			o.etcd = e
		}
	}
	repeat := max(o.Repeat, 1)
	runs := o.Runs * repeat
	for i := range runs {
		if ctx.Err() != nil {
			break
		}
		seed := o.Seed + uint64(i/repeat)
		if o.Verbose {
			fmt.Fprintf(o.Out, "run %d/%d seed=%d: starting\n", i+1, runs, seed)
		}
		res := runOnce(ctx, o, i, seed)
		if ctx.Err() != nil {
			fmt.Fprintf(o.Out, "run %d/%d seed=%d: interrupted\n", i+1, runs, seed)
			break
		}
		fmt.Fprintln(o.Out, res.line(runs, kinds))
		if o.Verbose || res.Failed() {
			res.details(o.Out, o.Verbose)
		}
		sum.add(res)
	}
	sum.Took = time.Since(start)
	fmt.Fprintln(o.Out, sum.Line())
	sum.Avail.write(o.Out)
	if len(sum.FailedSeeds) > 0 {
		fmt.Fprintln(o.Out, "replay a failing run (its schedule; add -repeat N to run it N times, as timing decides its outcome):")
		for _, seed := range sum.FailedSeeds {
			fmt.Fprintf(o.Out, "  %s -seed %d\n", o.Replay, seed)
		}
	}
	fmt.Fprintf(o.Out, "took %v (%v per run)\n", sum.Took.Round(time.Second), (sum.Took / time.Duration(max(sum.Runs, 1))).Round(100*time.Millisecond))
	return sum, nil
}
