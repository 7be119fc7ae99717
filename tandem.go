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
// Reads (Get, Find, Count) come from the primary.
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
package tandem

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/tandemdb/tandem/engine"
	"github.com/tandemdb/tandem/engine/sqlite"
)

// drivers maps a config's driver name to its engine.
var drivers = map[string]engine.Engine{
	"sqlite": sqlite.Engine{},
}

func driverNames() []string {
	names := make([]string, 0, len(drivers))
	for n := range drivers {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Cluster is a set of datasources kept identical. It is safe for concurrent
// use by many goroutines; several processes may open the same datasources
// at once (they must agree on the primary).
type Cluster struct {
	nodes   []*Node // in configured order
	primary *Node   // the configured primary (or the first datasource)
	log     *slog.Logger
	gen     int64 // cluster generation, recorded with each intent

	models sync.Map // reflect.Type -> *model
	group  grouper  // queue of Saves and Deletes to commit together

	mu        sync.RWMutex
	structure Structure // the last structure comparison

	clear  *clearer
	closed atomic.Bool

	// serialCommit commits the primary before the secondaries (measured
	// against concurrent commits by BenchmarkSave).
	serialCommit bool

	// commitHook, when set (tests only), runs between the primary's commit
	// and the secondaries' commits, which then run one after the other.
	commitHook func(txid string)
}

// Option configures Open.
type Option func(*Cluster)

// WithLogger sends tandem's logs to l (default: slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(c *Cluster) { c.log = l } }

// Open connects to every datasource of cfg, gives each database its node
// identity on first use, recognises datasources that are one database, and
// compares the databases' structures.
//
// Open fails only on an invalid config. A datasource that cannot be reached
// or that carries another database's identity is reported by Status, and a
// structure mismatch is reported by Structure; while either lasts, writes
// fail with ErrNodeDown, ErrIdentityClash or ErrSchemaMismatch.
func Open(ctx context.Context, cfg *Config, opts ...Option) (*Cluster, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Cluster{log: slog.Default(), gen: 1}
	for _, o := range opts {
		o(c)
	}
	for _, ds := range cfg.Datasources {
		c.nodes = append(c.nodes, &Node{cluster: c, name: ds.Name, eng: ds.eng, dsn: ds.dsn})
	}
	c.primary = c.nodes[cfg.primaryIndex()]
	c.sameFiles()
	var wg sync.WaitGroup
	for _, n := range c.nodes {
		if n.sameAs != nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := n.open(ctx); err != nil {
				n.setProblem(fmt.Errorf("%w: %s: %v", ErrNodeDown, n.name, err))
				c.log.Warn("datasource unreachable", "node", n.name, "err", err)
			}
		}()
	}
	wg.Wait()
	for _, n := range c.nodes {
		if a := n.sameAs; a != nil {
			n.conn, n.id = a.conn, a.id
		}
	}
	c.findAliases(ctx)
	if gen, err := c.primary.generation(ctx); err == nil {
		c.gen = gen
	}
	if err := c.checkStructure(ctx); err != nil {
		c.log.Warn("structure check failed", "err", err)
	}
	c.clear = newClearer(c)
	return c, nil
}

// Close stops background work, clears what it can of the intent records
// and closes every connection.
func (c *Cluster) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	c.clear.stop()
	var first error
	for _, n := range c.nodes {
		if err := n.close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Nodes returns the datasources in configured order.
func (c *Cluster) Nodes() []*Node { return append([]*Node(nil), c.nodes...) }

// Primary returns the datasource whose locks order writes.
func (c *Cluster) Primary() *Node { return c.primary }

// writeSet returns the distinct databases a write goes to, primary first,
// or the reason writes are refused.
func (c *Cluster) writeSet() ([]*Node, error) {
	if c.closed.Load() {
		return nil, ErrClosed
	}
	c.mu.RLock()
	st := c.structure
	c.mu.RUnlock()
	if !st.Match {
		return nil, st.err()
	}
	p := c.primary.database()
	set := []*Node{p}
	for _, n := range c.nodes {
		if err := n.problem(); err != nil {
			return nil, err
		}
		if d := n.database(); d != p && !containsNode(set, d) {
			set = append(set, d)
		}
	}
	return set, nil
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
