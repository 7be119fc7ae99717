package tandem

// Which datasources are one database: two names of one file, found before
// anything is opened, and two addresses of one server, found by the node
// identity each database carries and proved by a token written through one
// and read through the other.

import (
	"context"
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
