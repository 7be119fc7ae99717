package soak

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tandemdb/tandem"
	"github.com/tandemdb/tandem/internal/jepsen"
)

// Result is what one run did and found.
type Result struct {
	Index     int
	Seed      uint64
	Writers   int // writer processes at the start
	Faults    []Fault
	Skipped   int // faults that could not happen when drawn (see errSkipped)
	Acked     int // acknowledged inserts
	Transfers int // acknowledged transfers
	Refused   int // writes that returned an error
	// Lost counts acknowledged values missing from some database (or held
	// there under another id).
	Lost      int
	Divergent bool
	Invariant bool
	Unsettled bool
	// Broken says how the run itself went wrong: a writer that crashed or
	// would not stop, a fault that could not be injected or healed, the
	// harness failing.
	Broken   []string
	Problems []string // what the checks found
	Notes    []string // what happened, for -v
	Settled  time.Duration
	Took     time.Duration
	Dir      string // the run's directory, when kept

	windows []window
	ops     []opRecord
}

// Failed reports whether the run found anything wrong.
func (r *Result) Failed() bool {
	return r.Lost > 0 || r.Divergent || r.Invariant || r.Unsettled || len(r.Broken) > 0
}

// window is when one fault lasted.
type window struct {
	fault    Fault
	from, to time.Time
}

// run is one run of the soak in progress, in a directory of its own.
type run struct {
	opts     Options
	seed     uint64
	nWriters int
	dir      string
	cfgPath  string
	logDir   string
	ds       []*datasource
	kinds    []Kind
	logger   *slog.Logger // the soak's own clusters (setup, settle)

	mu      sync.Mutex
	writers []*writerProc
	windows []window
	res     *Result
}

func (r *run) notef(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.res.Notes = append(r.res.Notes, fmt.Sprintf(format, args...))
}

func (r *run) brokenf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.res.Broken = append(r.res.Broken, fmt.Sprintf(format, args...))
}

func (r *run) verbosef(format string, args ...any) {
	if r.opts.Verbose {
		r.mu.Lock()
		defer r.mu.Unlock()
		fmt.Fprintf(r.opts.Out, format+"\n", args...)
	}
}

func (r *run) datasource(name string) *datasource {
	for _, d := range r.ds {
		if d.name == name {
			return d
		}
	}
	panic("soak: no datasource " + name)
}

func (r *run) writer(name string) *writerProc {
	for _, w := range r.writerList() {
		if w.name == name {
			return w
		}
	}
	panic("soak: no writer " + name)
}

func (r *run) writerList() []*writerProc {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*writerProc(nil), r.writers...)
}

func (r *run) addWriter() *writerProc {
	r.mu.Lock()
	defer r.mu.Unlock()
	w := &writerProc{r: r, name: writerName(len(r.writers))}
	r.writers = append(r.writers, w)
	return w
}

// startDuringMount starts a process while a directory is away: a new
// writer (at most two more than the run began with), or one of the
// writers, restarted (or started, when a kill left it down).
func (r *run) startDuringMount(pick uint64) (string, error) {
	ws := r.writerList()
	if pick%3 == 0 && len(ws) < r.nWriters+2 {
		w := r.addWriter()
		return "started a new writer " + w.name, w.start(nil)
	}
	w := ws[int(pick/3%uint64(len(ws)))]
	if !w.running() {
		return "started " + w.name + ", down since a kill", w.start(nil)
	}
	return "restarted " + w.name, w.restart()
}

// runWriters draws how many writers run i starts with.
func runWriters(seed uint64, min, max int) int {
	if max <= min {
		return min
	}
	return min + rand.New(rand.NewPCG(seed, 1)).IntN(max-min+1)
}

// runOnce runs the soak's run of seed: set up, writers, faults, heal,
// stop, settle, check.
func runOnce(ctx context.Context, o Options, index int, seed uint64) *Result {
	start := time.Now()
	res := &Result{Index: index, Seed: seed}
	r := &run{opts: o, seed: seed, res: res, kinds: KindsFor(o.Engine, o.Arbiter)}
	r.nWriters = runWriters(seed, o.MinWriters, o.MaxWriters)
	res.Writers = r.nWriters
	defer func() { res.Took = time.Since(start) }()

	var err error
	if r.dir, err = os.MkdirTemp(o.TempDir, fmt.Sprintf("soak-%d-", seed)); err != nil {
		r.brokenf("%v", err)
		return res
	}
	defer func() {
		if res.Failed() && o.Keep {
			res.Dir = r.dir
			return
		}
		os.RemoveAll(r.dir)
	}()
	if err := r.do(ctx); err != nil {
		r.brokenf("%v", err)
	}
	return res
}

func (r *run) do(ctx context.Context) error {
	o, res := r.opts, r.res
	r.cfgPath = filepath.Join(r.dir, "tandem.yaml")
	r.logDir = filepath.Join(r.dir, "logs")
	if err := os.Mkdir(r.logDir, 0o755); err != nil {
		return err
	}
	logFile, err := os.Create(filepath.Join(r.logDir, "soak.stderr"))
	if err != nil {
		return err
	}
	defer logFile.Close()
	r.logger = slog.New(slog.NewTextHandler(logFile, &slog.HandlerOptions{Level: slog.LevelInfo}))

	// A database of its own for every run: a seed run again (-repeat)
	// starts from empty databases too.
	db := fmt.Sprintf("soak_%d_%d", r.seed, r.res.Index)
	if r.ds, err = makeDatasources(ctx, o.Engine, r.dir, db, o.servers); err != nil {
		return err
	}
	arbiter := o.arbiterConfig(fmt.Sprintf("/tandem/soak/%s/run-%d", filepath.Base(r.dir), r.res.Index))
	if err := writeConfig(r.cfgPath, r.ds, arbiter, o.Timeout, o.HealthInterval); err != nil {
		return err
	}
	cfg, err := tandem.LoadConfig(r.cfgPath)
	if err != nil {
		return err
	}
	if err := r.setup(ctx, cfg); err != nil {
		return fmt.Errorf("set up: %w", err)
	}
	for _, d := range r.ds {
		defer d.close()
		if err := d.open(ctx); err != nil {
			return fmt.Errorf("open %s: %w", d.name, err)
		}
	}
	names := make([]string, len(r.ds))
	for i, d := range r.ds {
		names[i] = d.name
	}
	plan := Plan{Datasources: names, Writers: r.nWriters, Duration: o.Duration, PerSecond: o.FaultsPerSecond}
	if o.etcd != nil {
		plan.ArbiterMembers = o.etcd.names()
	}
	res.Faults = Draw(r.seed, r.kinds, plan)

	// Writers, each ready before the faults begin.
	var readies []chan struct{}
	for range r.nWriters {
		ready := make(chan struct{})
		readies = append(readies, ready)
		if err := r.addWriter().start(ready); err != nil {
			return err
		}
	}
	defer r.stopWriters() // on an early return; a no-op after the orderly stop
	for i, w := range r.writerList() {
		if err := w.waitReady(ctx, readies[i]); err != nil {
			return err
		}
	}

	r.faultPhase(ctx)
	r.healAll()
	r.mu.Lock()
	res.windows = r.windows
	r.mu.Unlock()
	for _, w := range r.writerList() {
		if !w.running() {
			if err := w.start(nil); err != nil {
				r.brokenf("restart %s after the faults: %v", w.name, err)
			}
		}
	}
	r.verbosef("  faults healed; writers run %v more", o.Tail)
	select {
	case <-time.After(o.Tail):
	case <-ctx.Done():
		return ctx.Err()
	}
	r.stopWriters()

	settled, err := settle(ctx, cfg, r.ds, o.Settle, r.logger)
	res.Settled = settled
	if err != nil {
		res.Unsettled = true
		res.Problems = append(res.Problems, err.Error())
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}

	h, err := readLogs(r.logDir)
	if err != nil {
		return err
	}
	res.Acked, res.Transfers, res.ops = len(h.acked), h.transfers, h.ops
	errs := map[string]int{}
	for _, op := range h.ops {
		if op.write() && op.err != "" {
			res.Refused++
			errs[op.err]++
		}
	}
	for _, e := range topErrors(errs, 3) {
		r.notef("refused %d× %s", errs[e], e)
	}
	if res.Acked == 0 || res.Transfers == 0 {
		r.brokenf("the workloads did not run: %d inserts and %d transfers acknowledged", res.Acked, res.Transfers)
	}
	nodes := make([]jepsen.Node, len(r.ds))
	for i, d := range r.ds {
		nodes[i] = d.node()
	}
	if o.Keep && o.servers != nil {
		// The servers outlive no soak: keep what the checks read.
		defer func() {
			if res.Failed() {
				for _, d := range r.ds {
					if err := d.dump(ctx, filepath.Join(r.dir, d.name+".rows")); err != nil {
						r.notef("dump %s: %v", d.name, err)
					}
				}
			}
		}()
	}
	f, err := Check(ctx, cfg, nodes, Expect{Acked: h.acked, DupAcks: h.dupAcks, BadReads: h.bad, Accounts: accounts, Total: accounts * balance})
	if err != nil {
		return fmt.Errorf("check: %w", err)
	}
	res.Lost, res.Divergent, res.Invariant = len(f.Lost), f.Divergent, f.Invariant
	res.Problems = append(res.Problems, f.Problems...)
	if len(h.dupAcks) > 0 {
		res.Lost = max(res.Lost, 1)
	}
	return nil
}

// setup creates the tables and the bank's accounts once, before any writer
// starts, and waits for the cluster to settle: on a loaded machine a
// datasource can be left out during the set-up (a timeout is a timeout)
// and gets the tables and rows by catch-up, and the checks read every
// database directly.
func (r *run) setup(ctx context.Context, cfg *tandem.Config) error {
	if err := r.create(ctx, cfg); err != nil {
		return err
	}
	if _, err := settle(ctx, cfg, nil, 30*time.Second, r.logger); err != nil {
		return fmt.Errorf("after the set-up: %w", err)
	}
	return nil
}

// create makes the tables and the bank's accounts.
func (r *run) create(ctx context.Context, cfg *tandem.Config) error {
	c, err := tandem.Open(ctx, cfg, tandem.WithLogger(r.logger))
	if err != nil {
		return err
	}
	defer c.Close()
	if err := (jepsen.Unique{}).Setup(ctx, c); err != nil {
		return err
	}
	return jepsen.Bank{Accounts: accounts, Balance: balance}.Setup(ctx, c)
}

// faultPhase injects the schedule's faults, each at its moment, heals each
// after its hold, and returns once the phase is over and every fault is
// healed.
func (r *run) faultPhase(ctx context.Context) {
	kinds := map[string]Kind{}
	for _, k := range r.kinds {
		kinds[k.Name] = k
	}
	t0 := time.Now()
	r.verbosef("  fault phase: %d faults over %v", len(r.res.Faults), r.opts.Duration)
	var wg sync.WaitGroup
	for _, f := range r.res.Faults {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-time.After(time.Until(t0.Add(f.At))):
			case <-ctx.Done():
				return
			}
			heal, err := kinds[f.Kind].Inject(ctx, r, f)
			if errors.Is(err, errSkipped) {
				r.mu.Lock()
				r.res.Skipped++
				r.mu.Unlock()
				r.verbosef("  %+.3fs %s: skipped", time.Since(t0).Seconds(), f)
				return
			}
			if err != nil {
				r.brokenf("inject %s: %v", f, err)
				return
			}
			from := time.Now()
			r.verbosef("  %+.3fs %s", from.Sub(t0).Seconds(), f)
			select {
			case <-time.After(f.Hold):
			case <-ctx.Done():
			}
			if err := heal(); err != nil {
				r.brokenf("heal %s: %v", f, err)
			}
			to := time.Now()
			r.mu.Lock()
			r.windows = append(r.windows, window{fault: f, from: from, to: to})
			r.mu.Unlock()
			r.verbosef("  %+.3fs %s healed after %v", to.Sub(t0).Seconds(), f, to.Sub(from).Round(time.Millisecond))
		}()
	}
	wg.Wait()
	select {
	case <-time.After(time.Until(t0.Add(r.opts.Duration))):
	case <-ctx.Done():
	}
}

// stopWriters stops every writer (SIGTERM, then a wait), all at once.
func (r *run) stopWriters() {
	var wg sync.WaitGroup
	for _, w := range r.writerList() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := w.term(30 * time.Second); err != nil {
				r.brokenf("%v", err)
			}
		}()
	}
	wg.Wait()
}

// topErrors returns the n most frequent errors.
func topErrors(errs map[string]int, n int) []string {
	keys := make([]string, 0, len(errs))
	for e := range errs {
		keys = append(keys, e)
	}
	slices.SortFunc(keys, func(a, b string) int {
		if errs[a] != errs[b] {
			return errs[b] - errs[a]
		}
		return strings.Compare(a, b)
	})
	return keys[:min(n, len(keys))]
}

// line renders the run's result on one line.
func (res *Result) line(runs int, kinds []Kind) string {
	var b strings.Builder
	fmt.Fprintf(&b, "run %d/%d seed=%d writers=%d faults=%d", res.Index+1, runs, res.Seed, res.Writers, len(res.Faults))
	if t := tally(res.Faults, kinds); t != "" {
		fmt.Fprintf(&b, " (%s)", t)
	}
	if res.Skipped > 0 {
		fmt.Fprintf(&b, " skipped=%d", res.Skipped)
	}
	fmt.Fprintf(&b, " acked=%d transfers=%d refused=%d settled=%.1fs took=%.1fs: ",
		res.Acked, res.Transfers, res.Refused, res.Settled.Seconds(), res.Took.Seconds())
	if !res.Failed() {
		b.WriteString("PASS")
		return b.String()
	}
	b.WriteString("FAIL")
	if res.Lost > 0 {
		fmt.Fprintf(&b, " lost=%d", res.Lost)
	}
	if res.Divergent {
		b.WriteString(" divergent")
	}
	if res.Invariant {
		b.WriteString(" invariant")
	}
	if res.Unsettled {
		b.WriteString(" unsettled")
	}
	if len(res.Broken) > 0 {
		b.WriteString(" broken")
	}
	return b.String()
}

// details renders what a run found and noted, indented, for -v and for
// failing runs.
func (res *Result) details(w io.Writer, all bool) {
	for _, p := range res.Broken {
		fmt.Fprintf(w, "    broken: %s\n", p)
	}
	for _, p := range res.Problems {
		fmt.Fprintf(w, "    found: %s\n", p)
	}
	if all {
		for _, n := range res.Notes {
			fmt.Fprintf(w, "    note: %s\n", n)
		}
	}
	if res.Dir != "" {
		fmt.Fprintf(w, "    kept: %s (logs/*.log, logs/*.stderr, tandem.yaml; a server's rows in NAME.rows)\n", res.Dir)
	}
}
