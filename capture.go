package tandem

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/tandemdb/tandem/engine"
	"github.com/tandemdb/tandem/internal/rows"
	"github.com/tandemdb/tandem/internal/sqltext"
)

// Any SQL through tandem: a statement runs on the primary, as the
// application wrote it; the capture triggers (engine.Capturer) put the
// key of every row it changed into its table's capture table; tandem then
// reads the primary's current rows of those keys, inside the write, and
// sends them to the secondaries as full rows (an upsert by key, or a
// delete), exactly as a model write sends its rows. Every value (now(),
// random(), a sequence, a default, what the application's own triggers
// and cascades wrote) is thereby decided once, on the primary.

// sqlState is what SQL writes keep between writes, per database: the
// tables as SQL writes read them, and whether capture is installed.
type sqlState struct {
	mu     sync.Mutex
	tables map[*Node]map[string]*sqlTable
	// ready holds the nodes found with capture on every table, each with
	// its engine.Capturer.SchemaVersion then.
	ready map[*Node]int64
}

// forget drops what is known of n's tables (all when n is nil): their
// structure changed.
func (s *sqlState) forget(n *Node) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n == nil {
		s.tables, s.ready = nil, nil
		return
	}
	delete(s.tables, n)
	delete(s.ready, n)
}

// sqlTable is a table that SQL statements write, as one database defines
// it: the model its rows are sent to the secondaries with, and the query
// that reads the rows of the captured keys.
type sqlTable struct {
	def *rows.Def
	m   *model
	// drain reads the captured keys (key columns first) with the table's
	// row of each (NULLs when it was deleted), deletes first; on engines
	// with a data-modifying WITH it also empties the capture table, and
	// elsewhere empty does.
	drain, empty string
}

func newSQLTable(n *Node, td *rows.Def) *sqlTable {
	m := &model{table: td.T, pk: td.PK, auto: -1}
	for i := range td.T.Columns {
		m.all = append(m.all, i)
		m.nonAuto = append(m.nonAuto, i)
	}
	e := n.eng
	capt := e.Quote(engine.CaptureName(td.T.Name))
	table := e.Quote(td.T.Name)
	// Aliases no application table is likely to share: a table called k
	// would otherwise be shadowed by the CTE.
	const keysAlias, rowAlias = "tandem_keys", "tandem_row"
	keys := make([]string, len(td.PK))
	join := make([]string, len(td.PK))
	for i, ci := range td.PK {
		c := e.Quote(td.T.Columns[ci].Name)
		keys[i] = keysAlias + "." + c
		join[i] = rowAlias + "." + c + " = " + keysAlias + "." + c
	}
	cols := make([]string, len(td.T.Columns))
	for i, c := range td.T.Columns {
		cols[i] = rowAlias + "." + e.Quote(c.Name)
	}
	firstKey := rowAlias + "." + e.Quote(td.T.Columns[td.PK[0]].Name)
	body := fmt.Sprintf("SELECT %s, %s FROM %%s LEFT JOIN %s %s ON %s ORDER BY CASE WHEN %s IS NULL THEN 0 ELSE 1 END",
		strings.Join(keys, ", "), strings.Join(cols, ", "), table, rowAlias, strings.Join(join, " AND "), firstKey)
	st := &sqlTable{def: td, m: m}
	if col, val := n.caps.Capturer.CaptureOwner(); col != "" {
		// The capture table holds other transactions' keys too.
		st.drain = fmt.Sprintf(strings.Replace(body, " ORDER BY ", fmt.Sprintf(" WHERE %s.%s = %s ORDER BY ", keysAlias, col, val), 1), capt+" "+keysAlias)
		st.empty = fmt.Sprintf("DELETE FROM %s WHERE %s = %s", capt, col, val)
	} else if n.caps.WithInserter != nil {
		plain := make([]string, len(td.PK))
		for i, ci := range td.PK {
			plain[i] = e.Quote(td.T.Columns[ci].Name)
		}
		st.drain = fmt.Sprintf("WITH %s AS (DELETE FROM %s RETURNING %s) ", keysAlias, capt, strings.Join(plain, ", ")) + fmt.Sprintf(body, keysAlias)
	} else {
		st.drain = fmt.Sprintf(body, capt+" "+keysAlias)
		st.empty = "DELETE FROM " + capt
	}
	return st
}

// sqlTableOf returns n's table called name as SQL writes read it (through
// q, a transaction on n, the first time).
func (c *Cluster) sqlTableOf(ctx context.Context, n *Node, q engine.Querier, name string) (*sqlTable, error) {
	s := &c.sqlw
	s.mu.Lock()
	t := s.tables[n][name]
	s.mu.Unlock()
	if t != nil {
		return t, nil
	}
	infos, err := n.eng.Tables(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("read tables of %s: %w", n.name, err)
	}
	byName := map[string]*sqlTable{}
	for _, info := range infos {
		if td := rows.Define(info); len(td.PK) > 0 {
			byName[info.Name] = newSQLTable(n, td)
		}
	}
	s.mu.Lock()
	if s.tables == nil {
		s.tables = map[*Node]map[string]*sqlTable{}
	}
	s.tables[n] = byName
	s.mu.Unlock()
	if t = byName[name]; t == nil {
		return nil, fmt.Errorf("table %s, whose rows a statement changed, has no primary key on %s", name, n.name)
	}
	return t, nil
}

// uncaptured returns the tables of n's database (through q) that have no
// capture installed: the tables with a primary key that lack capture
// triggers, and those without one that lack the triggers refusing writes.
func uncaptured(ctx context.Context, n *Node, q engine.Querier) ([]engine.TableInfo, error) {
	infos, err := n.eng.Tables(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("read tables of %s: %w", n.name, err)
	}
	return uncapturedOf(ctx, n, q, infos)
}

// uncapturedOf is uncaptured of infos, the tables already read.
func uncapturedOf(ctx context.Context, n *Node, q engine.Querier, infos []engine.TableInfo) ([]engine.TableInfo, error) {
	captured, refused, err := n.caps.Capturer.Captured(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("read the capture triggers of %s: %w", n.name, err)
	}
	var missing []engine.TableInfo
	for _, t := range infos {
		keyed := len(t.Key()) > 0
		if keyed && !slices.Contains(captured, t.Name) || !keyed && !slices.Contains(refused, t.Name) {
			missing = append(missing, t)
		}
	}
	return missing, nil
}

// captureReady checks, through q (a transaction on n), that every table of
// n's database has capture installed, once per structure.
func (c *Cluster) captureReady(ctx context.Context, n *Node, q engine.Querier) error {
	if n.caps.Capturer == nil {
		return fmt.Errorf("%w: tandem cannot capture the rows SQL statements change on %s (%s)", ErrRefused, n.name, n.eng.Name())
	}
	s := &c.sqlw
	version, err := n.caps.Capturer.SchemaVersion(ctx, q)
	if err != nil {
		return fmt.Errorf("read the schema version of %s: %w", n.name, err)
	}
	s.mu.Lock()
	was, ok := s.ready[n]
	ok = ok && was == version
	s.mu.Unlock()
	if ok {
		return nil
	}
	// The structure changed (around tandem, where the engine tells):
	// the tables are read again.
	s.forget(n)
	missing, err := uncaptured(ctx, n, q)
	if err != nil {
		return err
	}
	if len(missing) > 0 {
		names := make([]string, len(missing))
		for i, t := range missing {
			names[i] = t.Name
		}
		return fmt.Errorf("%w: %w: %s on %s", ErrRefused, errNotCaptured, strings.Join(names, ", "), n.name)
	}
	s.mu.Lock()
	if s.ready == nil {
		s.ready = map[*Node]int64{}
	}
	s.ready[n] = version
	s.mu.Unlock()
	return nil
}

// errNotCaptured: some tables have no capture triggers yet.
var errNotCaptured = errors.New("tables without capture triggers (Cluster.Capture installs them)")

// Capture installs capture triggers on every table of every database the
// writes reach, under tandem's exclusive lock, where the primary lacks
// them (and then wherever they are missing): a
// table with a primary key gets its capture table and triggers, one
// without gets triggers that refuse writes to it. SQL writes ([Cluster.Exec],
// [Tx.Exec], the database/sql driver) need them; Cluster.Exec and the
// driver install them on first use (each call checks, once, without
// locks, and does nothing when they are there). From then on, a write made to a
// captured table around tandem is refused (see the engine's package for
// an operator's emergency fix). It creates no table of the application's
// and rewrites no row.
func (c *Cluster) Capture(ctx context.Context) error {
	if c.closed.Load() {
		return ErrClosed
	}
	if ready, err := c.captureInstalled(ctx); ready || err != nil {
		return err
	}
	v, release, err := c.acquire()
	if err != nil {
		return err
	}
	defer release()
	s, err := c.lockAll(ctx, v)
	if err != nil {
		return err
	}
	defer s.rollback()
	for _, n := range s.order {
		err := s.structure(ctx, n, func(q engine.QueryExecer) error {
			missing, err := uncaptured(ctx, n, q)
			if err != nil {
				return err
			}
			for _, t := range missing {
				for _, stmt := range n.caps.Capturer.InstallCapture(t) {
					if _, err := q.ExecContext(ctx, stmt); err != nil {
						return fmt.Errorf("install capture on %s of %s: %w", t.Name, n.name, err)
					}
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	if err := s.commit(); err != nil {
		return err
	}
	for _, n := range s.order {
		c.sqlw.forget(n)
	}
	return nil
}

// captureInstalled reports whether the primary has capture on every
// table (a write needs no more: the secondaries apply rows, whatever
// triggers they have), reading without locks what it does not know.
func (c *Cluster) captureInstalled(ctx context.Context) (bool, error) {
	v := c.view.Load()
	p := v.primary
	if p == nil {
		return false, v.err
	}
	db := p.conn()
	if db == nil {
		return false, nil
	}
	err := c.captureReady(ctx, p, db.Read)
	if errors.Is(err, errNotCaptured) {
		return false, nil
	}
	return err == nil, err
}

// classify is sqltext.Classify, its errors ErrRefused.
func classify(query string) (sqltext.Kind, string, error) {
	kind, words, err := sqltext.Classify(query)
	if err != nil {
		return 0, "", fmt.Errorf("%w: %v", ErrRefused, err)
	}
	return kind, words, nil
}

// refuseKind returns the error for a statement of a kind tandem does not
// run; nil for the kinds it runs.
func refuseKind(kind sqltext.Kind, words string) error {
	switch kind {
	case sqltext.Txn:
		return fmt.Errorf("%w: %s: use Cluster.Tx (or the database/sql driver's Begin) for transactions", ErrRefused, words)
	case sqltext.Session:
		return fmt.Errorf("%w: %s: a session setting would apply to the primary's connection alone and could change what it stores; set it in the datasource's DSN or the database's defaults, alike on every datasource", ErrRefused, words)
	case sqltext.Outside:
		return fmt.Errorf("%w: %s cannot be mirrored through tandem: run it on each database", ErrRefused, words)
	case sqltext.Maintenance:
		return fmt.Errorf("%w: %s inside a transaction: run it with Cluster.Exec, which runs it on every database", ErrRefused, words)
	}
	return nil
}

// Exec runs a statement that changes rows (INSERT, UPDATE, DELETE, a
// writable CTE, a call) on the primary, inside tx, as written, in the
// primary's dialect and placeholders; the rows it changed (as the
// primary's capture triggers report them, the application's triggers and
// cascades included) are sent to every secondary as whole rows before
// Exec returns. The result is the primary's (RowsAffected,
// LastInsertId).
//
// A statement that changes the structure (CREATE, ALTER, DROP) runs on
// the primary, then on each secondary in the write's order, inside the
// transaction; capture follows it on each (see Cluster.Exec).
func (tx *Tx) Exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if kind, words, err := classify(query); err == nil && kind == sqltext.DDL {
		return tx.execDDL(ctx, query, words, args)
	}
	if err := tx.beginSQL(ctx, query, "exec"); err != nil {
		return nil, err
	}
	res, err := tx.tx.ExecContext(ctx, query, args...)
	if err != nil {
		tx.statementFailed(ctx, err)
		return nil, fmt.Errorf("exec on %s: %w", tx.primary.name, tx.primary.violation(err))
	}
	if err := tx.drain(ctx); err != nil {
		return nil, err
	}
	return res, nil
}

// Query runs a statement that returns rows on the primary, inside tx (a
// SELECT sees tx's writes; INSERT ... RETURNING and writable CTEs write,
// and the rows they changed are sent to the secondaries with those of
// tx's next statement, or at its commit). Close the rows before tx's next
// statement.
func (tx *Tx) Query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if err := tx.beginSQL(ctx, query, "query"); err != nil {
		return nil, err
	}
	r, err := tx.tx.QueryContext(ctx, query, args...)
	if err != nil {
		tx.statementFailed(ctx, err)
		return nil, fmt.Errorf("query on %s: %w", tx.primary.name, tx.primary.violation(err))
	}
	tx.undrained = true
	return r, nil
}

// QueryRow is Query for at most one row; errors are deferred to Scan.
func (tx *Tx) QueryRow(ctx context.Context, query string, args ...any) *Row {
	if err := tx.beginSQL(ctx, query, "query"); err != nil {
		return &Row{err: err}
	}
	tx.undrained = true
	return &Row{row: tx.tx.QueryRowContext(ctx, query, args...)}
}

// Row is the result of QueryRow: like *sql.Row, an error is reported by
// Scan (sql.ErrNoRows when there is no row).
type Row struct {
	row *sql.Row
	err error
}

// Scan copies the row's columns into dest, as sql.Row.Scan does.
func (r *Row) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	return r.row.Scan(dest...)
}

// Err returns the error, if any, of running the query.
func (r *Row) Err() error {
	if r.err != nil {
		return r.err
	}
	return r.row.Err()
}

// beginSQL checks that tx can run query and prepares it: capture on.
func (tx *Tx) beginSQL(ctx context.Context, query, what string) error {
	kind, words, err := classify(query)
	if err != nil {
		return err
	}
	if kind == sqltext.DDL {
		return fmt.Errorf("%w: %s through a query: use Exec", ErrRefused, words)
	}
	if err := refuseKind(kind, words); err != nil {
		return err
	}
	return tx.ready(ctx, words, what)
}

// ready prepares tx for a statement of the application's (its first
// keywords: words): capture on, the primary's sequences synced once.
func (tx *Tx) ready(ctx context.Context, words, what string) error {
	if err := tx.usable(what); err != nil {
		return err
	}
	if why := tx.primary.caps.Capturer.Refuse(words); why != "" {
		return fmt.Errorf("%w: %s on %s: %s", ErrRefused, words, tx.primary.name, why)
	}
	// Rows an earlier query changed are sent by the next drain (an Exec's,
	// a model write's, the commit's): Touched names every table touched
	// since the last one, so the wait for a query costs no round trip.
	if !tx.capturing {
		if err := tx.c.captureReady(ctx, tx.primary, tx.tx); err != nil {
			return err
		}
		// Once per view: the primary's sequences past the ids it received
		// as a secondary.
		if _, done := tx.view.autoSynced.Load(sequencesSynced); !done {
			if err := tx.primary.caps.Capturer.SyncSequences(ctx, tx.tx); err != nil {
				tx.statementFailed(ctx, err)
				return fmt.Errorf("move the sequences of %s past the ids it holds: %w", tx.primary.name, err)
			}
			tx.view.autoSynced.Store(sequencesSynced, true)
		}
		cp := tx.primary.caps.Capturer
		tx.tx.captureOff = cp.CaptureOff() // before: the SET may fail half done
		if _, err := tx.tx.ExecContext(ctx, cp.CaptureOn()); err != nil {
			tx.statementFailed(ctx, err)
			return fmt.Errorf("turn capture on, on %s: %w", tx.primary.name, err)
		}
		tx.capturing = true
	}
	tx.start()
	return nil
}

// sequencesSynced marks, in a view's autoSynced, that its primary's
// sequences were synced (no table is called that: the prefix is tandem's).
const sequencesSynced = "_tandem_sequences"

// drainPending sends the rows a query changed, once it is done.
func (tx *Tx) drainPending(ctx context.Context) error {
	if !tx.undrained {
		return nil
	}
	return tx.drain(ctx)
}

// drain reads the rows of every key captured since the last drain on the
// primary and sends them to the secondaries, deletes before upserts
// within a table, tables in the order first touched.
func (tx *Tx) drain(ctx context.Context) error {
	tx.undrained = false
	p := tx.primary
	tables, err := p.caps.Capturer.Touched(ctx, tx.tx)
	if err != nil {
		tx.statementFailed(ctx, err)
		return fmt.Errorf("read the tables a statement changed on %s: %w", p.name, err)
	}
	for _, name := range tables {
		t, err := tx.c.sqlTableOf(ctx, p, tx.tx, name)
		if err != nil {
			tx.broken = err
			return fmt.Errorf("%w: %w", ErrRefused, err)
		}
		if err := tx.drainTable(ctx, t); err != nil {
			tx.statementFailed(ctx, err)
			return fmt.Errorf("read the rows a statement changed in %s on %s: %w", name, p.name, err)
		}
	}
	return nil
}

// bulkyDrain is how many keys one drain of a table reads before its
// capture table is vacuumed after the Tx (engine.CaptureVacuumer).
const bulkyDrain = 10000

// vacuumLater has the health loop vacuum the capture tables of tables.
func (c *Cluster) vacuumLater(tables map[string]bool) {
	c.vacuums.Lock()
	if c.vacuums.tables == nil {
		c.vacuums.tables = map[string]bool{}
	}
	for name := range tables {
		c.vacuums.tables[name] = true
	}
	c.vacuums.Unlock()
	c.kick()
}

// vacuumCaptures vacuums the capture tables a large drain left, on every
// reachable database whose engine needs it (the secondaries' too: their
// applies fill theirs).
func (c *Cluster) vacuumCaptures(ctx context.Context) {
	c.vacuums.Lock()
	tables := c.vacuums.tables
	c.vacuums.tables = nil
	c.vacuums.Unlock()
	for name := range tables {
		for _, n := range c.nodes {
			if n.caps.Vacuumer == nil || !n.reachable() {
				continue
			}
			vctx, cancel := c.stepContext(ctx)
			_, err := n.conn().Write.ExecContext(vctx, n.caps.Vacuumer.VacuumCapture(name))
			cancel()
			if err != nil && ctx.Err() == nil {
				c.log.Warn("vacuum a capture table", "node", n.name, "table", name, "err", err)
			}
		}
	}
}

func (tx *Tx) drainTable(ctx context.Context, t *sqlTable) error {
	p := tx.primary
	r, err := tx.tx.QueryContext(ctx, t.drain)
	if err != nil {
		return err
	}
	defer r.Close()
	cols := t.def.T.Columns
	nk := len(t.def.PK)
	raw := make([]any, nk+len(cols))
	ptrs := make([]any, len(raw))
	for i := range raw {
		ptrs[i] = &raw[i]
	}
	keys := 0
	for r.Next() {
		if err := r.Scan(ptrs...); err != nil {
			return err
		}
		if keys++; keys == bulkyDrain && p.caps.Vacuumer != nil {
			if tx.bulky == nil {
				tx.bulky = map[string]bool{}
			}
			tx.bulky[t.def.T.Name] = true
		}
		key := make([]any, nk)
		for i, ci := range t.def.PK {
			if key[i], err = p.eng.Scan(&cols[ci], raw[i]); err != nil {
				return err
			}
		}
		o := op{m: t.m, key: key, captured: true}
		if raw[nk+t.def.PK[0]] == nil {
			o.del = true
		} else {
			o.row = make([]any, len(cols))
			for i := range cols {
				if o.row[i], err = p.eng.Scan(&cols[i], raw[nk+i]); err != nil {
					return err
				}
			}
		}
		tx.send(o)
	}
	if err := engine.CloseRows(r); err != nil {
		return err
	}
	if t.empty != "" {
		if _, err := tx.tx.ExecContext(ctx, t.empty); err != nil {
			return err
		}
	}
	return nil
}

// Exec runs a statement on the primary as written (see Tx.Exec), as one
// write of its own: the rows it changed reach every database the write
// reaches, or none. Like a Tx, it may run again when nothing was
// committed (the view changed, a secondary was left out).
//
// A statement that changes the structure (CREATE, ALTER or DROP a table
// or an index) runs on every database, in the same order, under tandem's
// exclusive lock; the capture triggers of the tables follow it.
//
// A maintenance statement (VACUUM, ANALYZE, CHECKPOINT), which changes
// no row, runs on every database the writes reach, one after the other,
// outside a transaction.
//
// Refused with ErrRefused, nothing written: several statements in one
// string, transaction control (use Cluster.Tx), session settings (SET,
// PRAGMA), statements that cannot be mirrored (COPY from a server's file,
// GRANT), and writes to a table without a primary key.
func (c *Cluster) Exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	kind, words, err := classify(query)
	if err != nil {
		return nil, err
	}
	if kind == sqltext.Maintenance {
		return c.execMaintenance(ctx, query, args)
	}
	if err := refuseKind(kind, words); err != nil {
		return nil, err
	}
	if kind == sqltext.DDL {
		return c.execDDL(ctx, query, words, args)
	}
	if err := c.Capture(ctx); err != nil {
		return nil, err
	}
	var res sql.Result
	err = c.tx(ctx, func(tx *Tx) error {
		tx.whole = true // one write in Metrics, however many rows
		r, err := tx.Exec(ctx, query, args...)
		res = r
		return err
	}, true)
	if err != nil {
		return nil, err
	}
	return res, nil
}

// Query runs a query on the primary (a reader: the first datasource in
// rank order that misses nothing) and returns its rows: joins,
// aggregates, anything that only reads. A statement that writes (INSERT
// ... RETURNING) is refused by the primary's read-only connection; run
// it with Tx.Query inside Cluster.Tx.
func (c *Cluster) Query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	kind, words, err := classify(query)
	if err != nil {
		return nil, err
	}
	if kind != sqltext.Write {
		if err := refuseKind(kind, words); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %s through Query: use Exec", ErrRefused, words)
	}
	q, n, _, err := c.reader()
	if err != nil {
		return nil, err
	}
	r, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		if cp := n.caps.Capturer; cp != nil && cp.ReadOnly(err) {
			return nil, fmt.Errorf("%w: the statement writes: run it with Tx.Query inside Cluster.Tx (%v)", ErrRefused, err)
		}
		return nil, fmt.Errorf("query on %s: %w", n.name, err)
	}
	return r, nil
}

// QueryRow is Query for at most one row; errors are deferred to Scan.
func (c *Cluster) QueryRow(ctx context.Context, query string, args ...any) *Row {
	kind, words, err := classify(query)
	if err == nil && kind != sqltext.Write {
		if err = refuseKind(kind, words); err == nil {
			err = fmt.Errorf("%w: %s through QueryRow: use Exec", ErrRefused, words)
		}
	}
	if err != nil {
		return &Row{err: err}
	}
	q, _, _, err := c.reader()
	if err != nil {
		return &Row{err: err}
	}
	return &Row{row: q.QueryRowContext(ctx, query, args...)}
}

// execMaintenance runs a statement that changes no row (VACUUM, ANALYZE)
// on every database the writes reach, in rank order, each on a connection
// of its own and outside a transaction; the result is the primary's.
func (c *Cluster) execMaintenance(ctx context.Context, query string, args []any) (sql.Result, error) {
	if c.closed.Load() {
		return nil, ErrClosed
	}
	v := c.view.Load()
	if v.primary == nil {
		return nil, v.err
	}
	var res sql.Result
	for _, n := range v.write {
		if !n.reachable() {
			continue
		}
		r, err := n.conn().Write.ExecContext(ctx, query, args...)
		if err != nil {
			return nil, fmt.Errorf("on %s: %w", n.name, err)
		}
		if n == v.primary {
			res = r
		}
	}
	if res == nil {
		return nil, fmt.Errorf("%w: %s is not reachable", ErrNodeDown, v.primary.name)
	}
	return res, nil
}

// execDDL runs a statement that changes the structure on every database,
// in lock order, under tandem's exclusive lock, and commits it on all or
// none where DDL is transactional (SQLite, PostgreSQL; on MySQL each
// database commits it as it runs: session.structure). The capture
// triggers follow: a dropped table's capture goes first, and every table
// the statement names, or that has none, gets it (again) afterwards.
func (c *Cluster) execDDL(ctx context.Context, query, words string, args []any) (sql.Result, error) {
	if c.closed.Load() {
		return nil, ErrClosed
	}
	v, release, err := c.acquire()
	if err != nil {
		return nil, err
	}
	defer release()
	if err := c.everyDatabaseIn(v, words); err != nil {
		return nil, err
	}
	s, err := c.lockAll(ctx, v)
	if err != nil {
		return nil, err
	}
	defer s.rollback()
	var res sql.Result
	for _, n := range s.order {
		err := s.structure(ctx, n, func(q engine.QueryExecer) error {
			r, err := n.runDDL(ctx, q, query, args)
			if n == v.primary {
				res = r
			}
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	if t := sqltext.AlteredTable(query); t != "" {
		if err := c.copyTable(ctx, s, v.primary, t); err != nil {
			return nil, err
		}
	}
	if err := s.commit(); err != nil {
		return nil, fmt.Errorf("%s: %w", words, err)
	}
	if err := c.structureChanged(ctx); err != nil {
		return res, err
	}
	return res, nil
}

// structureChanged forgets the tables SQL writes knew and compares the
// databases' structures again, once a change of structure committed.
func (c *Cluster) structureChanged(ctx context.Context) error {
	c.sqlw.forget(nil)
	if err := c.checkStructure(ctx); err != nil {
		return err
	}
	if st := c.Structure(); !st.Match {
		return st.err()
	}
	return nil
}

// everyDatabaseIn refuses a change of structure (words) while a database
// is out of v (it would miss it, and nothing would bring it there), and on
// engines that cannot capture.
func (c *Cluster) everyDatabaseIn(v *view, words string) error {
	var out []string
	for _, n := range c.nodes {
		if n.caps.Capturer == nil {
			return fmt.Errorf("%w: %s: tandem cannot run changes of structure on %s (%s)", ErrRefused, words, n.name, n.eng.Name())
		}
		if !slices.Contains(v.write, n) {
			out = append(out, n.name)
		}
	}
	if len(out) == 0 {
		return nil
	}
	verb := "are"
	if len(out) == 1 {
		verb = "is"
	}
	return fmt.Errorf("%w: %s: a change of structure needs every datasource, and %s %s out of the view; retry once it has caught up",
		ErrNodeDown, words, strings.Join(out, ", "), verb)
}

// structure runs fn, which changes the structure of n's database, with
// the session's transaction on n where the engine's changes of structure
// are transactional; elsewhere (MySQL, where they commit the transaction
// they run in, and with it tandem's lock) on a connection of its own,
// while the session's transaction holds tandem's lock. There, a change
// that fails on one database after it ran on another is not undone: the
// structure check reports the difference.
func (s *session) structure(ctx context.Context, n *Node, fn func(engine.QueryExecer) error) error {
	if n.caps.Capturer == nil || n.caps.Capturer.TransactionalDDL() {
		return fn(s.txs[n].dbTx)
	}
	db := n.conn()
	if db == nil {
		return fmt.Errorf("%w: %s is not open", ErrNodeDown, n.name)
	}
	conn, err := db.Write.Conn(ctx)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", n.name, err)
	}
	defer conn.Close()
	return fn(conn)
}

// runDDL runs a statement that changes the structure on n, through tx,
// with the capture that follows it: a dropped table's goes first, and
// every table the statement names, or that has none, gets it (again)
// afterwards.
func (n *Node) runDDL(ctx context.Context, tx engine.QueryExecer, query string, args []any) (sql.Result, error) {
	cp := n.caps.Capturer
	if dropped := sqltext.DroppedTable(query); cp != nil && dropped != "" {
		for _, stmt := range cp.RemoveCapture(dropped) {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				return nil, fmt.Errorf("remove the capture of %s on %s: %w", dropped, n.name, err)
			}
		}
	}
	res, err := tx.ExecContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("%s on %s: %w", strings.Join(strings.Fields(query), " "), n.name, err)
	}
	if cp == nil {
		return res, nil
	}
	infos, err := n.eng.Tables(ctx, tx)
	if err != nil {
		return nil, fmt.Errorf("read tables of %s: %w", n.name, err)
	}
	missing, err := uncapturedOf(ctx, n, tx, infos)
	if err != nil {
		return nil, err
	}
	lower := strings.ToLower(query)
	for _, t := range infos {
		named := strings.Contains(lower, strings.ToLower(t.Name))
		if !named && !slices.ContainsFunc(missing, func(m engine.TableInfo) bool { return m.Name == t.Name }) {
			continue
		}
		for _, stmt := range cp.InstallCapture(t) {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				return nil, fmt.Errorf("install capture on %s of %s: %w", t.Name, n.name, err)
			}
		}
	}
	return res, nil
}

// execDDL runs a statement that changes the structure inside tx: on the
// primary now, on each secondary in the write's order (op.ddl).
func (tx *Tx) execDDL(ctx context.Context, query, words string, args []any) (sql.Result, error) {
	if err := tx.usable("exec"); err != nil {
		return nil, err
	}
	if err := tx.c.everyDatabaseIn(tx.view, words); err != nil {
		return nil, err
	}
	for _, n := range tx.view.write {
		if !n.caps.Capturer.TransactionalDDL() {
			return nil, fmt.Errorf("%w: %s inside a transaction: %s (%s) commits the transaction a change of structure runs in; run it on its own (Cluster.Exec, or outside the driver's transaction)", ErrRefused, words, n.name, n.eng.Name())
		}
	}
	if err := tx.drainPending(ctx); err != nil {
		return nil, err
	}
	tx.start()
	res, err := tx.primary.runDDL(ctx, tx.tx, query, args)
	if err != nil {
		tx.statementFailed(ctx, err)
		return nil, err
	}
	tx.c.sqlw.forget(tx.primary) // this write's next rows are of the new structure
	tx.ddl = true
	tx.sendOp(op{ddl: query, args: args})
	if name := sqltext.AlteredTable(query); name != "" {
		// Each database wrote the rows' new values itself: send the
		// primary's, every row of the table captured at once.
		if err := tx.captureAll(ctx, name); err != nil {
			tx.statementFailed(ctx, err)
			return nil, err
		}
	}
	return res, nil
}

// captureAll sends the primary's every row of table to the secondaries,
// as rows a statement changed.
func (tx *Tx) captureAll(ctx context.Context, name string) error {
	t, err := tx.c.sqlTableOf(ctx, tx.primary, tx.tx, name)
	if err != nil {
		return err
	}
	e := tx.primary.eng
	keys := make([]string, len(t.def.PK))
	for i, ci := range t.def.PK {
		keys[i] = e.Quote(t.def.T.Columns[ci].Name)
	}
	list := strings.Join(keys, ", ")
	into, from := list, list
	if col, val := tx.primary.caps.Capturer.CaptureOwner(); col != "" {
		into, from = col+", "+list, val+", "+list
	}
	if _, err := tx.tx.ExecContext(ctx, fmt.Sprintf("INSERT INTO %s (%s) SELECT %s FROM %s",
		e.Quote(engine.CaptureName(name)), into, from, e.Quote(name))); err != nil {
		return fmt.Errorf("capture the rows of %s on %s: %w", name, tx.primary.name, err)
	}
	return tx.drainTable(ctx, t)
}

// copyTable makes every secondary's rows of table (in session s) equal the
// primary's p.
func (c *Cluster) copyTable(ctx context.Context, s *session, p *Node, name string) error {
	defs, err := p.tableDefs(ctx, s.txs[p])
	if err != nil {
		return err
	}
	td := defs[name]
	if td == nil {
		return nil // no key: nothing to copy by key
	}
	r, err := s.txs[p].QueryContext(ctx, td.Statements(p.eng).SelectAll)
	if err != nil {
		return fmt.Errorf("read %s on %s: %w", name, p.name, err)
	}
	var changes []rows.Change
	raw := make([]any, len(td.T.Columns))
	ptrs := make([]any, len(raw))
	for i := range raw {
		ptrs[i] = &raw[i]
	}
	for r.Next() {
		if err := r.Scan(ptrs...); err != nil {
			r.Close()
			return err
		}
		row := make([]any, len(raw))
		for i := range raw {
			if row[i], err = p.eng.Scan(&td.T.Columns[i], raw[i]); err != nil {
				r.Close()
				return err
			}
		}
		key := make([]any, len(td.PK))
		for i, ci := range td.PK {
			key[i] = row[ci]
		}
		changes = append(changes, rows.Change{Key: key, Row: row})
	}
	if err := engine.CloseRows(r); err != nil {
		return fmt.Errorf("read %s on %s: %w", name, p.name, err)
	}
	for _, n := range s.order {
		if n == p {
			continue
		}
		refused, err := n.applyRows(ctx, s.txs[n], td, changes)
		if err != nil {
			return err
		}
		if len(refused) > 0 {
			return rows.RefusedError(td, changes, refused)
		}
	}
	return nil
}
