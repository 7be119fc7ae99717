package tandem

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
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
// group.go): each returns once its row is committed everywhere.
func (c *Cluster) Save(ctx context.Context, v any) error {
	if c.groupable(v) {
		return c.writeGrouped(ctx, v, false)
	}
	return c.Tx(ctx, func(tx *Tx) error { return tx.Save(ctx, v) })
}

// Delete deletes the row with v's primary key from every database. Deleting
// a row that does not exist is not an error.
func (c *Cluster) Delete(ctx context.Context, v any) error {
	if c.groupable(v) {
		return c.writeGrouped(ctx, v, true)
	}
	return c.Tx(ctx, func(tx *Tx) error { return tx.Delete(ctx, v) })
}

// Tx is a transaction on every database. The callback's saves and deletes
// take effect on every database or on none (see ErrPartialCommit for the one
// exception: a database failing at commit itself).
type Tx struct {
	c       *Cluster
	ctx     context.Context // the Tx's: the secondaries' goroutines run under it
	primary *Node
	tx      *sql.Tx // on the primary
	others  []*Node // the secondaries this write goes to
	secs    []*secondary
	ops     []op
	now     time.Time
	done    bool
	// broken is the error of a statement that may have ended the
	// primary's transaction (SQLite rolls it back on I/O errors and
	// interrupts); later statements would run outside it, so none may.
	broken error
}

// statementFailed notes err, returned by a statement on the primary.
func (tx *Tx) statementFailed(err error) {
	if sw := tx.primary.singleWriter(); sw != nil && !sw.StatementOnly(err) {
		tx.broken = err
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
}

// Tx runs fn in a transaction on every database. Each of fn's writes is
// applied to the primary as fn makes it (taking the primary's locks), then
// streamed to every secondary, where a goroutine per secondary applies it
// in its own transaction; when fn returns nil, every database records the
// write's keys and all commit concurrently. If fn returns an error or
// panics, nothing is written anywhere. Inside fn use tx, never the Cluster:
// the primary's write connection is held by tx.
func (c *Cluster) Tx(ctx context.Context, fn func(tx *Tx) error) error {
	nodes, err := c.writeSet()
	if err != nil {
		return err
	}
	p := nodes[0]
	// Once commits start they must finish on every database, whatever
	// happens to the caller's context: statements use ctx, the transactions
	// themselves do not.
	ptx, err := p.conn.Write.BeginTx(context.WithoutCancel(ctx), nil)
	if err != nil {
		return fmt.Errorf("begin on %s: %w", p.name, err)
	}
	tx := &Tx{c: c, ctx: ctx, primary: p, tx: ptx, others: nodes[1:], now: time.Now()}
	defer func() {
		if !tx.done {
			tx.abort()
		}
	}()
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.usable("commit"); err != nil {
		return err // the deferred abort rolls back everywhere
	}
	tx.done = true
	return c.mirror(ctx, tx, nodes)
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
	n    *Node
	ops  chan op
	in   *intent // set before ops is closed; nil when the Tx aborts
	tx   *sql.Tx
	err  error
	done chan struct{}
}

// start starts the secondaries' goroutines, once, before the Tx's first
// write reaches the primary, so that their BEGIN overlaps the primary's work.
// (On SQLite the Tx already holds the primary's lock; row-locking engines
// take no lock at BEGIN.)
func (tx *Tx) start() {
	if tx.secs != nil || len(tx.others) == 0 {
		return
	}
	for _, n := range tx.others {
		s := &secondary{n: n, ops: make(chan op, 64), done: make(chan struct{})}
		tx.secs = append(tx.secs, s)
		go s.run(tx.ctx)
	}
}

// send records o, which the primary has applied, and streams it to every
// secondary.
func (tx *Tx) send(o op) {
	tx.ops = append(tx.ops, o)
	for _, s := range tx.secs {
		s.ops <- o
	}
}

func (s *secondary) run(ctx context.Context) {
	defer close(s.done)
	n := s.n
	s.tx, s.err = n.conn.Write.BeginTx(context.WithoutCancel(ctx), nil)
	if s.err != nil {
		s.err = fmt.Errorf("begin on %s: %w", n.name, s.err)
	}
	for o := range s.ops {
		if s.err != nil {
			continue // drain: the Tx fails anyway
		}
		var err error
		if o.del {
			_, err = n.delete(ctx, s.tx, o.m, o.key)
		} else {
			err = n.upsert(ctx, s.tx, o.m, o.row)
		}
		if err != nil {
			s.err = fmt.Errorf("mirror %s %s to %s: %w", o.m.table.Name, keyOf(o.key), n.name, err)
		}
	}
	if s.err == nil && s.in != nil {
		if err := n.recordIntent(ctx, s.tx, s.in); err != nil {
			s.err = fmt.Errorf("record intent on %s: %w", n.name, err)
		}
	}
}

// handOver tells the secondaries that no more writes come: they record in
// (nil when the Tx aborts) and stop.
func (tx *Tx) handOver(in *intent) {
	for _, s := range tx.secs {
		s.in = in
		close(s.ops)
	}
}

// wait waits for the secondaries and returns their transactions and errors.
func (tx *Tx) wait() ([]*sql.Tx, error) {
	var errs []error
	stxs := make([]*sql.Tx, len(tx.secs))
	for i, s := range tx.secs {
		<-s.done
		stxs[i] = s.tx
		if s.err != nil {
			errs = append(errs, s.err)
		}
	}
	return stxs, errors.Join(errs...)
}

// dropSecondaries ends the secondaries' transactions without committing.
func (tx *Tx) dropSecondaries() {
	tx.handOver(nil)
	stxs, _ := tx.wait()
	rollback(stxs)
}

// abort rolls back everywhere.
func (tx *Tx) abort() {
	tx.done = true
	tx.dropSecondaries()
	tx.tx.Rollback()
}

func rollback(txs []*sql.Tx) {
	for _, t := range txs {
		if t != nil {
			t.Rollback()
		}
	}
}

// Save writes v within the transaction; see Cluster.Save.
func (tx *Tx) Save(ctx context.Context, v any) error {
	if err := tx.usable("save"); err != nil {
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
	tx.start()
	p := tx.primary
	if m.auto >= 0 && row[m.auto] == int64(0) {
		// The primary decides the id; every other database is told it.
		id, err := p.insertAuto(ctx, tx.tx, m, row)
		if err != nil {
			tx.statementFailed(err)
			return fmt.Errorf("save %s on %s: %w", m.table.Name, p.name, err)
		}
		row[m.auto] = id
		if err := assign(rv.FieldByIndex(m.fields[m.auto]), id); err != nil {
			return fmt.Errorf("save %s: set id %d: %w", m.table.Name, id, err)
		}
	} else if err := p.upsert(ctx, tx.tx, m, row); err != nil {
		tx.statementFailed(err)
		return fmt.Errorf("save %s %s on %s: %w", m.table.Name, keyOf(m.keyVals(row)), p.name, err)
	}
	tx.send(op{m: m, key: m.keyVals(row), row: row})
	if m.hasHook.afterSave {
		return v.(AfterSaver).AfterSave(ctx)
	}
	return nil
}

// Delete deletes v's row within the transaction; see Cluster.Delete.
func (tx *Tx) Delete(ctx context.Context, v any) error {
	if err := tx.usable("delete"); err != nil {
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
		if key[i], err = canonical(rv.FieldByIndex(m.fields[ci])); err != nil {
			return m.valueError(nil, ci, err.Error())
		}
		if t, ok := key[i].(time.Time); ok {
			key[i] = t.UTC().Truncate(time.Microsecond)
		}
	}
	tx.start()
	n, err := tx.primary.delete(ctx, tx.tx, m, key)
	if err != nil {
		tx.statementFailed(err)
		return fmt.Errorf("delete %s %s on %s: %w", m.table.Name, keyOf(key), tx.primary.name, err)
	}
	// A delete that found no row on the primary is not mirrored: with no
	// row there was no lock to order it against a concurrent insert of the
	// same key, which it could otherwise undo on a secondary.
	if n > 0 {
		tx.send(op{m: m, del: true, key: key})
	}
	if m.hasHook.afterDelete {
		return v.(AfterDeleter).AfterDelete(ctx)
	}
	return nil
}

// mirror finishes tx: it records the intent on every database and commits
// everywhere concurrently.
//
// The primary holds the locks of every row tx wrote. A concurrent writer of
// the same rows waits for them on the primary, and by the time the primary
// commits, tx holds the same locks on every secondary; so writes to one row
// reach every database in the same order.
func (c *Cluster) mirror(ctx context.Context, tx *Tx, nodes []*Node) error {
	p := tx.primary
	if len(tx.ops) == 0 {
		tx.dropSecondaries() // started for a write that then failed on the primary
		if err := tx.tx.Commit(); err != nil {
			return fmt.Errorf("commit on %s: %w", p.name, err)
		}
		return nil
	}
	in := newIntent(tx.ops, c.gen, tx.now)
	tx.handOver(in)
	// The secondaries record theirs meanwhile.
	var perr error
	if err := p.recordIntent(ctx, tx.tx, in); err != nil {
		perr = fmt.Errorf("record intent on %s: %w", p.name, err)
	}
	stxs, serr := tx.wait()
	if err := errors.Join(perr, serr); err != nil {
		rollback(append(stxs, tx.tx))
		return err
	}

	// Commit everywhere concurrently.
	all := append([]*sql.Tx{tx.tx}, stxs...)
	cerrs := make([]error, len(all))
	var wg sync.WaitGroup
	if c.serialCommit || c.commitHook != nil {
		cerrs[0] = tx.tx.Commit()
		if cerrs[0] != nil {
			// Nothing committed yet: fail cleanly everywhere.
			rollback(stxs)
			return fmt.Errorf("commit on %s: %w", p.name, cerrs[0])
		}
		if c.commitHook != nil {
			c.commitHook(in.txid)
		}
		for i, s := range stxs {
			cerrs[i+1] = s.Commit()
		}
	} else {
		for i, s := range all {
			wg.Add(1)
			go func() {
				defer wg.Done()
				cerrs[i] = s.Commit()
			}()
		}
		wg.Wait()
	}
	var ok, failed []string
	var failures []error
	for i, err := range cerrs {
		if err != nil {
			failed = append(failed, nodes[i].name)
			failures = append(failures, fmt.Errorf("commit on %s: %w", nodes[i].name, err))
		} else {
			ok = append(ok, nodes[i].name)
		}
	}
	switch {
	case len(failed) == 0:
		c.clear.add(in.txid)
		return nil
	case len(ok) == 0:
		return errors.Join(failures...)
	}
	c.log.Error("write committed on some datasources only", "txid", in.txid, "committed", ok, "failed", failed)
	return fmt.Errorf("%w: committed on %s, not on %s (keys recorded as intent %s): %w",
		ErrPartialCommit, strings.Join(ok, ", "), strings.Join(failed, ", "), in.txid, errors.Join(failures...))
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

func (n *Node) upsert(ctx context.Context, tx *sql.Tx, m *model, row []any) error {
	args, err := n.args(m, m.all, row)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, n.sql(m).upsert, args...)
	return err
}

func (n *Node) insertAuto(ctx context.Context, tx *sql.Tx, m *model, row []any) (int64, error) {
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

func (n *Node) delete(ctx context.Context, tx *sql.Tx, m *model, key []any) (int64, error) {
	args, err := n.args(m, m.pk, key)
	if err != nil {
		return 0, err
	}
	res, err := tx.ExecContext(ctx, n.sql(m).delete, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// statements are a model's SQL texts for one engine.
type statements struct {
	upsert          string
	insertAuto      string
	insertReturning bool
	delete          string // by primary key
	selectCols      string // "a", "b", ... for SELECT
	byKey           string // WHERE clause on the primary key
}

// sql returns m's statements for n's engine, building them once.
func (n *Node) sql(m *model) *statements {
	if s, ok := n.texts.Load(m.typ); ok {
		return s.(*statements)
	}
	e := n.eng
	s := &statements{upsert: e.Upsert(&m.table)}
	s.insertAuto, s.insertReturning = e.InsertAuto(&m.table)
	cols := make([]string, len(m.table.Columns))
	for i := range m.table.Columns {
		cols[i] = e.Quote(m.table.Columns[i].Name)
	}
	s.selectCols = strings.Join(cols, ", ")
	conds := make([]string, len(m.pk))
	for i, ci := range m.pk {
		conds[i] = fmt.Sprintf("%s = %s", e.Quote(m.table.Columns[ci].Name), e.Placeholder(i+1))
	}
	s.byKey = strings.Join(conds, " AND ")
	s.delete = fmt.Sprintf("DELETE FROM %s WHERE %s", e.Quote(m.table.Name), s.byKey)
	actual, _ := n.texts.LoadOrStore(m.typ, s)
	return actual.(*statements)
}
