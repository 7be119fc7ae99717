// Command soak is tandem's randomized multi-process fault soak; run it
// through scripts/soak.sh. See package internal/soak.
//
//	soak [-engine sqlite|postgres|mariadb] [-arbiter witness|etcd|none] [-runs N] [-seed S] [-repeat R] [-writers 2..3]
//	     [-goroutines G] [-duration D] [-settle D] [-v] [-keep]
//
// It exits 0 when every run passed, 1 when some failed (printing the
// command that replays each failing seed), 2 on bad usage or when it
// cannot run. `soak writer ...` is the body of the writer processes it
// starts.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	_ "github.com/tandemdb/tandem/arbiter/etcd"
	_ "github.com/tandemdb/tandem/engine/mysql"
	_ "github.com/tandemdb/tandem/engine/postgres"
	_ "github.com/tandemdb/tandem/engine/sqlite"
	"github.com/tandemdb/tandem/internal/soak"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "writer" {
		os.Exit(soak.WriterMain(os.Args[2:]))
	}
	os.Exit(run())
}

func run() int {
	o := soak.Options{Out: os.Stdout, Tail: time.Second}
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	fs.StringVar(&o.Engine, "engine", "sqlite", "the datasources' engine: sqlite, postgres or mariadb")
	fs.StringVar(&o.Arbiter, "arbiter", "", "the runs' arbiter: witness, etcd (3 members the soak starts) or none (default: witness for sqlite, none for servers)")
	fs.IntVar(&o.Runs, "runs", 40, "number of runs")
	seed := fs.String("seed", "", "the first run's seed (run i uses seed+i; default: drawn from the clock)")
	fs.IntVar(&o.Repeat, "repeat", 1, "run each seed this many times in a row")
	writers := fs.String("writers", "2..3", "writer processes per run: N, or MIN..MAX drawn per run from its seed")
	fs.IntVar(&o.Goroutines, "goroutines", 2, "per writer: inserting goroutines, and as many transferring (plus one reader)")
	fs.DurationVar(&o.Duration, "duration", 4*time.Second, "the fault phase of each run")
	fs.DurationVar(&o.Settle, "settle", 30*time.Second, "how long a run's cluster has to settle once the writers stopped")
	fs.Float64Var(&o.FaultsPerSecond, "rate", 1.5, "faults drawn per second of the fault phase, on average")
	fs.DurationVar(&o.Timeout, "timeout", 500*time.Millisecond, "the runs' config: timeout")
	fs.DurationVar(&o.HealthInterval, "health-interval", 100*time.Millisecond, "the runs' config: health_interval")
	fs.BoolVar(&o.Verbose, "v", false, "print each run's faults, notes and findings")
	fs.BoolVar(&o.Keep, "keep", false, "keep a failing run's directory (config, databases, writers' logs)")
	fs.StringVar(&o.TempDir, "tmp", "", "where runs' directories go (default: the system's temporary directory)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "soak: unexpected arguments %q\n", fs.Args())
		return 2
	}
	var err error
	if o.MinWriters, o.MaxWriters, err = parseRange(*writers); err != nil || o.MinWriters < 1 {
		fmt.Fprintf(os.Stderr, "soak: -writers %q: want N or MIN..MAX, at least 1\n", *writers)
		return 2
	}
	if *seed == "" {
		o.Seed = uint64(time.Now().UnixNano() % 1_000_000)
	} else if o.Seed, err = strconv.ParseUint(*seed, 10, 64); err != nil {
		fmt.Fprintf(os.Stderr, "soak: -seed %q: want a whole number\n", *seed)
		return 2
	}
	if o.Runs < 1 || o.Repeat < 1 || o.Goroutines < 1 || o.Duration <= 0 || o.Settle <= 0 {
		fmt.Fprintln(os.Stderr, "soak: -runs, -repeat and -goroutines must be at least 1, -duration and -settle positive")
		return 2
	}
	if o.Exe, err = os.Executable(); err != nil {
		fmt.Fprintf(os.Stderr, "soak: %v\n", err)
		return 2
	}
	if o.Arbiter == "" {
		o.Arbiter = soak.DefaultArbiter(o.Engine)
	}
	// The command that replays a run: every flag that shapes a schedule
	// or a run, as given.
	o.Replay = fmt.Sprintf("bash scripts/soak.sh -engine %s -arbiter %s -runs 1 -writers %s -goroutines %d -duration %v -rate %v -timeout %v -health-interval %v -settle %v -v -keep",
		o.Engine, o.Arbiter, *writers, o.Goroutines, o.Duration, o.FaultsPerSecond, o.Timeout, o.HealthInterval, o.Settle)
	fmt.Printf("soak engine=%s arbiter=%s runs=%d×%d seeds=%d..%d writers=%s goroutines=%d duration=%v timeout=%v health_interval=%v\n",
		o.Engine, o.Arbiter, o.Runs, o.Repeat, o.Seed, o.Seed+uint64(o.Runs)-1, *writers, o.Goroutines, o.Duration, o.Timeout, o.HealthInterval)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sum, err := soak.Soak(ctx, o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "soak: %v\n", err)
		return 2
	}
	if len(sum.FailedSeeds) > 0 || ctx.Err() != nil {
		return 1
	}
	return 0
}

// parseRange parses "N" or "MIN..MAX".
func parseRange(s string) (lo, hi int, err error) {
	a, b, isRange := strings.Cut(s, "..")
	if lo, err = strconv.Atoi(a); err != nil {
		return 0, 0, err
	}
	hi = lo
	if isRange {
		if hi, err = strconv.Atoi(b); err != nil {
			return 0, 0, err
		}
	}
	if hi < lo {
		return 0, 0, fmt.Errorf("%d > %d", lo, hi)
	}
	return lo, hi, nil
}
