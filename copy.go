package tandem

// COPY ... FROM STDIN and COPY ... TO STDOUT, on engines with a bulk copy
// protocol (engine.Copier: PostgreSQL). A COPY in is a statement like an
// INSERT: it runs on the primary with capture on, and the rows it wrote
// reach the secondaries as whole rows, as Exec's do.

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/tandemdb/tandem/internal/sqltext"
)

// copyKind checks that query is a COPY tandem runs (in: FROM STDIN;
// otherwise TO STDOUT) on n.
func copyKind(query string, n *Node, in bool) error {
	if _, _, err := classify(query); err != nil {
		return err
	}
	cin, cout := sqltext.Copy(query)
	switch {
	case !cin && !cout:
		return fmt.Errorf("%w: only COPY ... FROM STDIN and COPY ... TO STDOUT run through tandem (a server's file or program is that server's alone)", ErrRefused)
	case in && !cin:
		return fmt.Errorf("%w: CopyFrom runs COPY ... FROM STDIN, not a COPY out", ErrRefused)
	case !in && !cout:
		return fmt.Errorf("%w: CopyTo runs COPY ... TO STDOUT, not a COPY in", ErrRefused)
	case n.caps.Copier == nil:
		return fmt.Errorf("%w: COPY on %s: its engine (%s) has no COPY", ErrRefused, n.name, n.eng.Name())
	}
	return nil
}

// CopyFrom runs query, a COPY ... FROM STDIN, on the primary inside tx,
// reading its data from r (in the format query names); the rows it wrote
// are sent to every secondary as whole rows before CopyFrom returns, as
// Exec's are. It returns the number of rows copied.
func (tx *Tx) CopyFrom(ctx context.Context, query string, r io.Reader) (int64, error) {
	if err := copyKind(query, tx.primary, true); err != nil {
		return 0, err
	}
	if err := tx.ready(ctx, "COPY", "copy"); err != nil {
		return 0, err
	}
	var rows int64
	err := tx.tx.raw(ctx, func(ctx context.Context, dc any) (err error) {
		rows, err = tx.primary.caps.Copier.CopyFrom(ctx, dc, query, r)
		return err
	})
	if err != nil {
		tx.statementFailed(ctx, err)
		return 0, fmt.Errorf("copy on %s: %w", tx.primary.name, tx.primary.violation(err))
	}
	if err := tx.drain(ctx); err != nil {
		return 0, err
	}
	return rows, nil
}

// CopyTo runs query, a COPY ... TO STDOUT, on the primary inside tx (it
// sees tx's writes), writing its data to w. It returns the number of rows
// copied.
func (tx *Tx) CopyTo(ctx context.Context, query string, w io.Writer) (int64, error) {
	if err := copyKind(query, tx.primary, false); err != nil {
		return 0, err
	}
	if err := tx.usable("copy"); err != nil {
		return 0, err
	}
	if err := tx.drainPending(ctx); err != nil {
		return 0, err
	}
	var rows int64
	err := tx.tx.raw(ctx, func(ctx context.Context, dc any) (err error) {
		rows, err = tx.primary.caps.Copier.CopyTo(ctx, dc, query, w)
		return err
	})
	if err != nil {
		tx.statementFailed(ctx, err)
		return 0, fmt.Errorf("copy on %s: %w", tx.primary.name, err)
	}
	return rows, nil
}

// CopyFrom runs query, a COPY ... FROM STDIN, as one write of its own
// (see Tx.CopyFrom). Unlike Exec it never runs twice, since r is read
// once: when nothing was committed (the error wraps ErrNotCommitted), run
// it again with the data from the start.
func (c *Cluster) CopyFrom(ctx context.Context, query string, r io.Reader) (int64, error) {
	if v := c.view.Load(); v.primary != nil {
		if err := copyKind(query, v.primary, true); err != nil {
			return 0, err
		}
	}
	if err := c.Capture(ctx); err != nil {
		return 0, err
	}
	var rows int64
	runs := 0
	err := c.tx(ctx, func(tx *Tx) error {
		if runs++; runs > 1 {
			return fmt.Errorf("%w: the COPY's data was read by a run that committed nothing: send it again", ErrNotCommitted)
		}
		tx.whole = true
		n, err := tx.CopyFrom(ctx, query, r)
		rows = n
		return err
	}, false)
	if err != nil {
		return 0, err
	}
	return rows, nil
}

// CopyTo runs query, a COPY ... TO STDOUT, on the primary (the datasource
// reads come from), writing its data to w.
func (c *Cluster) CopyTo(ctx context.Context, query string, w io.Writer) (int64, error) {
	_, n, _, err := c.reader()
	if err != nil {
		return 0, err
	}
	if err := copyKind(query, n, false); err != nil {
		return 0, err
	}
	conn, err := n.conn().Read.Conn(ctx)
	if err != nil {
		return 0, fmt.Errorf("copy on %s: %w", n.name, err)
	}
	defer conn.Close()
	var rows int64
	err = conn.Raw(func(dc any) (err error) {
		rows, err = n.caps.Copier.CopyTo(ctx, dc, query, w)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("copy on %s: %w", n.name, err)
	}
	return rows, nil
}

// raw runs fn on t's connection as its driver has it, bounded by t's
// context (a transaction given up interrupts it) but not by t's guard: a
// COPY lasts as long as its data.
func (t *dbTx) raw(ctx context.Context, fn func(ctx context.Context, dc any) error) error {
	if t.detach {
		ctx = context.WithoutCancel(ctx)
	}
	if t.conn == nil {
		return errors.New("the transaction has no connection of its own")
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(t.ctx, cancel)
	defer stop()
	err := t.conn.Raw(func(dc any) error { return fn(sctx, dc) })
	return t.explain(ctx, err)
}
