package pgwire

// COPY ... FROM STDIN and COPY ... TO STDOUT in the simple query protocol
// (psql's \copy, drivers' CopyFrom): the data streams between the client
// and the primary through tandem's driver (stdlib.Copier), and the rows a
// COPY in wrote reach the secondaries as any statement's do.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/tandemdb/tandem"
	"github.com/tandemdb/tandem/stdlib"
)

// binaryCopy matches a COPY's binary format option (BINARY, FORMAT binary).
var binaryCopy = regexp.MustCompile(`(?i)\bbinary\b`)

// copyFormat is the overall format of a COPY statement: 1 binary, 0 text
// (and csv).
func copyFormat(query string) byte {
	if binaryCopy.MatchString(query) {
		return 1
	}
	return 0
}

// copier runs fn with the session's connection as tandem's driver has it.
func (ss *session) copier(fn func(stdlib.Copier) error) error {
	return ss.db.Raw(func(dc any) error {
		c, ok := dc.(stdlib.Copier)
		if !ok {
			return fmt.Errorf("%w: COPY: the proxy's database is not tandem's driver (%T)", tandem.ErrRefused, dc)
		}
		return fn(c)
	})
}

// copyIn runs a COPY ... FROM STDIN: CopyInResponse, then the client's
// CopyData up to CopyDone (or CopyFail) feeds the primary's COPY.
func (ss *session) copyIn(ctx context.Context, query string) {
	ss.noReplay = true // its data is read once
	ss.b.Send(&pgproto3.CopyInResponse{OverallFormat: copyFormat(query)})
	if err := ss.b.Flush(); err != nil {
		return // the connection is gone: the next Receive ends the session
	}
	r := &copyReader{ss: ss}
	var n int64
	err := ss.copier(func(c stdlib.Copier) (err error) {
		n, err = c.CopyFrom(ctx, query, r)
		return err
	})
	if err != nil {
		if r.err != nil && !r.failed {
			err = r.err // the client's message, not the database's echo of it
		}
		var pe *protocolError
		if errors.As(err, &pe) {
			ss.failWith(&pgproto3.ErrorResponse{Severity: "ERROR", Code: "08P01", Message: pe.Error()})
			return
		}
		ss.fail(err)
		return
	}
	ss.complete("COPY " + strconv.FormatInt(n, 10))
}

// protocolError is a message a client may not send where it sent it.
type protocolError struct{ msg string }

func (e *protocolError) Error() string { return e.msg }

// copyReader reads a COPY's data from the client's messages.
type copyReader struct {
	ss     *session
	buf    []byte
	done   bool  // CopyDone came
	err    error // the client's CopyFail, a protocol error, or its connection's
	failed bool  // err is the client's CopyFail
}

func (r *copyReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.done {
			return 0, io.EOF
		}
		if r.err != nil {
			return 0, r.err
		}
		r.ss.conn.SetReadDeadline(time.Now().Add(r.ss.s.idle()))
		msg, err := r.ss.b.Receive()
		r.ss.conn.SetReadDeadline(time.Time{})
		if err != nil {
			r.err = fmt.Errorf("the client's connection, during COPY: %w", err)
			continue
		}
		switch m := msg.(type) {
		case *pgproto3.CopyData:
			r.buf = m.Data // valid until the next Receive, which waits for it to be read
		case *pgproto3.CopyDone:
			r.done = true
		case *pgproto3.CopyFail:
			r.err, r.failed = errors.New(m.Message), true
		case *pgproto3.Flush, *pgproto3.Sync:
			// Ignored during COPY, as PostgreSQL does.
		default:
			r.err = &protocolError{fmt.Sprintf("unexpected message type %T during COPY from stdin", msg)}
		}
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// copyOut runs a COPY ... TO STDOUT: CopyOutResponse, CopyData for each
// row, CopyDone. An error before the first row is an error alone.
func (ss *session) copyOut(ctx context.Context, query string) {
	ss.noReplay = true // what it sent is not kept
	w := &copyWriter{ss: ss, format: copyFormat(query)}
	var n int64
	err := ss.copier(func(c stdlib.Copier) (err error) {
		n, err = c.CopyTo(ctx, query, w)
		return err
	})
	if err != nil {
		ss.fail(err)
		return
	}
	w.start()
	ss.b.Send(&pgproto3.CopyDone{})
	ss.complete("COPY " + strconv.FormatInt(n, 10))
}

// copyWriter sends what it is written as CopyData messages, flushing
// every 64 kB.
type copyWriter struct {
	ss      *session
	format  byte
	started bool
	pending int
}

func (w *copyWriter) start() {
	if !w.started {
		w.started = true
		w.ss.b.Send(&pgproto3.CopyOutResponse{OverallFormat: w.format})
	}
}

func (w *copyWriter) Write(p []byte) (int, error) {
	w.start()
	w.ss.b.Send(&pgproto3.CopyData{Data: p})
	if w.pending += len(p) + 5; w.pending >= 64<<10 {
		w.pending = 0
		if err := w.ss.b.Flush(); err != nil {
			return 0, fmt.Errorf("the client's connection, during COPY: %w", err)
		}
	}
	return len(p), nil
}
