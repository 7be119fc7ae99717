package pgwire

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/tandemdb/tandem"
	"github.com/tandemdb/tandem/internal/sqltext"
)

// The extended query protocol: Parse, Bind, Describe, Execute, Close,
// Sync, Flush. Statements run through the same driver as simple queries;
// what a statement's parameters and columns are (Describe) is asked of a
// datasource directly (Server.Describe), since every datasource holds the
// same structure.

// Describer returns what the database makes of query: its parameters'
// types and its columns (none for a statement that returns no rows).
type Describer func(ctx context.Context, query string, paramOIDs []uint32) (*pgconn.StatementDescription, error)

// DescribeOn returns a Describer that prepares (unnamed, so nothing
// stays) on the first of dsns that answers, over a connection of its own
// kept until ctx ends.
func DescribeOn(ctx context.Context, dsns ...string) Describer {
	var conn *pgconn.PgConn
	lock := make(chan struct{}, 1)
	return func(qctx context.Context, query string, oids []uint32) (*pgconn.StatementDescription, error) {
		lock <- struct{}{}
		defer func() { <-lock }()
		var last error
		for range 2 {
			if conn == nil || conn.IsClosed() {
				conn = nil
				for _, dsn := range dsns {
					c, err := pgconn.Connect(ctx, dsn)
					if err == nil {
						conn = c
						break
					}
					last = err
				}
				if conn == nil {
					return nil, fmt.Errorf("describe: no datasource answers: %w", last)
				}
			}
			d, err := conn.Prepare(qctx, "", query, oids)
			var pe *pgconn.PgError
			if err == nil || errors.As(err, &pe) || !conn.IsClosed() {
				return d, err // the statement's own answer
			}
			last = err // the connection broke: once more, on a new one
		}
		return nil, last
	}
}

// prepared is a statement a Parse named.
type prepared struct {
	query string
	kind  sqltext.Kind
	words string
	desc  *pgconn.StatementDescription
}

// portal is a statement Bind gave its arguments.
type portal struct {
	stmt    *prepared
	args    []any
	formats []int16 // per result column (one for all, or none: text)
	// An Execute with a row limit reads the whole result into rows, sends
	// up to the limit and suspends the portal; the next Executes send on
	// from sent (the session's connection stays free for other
	// statements meanwhile).
	rows    [][][]byte
	sent    int
	started bool
}

func (ss *session) extended(msg pgproto3.FrontendMessage) {
	ctx, done := ss.statement()
	defer done()
	if ss.skipping {
		if _, ok := msg.(*pgproto3.Sync); !ok {
			return // after an error, everything up to Sync is ignored
		}
	}
	switch m := msg.(type) {
	case *pgproto3.Parse:
		kind, words, err := sqltext.Classify(m.Query)
		if err != nil && m.Query != "" {
			ss.extFail(fmt.Errorf("%w: %v", tandem.ErrRefused, err))
			return
		}
		if in, out := sqltext.Copy(m.Query); in || out {
			ss.extFail(fmt.Errorf("%w: COPY through the extended protocol: send it as a simple query (as psql's \\copy and drivers' CopyFrom do)", tandem.ErrRefused))
			return
		}
		p := &prepared{query: m.Query, kind: kind, words: words}
		if m.Query != "" && kind != sqltext.Txn {
			if ss.s.Describe == nil {
				ss.extFail(fmt.Errorf("%w: the proxy has no datasource to describe statements on", tandem.ErrRefused))
				return
			}
			d, err := ss.s.Describe(ctx, m.Query, m.ParameterOIDs)
			if err != nil {
				ss.extFail(err)
				return
			}
			p.desc = d
		} else {
			p.desc = &pgconn.StatementDescription{ParamOIDs: m.ParameterOIDs}
		}
		ss.stmts[m.Name] = p
		ss.b.Send(&pgproto3.ParseComplete{})
	case *pgproto3.Bind:
		p := ss.stmts[m.PreparedStatement]
		if p == nil {
			ss.extFailCode("26000", fmt.Errorf("prepared statement %q does not exist", m.PreparedStatement))
			return
		}
		if len(m.Parameters) != len(p.desc.ParamOIDs) {
			ss.extFailCode("08P01", fmt.Errorf("bind message supplies %d parameters, but prepared statement %q requires %d", len(m.Parameters), m.PreparedStatement, len(p.desc.ParamOIDs)))
			return
		}
		args := make([]any, len(m.Parameters))
		for i, raw := range m.Parameters {
			if raw == nil {
				continue
			}
			format := formatOf(m.ParameterFormatCodes, i)
			if format == pgtype.TextFormatCode {
				args[i] = string(raw)
				continue
			}
			t, ok := ss.types.TypeForOID(p.desc.ParamOIDs[i])
			if !ok {
				ss.extFailCode("22P03", fmt.Errorf("parameter $%d: a binary value of type %d, which the proxy does not know: send it as text", i+1, p.desc.ParamOIDs[i]))
				return
			}
			v, err := t.Codec.DecodeValue(ss.types, t.OID, format, raw)
			if err != nil {
				ss.extFailCode("22P03", fmt.Errorf("parameter $%d: %v", i+1, err))
				return
			}
			args[i] = v
		}
		ss.portals[m.DestinationPortal] = &portal{stmt: p, args: args, formats: m.ResultFormatCodes}
		ss.b.Send(&pgproto3.BindComplete{})
	case *pgproto3.Describe:
		switch m.ObjectType {
		case 'S':
			p := ss.stmts[m.Name]
			if p == nil {
				ss.extFailCode("26000", fmt.Errorf("prepared statement %q does not exist", m.Name))
				return
			}
			ss.b.Send(&pgproto3.ParameterDescription{ParameterOIDs: p.desc.ParamOIDs})
			ss.describeRows(p, nil)
		case 'P':
			pt := ss.portals[m.Name]
			if pt == nil {
				ss.extFailCode("34000", fmt.Errorf("portal %q does not exist", m.Name))
				return
			}
			ss.describeRows(pt.stmt, pt.formats)
		default:
			ss.extFailCode("08P01", fmt.Errorf("Describe of %q: want S or P", m.ObjectType))
		}
	case *pgproto3.Execute:
		pt := ss.portals[m.Portal]
		if pt == nil {
			ss.extFailCode("34000", fmt.Errorf("portal %q does not exist", m.Portal))
			return
		}
		if m.MaxRows > 0 || pt.started {
			ss.executeSome(ctx, pt, int(m.MaxRows))
			return
		}
		ss.execute(ctx, pt)
	case *pgproto3.Close:
		if m.ObjectType == 'S' {
			delete(ss.stmts, m.Name)
		} else {
			delete(ss.portals, m.Name)
		}
		ss.b.Send(&pgproto3.CloseComplete{})
	case *pgproto3.Sync:
		ss.skipping = false
		delete(ss.portals, "") // the unnamed portal ends with the transaction's step
		ss.ready()
	case *pgproto3.Flush:
		ss.b.Flush()
	}
}

func formatOf(codes []int16, i int) int16 {
	switch len(codes) {
	case 0:
		return pgtype.TextFormatCode
	case 1:
		return codes[0]
	}
	if i < len(codes) {
		return codes[i]
	}
	return pgtype.TextFormatCode
}

// describeRows sends p's RowDescription (with formats), or NoData.
func (ss *session) describeRows(p *prepared, formats []int16) {
	if len(p.desc.Fields) == 0 {
		ss.b.Send(&pgproto3.NoData{})
		return
	}
	fields := make([]pgproto3.FieldDescription, len(p.desc.Fields))
	for i, f := range p.desc.Fields {
		fields[i] = pgproto3.FieldDescription{Name: []byte(f.Name), TableOID: f.TableOID, TableAttributeNumber: f.TableAttributeNumber,
			DataTypeOID: f.DataTypeOID, DataTypeSize: f.DataTypeSize, TypeModifier: f.TypeModifier, Format: formatOf(formats, i)}
	}
	ss.b.Send(&pgproto3.RowDescription{Fields: fields})
}

// execute runs a bound portal: its rows (formats as bound), then its tag.
func (ss *session) execute(ctx context.Context, pt *portal) {
	p := pt.stmt
	if p.query == "" {
		ss.b.Send(&pgproto3.EmptyQueryResponse{})
		return
	}
	if p.kind == sqltext.Txn {
		ss.txn(ctx, p.words, p.query)
		return
	}
	if ss.failed {
		ss.aborted()
		return
	}
	if len(p.desc.Fields) == 0 {
		res, err := ss.exec(ctx, p.query, pt.args...)
		if err != nil {
			ss.extFail(err)
			return
		}
		tag := firstWord(p.words)
		ss.complete(commandTag(p.words, tag, res))
		return
	}
	n, ok := ss.portalRows(ctx, pt, ss.sendRow)
	if !ok {
		return
	}
	ss.complete(rowsTag(firstWord(p.words), n))
}

// portalRows runs the portal's query and hands its rows, encoded as
// bound, to sink; on an error it answers it and returns false.
func (ss *session) portalRows(ctx context.Context, pt *portal, sink func([][]byte)) (int64, bool) {
	rows, err := ss.query(ctx, pt.stmt.query, pt.args...)
	if err != nil {
		ss.extFail(err)
		return 0, false
	}
	oids, formats := pt.columns()
	n, err := ss.dataRowsTo(rows, oids, formats, sink)
	if err != nil {
		ss.extFail(err)
		return n, false
	}
	return n, true
}

// columns returns the types of the portal's result columns, and the
// format each is sent in.
func (pt *portal) columns() (oids []uint32, formats []int16) {
	fields := pt.stmt.desc.Fields
	oids, formats = make([]uint32, len(fields)), make([]int16, len(fields))
	for i, f := range fields {
		oids[i], formats[i] = f.DataTypeOID, formatOf(pt.formats, i)
	}
	return oids, formats
}

// executeSome runs an Execute with a row limit (max; 0: every row left)
// or one on a portal a limit suspended: the first reads the whole result,
// each sends up to max rows of it, then PortalSuspended while rows are
// left, else its tag.
func (ss *session) executeSome(ctx context.Context, pt *portal, max int) {
	p := pt.stmt
	if !pt.started {
		if p.query == "" || p.kind == sqltext.Txn || len(p.desc.Fields) == 0 {
			ss.execute(ctx, pt) // no rows to limit
			return
		}
		if ss.failed {
			ss.aborted()
			return
		}
		if _, ok := ss.portalRows(ctx, pt, func(r [][]byte) { pt.rows = append(pt.rows, r) }); !ok {
			pt.rows = nil
			return
		}
		pt.started = true
	}
	end := len(pt.rows)
	if max > 0 && pt.sent+max < end {
		end = pt.sent + max
	}
	for _, r := range pt.rows[pt.sent:end] {
		ss.sendRow(r)
	}
	n := end - pt.sent
	pt.sent = end
	if pt.sent < len(pt.rows) {
		ss.b.Send(&pgproto3.PortalSuspended{})
		return
	}
	ss.complete(rowsTag(firstWord(p.words), int64(n)))
}

func firstWord(words string) string {
	for i := range len(words) {
		if words[i] == ' ' {
			return words[:i]
		}
	}
	return words
}

// rowsTag is the tag of a statement that returned n rows.
func rowsTag(tag string, n int64) string {
	switch tag {
	case "INSERT":
		return "INSERT 0 " + strconv.FormatInt(n, 10)
	case "UPDATE", "DELETE", "MERGE", "FETCH", "MOVE":
		return tag + " " + strconv.FormatInt(n, 10)
	}
	return "SELECT " + strconv.FormatInt(n, 10)
}

// extFail is fail (in the extended protocol, fail also has the messages
// up to Sync ignored).
func (ss *session) extFail(err error) { ss.fail(err) }

// extFailCode answers an error of the protocol's own, with its SQLSTATE.
func (ss *session) extFailCode(code string, err error) {
	ss.failWith(&pgproto3.ErrorResponse{Severity: "ERROR", Code: code, Message: err.Error()})
}
