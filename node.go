package tandem

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/tandemdb/tandem/engine"
)

// Node is one configured datasource.
type Node struct {
	cluster *Cluster
	name    string
	eng     engine.Engine
	dsn     string // never logged: may hold a password; use eng.Redact
	conn    *engine.Conn
	id      string // node identity stored in the database

	// sameAs is the earlier datasource that reaches the same database;
	// writes go to that one only.
	sameAs *Node

	texts sync.Map // model type -> *statements in this node's dialect

	mu   sync.Mutex
	prob error // why the node cannot take writes; nil when it can
}

// Name is the datasource's configured name.
func (n *Node) Name() string { return n.name }

// Driver is the datasource's engine name.
func (n *Node) Driver() string { return n.eng.Name() }

// ID is the node identity stored in the database, "" if unknown.
func (n *Node) ID() string { return n.id }

// SameAs returns the earlier datasource that is the same database as n, or nil.
func (n *Node) SameAs() *Node { return n.sameAs }

// singleWriter returns n's engine as a SingleWriter, or nil.
func (n *Node) singleWriter() engine.SingleWriter {
	sw, _ := n.eng.(engine.SingleWriter)
	return sw
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

// tandem's bookkeeping tables, present in every database it writes.
var (
	metaTable = engine.Table{
		Name: "_tandem_meta",
		Columns: []engine.Column{
			{Name: "k", Type: engine.Text, Size: 64, NotNull: true},
			{Name: "v", Type: engine.Text, NotNull: true},
		},
		PK: []string{"k"},
	}
	// pendingTable is the intent record: each row is one key (table and
	// primary key) that transaction txid wrote. A row that outlives its
	// transaction's commit on every database names a key that some
	// database may lack.
	pendingTable = engine.Table{
		Name: "_tandem_pending",
		Columns: []engine.Column{
			{Name: "txid", Type: engine.Text, Size: 32, NotNull: true},
			{Name: "seq", Type: engine.Integer, NotNull: true},
			{Name: "tbl", Type: engine.Text, Size: 128, NotNull: true},
			{Name: "pk", Type: engine.Text, NotNull: true},
			{Name: "gen", Type: engine.Integer, NotNull: true},
			{Name: "at", Type: engine.Integer, NotNull: true}, // unix ms
		},
		PK: []string{"txid", "seq"},
	}
)

// open connects and makes sure the database has tandem's tables and an identity.
func (n *Node) open(ctx context.Context) error {
	conn, err := n.eng.Open(ctx, n.dsn)
	if err != nil {
		return err
	}
	n.conn = conn
	id, err := n.meta(ctx, n.conn.Read, "node_id")
	if err == nil && id != "" {
		n.id = id
		return nil
	}
	return n.initialise(ctx)
}

func (n *Node) initialise(ctx context.Context) error {
	tx, err := n.conn.Write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("initialise: %w", err)
	}
	defer tx.Rollback()
	for _, t := range []*engine.Table{&metaTable, &pendingTable} {
		for _, stmt := range n.eng.CreateTable(t) {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("initialise: %w", err)
			}
		}
	}
	id, err := n.meta(ctx, tx, "node_id")
	if err != nil {
		return fmt.Errorf("initialise: %w", err)
	}
	if id == "" {
		id = newID(8)
		now := time.Now().UTC().Format(time.RFC3339)
		for k, v := range map[string]string{"node_id": id, "generation": "1", "created_at": now} {
			if err := n.setMeta(ctx, tx, k, v); err != nil {
				return fmt.Errorf("initialise: %w", err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("initialise: %w", err)
	}
	n.id = id
	return nil
}

type queryRower interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// meta reads a key of _tandem_meta; "" when absent.
func (n *Node) meta(ctx context.Context, q queryRower, key string) (string, error) {
	var v string
	err := q.QueryRowContext(ctx, fmt.Sprintf("SELECT v FROM %s WHERE k = %s",
		n.eng.Quote(metaTable.Name), n.eng.Placeholder(1)), key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return v, err
}

func (n *Node) setMeta(ctx context.Context, q execer, key, value string) error {
	_, err := q.ExecContext(ctx, n.eng.Upsert(&metaTable), key, value)
	return err
}

func (n *Node) generation(ctx context.Context) (int64, error) {
	if n.conn == nil {
		return 0, ErrNodeDown
	}
	v, err := n.meta(ctx, n.conn.Read, "generation")
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(v, 10, 64)
}

func (n *Node) close() error {
	if n.conn == nil || n.sameAs != nil {
		return nil // an alias shares its database's connection
	}
	return n.conn.Close()
}

// sameFiles recognises, before anything is opened, datasources that name
// one database file; each later one becomes an alias of the first.
func (c *Cluster) sameFiles() {
	for j, b := range c.nodes {
		fe, ok := b.eng.(engine.FileEngine)
		if !ok {
			continue
		}
		for _, a := range c.nodes[:j] {
			if a.sameAs == nil && a.eng.Name() == b.eng.Name() && fe.SameFile(a.dsn, b.dsn) {
				b.sameAs = a
				c.log.Info("datasources are one database file; writing it once", "node", b.name, "same_as", a.name)
				break
			}
		}
	}
}

// findAliases recognises datasources that reach one database: they carry
// the same identity. Because a copied database file also carries its
// original's identity, the match is proved by writing a random token
// through one datasource and reading it back through the other.
func (c *Cluster) findAliases(ctx context.Context) {
	for j, b := range c.nodes {
		if b.conn == nil || b.id == "" || b.sameAs != nil {
			continue
		}
		for _, a := range c.nodes[:j] {
			if a.conn == nil || a.id != b.id || a.sameAs != nil {
				continue
			}
			same, err := sameDatabase(ctx, a, b)
			switch {
			case err != nil:
				b.setProblem(fmt.Errorf("%w: %s: identity probe: %v", ErrNodeDown, b.name, err))
			case same:
				b.sameAs = a
				c.log.Info("datasources are one database; writing it once", "node", b.name, "same_as", a.name)
			default:
				b.setProblem(fmt.Errorf("%w: %s and %s both carry node id %s but are different databases (was one copied from the other?)",
					ErrIdentityClash, a.name, b.name, b.id))
			}
			break
		}
	}
}

// sameDatabase writes a token under a key of its own through a and reads it
// back through b. (A shared key would race with other processes probing.)
func sameDatabase(ctx context.Context, a, b *Node) (bool, error) {
	token := newID(8)
	key := "probe_" + token
	if err := a.setMeta(ctx, a.conn.Write, key, token); err != nil {
		return false, err
	}
	got, err := b.meta(ctx, b.conn.Read, key)
	_, errDel := a.conn.Write.ExecContext(ctx, fmt.Sprintf("DELETE FROM %s WHERE k = %s",
		a.eng.Quote(metaTable.Name), a.eng.Placeholder(1)), key)
	if err == nil {
		err = errDel
	}
	return got == token, err
}

// newID returns n random bytes in hex.
func newID(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
