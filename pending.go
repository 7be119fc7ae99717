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

// intent is the record a write leaves, in its own transaction, on every
// database it writes: the keys it touched. Once every database has
// committed, the records are cleared in batches off the hot path. A record
// that survives names keys some database may lack: the write failed to
// commit somewhere, or the process died between commits.
type intent struct {
	txid string
	at   int64 // unix ms
	keys []pendingKey
	seq  map[pendingKey]int // each key's index in keys, its seq in the record
}

type pendingKey struct{ table, key string }

// newIntent starts the intent record of a write made at now; its keys are
// added as the write makes them.
func newIntent(now time.Time) *intent {
	return &intent{
		// Time-ordered, so records sort by age.
		txid: fmt.Sprintf("%016x%s", now.UnixNano(), newID(8)),
		at:   now.UnixMilli(),
		seq:  map[pendingKey]int{},
	}
}

// next returns the seq k has, or would have once added, and whether k is
// new to the record.
func (in *intent) next(k pendingKey) (seq int, fresh bool) {
	if i, ok := in.seq[k]; ok {
		return i, false
	}
	return len(in.keys), true
}

// add adds k unless the record holds it, and returns its seq.
func (in *intent) add(k pendingKey) int {
	i, fresh := in.next(k)
	if fresh {
		in.seq[k] = i
		in.keys = append(in.keys, k)
	}
	return i
}

// note returns the values of k's row in _tandem_pending, in the order of
// recordSQL's columns.
func (in *intent) note(seq int, k pendingKey) []any {
	return []any{in.txid, int64(seq), k.table, k.key, in.at}
}

// recordChunk is how many keys one INSERT records.
const recordChunk = 100

// recordIntent writes in's keys to _tandem_pending inside tx, but for those
// noted already (in the statements that wrote them: engine.WithInserter).
func (n *Node) recordIntent(ctx context.Context, tx execer, in *intent, noted func(seq int) bool) error {
	var rest []int
	for i := range in.keys {
		if !noted(i) {
			rest = append(rest, i)
		}
	}
	for start := 0; start < len(rest); start += recordChunk {
		chunk := rest[start:min(start+recordChunk, len(rest))]
		args := make([]any, 0, 5*len(chunk))
		for _, i := range chunk {
			args = append(args, in.note(i, in.keys[i])...)
		}
		if _, err := tx.ExecContext(ctx, n.recordSQL(len(chunk), 0), args...); err != nil {
			return err
		}
	}
	return nil
}

// recordSQL inserts rows intent records, with placeholders numbered from
// after+1.
func (n *Node) recordSQL(rows, after int) string {
	e := n.eng
	var b strings.Builder
	fmt.Fprintf(&b, "INSERT INTO %s (txid, seq, tbl, pk, at) VALUES ", e.Quote(pendingTable.Name))
	p := after
	for r := 0; r < rows; r++ {
		if r > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('(')
		for c := 0; c < 5; c++ {
			if c > 0 {
				b.WriteString(", ")
			}
			p++
			b.WriteString(e.Placeholder(p))
		}
		b.WriteByte(')')
	}
	return b.String()
}

// recordMissed records, inside tx, each of in's keys as missed by every
// node of missing (an upsert: a key missed twice is one record).
func (n *Node) recordMissed(ctx context.Context, tx execer, in *intent, missing []*Node) error {
	if len(missing) == 0 {
		return nil
	}
	q := n.eng.Upsert(&missedTable)
	for _, m := range missing {
		for _, k := range in.keys {
			if _, err := tx.ExecContext(ctx, q, m.name, k.table, k.key, in.at); err != nil {
				return err
			}
		}
	}
	return nil
}

// errPrimaryBehind: a database the write reaches holds writes that the
// primary missed (another process wrote around it). The write is refused
// before it commits; Save and Delete run again on the next primary.
var errPrimaryBehind = errors.New("the primary misses writes another database holds")

// checkNotAhead refuses a write, inside tx on n, when n records keys as
// missed by the primary: then the primary lacks rows n has, and full rows
// read there would overwrite them. (Keys n records as missed by another
// secondary do no harm: that one is catching up.) Holding n's lock, no
// other writer can add such a record until the write ends.
func (n *Node) checkNotAhead(ctx context.Context, tx querier, primary *Node) error {
	var one int
	err := tx.QueryRowContext(ctx, fmt.Sprintf("SELECT 1 FROM %s WHERE node = %s%s",
		n.eng.Quote(missedTable.Name), n.eng.Placeholder(1), n.eng.LimitClause(1, 0)), primary.name).Scan(&one)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil
	case err != nil:
		return fmt.Errorf("check missed keys on %s: %w", n.name, err)
	}
	return fmt.Errorf("%w: %s records keys that %s missed; retry", errPrimaryBehind, n.name, primary.name)
}

// missesWritesOf notes that holder records keys n missed, until the next
// check counts them.
func (n *Node) missesWritesOf(holder *Node) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.live.behindBy == nil {
		n.live.behindBy = map[string]missedBy{}
	}
	if _, ok := n.live.behindBy[holder.name]; !ok {
		n.live.behindBy[holder.name] = missedBy{count: 1, seen: time.Now()}
	}
}

// settleIntent turns in's intent record on n, a database that committed
// the write, into missed-key records for the databases that failed to.
func (n *Node) settleIntent(ctx context.Context, wait time.Duration, in *intent, lost []*Node) error {
	tx, err := n.begin(ctx, wait)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := n.recordMissed(ctx, tx, in, lost); err != nil {
		return err
	}
	if err := n.deleteIntent(ctx, tx, in.txid); err != nil {
		return err
	}
	return tx.Commit()
}

// deleteIntent deletes the intent record of txid from n, inside tx.
func (n *Node) deleteIntent(ctx context.Context, tx execer, txid string) error {
	_, err := tx.ExecContext(ctx, fmt.Sprintf("DELETE FROM %s WHERE txid = %s",
		n.eng.Quote(pendingTable.Name), n.eng.Placeholder(1)), txid)
	return err
}

// clearRecords deletes the intent records of txids from n, waiting at most
// wait for its lock (the clearer shares the write connection with writes).
func (n *Node) clearRecords(ctx context.Context, wait time.Duration, txids []string) error {
	e := n.eng
	marks := make([]string, len(txids))
	args := make([]any, len(txids))
	for i, id := range txids {
		marks[i] = e.Placeholder(i + 1)
		args[i] = id
	}
	tx, err := n.beginShared(ctx, wait)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	q := fmt.Sprintf("DELETE FROM %s WHERE txid IN (%s)", e.Quote(pendingTable.Name), strings.Join(marks, ", "))
	if _, err := tx.ExecContext(ctx, q, args...); err != nil {
		return err
	}
	return tx.Commit()
}

// clearer batches the txids of writes committed everywhere and deletes
// their intent records from every database. Writes hand it their txids
// without waiting: a database that hangs delays the clearing, never a write.
type clearer struct {
	c    *Cluster
	wake chan struct{} // a batch is full
	done chan struct{}

	mu      sync.Mutex
	queue   []string // txids handed over, not yet flushed
	stopped bool

	// backlog holds, per database, txids it could not be cleared of
	// (unreachable then), to clear when it is back. Beyond maxBacklog the
	// records are left to the sweeper. Only run's goroutine uses it.
	backlog map[*Node][]string
}

const (
	clearBatch = 256
	clearEvery = 250 * time.Millisecond
	maxBacklog = 100_000
)

func newClearer(c *Cluster) *clearer {
	cl := &clearer{c: c, wake: make(chan struct{}, 1), done: make(chan struct{}), backlog: map[*Node][]string{}}
	go cl.run()
	return cl
}

// add queues txid for clearing. After stop, or beyond maxBacklog queued,
// the record stays: it is harmless (the sweeper copies rows that are
// already identical).
func (cl *clearer) add(txid string) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if cl.stopped || len(cl.queue) >= maxBacklog {
		return
	}
	cl.queue = append(cl.queue, txid)
	if len(cl.queue) == clearBatch {
		select {
		case cl.wake <- struct{}{}:
		default:
		}
	}
}

// take empties the queue.
func (cl *clearer) take() (txids []string, stopped bool) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	txids, cl.queue = cl.queue, nil
	return txids, cl.stopped
}

// stop clears what is queued and ends the goroutine.
func (cl *clearer) stop() {
	cl.mu.Lock()
	cl.stopped = true
	cl.mu.Unlock()
	select {
	case cl.wake <- struct{}{}:
	default:
	}
	<-cl.done
}

func (cl *clearer) run() {
	defer close(cl.done)
	tick := time.NewTicker(clearEvery)
	defer tick.Stop()
	for {
		select {
		case <-cl.wake:
		case <-tick.C:
		}
		txids, stopped := cl.take()
		if len(txids) > 0 || len(cl.backlog) > 0 {
			cl.flush(txids)
		}
		if stopped {
			return
		}
	}
}

// flush clears txids, and each database's backlog, from every database,
// the databases concurrently: one that hangs costs the others nothing.
func (cl *clearer) flush(txids []string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*cl.c.timeout)
	defer cancel()
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, n := range cl.c.nodes {
		if n.sameAs != nil || n.conn() == nil {
			continue
		}
		mu.Lock()
		ids := append(cl.backlog[n], txids...)
		mu.Unlock()
		if len(ids) == 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			rest := cl.flushNode(ctx, n, ids)
			mu.Lock()
			defer mu.Unlock()
			if len(rest) > 0 && len(rest) <= maxBacklog {
				cl.backlog[n] = rest
			} else {
				delete(cl.backlog, n)
			}
		}()
	}
	wg.Wait()
}

// flushNode clears ids from n and returns those it could not clear.
func (cl *clearer) flushNode(ctx context.Context, n *Node, ids []string) []string {
	if !n.reachable() {
		return ids
	}
	for start := 0; start < len(ids); start += clearBatch {
		chunk := ids[start:min(start+clearBatch, len(ids))]
		if err := n.clearRecords(ctx, cl.c.timeout/4, chunk); err != nil {
			// Try again later; past maxBacklog the records stay for the
			// sweeper (which copies rows that are in fact identical).
			cl.c.log.Debug("clearing intent records failed", "node", n.name, "count", len(chunk), "err", err)
			return ids[start:]
		}
	}
	return nil
}
