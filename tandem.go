// Package tandem keeps two or more SQL databases identical in real time.
//
// An application opens a Cluster from a Config that lists its datasources
// and writes through it: every Save, Delete and transaction is applied to
// every database, primary first (its locks order concurrent writers), then
// to the secondaries concurrently, then committed everywhere concurrently.
// Values a database would invent (auto-increment ids, default timestamps)
// are decided once and written explicitly, so the rows are identical. Each
// write also records, in the same transaction on every database, which keys
// it touched; the record is cleared once every database has committed, so a
// crash between commits leaves a durable list of what to copy.
//
// When a database fails or stops answering, writes go on without it: the
// databases they reach record, in the same transactions, the keys it
// missed, and when it returns a health loop copies exactly those rows to it
// before it rejoins (see [Cluster.CatchUp]). If the primary is lost,
// the next datasource in rank order takes over. Reads (Get, Find, Count)
// come from the primary, so they follow it.
//
// # Models
//
// A model is a Go struct type mapped to a table. Fields map to columns:
//
//	type Book struct {
//		ID        int64     `tandem:"id,pk,auto"`
//		ISBN      string    `tandem:"isbn,size=13,unique"`
//		Title     string    `tandem:"title,size=255,index"`
//		Price     *float64  // nullable: a pointer field
//		CreatedAt time.Time `tandem:"created_at,default=now"`
//	}
//
// The tag is the column name (default: the field name in snake_case)
// followed by options:
//
//	pk          part of the primary key (several fields: a composite key, in field order)
//	auto        integer primary key assigned by the primary database on insert
//	notnull     a pointer field that must not be nil (non-pointer fields are always NOT NULL)
//	unique      a unique index on this column; unique=NAME groups columns into one index (named TABLE_NAME)
//	index       an index on this column; index=NAME groups columns into one index (named TABLE_NAME)
//	size=N      at most N characters (string) or bytes ([]byte)
//	default=V   the value a zero field (a nil pointer field) takes when saved; now: the current time.
//	            A non-pointer field with a default cannot store its zero value; a bool needs *bool.
//	-           not a column
//
// Without a pk option, a field named ID is the primary key (auto, if an integer).
// The table is named by a TableName() string method, or else the type name
// in snake_case.
//
// # Any SQL
//
// An application's own SQL goes through [Cluster.Exec], [Cluster.Query]
// and [Cluster.QueryRow], or the same on a [Tx] (mixed with model writes),
// or the database/sql driver in package stdlib. A statement runs on the
// primary as written; capture triggers (installed by [Cluster.Capture],
// or on first use) name the rows it changed, and tandem sends those rows,
// read on the primary, to the secondaries as model writes send theirs.
// Changes of structure run on every database. What cannot be mirrored is
// refused with [ErrRefused].
package tandem

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tandemdb/tandem/arbiter"
	_ "github.com/tandemdb/tandem/arbiter/witness" // the default arbiter of SQLite pairs
	"github.com/tandemdb/tandem/engine"
	"github.com/tandemdb/tandem/internal/records"
)

// Drivers lists the driver names a config's datasources may use, sorted:
// the engines linked into the program. Each engine registers itself when
// its package is imported, as database/sql drivers do:
//
//	import _ "github.com/tandemdb/tandem/engine/sqlite"
func Drivers() []string { return engine.Drivers() }

// Cluster is a set of datasources kept identical. It is safe for concurrent
// use by many goroutines; several processes may open the same datasources
// at once (they must agree on the primary).
type Cluster struct {
	// writeLatency observes each acknowledged write (Metrics.WriteSeconds).
	writeLatency histogram

	nodes    []*Node // in configured order
	mixed    bool    // the datasources use more than one engine
	primary  *Node   // the configured primary (or the first datasource): first in rank
	log      *slog.Logger
	timeout  time.Duration // Config.Timeout
	interval time.Duration // Config.HealthInterval
	policy   ConflictPolicy
	twoPhase bool // Config.Commit is CommitTwoPhase

	view atomic.Pointer[view] // the view writes run under; changed under gate
	gate sync.RWMutex         // held for reading by each write, for writing by a view change

	arb        arbiter.Arbiter // where the view lives; nil: in the primary's database
	changing   sync.Mutex      // one view change at a time in this process
	refreshing sync.Mutex      // one check of every database at a time
	arbiterErr error           // why the view could not be read last time (under mu)
	configFile string          // the config file, for messages

	kicks chan struct{} // asks the health loop to check now
	// vacuums names the tables whose capture tables a large drain left to
	// vacuum (engine.CaptureVacuumer): the health loop does it.
	vacuums struct {
		sync.Mutex
		tables map[string]bool
	}
	stop       chan struct{} // closed by Close
	healthDone chan struct{}
	background bool // run the health loop (false: WithoutBackground)

	migrated   []*model      // models Migrate created, for datasources that return (under mu)
	sweepAfter time.Duration // age of an intent record that sweep repairs

	models sync.Map // reflect.Type -> *model
	sqlw   sqlState // tables as SQL writes read them (capture.go)
	group  grouper  // queue of Saves and Deletes to commit together

	mu        sync.RWMutex
	structure Structure // the last structure comparison

	clear  *clearer
	closed atomic.Bool

	events eventLog // recent events and their subscribers (see [Cluster.Events]); ready as the zero value

	// serialCommit commits the primary before the secondaries (measured
	// against concurrent commits by BenchmarkSave).
	serialCommit bool

	// noIntent (benchmarks only) writes no intent records.
	noIntent bool
	// noDoubtCheck (benchmarks only): writes do not look up the records
	// naming their keys (checksDoubts).
	noDoubtCheck bool
	// noFence (benchmarks only) skips the fence of every write: they
	// measure what it costs.
	noFence bool

	// commitHook, when set (tests only), runs between the primary's commit
	// and the secondaries' commits, which then run one after the other.
	commitHook func(txid string)
	// beforeCommit, when set (tests only), runs just before a write's
	// commits are sent.
	beforeCommit func()
	// failPrimaryCommit, when set (tests only), makes the primary's
	// commit of a write fail with the error it returns (the transaction
	// rolled back), while the secondaries commit.
	failPrimaryCommit func() error
}

// Option configures Open.
type Option func(*Cluster)

// WithLogger sends tandem's logs to l (default: slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(c *Cluster) { c.log = l } }

// WithoutBackground opens a Cluster that does no work of its own: no health
// checks, no catch-up, no repair of writes in doubt. Commands that only
// look (tandem status) use it; applications should not.
func WithoutBackground() Option { return func(c *Cluster) { c.background = false } }

// Open connects to every datasource of cfg, gives each database its node
// identity on first use, recognises datasources that are one database,
// compares the databases' structures, reads the cluster's state from the
// databases and decides which datasource is the primary. Unless
// WithoutBackground is given, it starts the health loop,
// which Close stops.
//
// Open fails only on an invalid config. A datasource that cannot be reached
// is reported by Status and skipped by writes until it returns and catches
// up; one that carries another database's identity is reported by Status;
// a structure mismatch is reported by Structure, and refuses writes with
// ErrSchemaMismatch while it lasts.
func Open(ctx context.Context, cfg *Config, opts ...Option) (*Cluster, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Cluster{
		log:        slog.Default(),
		timeout:    cfg.timeout(),
		interval:   cfg.healthInterval(),
		policy:     cfg.Conflicts,
		twoPhase:   cfg.Commit == CommitTwoPhase,
		kicks:      make(chan struct{}, 1),
		stop:       make(chan struct{}),
		healthDone: make(chan struct{}),
		background: true,
		sweepAfter: InDoubtAfter,
	}
	for _, o := range opts {
		o(c)
	}
	for _, ds := range cfg.Datasources {
		c.nodes = append(c.nodes, &Node{cluster: c, name: ds.Name, eng: ds.eng, caps: engine.CapabilitiesOf(ds.eng), records: records.For(ds.eng), dsn: ds.dsn})
		c.mixed = c.mixed || ds.eng.Name() != c.nodes[0].eng.Name()
	}
	c.primary = c.nodes[cfg.primaryIndex()]
	c.configFile = cfg.file
	if kind := cfg.arbiterKind(); kind != ArbiterNone {
		open, _ := arbiter.Lookup(kind) // Validate checked it is registered
		dir := cfg.dir
		if cfg.file == "" {
			// A config built in Go: the witness goes beside the
			// configured primary's file, where every process that names
			// it finds it.
			if fe := c.primary.caps.File; fe != nil {
				if p, err := fe.Path(c.primary.dsn); err == nil {
					dir = filepath.Dir(p)
				}
			}
		}
		if dir == "" {
			dir = "."
		}
		arb, err := open(arbiter.Options{Kind: kind, Fields: cfg.Arbiter.Fields, Dir: dir})
		if err != nil {
			return nil, &ConfigError{File: cfg.file, Line: cfg.lines["arbiter.kind"], Field: "arbiter", Msg: err.Error()}
		}
		c.arb = arb
	}
	c.sameFiles()
	var wg sync.WaitGroup
	for _, n := range c.nodes {
		if n.sameAs != nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			octx, cancel := context.WithTimeout(ctx, c.timeout)
			defer cancel()
			if err := n.open(octx); err != nil {
				n.markDown(fmt.Errorf("open: %w", err))
			}
		}()
	}
	wg.Wait()
	for _, n := range c.nodes {
		if a := n.sameAs; a != nil {
			n.id = a.id
			n.connp.Store(a.conn())
		}
	}
	c.findAliases(ctx)
	c.findTakeovers(ctx)
	if err := c.checkStructure(ctx); err != nil {
		c.log.Warn("structure check failed", "err", err)
	}
	c.refresh(ctx, false)
	c.view.Store(c.viewOf(arbiter.View{}))
	if err := c.reload(ctx); err != nil {
		var ce *ConfigError
		if errors.As(err, &ce) {
			c.closeNodes()
			return nil, err
		}
		c.noteArbiter(err)
	}
	if c.background {
		if err := c.decideAgain(); err != nil {
			c.log.Warn("cluster view", "err", err)
		}
	}
	c.log.Debug("cluster view", "view", c.view.Load().String())
	c.rememberMembers(ctx)
	c.clear = newClearer(c)
	if c.background {
		go c.health()
	} else {
		close(c.healthDone)
	}
	return c, nil
}

// Close stops background work, clears what it can of the intent records
// and closes every connection.
func (c *Cluster) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	close(c.stop)
	<-c.healthDone
	c.closeEvents()
	c.clear.stop()
	c.gate.Lock() // wait for writes in flight
	defer c.gate.Unlock()
	return c.closeNodes()
}

// closeNodes closes every connection and the arbiter.
func (c *Cluster) closeNodes() error {
	var first error
	for _, n := range c.nodes {
		if err := n.close(); err != nil && first == nil {
			first = err
		}
	}
	if c.arb != nil {
		if err := c.arb.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Nodes returns the datasources in configured order.
func (c *Cluster) Nodes() []*Node { return append([]*Node(nil), c.nodes...) }

// Primary returns the datasource whose locks order writes.
func (c *Cluster) Primary() *Node { return c.primary }

// structureErr refuses writes while the databases' structures differ.
func (c *Cluster) structureErr() error {
	c.mu.RLock()
	st := c.structure
	c.mu.RUnlock()
	if !st.Match {
		return st.err()
	}
	return nil
}

func containsNode(list []*Node, n *Node) bool {
	for _, x := range list {
		if x == n {
			return true
		}
	}
	return false
}

// model returns the model of struct type t, parsing its tags once.
func (c *Cluster) model(t reflect.Type) (*model, error) {
	if m, ok := c.models.Load(t); ok {
		return m.(*model), nil
	}
	m, err := newModel(t)
	if err != nil {
		return nil, err
	}
	actual, _ := c.models.LoadOrStore(t, m)
	return actual.(*model), nil
}

// modelOf returns the model of v, which must be a non-nil pointer to a struct.
func (c *Cluster) modelOf(v any) (*model, reflect.Value, error) {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() || rv.Elem().Kind() != reflect.Struct {
		return nil, reflect.Value{}, fmt.Errorf("%w: want a non-nil pointer to a struct, got %T", ErrInvalidModel, v)
	}
	m, err := c.model(rv.Elem().Type())
	return m, rv.Elem(), err
}

// node returns the datasource called name, or nil.
func (c *Cluster) node(name string) *Node {
	for _, n := range c.nodes {
		if n.name == name {
			return n
		}
	}
	return nil
}
