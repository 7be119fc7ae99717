package engine

import (
	"context"
	"io"
)

// Copier is implemented by engines with a bulk copy protocol
// (PostgreSQL's COPY ... FROM STDIN and COPY ... TO STDOUT). Each method
// runs query on dc, a connection of the engine's database/sql driver as
// database/sql's Conn.Raw hands it, and returns the rows copied.
type Copier interface {
	// CopyFrom runs a COPY ... FROM STDIN, reading its data from r until
	// io.EOF; another error from r fails the COPY with its message.
	CopyFrom(ctx context.Context, dc any, query string, r io.Reader) (int64, error)
	// CopyTo runs a COPY ... TO STDOUT, writing its data to w, one Write
	// for each of the engine's messages (a row, in text formats).
	CopyTo(ctx context.Context, dc any, query string, w io.Writer) (int64, error)
}
