package stdlib

import (
	"context"
	"io"
)

// Copier is what a connection of this driver offers through
// database/sql's Conn.Raw: COPY ... FROM STDIN and COPY ... TO STDOUT on
// the cluster (tandem.Cluster.CopyFrom and CopyTo), inside the
// connection's transaction if it is in one.
//
//	err := conn.Raw(func(dc any) error {
//		n, err = dc.(stdlib.Copier).CopyFrom(ctx, "COPY t FROM STDIN", r)
//		return err
//	})
type Copier interface {
	CopyFrom(ctx context.Context, query string, r io.Reader) (int64, error)
	CopyTo(ctx context.Context, query string, w io.Writer) (int64, error)
}

var _ Copier = (*conn)(nil)

// CopyFrom implements Copier.
func (cn *conn) CopyFrom(ctx context.Context, query string, r io.Reader) (int64, error) {
	var n int64
	var err error
	if cn.tx != nil {
		n, err = cn.tx.CopyFrom(ctx, query, r)
	} else {
		n, err = cn.c.CopyFrom(ctx, query, r)
	}
	return n, notBadConn(err)
}

// CopyTo implements Copier.
func (cn *conn) CopyTo(ctx context.Context, query string, w io.Writer) (int64, error) {
	var n int64
	var err error
	if cn.tx != nil {
		n, err = cn.tx.CopyTo(ctx, query, w)
	} else {
		n, err = cn.c.CopyTo(ctx, query, w)
	}
	return n, notBadConn(err)
}
