package soak

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"syscall"
	"time"
)

// Kind is one kind of fault: what a schedule draws (Name, Target, the
// range of its hold, its Weight) and how a run injects it.
type Kind struct {
	Name string
	// Engines are the engines it applies to; nil: every engine.
	Engines []string
	// Arbiters are the arbiters it applies to; nil: every arbiter.
	Arbiters         []string
	Target           Target
	MinHold, MaxHold time.Duration
	// Weight is how often it is drawn, relative to the other kinds.
	Weight int
	// Inject starts the fault f and returns what heals it, which the run
	// calls f.Hold later. It returns errSkipped when f cannot happen now
	// (its writer is already dead, its directory already away).
	Inject func(ctx context.Context, r *run, f Fault) (heal func() error, err error)
}

// errSkipped: a fault that cannot happen in the run's present state.
var errSkipped = errors.New("skipped")

// AllKinds is every kind of fault the soak knows, in the order the summary
// lists them. Another kind is one more entry: a Target, and an Inject that
// returns its heal.
func AllKinds() []Kind {
	servers := []string{"postgres", "mariadb"}
	return []Kind{
		// Another connection holds the database's write lock (SQLite: BEGIN
		// IMMEDIATE and a write; servers: every row locked), then rolls
		// back. Held 0.2-3 s on either datasource, this is what splits
		// processes that decide the primary each on its own.
		{Name: "lock", Target: OnDatasource, MinHold: 200 * time.Millisecond, MaxHold: 3 * time.Second, Weight: 4, Inject: holdLock},
		// SIGKILL of a writer process at a random moment (many are drawn,
		// so that some land between a write's commits), restarted after
		// the hold.
		{Name: "kill-writer", Target: OnWriter, MinHold: 50 * time.Millisecond, MaxHold: time.Second, Weight: 4, Inject: killWriter},
		// A writer process killed between the commits of one write, in an
		// order drawn from the fault's Pick: the primary committed and the
		// secondaries not, or the other way round (package crash). It is
		// restarted after the hold (killed then if no write committed).
		{Name: "crash-commit", Target: OnWriter, MinHold: 200 * time.Millisecond, MaxHold: time.Second, Weight: 3, Inject: crashCommit},
		// SIGSTOP of a writer process, SIGCONT after the hold: a process
		// that stops in the middle of a write, holding its locks.
		{Name: "stop-writer", Target: OnWriter, MinHold: 200 * time.Millisecond, MaxHold: 3 * time.Second, Weight: 2, Inject: stopWriter},
		// A lost mount: the datasource's directory is renamed away, so
		// processes that open it now cannot (open files stay usable);
		// meanwhile a writer starts (a new one, or one restarted).
		{Name: "lost-mount", Engines: []string{"sqlite"}, Target: OnDatasource, MinHold: 500 * time.Millisecond, MaxHold: 3 * time.Second, Weight: 1, Inject: loseMount},
		// The server SIGKILLed (every process of it), restarted after the hold.
		{Name: "kill-server", Engines: servers, Target: OnDatasource, MinHold: 500 * time.Millisecond, MaxHold: 3 * time.Second, Weight: 2, Inject: killServer},
		// The server SIGSTOPped: it hangs, its port still accepts connections.
		{Name: "pause-server", Engines: servers, Target: OnDatasource, MinHold: 200 * time.Millisecond, MaxHold: 3 * time.Second, Weight: 2, Inject: pauseServer},
		// The proxy between tandem and the server cuts every connection and
		// refuses new ones.
		{Name: "cut", Engines: servers, Target: OnDatasource, MinHold: 200 * time.Millisecond, MaxHold: 3 * time.Second, Weight: 2, Inject: cutProxy},
		// An etcd member SIGKILLed, restarted after the hold. Overlapping
		// kills take the quorum away: the view cannot change meanwhile.
		{Name: "kill-arbiter", Arbiters: []string{"etcd"}, Target: OnArbiter, MinHold: 500 * time.Millisecond, MaxHold: 3 * time.Second, Weight: 2, Inject: killArbiter},
		// An etcd member cut off from the other members (it still serves
		// its clients, stale), rejoined after the hold.
		{Name: "isolate-arbiter", Arbiters: []string{"etcd"}, Target: OnArbiter, MinHold: 500 * time.Millisecond, MaxHold: 3 * time.Second, Weight: 2, Inject: isolateArbiter},
	}
}

// KindsFor returns the kinds of fault that apply to engine with arbiter
// (the arbiter's kind: witness, etcd, none).
func KindsFor(engine, arbiter string) []Kind {
	var out []Kind
	for _, k := range AllKinds() {
		if (k.Engines == nil || slices.Contains(k.Engines, engine)) && (k.Arbiters == nil || slices.Contains(k.Arbiters, arbiter)) {
			out = append(out, k)
		}
	}
	return out
}

func holdLock(ctx context.Context, r *run, f Fault) (func() error, error) {
	ds := r.datasource(f.Target)
	return ds.lock(ctx)
}

func killWriter(ctx context.Context, r *run, f Fault) (func() error, error) {
	w := r.writer(f.Target)
	inc, err := w.kill()
	if err != nil {
		return nil, err
	}
	return func() error { return w.restartIf(inc) }, nil
}

func crashCommit(ctx context.Context, r *run, f Fault) (func() error, error) {
	w := r.writer(f.Target)
	sig, order := syscall.SIGUSR1, "primary first"
	if f.Pick%2 == 1 {
		sig, order = syscall.SIGUSR2, "secondaries first"
	}
	inc, err := w.armCrash(sig)
	if err != nil {
		return nil, err
	}
	r.verbosef("    crash-commit of %s armed: %s", w.name, order)
	return func() error {
		w.mu.Lock()
		alive := w.inc == inc && w.runningLocked()
		w.mu.Unlock()
		if alive { // it committed nothing meanwhile
			r.notef("crash-commit of %s (%s): no write reached its commits; killed at the heal", w.name, order)
			if _, err := w.kill(); err != nil && !errors.Is(err, errSkipped) {
				return err
			}
		} else {
			r.notef("crash-commit of %s (%s): died between the commits of a write", w.name, order)
		}
		return w.restartIf(inc)
	}, nil
}

func stopWriter(ctx context.Context, r *run, f Fault) (func() error, error) {
	w := r.writer(f.Target)
	pid, err := w.signal(syscall.SIGSTOP)
	if err != nil {
		return nil, err
	}
	return func() error {
		// The process may have been killed meanwhile; its successor runs.
		if err := syscall.Kill(pid, syscall.SIGCONT); err != nil && !errors.Is(err, syscall.ESRCH) {
			return err
		}
		return nil
	}, nil
}

func loseMount(ctx context.Context, r *run, f Fault) (func() error, error) {
	ds := r.datasource(f.Target)
	ds.mu.Lock()
	defer ds.mu.Unlock()
	if ds.away {
		return nil, errSkipped
	}
	if err := os.Rename(ds.mount, ds.mount+".lost"); err != nil {
		return nil, err
	}
	ds.away = true
	// A process starts while the directory is away: a new writer, or one
	// of the writers (re)started.
	what, err := r.startDuringMount(f.Pick)
	if err != nil {
		r.brokenf("lost mount of %s: %s: %v", ds.name, what, err)
	} else {
		r.verbosef("    lost mount of %s: %s", ds.name, what)
	}
	return ds.restoreMount, nil
}

func killServer(ctx context.Context, r *run, f Fault) (func() error, error) {
	ds := r.datasource(f.Target)
	ds.mu.Lock()
	defer ds.mu.Unlock()
	if !ds.server.Running() {
		return nil, errSkipped
	}
	if err := ds.server.Kill(); err != nil {
		return nil, err
	}
	return func() error {
		ds.mu.Lock()
		defer ds.mu.Unlock()
		if ds.server.Running() {
			return nil // restarted by an overlapping fault's heal
		}
		return ds.server.Relaunch()
	}, nil
}

func pauseServer(ctx context.Context, r *run, f Fault) (func() error, error) {
	ds := r.datasource(f.Target)
	ds.mu.Lock()
	defer ds.mu.Unlock()
	if !ds.server.Running() {
		return nil, errSkipped
	}
	if err := ds.server.Pause(); err != nil {
		return nil, err
	}
	return func() error {
		ds.mu.Lock()
		defer ds.mu.Unlock()
		if !ds.server.Running() {
			return nil // killed meanwhile; its heal restarts it
		}
		return ds.server.Resume()
	}, nil
}

func cutProxy(ctx context.Context, r *run, f Fault) (func() error, error) {
	ds := r.datasource(f.Target)
	ds.proxy.Cut()
	return func() error { ds.proxy.Restore(); return nil }, nil
}

func killArbiter(ctx context.Context, r *run, f Fault) (func() error, error) {
	m := r.opts.etcd.member(f.Target)
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.m.Running() {
		return nil, errSkipped
	}
	if err := m.m.Kill(); err != nil {
		return nil, err
	}
	return func() error {
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.m.Running() {
			return nil
		}
		return m.m.Relaunch()
	}, nil
}

func isolateArbiter(ctx context.Context, r *run, f Fault) (func() error, error) {
	m := r.opts.etcd.member(f.Target)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.isolated {
		return nil, errSkipped
	}
	m.isolated = true
	m.m.Isolate()
	return func() error {
		m.mu.Lock()
		defer m.mu.Unlock()
		m.isolated = false
		m.m.Rejoin()
		return nil
	}, nil
}

// healAll undoes whatever faults may be left (a heal that failed, a run
// cut short): every server running and resumed, every proxy restored,
// every directory back, every writer continued.
func (r *run) healAll() {
	for _, ds := range r.ds {
		ds.mu.Lock()
		if ds.server != nil {
			if !ds.server.Running() {
				if err := ds.server.Relaunch(); err != nil {
					r.notef("heal: %v", err)
				}
			} else if err := ds.server.Resume(); err != nil {
				r.notef("heal: %v", err)
			}
		}
		if ds.proxy != nil {
			ds.proxy.Restore()
		}
		ds.mu.Unlock()
		if err := ds.restoreMount(); err != nil {
			r.notef("heal: %v", err)
		}
	}
	for _, w := range r.writerList() {
		w.signal(syscall.SIGCONT)
	}
	if r.opts.etcd != nil {
		if err := r.opts.etcd.heal(); err != nil {
			r.notef("heal: %v", err)
		}
	}
}

// describe renders a fault with its outcome for the verbose log.
func describe(f Fault, err error) string {
	if err == nil {
		return f.String()
	}
	return fmt.Sprintf("%s: %v", f, err)
}
