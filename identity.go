package tandem

// Which datasources are one database: two names of one file, found before
// anything is opened, and two addresses of one server, found by the node
// identity each database carries and proved by a token written through one
// and read through the other. And which are not, though they reach one
// database now: every database remembers the identity of each
// datasource's database (memberKey), so a datasource whose address was
// taken over by another's database before this process started is known
// for what it is.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/tandemdb/tandem/engine"
	"github.com/tandemdb/tandem/internal/records"
)

// sameFiles recognises, before anything is opened, datasources that name
// one database file; each later one becomes an alias of the first.
func (c *Cluster) sameFiles() {
	for j, b := range c.nodes {
		for _, a := range c.nodes[:j] {
			if a.sameAs == nil && engine.SameFile(a.eng, a.dsn, b.eng, b.dsn) {
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
		if b.conn() == nil || b.id == "" || b.sameAs != nil {
			continue
		}
		for _, a := range c.nodes[:j] {
			if a.conn() == nil || a.id != b.id || a.sameAs != nil {
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
	token := records.NewID(8)
	key := "probe_" + token
	if err := a.records.SetMeta(ctx, a.conn().Write, key, token); err != nil {
		return false, err
	}
	got, err := b.records.Meta(ctx, b.conn().Read, key)
	errDel := a.records.DeleteMeta(ctx, a.conn().Write, key)
	if err == nil {
		err = errDel
	}
	return got == token, err
}

// memberKey is the Meta key under which every database remembers the
// identity of n's database: a digest of n's name and DSN, so that a config
// that points the datasource elsewhere starts anew, the key fits the
// column whatever the name's length, and the DSN (which may hold a
// password) is not stored.
func memberKey(n *Node) string {
	sum := sha256.Sum256([]byte(n.name + "\x00" + n.dsn))
	return "member:" + hex.EncodeToString(sum[:8])
}

// findTakeovers undoes the aliases of datasources that the databases
// remember as databases of their own: such a datasource's address reaches
// another database now (an IP or a link taken over). It is down, so writes
// reach the database once and record the keys it misses, and it is opened
// again only where its own identity answers, then caught up.
func (c *Cluster) findTakeovers(ctx context.Context) {
	for _, b := range c.nodes {
		a := b.sameAs
		if a == nil || a.conn() == nil {
			continue
		}
		own, err := a.records.Meta(ctx, a.conn().Read, memberKey(b))
		if err != nil || own == "" || own == a.ID() {
			continue // never distinct, as far as the databases remember
		}
		shared := b.conn() == a.conn()
		b.sameAs = nil
		b.mu.Lock()
		b.id, b.own = "", own
		b.mu.Unlock()
		if shared {
			b.connp.Store(nil)
		} else {
			b.takenOver(own)
		}
		err = c.otherDatabase(b, a.ID(), own)
		b.markDown(err)
		c.log.Warn("datasource reaches another datasource's database: left out until its own answers", "node", b.name, "reaches", a.name, "err", err)
	}
}

// rememberMembers records, in every database, the identity of every
// datasource's database, once all are open and distinct: what
// findTakeovers reads. It is best effort (a database busy for longer than
// the timeout keeps what it remembered).
func (c *Cluster) rememberMembers(ctx context.Context) {
	seen := map[string]bool{}
	for _, n := range c.nodes {
		id := n.ID()
		if n.sameAs != nil || n.conn() == nil || n.state().down != nil || id == "" || seen[id] {
			return
		}
		seen[id] = true
	}
	for _, n := range c.nodes {
		for _, m := range c.nodes {
			mctx, cancel := context.WithTimeout(ctx, c.timeout)
			have, err := n.records.Meta(mctx, n.conn().Read, memberKey(m))
			if err == nil && have != m.ID() {
				err = n.records.SetMeta(mctx, n.conn().Write, memberKey(m), m.ID())
			}
			cancel()
			if err != nil {
				c.log.Debug("remembering the cluster's identities", "node", n.name, "err", err)
				return
			}
		}
	}
}
