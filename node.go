package tandem

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tandemdb/tandem/engine"
	"github.com/tandemdb/tandem/internal/records"
)

// Node is one configured datasource.
type Node struct {
	cluster *Cluster
	name    string
	eng     engine.Engine
	caps    engine.Capabilities         // the optional interfaces eng implements
	records records.Store               // its bookkeeping tables, in eng's dialect
	dsn     string                      // never logged: may hold a password; use eng.Redact
	connp   atomic.Pointer[engine.Conn] // nil until opened
	id      string                      // node identity stored in the database; set before connp
	// own is the identity this datasource's own database carries, once
	// its address was found reaching another database (a taken-over
	// address): it is reopened only where that identity answers. Guarded
	// by mu.
	own string

	// sameAs is the earlier datasource that reaches the same database;
	// writes go to that one only.
	sameAs *Node

	texts sync.Map // model type -> *statements in this node's dialect

	// inDoubtSeen is the count of writes in doubt the last Status read
	// (LastStatus reports it).
	inDoubtSeen atomic.Int64

	// applyOn is the statement a secondary's transaction runs before it
	// applies rows SQL statements changed (engine.Capturer.ApplyOn), ""
	// where the engine has none or the role may not run it (probed when
	// opened).
	applyOn atomic.Pointer[string]

	mu   sync.Mutex
	prob error // a lasting reason the node takes no writes (an identity clash)
	live liveState
	// downc is closed when n is marked down, waking writes that wait for
	// it (see downSignal); nil until asked for.
	downc chan struct{}

	counters nodeCounters // for [Cluster.Metrics]
}

// liveState is what this process knows of a node now, guarded by Node.mu.
// The lasting part of it lives in the databases: the outdated marker in the
// node's own _tandem_meta, and the missed-key records other nodes hold.
type liveState struct {
	down       error               // why the last write or check failed; nil: reachable
	downSince  time.Time           // when down was set
	epoch      int64               // counts failures, so a check started earlier cannot undo a later one
	outdated   string              // the node's outdated marker ("" when not outdated)
	gen        int64               // the highest view generation the database took part in
	promotedAt int64               // unix ms of an operator's promote --force still in effect, 0 if none
	behindBy   map[string]missedBy // keys other nodes record as missed by this one, by recording node
	ahead      int64               // keys this node records as missed by reachable nodes
	holds      map[string]int64    // those keys, by the name of the node that missed them
	conflicts  int64               // unresolved conflicts recorded in this node
	catching   bool                // a catch-up of this node is running
	// refused: the keys the last catch-up pass could not copy to or from
	// it; sweepRefused: those of writes in doubt the last sweep could not
	// copy to it.
	refused, sweepRefused refusedState
	lastErr               string // the last error seen, for status
	lastErrAt             time.Time
}

// Name is the datasource's configured name.
func (n *Node) Name() string { return n.name }

// Driver is the datasource's engine name.
func (n *Node) Driver() string { return n.eng.Name() }

// ID is the node identity stored in the database, "" if unknown.
func (n *Node) ID() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.id
}

// ownID is the identity of n's own database, which every transaction on n
// checks it reached: "" while it is not known, and for an alias, which
// reaches another datasource's database by design.
func (n *Node) ownID() string {
	if n.sameAs != nil {
		return ""
	}
	return n.ID()
}

// SameAs returns the earlier datasource that is the same database as n, or nil.
func (n *Node) SameAs() *Node { return n.sameAs }

// singleWriter returns n's engine as a SingleWriter, or nil.
func (n *Node) singleWriter() engine.SingleWriter {
	return n.caps.SingleWriter
}

// database returns the node that writes to n's database.
func (n *Node) database() *Node {
	if n.sameAs != nil {
		return n.sameAs
	}
	return n
}

func (n *Node) problem() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.prob
}

func (n *Node) setProblem(err error) {
	n.mu.Lock()
	n.prob = err
	n.mu.Unlock()
}

// missedBy is what one node records as missed by another.
type missedBy struct {
	count int64
	seen  time.Time // when a check last read it
}

// state returns a copy of n's live state.
func (n *Node) state() liveState {
	n.mu.Lock()
	defer n.mu.Unlock()
	st := n.live
	st.behindBy = maps.Clone(st.behindBy)
	return st
}

// behind is how many keys this node misses: the most any node records.
func (st liveState) behind() int64 {
	var most int64
	for _, e := range st.behindBy {
		most = max(most, e.count)
	}
	return most
}

// holders names the nodes that record keys as missed by this one.
func (st liveState) holders() []string {
	names := slices.Sorted(maps.Keys(st.behindBy))
	return names
}

// markDown records that n failed: writes go on without it, recording the
// keys it misses, until a check finds it reachable and it has caught up.
func (n *Node) markDown(err error) {
	n.mu.Lock()
	first := n.live.down == nil
	n.live.down = err
	n.live.epoch++
	if first {
		n.live.downSince = time.Now()
	}
	n.live.lastErr, n.live.lastErrAt = err.Error(), time.Now()
	if n.downc != nil {
		close(n.downc)
		n.downc = nil
	}
	n.mu.Unlock()
	if first {
		n.cluster.log.Warn("datasource down: writes go on without it", "node", n.name, "err", err)
		n.cluster.downEvent(n, err)
		n.cluster.kick()
	}
}

// downSignal returns a channel that is closed once n is down (at once if
// it is down now).
func (n *Node) downSignal() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.live.down != nil {
		return closedChan
	}
	if n.downc == nil {
		n.downc = make(chan struct{})
	}
	return n.downc
}

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// noteError records err as n's last error without marking it down.
func (n *Node) noteError(err error) {
	n.mu.Lock()
	n.live.lastErr, n.live.lastErrAt = err.Error(), time.Now()
	n.mu.Unlock()
}

// reachable reports whether n (a database node) is open and not down.
func (n *Node) reachable() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.conn() != nil && n.prob == nil && n.live.down == nil
}

// open connects and makes sure the database has tandem's tables and an
// identity. It publishes the connection only once both are there.
func (n *Node) open(ctx context.Context) error {
	dsn := n.dsn
	if sb := n.caps.StallBounder; sb != nil {
		var err error
		if dsn, err = sb.BoundStalls(dsn, lockWait*n.cluster.timeout); err != nil {
			return err
		}
	}
	conn, err := n.eng.Open(ctx, dsn)
	if err != nil {
		return err
	}
	id, err := n.records.Meta(ctx, conn.Read, records.NodeID)
	if err == nil {
		// A database from before a bookkeeping table was added lacks it.
		err = n.records.HasTables(ctx, conn.Read)
	}
	n.mu.Lock()
	own := n.own
	n.mu.Unlock()
	if own != "" && (err != nil || id != own) {
		// A taken-over address: only its own database is opened, and
		// nothing is written to another (not even tandem's tables).
		conn.Close()
		if err != nil {
			return err
		}
		return n.cluster.otherDatabase(n, id, own)
	}
	if err != nil || id == "" {
		if id, err = n.initialise(ctx, conn); err != nil {
			conn.Close()
			return err
		}
	}
	n.mu.Lock()
	n.id = id
	n.mu.Unlock()
	n.probeApplyOn(ctx, conn)
	n.connp.Store(conn)
	return nil
}

// probeApplyOn sets n.applyOn: the engine's ApplyOn where this role may
// run it (PostgreSQL's session_replication_role needs a superuser, or a
// grant), else "" with a warning: the application's triggers and foreign
// key actions then fire where n applies the primary's rows.
func (n *Node) probeApplyOn(ctx context.Context, conn *engine.Conn) {
	q := ""
	if cp := n.caps.Capturer; cp != nil && cp.ApplyOn() != "" {
		tx, err := conn.Write.BeginTx(ctx, nil)
		if err == nil {
			_, err = tx.ExecContext(ctx, cp.ApplyOn())
			tx.Rollback()
		}
		var coded interface{ SQLState() string }
		if err == nil || !errors.As(err, &coded) || coded.SQLState() != "42501" {
			// Allowed, or not known to be refused (the database failed
			// meanwhile): the statement runs, and fails the write if the
			// role may not after all.
			q = cp.ApplyOn()
		} else { // insufficient_privilege
			n.cluster.log.Warn("the application's triggers and foreign-key actions will fire where this datasource applies rows SQL statements changed on the primary: its role cannot switch them off",
				"node", n.name, "statement", cp.ApplyOn(), "err", err)
		}
	}
	n.applyOn.Store(&q)
}

// applyStatement is n.applyOn's statement ("" for none).
func (n *Node) applyStatement() string {
	if q := n.applyOn.Load(); q != nil {
		return *q
	}
	return ""
}

// takenOver notes that n's address reaches another database than its own,
// whose identity is own: n's connections are closed (a pool keeps reaching
// whatever its connections reached), and n is opened again only where own
// answers.
func (n *Node) takenOver(own string) {
	if n.sameAs != nil {
		return // an alias shares its database's connection
	}
	n.mu.Lock()
	n.own = own
	n.mu.Unlock()
	if conn := n.connp.Swap(nil); conn != nil {
		go conn.Close() // writes still using it fail; n is down
	}
}

// reaches checks that id, the identity read through n's connections, is
// want, that of n's own database ("": not known yet, nothing to check).
// Otherwise n's address reaches another database: n's connections are
// closed (takenOver) and the error says which database it reaches.
func (n *Node) reaches(id, want string) error {
	if want == "" || id == want {
		return nil
	}
	n.takenOver(want)
	return n.cluster.otherDatabase(n, id, want)
}

// conn returns n's open database, or nil when it has not been opened.
func (n *Node) conn() *engine.Conn { return n.connp.Load() }

func (n *Node) initialise(ctx context.Context, conn *engine.Conn) (string, error) {
	tx, err := conn.Write.BeginTx(ctx, nil)
	if err != nil {
		return "", fmt.Errorf("initialise: %w", err)
	}
	defer tx.Rollback()
	if err := n.records.Create(ctx, tx); err != nil {
		return "", fmt.Errorf("initialise: %w", err)
	}
	id, err := n.records.Meta(ctx, tx, records.NodeID)
	if err != nil {
		return "", fmt.Errorf("initialise: %w", err)
	}
	if id == "" {
		id = records.NewID(8)
		now := time.Now().UTC().Format(time.RFC3339)
		for k, v := range map[string]string{records.NodeID: id, records.CreatedAt: now} {
			if err := n.records.SetMeta(ctx, tx, k, v); err != nil {
				return "", fmt.Errorf("initialise: %w", err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return "", fmt.Errorf("initialise: %w", err)
	}
	return id, nil
}

func (n *Node) close() error {
	if n.conn() == nil || n.sameAs != nil {
		return nil // an alias shares its database's connection
	}
	return n.conn().Close()
}
