package postgres

import (
	"context"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

// pgConn is the protocol connection under a database/sql connection of
// pgx's driver.
func pgConn(dc any) (*pgconn.PgConn, error) {
	c, ok := dc.(*stdlib.Conn)
	if !ok {
		return nil, fmt.Errorf("postgres: COPY needs a connection of pgx's driver, not %T", dc)
	}
	return c.Conn().PgConn(), nil
}

// CopyFrom implements engine.Copier.
func (Engine) CopyFrom(ctx context.Context, dc any, query string, r io.Reader) (int64, error) {
	pc, err := pgConn(dc)
	if err != nil {
		return 0, err
	}
	tag, err := pc.CopyFrom(ctx, r, query)
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}

// CopyTo implements engine.Copier.
func (Engine) CopyTo(ctx context.Context, dc any, query string, w io.Writer) (int64, error) {
	pc, err := pgConn(dc)
	if err != nil {
		return 0, err
	}
	tag, err := pc.CopyTo(ctx, w, query)
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}
