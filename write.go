package tandem

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/tandemdb/tandem/engine"
	"github.com/tandemdb/tandem/internal/crash"
	"github.com/tandemdb/tandem/internal/records"
	"github.com/tandemdb/tandem/internal/value"
)

// Hooks a model may implement. Before hooks run before the row is written
// and may refuse the write by returning an error; after hooks run once the
// row is written on the primary, inside the same transaction, and an error
// rolls the whole transaction back on every database.
type (
	BeforeSaver interface {
		BeforeSave(ctx context.Context) error
	}
	AfterSaver interface {
		AfterSave(ctx context.Context) error
	}
	BeforeDeleter interface {
		BeforeDelete(ctx context.Context) error
	}
	AfterDeleter interface {
		AfterDelete(ctx context.Context) error
	}
)

// Writer is what Cluster and Tx have in common for writes.
type Writer interface {
	Save(ctx context.Context, v any) error
	Insert(ctx context.Context, v any) error
	Update(ctx context.Context, v any) error
	Delete(ctx context.Context, v any) error
}

var (
	_ Writer = (*Cluster)(nil)
	_ Writer = (*Tx)(nil)
)

// Save inserts or updates the row v (a pointer to a model struct) on every
// database. A model with an auto key and a zero key is inserted, and v's key
// is set to the id the primary assigned; any other row is written whole,
// replacing the row with the same key if there is one.
//
// On SQLite, concurrent Saves and Deletes are committed in groups (see
// [Cluster.Tx]): each returns once its row is committed everywhere.
func (c *Cluster) Save(ctx context.Context, v any) error {
	if c.groupable(v) {
		return c.writeGrouped(ctx, v, false)
	}
	return c.tx(ctx, func(tx *Tx) error { return tx.Save(ctx, v) }, true)
}

// Insert inserts the row v (a pointer to a model struct) on every
// database, as Save does, but refuses a key that is taken: the error
// wraps ErrDuplicateKey (a *ConstraintError), nothing written. A model
// with an auto key and a zero key gets its id from the primary, as with
// Save.
func (c *Cluster) Insert(ctx context.Context, v any) error {
	return c.tx(ctx, func(tx *Tx) error { return tx.Insert(ctx, v) }, true)
}

// Update writes the row v (a pointer to a model struct) over the row of
// its key on every database, and refuses a key that has no row: the error
// wraps ErrNotFound, nothing written.
func (c *Cluster) Update(ctx context.Context, v any) error {
	return c.tx(ctx, func(tx *Tx) error { return tx.Update(ctx, v) }, true)
}

// Delete deletes the row with v's primary key from every database. Deleting
// a row that does not exist is not an error.
func (c *Cluster) Delete(ctx context.Context, v any) error {
	if c.groupable(v) {
		return c.writeGrouped(ctx, v, true)
	}
	return c.tx(ctx, func(tx *Tx) error { return tx.Delete(ctx, v) }, true)
}

// Tx is a transaction on every database. The callback's saves and deletes
// take effect on every database the write reaches, or on none; each
// database it skips (down, or catching up) gets a record of the keys it
// missed, in the same transaction, on every database the write reaches.
type Tx struct {
	c       *Cluster
	ctx     context.Context // the Tx's: the secondaries' goroutines run under it
	view    *view
	primary *Node
	tx      *dbTx // on the primary
	secs    []*secondary
	// nops counts the ops sent to the secondaries; ops holds them only
	// in a group's transaction (keepOps), whose failed member's ops are
	// sent again (group.go): a write of a million rows keeps none.
	nops    int
	ops     []op
	keepOps bool
	now     time.Time
	done    bool
	// ids are the auto-id fields this Tx set; they are reset to zero when
	// it is known not to have committed, so a retried Save inserts anew.
	ids []reflect.Value
	// broken is the error of a statement that may have ended the
	// primary's transaction (SQLite rolls it back on I/O errors and
	// interrupts); later statements would run outside it, so none may.
	broken error
	// committing is set once the commits begin: a Tx that fails before
	// has committed nothing anywhere.
	committing bool
	// whole marks a Cluster.Tx, which counts as one write in Metrics
	// however many rows it writes (see Tx.weight).
	whole bool
	// in is the write's intent record, and noted the seqs of its keys the
	// primary recorded in the statements that wrote them
	// (engine.WithInserter).
	in    *records.Intent
	noted seqSet
	// settled names the writes in doubt that an earlier run of this
	// write had settled (see overlapsDoubt): not settled twice.
	settled map[string]bool
	// committed: the commit reached the primary (or may have).
	committed bool
	// release ends the hold on the view of a Tx that Begin began (nil
	// for Cluster.Tx's).
	release func()
	// ddl: the write changed the structure (capture.go).
	ddl bool
	// capturing: capture is on in the primary's transaction (a SQL
	// statement ran); undrained: a query may have changed rows not sent
	// yet (capture.go).
	capturing, undrained bool
	// bulky names the tables a drain read many keys of: their capture
	// tables are vacuumed once the Tx ends (capture.go).
	bulky map[string]bool
	// members counts the Cluster.Tx calls a group's transaction holds
	// (see grouper), and memberOps the ops they made: each counts as one
	// write, like a whole Tx.
	members, memberOps int
}

// statementFailed notes err, returned by a statement on the primary.
func (tx *Tx) statementFailed(ctx context.Context, err error) {
	if sw := tx.primary.singleWriter(); sw != nil && sw.StatementOnly(err) {
		return
	}
	tx.broken = err
	if ctx.Err() == nil && tx.primary.singleWriter() != nil {
		// Not a constraint and not the caller's cancellation: the
		// database failed (I/O error, full disk, no answer), unless a
		// read on a connection of its own says it only waited.
		tx.c.failed(ctx, tx.primary, fmt.Errorf("write on primary: %w", err))
	}
}

// usable refuses writes after a statement ended the transaction.
func (tx *Tx) usable(what string) error {
	switch {
	case tx.done:
		return fmt.Errorf("%s: transaction already finished", what)
	case tx.broken != nil:
		return fmt.Errorf("%s: %w: an earlier statement ended the transaction: %v", what, ErrNotCommitted, tx.broken)
	}
	return nil
}

// op is one write, replayed on the secondaries exactly as the primary did it.
type op struct {
	m   *model
	del bool
	key []any // canonical values of the primary key
	row []any // canonical values of the full row; nil for a delete
	pk  records.Key
	seq int // pk's seq in the write's intent record
	// captured: a row a SQL statement changed (capture.go); the
	// secondary applies it as the primary's rows, its own triggers off
	// where the engine can (engine.Capturer.ApplyOn).
	captured bool
	// ddl, with args: a statement that changes the structure, run as it
	// is on every database in the write's order (no row, no key).
	ddl  string
	args []any
}

// Tx runs fn in a transaction on every database a write reaches. Each of
// fn's writes is applied to the primary as fn makes it (taking the
// primary's locks), then streamed to every secondary, where a goroutine per
// secondary applies it in its own transaction; when fn returns nil, every
// database records the write's keys and all commit concurrently. If fn
// returns an error or panics, nothing is written anywhere. Inside fn use
// tx, never the Cluster: the primary's write connection is held by tx.
//
// A secondary that fails or does not answer within Config.Timeout is left
// out: the write commits on the others, which record the keys it missed,
// and it catches up when it is back. A primary that fails before fn runs
// is replaced by the next datasource in rank order.
//
// fn may run more than once: when the primary turns out, at commit, to miss
// writes another process made around it (it was failing back), or when a
// write left in doubt by a process that died between its commits names a
// key fn wrote (the doubt is settled first), nothing is committed and fn
// runs again. So fn should act only through tx, and return the same result
// for the same data.
//
// On SQLite, concurrent Tx calls (and Saves and Deletes) are committed in
// groups, one commit per database for the group: fn runs
// in a savepoint of the group's transaction, after the members queued
// before it, and if it fails only its own writes are undone.
func (c *Cluster) Tx(ctx context.Context, fn func(tx *Tx) error) error {
	whole := func(tx *Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		return tx.drainPending(ctx) // a query's rows, closed by now
	}
	if c.primary.database().singleWriter() != nil {
		return c.txGrouped(ctx, whole)
	}
	return c.tx(ctx, func(tx *Tx) error { tx.whole = true; return whole(tx) }, true)
}

// tx runs fn as Tx does. With rerun, a write refused because the primary
// turned out to miss writes another database holds, or because the view
// changed under it, runs again under the new view.
func (c *Cluster) tx(ctx context.Context, fn func(tx *Tx) error, rerun bool) error {
	start := time.Now()
	err := c.txRuns(ctx, fn, rerun)
	if err == nil {
		c.writeLatency.since(start)
	}
	return err
}

// txRuns is tx's work: each run of fn, until one is acknowledged or fails
// for good.
func (c *Cluster) txRuns(ctx context.Context, fn func(tx *Tx) error, rerun bool) error {
	retries, views := 0, 0
	var settled map[string]bool // writes in doubt this write had settled
	for attempt := 0; ; attempt++ {
		v, ptx, release, err := c.beginPrimary(ctx, attempt, &views)
		if errors.Is(err, errTryAgain) {
			continue
		}
		if err != nil {
			return err
		}
		err = func() error {
			defer release() // also when fn panics
			return c.runTx(ctx, v, ptx, fn, settled)
		}()
		var sf *secondaryFailure
		var pf *primaryFailure
		var pc *partialCommit
		var od *overlapsDoubt
		switch {
		case err == nil:
			return nil
		case errors.As(err, &pc):
			return c.leaveOut(ctx, pc)
		case !rerun:
		case errors.As(err, &od):
			// Nothing was committed anywhere: end those doubts, then run
			// fn again. Once only: a doubt that is still there on the
			// rerun (the primary still catching up, a row refused) is left
			// to the sweep, as before.
			if settled == nil {
				settled = map[string]bool{}
			}
			for _, id := range od.txids {
				settled[id] = true
			}
			if err := c.settleDoubtsOf(ctx, od.txids); err != nil {
				c.log.Warn("settling writes in doubt before a write of their keys", "writes", len(od.txids), "err", err)
			}
			attempt--
			continue
		case errors.As(err, &sf):
			// Nothing was committed anywhere: leave the secondary out if it
			// is down, and run fn again.
			if err := c.lost(ctx, sf.n, sf.err, attempt); err != nil {
				return fmt.Errorf("%w: %w", ErrNotCommitted, err)
			}
			continue
		case errors.As(err, &pf) && ctx.Err() == nil:
			// Nothing was committed anywhere: run fn again once another
			// datasource takes over.
			if err := c.lost(ctx, pf.n, pf.err, attempt); err != nil {
				return fmt.Errorf("%w: %w", ErrNotCommitted, err)
			}
			continue
		case errors.Is(err, errFenced):
			if views++; views <= maxViewChanges {
				c.reloadAfterFence(ctx)
				continue
			}
		case errors.Is(err, errPrimaryBehind) && attempt < len(c.nodes):
			c.kick()
			continue
		case retries < maxRetries && ctx.Err() == nil && v.primary.retryable(err):
			// A deadlock victim on a row-locking primary: nothing was
			// committed anywhere; run fn again after the winner.
			retries++
			attempt--
			time.Sleep(time.Duration(rand.Int64N(int64(retries)*int64(2*time.Millisecond)) + 1))
			continue
		}
		return err
	}
}

// beginPrimary takes the current view (its gate, until release) and
// begins a write on its primary, past the fence. When that fails, and
// nothing has run, it returns errTryAgain where another try may succeed
// (the view changed; the primary was left out), having released the view.
// attempt counts the tries, views the view changes met so far.
func (c *Cluster) beginPrimary(ctx context.Context, attempt int, views *int) (v *view, ptx *dbTx, release func(), err error) {
	if c.closed.Load() {
		return nil, nil, nil, ErrClosed
	}
	v, release, err = c.acquire()
	if err != nil {
		return nil, nil, nil, err
	}
	if err := c.structureErr(); err != nil {
		release()
		return nil, nil, nil, err
	}
	ptx, err = v.primary.beginWrite(ctx, c.timeout)
	if err == nil {
		if err = v.primary.fence(ctx, ptx, v.rec.Generation); err != nil {
			ptx.Rollback()
		}
	}
	if err == nil {
		return v, ptx, release, nil
	}
	release()
	if ctx.Err() != nil {
		return nil, nil, nil, err
	}
	if errors.Is(err, errFenced) {
		if *views++; *views > maxViewChanges {
			return nil, nil, nil, fmt.Errorf("%w: %w", ErrNotCommitted, err)
		}
		c.reloadAfterFence(ctx)
		return nil, nil, nil, errTryAgain
	}
	// Nothing has run: if the primary is down, the view may change
	// (another datasource takes over, where an arbiter lets it).
	if err := c.lost(ctx, v.primary, err, attempt); err != nil {
		return nil, nil, nil, err
	}
	return nil, nil, nil, errTryAgain
}

// errTryAgain: see beginPrimary.
var errTryAgain = errors.New("try again")

// maxViewChanges bounds how often one write runs again because the view
// changed under it.
const maxViewChanges = 5

// lost handles the failure of n in a write that committed nothing: a busy
// database fails the write with ErrBusy; a down one is left out of the view
// (the primary too, where an arbiter lets another take over), after which
// the write may run again (nil).
func (c *Cluster) lost(ctx context.Context, n *Node, err error, attempt int) error {
	err = c.failed(ctx, n, err)
	if errors.Is(err, ErrBusy) || attempt >= len(c.nodes) {
		return err
	}
	if xerr := c.exclude(ctx, n, err); xerr != nil && !errors.Is(xerr, errViewChanged) {
		return xerr
	}
	return nil
}

// reloadAfterFence reads the view anew after a database refused a write
// made under an older one.
func (c *Cluster) reloadAfterFence(ctx context.Context) {
	if err := c.reload(ctx); err != nil {
		c.log.Warn("cluster view: reading it after a refused write", "err", err)
	}
}

// secondaryFailure: a secondary failed before anything was committed. The
// write was rolled back everywhere; it runs again once the secondary is left
// out of the view (or fails with ErrBusy if the secondary is only busy).
type secondaryFailure struct {
	n   *Node
	err error
}

func (e *secondaryFailure) Error() string { return e.err.Error() }
func (e *secondaryFailure) Unwrap() error { return e.err }

// primaryFailure: the primary was found down before the write's commits
// began (a hung server whose transactions were given up, see
// giveUpWhenDown). Nothing was committed anywhere; the write runs again
// once the view leaves the primary out (another datasource takes over,
// where an arbiter lets it).
type primaryFailure struct {
	n   *Node
	err error
}

func (e *primaryFailure) Error() string { return e.err.Error() }
func (e *primaryFailure) Unwrap() error { return e.err }

// partialCommit: the primary committed, with every secondary that could
// record the keys of those that failed to commit (lost). The write is
// acknowledged once the lost ones are left out of the view.
type partialCommit struct {
	lost []*Node
	errs []error
}

func (e *partialCommit) Error() string {
	return fmt.Sprintf("committed on the primary; not on %s: %v", nodeNames(e.lost), errors.Join(e.errs...))
}

// leaveOut acknowledges a write that committed without some secondaries
// once the view leaves them out: then no process can make one of them the
// primary before it has caught up. If the view cannot change, the write is
// committed but not acknowledged.
func (c *Cluster) leaveOut(ctx context.Context, pc *partialCommit) error {
	for i, n := range pc.lost {
		if err := c.exclude(context.WithoutCancel(ctx), n, pc.errs[i]); err != nil && !c.view.Load().rec.Excludes(n.name) {
			return fmt.Errorf("%w: committed on the primary, not on %s, which could not be left out of the view: %v", ErrOutcomeUnknown, n.name, err)
		}
	}
	return nil
}

// refusedCommit reports whether err, returned by a commit on n, says that
// the database refused it: then nothing was committed. A SQLite file
// answers every commit; a server refuses one for a constraint checked at
// commit or a serialization failure, and any other error (no answer, a
// connection lost) leaves the outcome unknown.
func (n *Node) refusedCommit(err error) bool {
	if n.caps.Locker == nil {
		return true
	}
	return n.eng.Constraint(err) || n.retryable(err)
}

// maxRetries bounds how often a write that lost a deadlock runs again.
const maxRetries = 10

// retryable reports whether err ended a write on n that can simply run
// again (engine.Locker.Retryable).
func (n *Node) retryable(err error) bool {
	l := n.caps.Locker
	return l != nil && err != nil && l.Retryable(err)
}

func (c *Cluster) runTx(ctx context.Context, v *view, ptx *dbTx, fn func(tx *Tx) error, settled map[string]bool) (err error) {
	tx := c.newTx(ctx, v, ptx, settled)
	defer func() { err = tx.finish(err) }()
	if err := fn(tx); err != nil {
		return err
	}
	return tx.commit(ctx)
}

// newTx is a write begun on v's primary (ptx).
func (c *Cluster) newTx(ctx context.Context, v *view, ptx *dbTx, settled map[string]bool) *Tx {
	now := time.Now()
	return &Tx{c: c, ctx: ctx, view: v, primary: v.primary, tx: ptx, now: now, in: records.NewIntent(now), settled: settled}
}

// commit commits tx everywhere (mirror).
func (tx *Tx) commit(ctx context.Context) error {
	if err := tx.usable("commit"); err != nil {
		return err // finish rolls back everywhere
	}
	tx.done = true
	err := tx.c.mirror(ctx, tx)
	// Committed on the primary, acknowledged once the others are left
	// out (partialCommit), or perhaps committed (ErrOutcomeUnknown): the
	// ids stay, the ones the rows have or may have.
	var pc *partialCommit
	tx.committed = err == nil || errors.As(err, &pc) || errors.Is(err, ErrOutcomeUnknown)
	if tx.ddl && tx.committed {
		tx.c.structureChanged(ctx)
	}
	return err
}

// finish ends tx after its commit or its failure (err): it rolls back
// what was not committed, resets the ids of a write that did not commit,
// and says primaryFailure when the primary was found down before the
// commits began.
func (tx *Tx) finish(err error) error {
	if !tx.done {
		tx.abort()
	}
	if tx.bulky != nil {
		tx.c.vacuumLater(tx.bulky)
		tx.bulky = nil
	}
	if !tx.committed {
		for _, f := range tx.ids {
			f.SetZero()
		}
	}
	if err != nil && !tx.committing && tx.primary.state().down != nil &&
		(errors.Is(err, ErrNodeDown) || errors.Is(tx.broken, ErrNodeDown)) {
		err = &primaryFailure{n: tx.primary, err: err}
	}
	return err
}

// Begin begins a write on every database the writes reach, for callers
// that cannot pass a function to Cluster.Tx (the database/sql driver): its
// statements run as they come, and Commit or Rollback ends it. Unlike
// Cluster.Tx it cannot run again: a write that committed nothing because
// the view changed, a secondary was left out or a write in doubt named its
// keys fails with an error wrapping ErrNotCommitted, and the caller runs
// it again. Until it ends it holds the view: no view change (no failover)
// happens meanwhile, so keep it short, and always end it.
func (c *Cluster) Begin(ctx context.Context) (*Tx, error) {
	views := 0
	for attempt := 0; ; attempt++ {
		v, ptx, release, err := c.beginPrimary(ctx, attempt, &views)
		if errors.Is(err, errTryAgain) {
			continue
		}
		if err != nil {
			return nil, err
		}
		tx := c.newTx(ctx, v, ptx, nil)
		tx.whole, tx.release = true, release
		return tx, nil
	}
}

// Commit commits a transaction Begin began, on every database it reaches
// (see Cluster.Tx for what that means when one fails).
func (tx *Tx) Commit() error {
	if tx.release == nil {
		return fmt.Errorf("commit: a Tx of Cluster.Tx commits when its function returns")
	}
	if tx.done {
		return fmt.Errorf("commit: transaction already finished")
	}
	err := tx.drainPending(tx.ctx)
	if err == nil {
		err = tx.commit(tx.ctx)
	}
	err = tx.finish(err)
	tx.release()
	if err = tx.c.afterWrite(tx.ctx, tx, err); err == nil {
		tx.c.writeLatency.since(tx.now)
	}
	return err
}

// Rollback ends a transaction Begin began without writing anything; after
// Commit it does nothing.
func (tx *Tx) Rollback() error {
	if tx.release == nil {
		return fmt.Errorf("rollback: a Tx of Cluster.Tx rolls back when its function returns an error")
	}
	if tx.done {
		return nil
	}
	tx.finish(nil)
	tx.release()
	return nil
}

// afterWrite does for a write that cannot run again what Cluster.tx does
// before it runs one again (leaves a failed database out, reads the new
// view, settles the doubts met), and says whether anything was committed.
func (c *Cluster) afterWrite(ctx context.Context, tx *Tx, err error) error {
	var sf *secondaryFailure
	var pf *primaryFailure
	var pc *partialCommit
	var od *overlapsDoubt
	switch {
	case err == nil:
		return nil
	case errors.As(err, &pc):
		return c.leaveOut(ctx, pc)
	case errors.As(err, &od):
		if serr := c.settleDoubtsOf(ctx, od.txids); serr != nil {
			c.log.Warn("settling writes in doubt before a write of their keys", "writes", len(od.txids), "err", serr)
		}
	case errors.As(err, &sf):
		if lerr := c.lost(ctx, sf.n, sf.err, 0); lerr != nil {
			err = fmt.Errorf("%w (%v)", err, lerr)
		}
	case errors.As(err, &pf) && ctx.Err() == nil:
		if lerr := c.lost(ctx, pf.n, pf.err, 0); lerr != nil {
			err = fmt.Errorf("%w (%v)", err, lerr)
		}
	case errors.Is(err, errFenced):
		c.reloadAfterFence(ctx)
	case errors.Is(err, errPrimaryBehind):
		c.kick()
	}
	if !tx.committing && !errors.Is(err, ErrNotCommitted) {
		err = fmt.Errorf("%w: %w", ErrNotCommitted, err)
	}
	return err
}

// secondary is one secondary database's side of a Tx: a goroutine that
// begins a transaction there and applies the primary's writes in the order
// they arrive.
//
// It begins only once tx holds the primary's lock (SQLite) or the first
// row lock (row-locking engines), so every writer takes the primary's locks
// before any secondary's: writers are ordered by the primary and cannot
// deadlock on each other.
type secondary struct {
	n       *Node
	primary *Node // whose rows the Tx read
	gen     int64 // the generation of the Tx's view
	ops     chan op
	rec     *records.Intent // the write's: its txid and time, for keys noted as they are written (nil: none are)
	in      *records.Intent // set before ops is closed; nil when the Tx aborts
	// doubts: look up the intent records naming the write's keys, once
	// its rows and record are written, into named (see overlapsDoubt).
	doubts bool
	named  []string
	tx     *dbTx
	err    error
	done   chan struct{}
	// late is set (by the Tx's goroutine, which alone reads it) when the
	// secondary did not finish in time: its fields belong to its goroutine.
	late bool
}

// start starts the secondaries' goroutines, once, before the Tx's first
// write reaches the primary, so that their BEGIN overlaps the primary's work.
// (On SQLite the Tx already holds the primary's lock; row-locking engines
// take no lock at BEGIN.)
func (tx *Tx) start() {
	if tx.secs != nil || len(tx.view.write) < 2 {
		return
	}
	for _, n := range tx.view.write[1:] {
		s := &secondary{n: n, primary: tx.primary, gen: tx.view.rec.Generation, ops: make(chan op, 64), done: make(chan struct{}), doubts: tx.c.checksDoubts()}
		if !tx.c.noIntent {
			s.rec = tx.in
		}
		tx.secs = append(tx.secs, s)
		go s.run(tx.ctx, tx.c.timeout)
	}
}

// send records o, which the primary has applied, and streams it to every
// secondary.
func (tx *Tx) send(o op) {
	o.pk = records.Key{Table: o.m.table.Name, PK: value.EncodeKey(o.key)}
	o.seq = tx.in.Add(o.pk)
	tx.sendOp(o)
}

// sendOp streams o to every secondary.
func (tx *Tx) sendOp(o op) {
	tx.nops++
	if tx.keepOps {
		tx.ops = append(tx.ops, o)
	}
	for _, s := range tx.secs {
		s.ops <- o
	}
}

func (s *secondary) run(ctx context.Context, timeout time.Duration) {
	defer close(s.done)
	n := s.n
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	s.tx, s.err = n.beginWrite(wctx, timeout)
	cancel()
	if s.err == nil {
		s.err = n.fence(s.tx.ctx, s.tx, s.gen)
	}
	if s.err == nil {
		s.err = n.checkNotAhead(s.tx.ctx, s.tx, s.primary)
	}
	var noted seqSet
	applying := false
	for o := range s.ops {
		if s.err != nil {
			continue // drain: this secondary is left out
		}
		if o.ddl != "" {
			if _, err := n.runDDL(s.tx.ctx, s.tx, o.ddl, o.args); err != nil {
				s.err = err
			}
			continue
		}
		if o.captured && !applying {
			applying = true
			if q := n.applyStatement(); q != "" {
				if _, err := s.tx.ExecContext(s.tx.ctx, q); err != nil {
					s.err = fmt.Errorf("apply captured rows on %s: %w", n.name, err)
					continue
				}
			}
		}
		var note []any
		if s.rec != nil && n.notes() && !noted.has(o.seq) {
			note = s.rec.Note(o.seq, o.pk)
		}
		var err error
		if o.del {
			_, err = n.delete(s.tx.ctx, s.tx, o.m, o.key, note)
		} else {
			err = n.upsert(s.tx.ctx, s.tx, o.m, o.row, note)
		}
		if err == nil && note != nil {
			noted.add(o.seq)
		}
		if err != nil {
			s.err = fmt.Errorf("mirror %s %s to %s: %w", o.m.table.Name, value.EncodeKey(o.key), n.name, err)
		}
	}
	if s.err == nil && s.in != nil {
		if err := n.records.RecordIntent(s.tx.ctx, s.tx, s.in, noted.has); err != nil {
			s.err = fmt.Errorf("record intent on %s: %w", n.name, err)
		}
	}
	if s.err == nil && s.in != nil && s.doubts {
		// After the write's own rows: a write that held any of them here
		// has committed or rolled back by now, and this statement sees
		// which (read committed; SQLite's one writer).
		if s.named, s.err = n.records.IntentsNaming(s.tx.ctx, s.tx, s.in.TxID); s.err != nil {
			s.err = fmt.Errorf("read intent records on %s: %w", n.name, s.err)
		}
	}
}

// handOver tells the secondaries that no more writes come: they record in
// (nil when the Tx aborts) and stop.
func (tx *Tx) handOver(in *records.Intent) {
	for _, s := range tx.secs {
		s.in = in
		close(s.ops)
	}
}

// settle waits, at most Config.Timeout, for the secondaries to apply every
// write and returns those that did. The others are marked down and their
// transactions abandoned. A secondary that another write finds down
// meanwhile is given up at once: writes in flight when a server hangs wait
// for it once, not each in turn.
func (tx *Tx) settle() (ok, failed []*secondary) {
	timer := time.NewTimer(tx.c.timeout)
	defer timer.Stop()
	expired := false
	for _, s := range tx.secs {
		gaveUp := expired
		if !expired {
			select {
			case <-s.done:
			case <-timer.C:
				expired, gaveUp = true, true
			case <-s.n.downSignal():
				gaveUp = true
			}
		}
		if gaveUp {
			select {
			case <-s.done:
			default:
				s.late = true
				failed = append(failed, s)
				go func() {
					<-s.done
					if s.tx != nil {
						s.tx.abandon()
					}
				}()
				continue
			}
		}
		if s.err != nil {
			failed = append(failed, s)
			continue
		}
		ok = append(ok, s)
	}
	return ok, failed
}

// dropSecondaries ends the secondaries' transactions without committing.
func (tx *Tx) dropSecondaries() {
	tx.handOver(nil)
	tx.rollbackSecondaries()
}

// rollbackSecondaries rolls back the secondaries' transactions once their
// goroutines, already handed over, are done.
func (tx *Tx) rollbackSecondaries() {
	for _, s := range tx.secs {
		go func() {
			<-s.done
			if s.tx != nil {
				s.tx.Rollback()
			}
		}()
	}
}

// abort rolls back everywhere.
func (tx *Tx) abort() {
	tx.done = true
	tx.dropSecondaries()
	tx.tx.Rollback()
}

// Save writes v within the transaction; see Cluster.Save.
func (tx *Tx) Save(ctx context.Context, v any) error { return tx.write(ctx, v, writeSave) }

// Insert inserts the row v within the transaction; see Cluster.Insert.
func (tx *Tx) Insert(ctx context.Context, v any) error { return tx.write(ctx, v, writeInsert) }

// Update updates the row v within the transaction; see Cluster.Update.
func (tx *Tx) Update(ctx context.Context, v any) error { return tx.write(ctx, v, writeUpdate) }

// writeKind is what a model write may do to the row it writes.
type writeKind int

const (
	writeSave   writeKind = iota // insert, or replace the row of its key
	writeInsert                  // insert; a key taken is ErrDuplicateKey
	writeUpdate                  // replace the row of its key; none is ErrNotFound
)

func (k writeKind) String() string { return [...]string{"save", "insert", "update"}[k] }

func (tx *Tx) write(ctx context.Context, v any, how writeKind) error {
	if err := tx.usable(how.String()); err != nil {
		return err
	}
	if err := tx.drainPending(ctx); err != nil {
		return err
	}
	m, rv, err := tx.c.modelOf(v)
	if err != nil {
		return err
	}
	if m.hasHook.beforeSave {
		if err := v.(BeforeSaver).BeforeSave(ctx); err != nil {
			return err
		}
	}
	row, err := m.row(rv, tx.now.UTC().Truncate(time.Microsecond))
	if err != nil {
		return err
	}
	if err := tx.c.storable(tx.primary, m, row); err != nil {
		return err
	}
	tx.start()
	p := tx.primary
	if how == writeUpdate && m.auto >= 0 && row[m.auto] == int64(0) {
		return fmt.Errorf("update %s: %w: the key is zero, the row of a new object (Insert or Save it)", m.table.Name, ErrNotFound)
	}
	if m.auto >= 0 && row[m.auto] == int64(0) {
		// The primary decides the id; every other database is told it.
		id, err := p.insertAuto(ctx, tx.tx, tx.view, m, row)
		if err != nil {
			tx.statementFailed(ctx, err)
			return fmt.Errorf("%s %s on %s: %w", how, m.table.Name, p.name, p.violation(err))
		}
		row[m.auto] = id
		f := rv.FieldByIndex(m.fields[m.auto])
		if err := value.Assign(f, id); err != nil {
			return fmt.Errorf("save %s: set id %d: %w", m.table.Name, id, err)
		}
		tx.ids = append(tx.ids, f)
	} else if how == writeSave {
		if err := p.upsert(ctx, tx.tx, m, row, tx.note(p, m, m.keyVals(row))); err != nil {
			tx.statementFailed(ctx, err)
			return fmt.Errorf("save %s %s on %s: %w", m.table.Name, value.EncodeKey(m.keyVals(row)), p.name, p.upsertViolation(m, err))
		}
	} else {
		found, err := p.insertOrUpdate(ctx, tx.tx, m, row, tx.note(p, m, m.keyVals(row)), how)
		if err != nil {
			tx.statementFailed(ctx, err)
			return fmt.Errorf("%s %s %s on %s: %w", how, m.table.Name, value.EncodeKey(m.keyVals(row)), p.name, p.violation(err))
		}
		if !found {
			return fmt.Errorf("update %s %s: %w", m.table.Name, value.EncodeKey(m.keyVals(row)), ErrNotFound)
		}
	}
	tx.send(op{m: m, key: m.keyVals(row), row: row})
	// With capture on (a SQL statement ran in tx), the triggers captured
	// the row too: drained (and sent again, whole) before the commit, so
	// that no capture row outlives the transaction.
	tx.undrained = tx.undrained || tx.capturing
	if m.hasHook.afterSave {
		return v.(AfterSaver).AfterSave(ctx)
	}
	return nil
}

// note returns the intent row of key, to record on p, the primary, in the
// statement that writes key (engine.WithInserter), and counts it as
// recorded there; nil when p cannot, or the record holds key already.
// The caller's statement must succeed, or end the transaction.
func (tx *Tx) note(p *Node, m *model, key []any) []any {
	if tx.c.noIntent || !p.notes() {
		return nil
	}
	k := records.Key{Table: m.table.Name, PK: value.EncodeKey(key)}
	seq, fresh := tx.in.Next(k)
	if !fresh {
		return nil
	}
	tx.in.Add(k)
	tx.noted.add(seq)
	return tx.in.Note(seq, k)
}

// storable converts row for every engine of the cluster other than the
// primary's, so that a value one of them cannot store (NaN, a NUL byte in
// text, a year MySQL cannot hold) is refused before anything is written,
// rather than leaving that database behind.
func (c *Cluster) storable(p *Node, m *model, row []any) error {
	if !c.mixed {
		return nil
	}
	for _, n := range c.nodes {
		if n.eng.Name() != p.eng.Name() {
			if _, err := n.args(m, m.all, row); err != nil {
				return err
			}
		}
	}
	return nil
}

// Delete deletes v's row within the transaction; see Cluster.Delete.
func (tx *Tx) Delete(ctx context.Context, v any) error {
	if err := tx.usable("delete"); err != nil {
		return err
	}
	if err := tx.drainPending(ctx); err != nil {
		return err
	}
	m, rv, err := tx.c.modelOf(v)
	if err != nil {
		return err
	}
	if m.hasHook.beforeDelete {
		if err := v.(BeforeDeleter).BeforeDelete(ctx); err != nil {
			return err
		}
	}
	key := make([]any, len(m.pk))
	for i, ci := range m.pk {
		if key[i], err = value.FromField(rv.FieldByIndex(m.fields[ci])); err != nil {
			return m.valueError(nil, ci, err.Error())
		}
		if t, ok := key[i].(time.Time); ok {
			key[i] = t.UTC().Truncate(time.Microsecond)
		}
	}
	tx.start()
	n, err := tx.primary.delete(ctx, tx.tx, m, key, tx.note(tx.primary, m, key))
	if err != nil {
		tx.statementFailed(ctx, err)
		return fmt.Errorf("delete %s %s on %s: %w", m.table.Name, value.EncodeKey(key), tx.primary.name, tx.primary.violation(err))
	}
	// A delete that found no row on the primary is not mirrored: with no
	// row there was no lock to order it against a concurrent insert of the
	// same key, which it could otherwise undo on a secondary.
	if n > 0 {
		tx.send(op{m: m, del: true, key: key})
	}
	tx.undrained = tx.undrained || tx.capturing // see Save
	if m.hasHook.afterDelete {
		return v.(AfterDeleter).AfterDelete(ctx)
	}
	return nil
}

// mirror finishes tx: it records the intent on every database it reaches,
// and the missed keys of every database it skips, and commits everywhere
// concurrently.
//
// The primary holds the locks of every row tx wrote. A concurrent writer of
// the same rows waits for them on the primary, and by the time the primary
// commits, tx holds the same locks on every secondary; so writes to one row
// reach every database in the same order.
//
// The write is acknowledged (nil) once it is committed on at least one
// database together with the records that let the others catch up.
func (c *Cluster) mirror(ctx context.Context, tx *Tx) error {
	p := tx.primary
	in := tx.in
	if tx.nops == 0 {
		tx.dropSecondaries() // started for a write that then failed on the primary
		tx.committing = true
		if err := tx.tx.Commit(); err != nil {
			return fmt.Errorf("commit on %s: %w", p.name, err)
		}
		if tx.noted.any() {
			c.clear.add(in.TxID) // a delete that found no row, noted on the primary
		}
		return nil
	}
	if c.noIntent {
		in.DropKeys() // benchmarks only: measures what the record costs
	}
	tx.handOver(in)
	// The secondaries record theirs meanwhile.
	if err := p.records.RecordIntent(ctx, tx.tx, in, tx.noted.has); err != nil {
		tx.rollbackSecondaries()
		tx.tx.Rollback()
		return fmt.Errorf("record intent on %s: %w", p.name, err)
	}
	var named []string
	if c.checksDoubts() && len(tx.secs) > 0 {
		var err error
		if named, err = p.records.IntentsNaming(ctx, tx.tx, in.TxID); err != nil {
			tx.rollbackSecondaries()
			tx.tx.Rollback()
			return fmt.Errorf("read intent records on %s: %w", p.name, err)
		}
	}
	ok, failed := tx.settle()
	if len(failed) > 0 {
		// A secondary failed, did not answer in time, or refused the write
		// (it holds writes the primary missed; the view changed): nothing
		// commits anywhere. The caller leaves it out if it is down, or
		// reads the new view, and runs the write again.
		for _, s := range ok {
			s.tx.Rollback()
		}
		for _, s := range failed {
			if !s.late && s.tx != nil {
				s.tx.Rollback()
			}
		}
		tx.tx.Rollback()
		s := failed[0]
		if s.late {
			// Its fields belong to its goroutine, which abandons it.
			return &secondaryFailure{n: s.n, err: fmt.Errorf("mirror to %s: %w (%v)", s.n.name, errTimeout, c.timeout)}
		}
		err := s.err
		switch {
		case errors.Is(err, errPrimaryBehind):
			p.missesWritesOf(s.n)
			return fmt.Errorf("%w: %w", ErrNotCommitted, err)
		case errors.Is(err, errFenced):
			return fmt.Errorf("%w: %w", ErrNotCommitted, err)
		}
		return &secondaryFailure{n: s.n, err: err}
	}
	if doubts := tx.overlapsDoubt(named, ok); len(doubts) > 0 {
		for _, s := range ok {
			s.tx.Rollback()
		}
		tx.tx.Rollback()
		return &overlapsDoubt{txids: doubts}
	}

	// Every database records the keys of those the view skips.
	missing := names(tx.view.skip)
	for _, s := range ok {
		if err := s.n.records.RecordMissed(s.tx.ctx, s.tx, in, missing); err != nil {
			for _, o := range ok {
				o.tx.Rollback()
			}
			tx.tx.Rollback()
			return &secondaryFailure{n: s.n, err: fmt.Errorf("record missed keys on %s: %w", s.n.name, err)}
		}
	}
	if err := p.records.RecordMissed(ctx, tx.tx, in, missing); err != nil {
		for _, s := range ok {
			s.tx.Rollback()
		}
		tx.tx.Rollback()
		return fmt.Errorf("record missed keys on %s: %w", p.name, err)
	}

	// Commit everywhere concurrently; a secondary gets Config.Timeout.
	tx.committing = true
	perr, committed, lost, lostErrs := c.commit(tx, ok, in.TxID)
	var sf *secondaryFailure
	if errors.As(perr, &sf) {
		return sf // two-phase: a secondary failed to prepare; nothing committed
	}
	if perr == nil {
		committed = append([]*Node{p}, committed...)
	}
	tx.countCommit(committed, lost, perr)
	switch {
	case perr == nil && len(lost) == 0:
		if !c.noIntent {
			c.clear.add(in.TxID)
		}
		return nil
	case len(committed) == 0:
		c.failed(ctx, p, fmt.Errorf("commit on primary: %w", perr))
		if !p.refusedCommit(perr) {
			// A server that did not answer the commit (or whose answer was
			// lost) may carry it out later: the write then ends whole
			// everywhere or absent everywhere (sweep,
			// settleDoubts), but which, nobody knows yet.
			return fmt.Errorf("%w: no database confirmed the commit (%s: %v); it may still take effect", ErrOutcomeUnknown, p.name, perr)
		}
		return fmt.Errorf("%w: commit on %s: %w", ErrNotCommitted, p.name, perr)
	}
	if perr != nil {
		// The primary failed to commit what a secondary committed: until
		// the view changes, no one can say the write took effect. Its
		// intent records stay, a write in doubt: the sweep makes every
		// database's rows of its keys the primary's (complete if the
		// primary, or a secondary that takes over, holds it; absent if
		// not). Recording that the primary missed its keys, as an
		// earlier version did, made the secondary's rows look newer than
		// the primary's: catch-up then listed the keys later writes
		// changed as conflicts, or copied the others, applying the write
		// in part.
		c.log.Warn("write committed on secondaries, not on the primary: in doubt until the sweep", "txid", in.TxID,
			"committed", nodeNames(committed), "primary", p.name, "err", perr)
		c.failed(ctx, p, fmt.Errorf("commit on primary: %w", perr))
		return fmt.Errorf("%w: committed on %s, not on the primary %s: %v", ErrOutcomeUnknown, nodeNames(committed), p.name, perr)
	}
	// Committed on the primary, with its intent record. Turn that into
	// missed-key records for the databases that failed to commit (if this
	// fails, the sweeper does it later).
	c.log.Warn("write committed on some datasources only; the others catch up", "txid", in.TxID,
		"committed", nodeNames(committed), "failed", nodeNames(lost))
	for _, n := range committed {
		if err := n.settleIntent(context.WithoutCancel(ctx), c.timeout, in, lost); err != nil {
			c.log.Warn("recording missed keys after a failed commit", "node", n.name, "err", err)
		}
	}
	return &partialCommit{lost: lost, errs: lostErrs}
}

// commit commits the primary and the secondaries of ok concurrently. It
// returns the primary's error, the secondaries that committed and those
// that failed or did not answer within Config.Timeout (marked down).
func (c *Cluster) commit(tx *Tx, ok []*secondary, txid string) (perr error, committed, lost []*Node, lostErrs []error) {
	if c.beforeCommit != nil {
		c.beforeCommit()
	}
	if c.twoPhase {
		return c.commitTwoPhase(tx, ok, txid)
	}
	if len(ok) > 0 {
		if order, between := crash.Take(); between != nil {
			return c.commitInOrder(tx, ok, order, between)
		}
	}
	hook := c.serialCommit || c.commitHook != nil
	if hook {
		if perr = c.commitPrimary(tx); perr != nil {
			// Nothing committed yet: fail cleanly everywhere.
			for _, s := range ok {
				s.tx.Rollback()
			}
			return perr, nil, nil, nil
		}
		if c.commitHook != nil {
			c.commitHook(txid)
		}
	}
	wait := c.onSecondaries(ok, func(s *secondary) error { return s.tx.Commit() })
	if !hook {
		perr = c.commitPrimary(tx)
	}
	committed = wait("commit", &lost, &lostErrs)
	return perr, committed, lost, lostErrs
}

// commitInOrder commits serially in order, calling between after the first
// side's commits (package crash: a fault harness kills the process there).
func (c *Cluster) commitInOrder(tx *Tx, ok []*secondary, order crash.Order, between func()) (perr error, committed, lost []*Node, lostErrs []error) {
	secondaries := func() {
		for _, s := range ok {
			if err := s.tx.Commit(); err != nil {
				err = fmt.Errorf("commit on %s: %w", s.n.name, err)
				s.n.markDown(err)
				lost, lostErrs = append(lost, s.n), append(lostErrs, err)
				continue
			}
			committed = append(committed, s.n)
		}
	}
	if order == crash.SecondariesFirst {
		secondaries()
		between()
		perr = c.commitPrimary(tx)
		return perr, committed, lost, lostErrs
	}
	if perr = c.commitPrimary(tx); perr != nil {
		for _, s := range ok {
			s.tx.Rollback()
		}
		return perr, nil, nil, nil
	}
	between()
	secondaries()
	return perr, committed, lost, lostErrs
}

// commitPrimary commits the primary's transaction of tx.
func (c *Cluster) commitPrimary(tx *Tx) error {
	if c.failPrimaryCommit != nil {
		if err := c.failPrimaryCommit(); err != nil {
			tx.tx.Rollback()
			return err
		}
	}
	return tx.tx.Commit()
}

// onSecondaries starts f on every secondary of ok concurrently. The
// returned wait gives them Config.Timeout in all and returns the nodes f
// succeeded on; the others are marked down (what names the step), those
// that did not answer have their transactions abandoned, and all are
// appended to lost.
func (c *Cluster) onSecondaries(ok []*secondary, f func(*secondary) error) (wait func(what string, lost *[]*Node, lostErrs *[]error) []*Node) {
	errs := make([]error, len(ok))
	done := make(chan int, len(ok))
	for i, s := range ok {
		go func() {
			errs[i] = f(s)
			done <- i
		}()
	}
	return func(what string, lost *[]*Node, lostErrs *[]error) []*Node {
		finished := make([]bool, len(ok))
		timer := time.NewTimer(c.timeout)
		defer timer.Stop()
	collect:
		for range ok {
			select {
			case i := <-done:
				finished[i] = true
			case <-timer.C:
				break collect
			}
		}
		var good []*Node
		for i, s := range ok {
			switch {
			case !finished[i]:
				err := fmt.Errorf("%s on %s: %w (%v)", what, s.n.name, errTimeout, c.timeout)
				s.n.markDown(err)
				s.tx.abandon()
				*lost = append(*lost, s.n)
				*lostErrs = append(*lostErrs, err)
			case errs[i] != nil:
				err := fmt.Errorf("%s on %s: %w", what, s.n.name, errs[i])
				s.n.markDown(err)
				*lost = append(*lost, s.n)
				*lostErrs = append(*lostErrs, err)
			default:
				good = append(good, s.n)
			}
		}
		return good
	}
}

// args converts canonical values to n's storage form.
func (n *Node) args(m *model, cols []int, vals []any) ([]any, error) {
	out := make([]any, len(cols))
	for i, ci := range cols {
		v, err := n.eng.Value(&m.table.Columns[ci], vals[i])
		if err != nil {
			return nil, &ValueError{Table: m.table.Name, Column: m.table.Columns[ci].Name, Msg: err.Error()}
		}
		out[i] = v
	}
	return out, nil
}

// upsert writes row on n; with note (intent.note), the statement also
// records row's key in the intent record (engine.WithInserter).
func (n *Node) upsert(ctx context.Context, tx engine.Execer, m *model, row, note []any) error {
	args, err := n.args(m, m.all, row)
	if err != nil {
		return err
	}
	q := n.sql(m).upsert
	if note != nil {
		q, args = n.sql(m).upsertNoted, append(args, note...)
	}
	_, err = tx.ExecContext(ctx, q, args...)
	return err
}

// insertOrUpdate writes row on n as Insert or Update does; with note, as
// upsert. found is false when an Update found no row of the key.
func (n *Node) insertOrUpdate(ctx context.Context, tx *dbTx, m *model, row, note []any, how writeKind) (found bool, err error) {
	s := n.sql(m)
	var cols []int
	q := s.insert
	if how == writeInsert {
		cols = m.all
		if note != nil {
			q = s.insertNoted
		}
	} else {
		for _, ci := range m.all {
			if !slices.Contains(m.pk, ci) {
				cols = append(cols, ci)
			}
		}
		cols = append(cols, m.pk...)
		q = s.update
		if note != nil {
			q = s.updateNoted
		}
	}
	vals := make([]any, len(cols))
	for i, ci := range cols {
		vals[i] = row[ci]
	}
	args, err := n.args(m, cols, vals)
	if err != nil {
		return false, err
	}
	res, err := tx.ExecContext(ctx, q, append(args, note...)...)
	if err != nil || how == writeInsert {
		return true, err
	}
	if affected, err := res.RowsAffected(); err != nil || affected > 0 {
		return true, err
	}
	// MySQL counts the rows an UPDATE changed, not those it found: is
	// the row there with these very values?
	var one int
	err = tx.QueryRowContext(ctx, fmt.Sprintf("SELECT 1 FROM %s WHERE %s", n.eng.Quote(m.table.Name), s.byKey), args[len(args)-len(m.pk):]...).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// notes reports whether n's statements can record intent as they write
// (engine.WithInserter).
func (n *Node) notes() bool {
	return n.caps.WithInserter != nil
}

func (n *Node) insertAuto(ctx context.Context, tx *dbTx, v *view, m *model, row []any) (int64, error) {
	if as := n.caps.AutoSyncer; as != nil {
		// The ids this database received as a secondary did not move its
		// counter; do that once per view, before its first auto id.
		if _, done := v.autoSynced.Load(m.table.Name); !done {
			if err := as.SyncAuto(ctx, tx, &m.table); err != nil {
				return 0, fmt.Errorf("move the id counter past the ids held: %w", err)
			}
			v.autoSynced.Store(m.table.Name, true)
		}
	}
	cols := m.nonAuto
	vals := make([]any, len(cols))
	for i, ci := range cols {
		vals[i] = row[ci]
	}
	args, err := n.args(m, cols, vals)
	if err != nil {
		return 0, err
	}
	q := n.sql(m)
	if q.insertReturning {
		var id int64
		err = tx.QueryRowContext(ctx, q.insertAuto, args...).Scan(&id)
		return id, err
	}
	res, err := tx.ExecContext(ctx, q.insertAuto, args...)
	if err != nil {
		return 0, err
	}
	return res.LastInsertId()
}

// delete deletes the row of key on n; with note, as upsert.
func (n *Node) delete(ctx context.Context, tx engine.Execer, m *model, key, note []any) (int64, error) {
	args, err := n.args(m, m.pk, key)
	if err != nil {
		return 0, err
	}
	q := n.sql(m).delete
	if note != nil {
		q, args = n.sql(m).deleteNoted, append(args, note...)
	}
	res, err := tx.ExecContext(ctx, q, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// checksDoubts reports whether each write looks up the intent records that
// name its keys on every database it writes (see overlapsDoubt). Not with
// two-phase commits: a write in doubt there holds its rows' locks until it
// is settled, so no later write can carry part of it.
func (c *Cluster) checksDoubts() bool { return !c.noIntent && !c.noDoubtCheck && !c.twoPhase }

// overlapsDoubt: a write in doubt (an intent record some of this write's
// databases hold and others lack: its process died between its commits)
// names keys this write wrote. Nothing was committed; the write runs again
// once those doubts are settled (Cluster.settleDoubtsOf).
//
// Without it, the write would carry to the secondaries the primary's rows
// of the keys they share and none of the others: a secondary that lacks
// the write in doubt (or holds it where the primary does not) would then
// hold it in part until the sweep, InDoubtAfter later, and if the primary
// were lost meanwhile it would take over so (a transfer's debit without
// its credit), for good.
//
// A record is briefly on some databases only while a clearer deletes it
// (one database at a time). This process's own are known to be committed
// everywhere and are not doubts; another process's make the write run
// again once for nothing.
type overlapsDoubt struct{ txids []string }

func (e *overlapsDoubt) Error() string {
	return fmt.Sprintf("%v: writes left in doubt name keys of this write (%s): they are settled first", ErrNotCommitted, strings.Join(e.txids, ", "))
}

func (e *overlapsDoubt) Unwrap() error { return ErrNotCommitted }

// overlapsDoubt returns the writes in doubt among those whose intent
// records name a key of tx, as the primary (named) and the secondaries of
// ok read them inside tx, but for those an earlier run of tx settled.
func (tx *Tx) overlapsDoubt(named []string, ok []*secondary) []string {
	if !tx.c.checksDoubts() || len(ok) == 0 {
		return nil
	}
	count := map[string]int{}
	for _, id := range named {
		count[id]++
	}
	for _, s := range ok {
		for _, id := range s.named {
			count[id]++
		}
	}
	var out []string
	for id, n := range count {
		if n <= len(ok) && !tx.settled[id] && !tx.c.clear.committed(id) {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// seqSet is a set of seqs of a write's intent record: a bit each, as a
// statement may change a million rows.
type seqSet []uint64

func (s *seqSet) add(i int) {
	for len(*s) <= i/64 {
		*s = append(*s, 0)
	}
	(*s)[i/64] |= 1 << (i % 64)
}

func (s seqSet) has(i int) bool { return i/64 < len(s) && s[i/64]&(1<<(i%64)) != 0 }

func (s seqSet) any() bool {
	for _, w := range s {
		if w != 0 {
			return true
		}
	}
	return false
}

// upsertViolation is violation for an upsert of m's row, which gave every
// key column a value: a NOT NULL refusal of the key's first column is
// MySQL's Upsert guard, a unique value another row holds (the
// engine/mysql package doc).
func (n *Node) upsertViolation(m *model, err error) error {
	err = n.violation(err)
	var ce *ConstraintError
	if errors.As(err, &ce) && ce.Kind == ErrNotNull && len(ce.Columns) == 1 && ce.Columns[0] == m.table.PK[0] {
		return &ConstraintError{Kind: ErrDuplicateKey, Table: m.table.Name, Err: ce.Err}
	}
	return err
}
