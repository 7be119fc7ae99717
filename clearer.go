package tandem

// Clearing intent records once every database has committed, in batches,
// off the hot path.

import (
	"context"
	"sync"
	"time"
)

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
	// known holds every txid handed over whose records some database may
	// still hold (queued, being flushed, or in a backlog): writes
	// committed everywhere, whose records are briefly on some databases
	// only while they are cleared one database at a time (see
	// overlapsDoubt).
	known map[string]struct{}
	// cleared holds, for clearedFor, the txids known no longer: a write
	// that read another database's records before they were cleared, and
	// asks after they were forgotten, must still recognise them.
	cleared map[string]time.Time

	// backlog holds, per database, txids it could not be cleared of
	// (unreachable then), to clear when it is back. Beyond maxBacklog the
	// records are left to the sweeper. Only run's goroutine uses it.
	backlog map[*Node][]string
}

const (
	clearedFor = 10 * time.Second
	clearBatch = 256
	clearEvery = 250 * time.Millisecond
	maxBacklog = 100_000
)

func newClearer(c *Cluster) *clearer {
	cl := &clearer{c: c, wake: make(chan struct{}, 1), done: make(chan struct{}), backlog: map[*Node][]string{}, known: map[string]struct{}{}, cleared: map[string]time.Time{}}
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
	cl.known[txid] = struct{}{}
	if len(cl.queue) == clearBatch {
		select {
		case cl.wake <- struct{}{}:
		default:
		}
	}
}

// committed reports whether txid is a write this process committed
// everywhere and has not finished clearing, or finished clearing less
// than clearedFor ago.
func (cl *clearer) committed(txid string) bool {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if _, ok := cl.known[txid]; ok {
		return true
	}
	_, ok := cl.cleared[txid]
	return ok
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
			cl.forget(txids)
		}
		if stopped {
			return
		}
	}
}

// forget drops from known the txids flushed, but for those a backlog
// still holds.
func (cl *clearer) forget(txids []string) {
	held := map[string]bool{}
	for _, ids := range cl.backlog {
		for _, id := range ids {
			held[id] = true
		}
	}
	now := time.Now()
	cl.mu.Lock()
	defer cl.mu.Unlock()
	for id, at := range cl.cleared {
		if now.Sub(at) > clearedFor {
			delete(cl.cleared, id)
		}
	}
	for _, id := range txids {
		if !held[id] {
			delete(cl.known, id)
			cl.cleared[id] = now
		}
	}
	if len(cl.backlog) == 0 && len(cl.queue) == 0 {
		for id := range cl.known { // also the backlog's, now cleared
			cl.cleared[id] = now
		}
		clear(cl.known)
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

// clearRecords deletes the intent records of txids from n, waiting at most
// wait for its lock (the clearer shares the write connection with writes).
func (n *Node) clearRecords(ctx context.Context, wait time.Duration, txids []string) error {
	tx, err := n.beginShared(ctx, wait)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := n.records.ClearIntents(ctx, tx, txids); err != nil {
		return err
	}
	return tx.Commit()
}
