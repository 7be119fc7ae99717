package pgwire

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"database/sql"
	"database/sql/driver"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/tandemdb/tandem"
	"github.com/tandemdb/tandem/internal/sqltext"
	"github.com/tandemdb/tandem/stdlib"
)

// Server serves PostgreSQL's protocol (version 3) in front of a tandem
// cluster, through DB: a *sql.DB of tandem's database/sql driver
// (stdlib.OpenDB), so that the protocol front stays apart from the capture
// path (a MySQL front can share it): the simple query protocol (what psql
// sends) and the extended one (Parse, Bind, Describe, Execute, Close,
// Sync: drivers' prepared statements), with transactions.
type Server struct {
	DB    *sql.DB
	Users Users // SCRAM-SHA-256 verifiers; every client authenticates
	// Describe tells the extended protocol's Parse what a statement's
	// parameters and columns are (DescribeOn); nil: Parse is refused.
	Describe Describer
	// Status answers SHOW tandem_nodes (Cluster.LastStatus: it never
	// waits on a datasource); nil: SHOW tandem_nodes is refused.
	Status func() (*tandem.Status, error)
	Log    *slog.Logger
	// TLS, when set, is offered to clients that ask for it (sslmode=
	// prefer, require, verify-full); nil: TLS is declined. RequireTLS
	// refuses clients that do not ask for it, but on loopback.
	TLS        *tls.Config
	RequireTLS bool
	// IdleTimeout closes a connection that sends nothing for that long
	// (0: 10 minutes).
	IdleTimeout time.Duration
	// MaxConns bounds the connections served at once (0: 100); one over
	// is refused with SQLSTATE 53300.
	MaxConns int
	// RetryFor bounds how long a statement or transaction that tandem
	// committed nowhere keeps running again before the client gets 40001
	// (0: 10 s; replay.go).
	RetryFor time.Duration

	mu    sync.Mutex
	conns int
	// running: each session's key (BackendKeyData) to the cancel of the
	// statement it runs now, for cancel requests.
	running map[[2]uint32]*session
}

// maxMessage bounds a client message: a larger one closes the connection.
const maxMessage = 16 << 20

// Serve accepts connections on l until it is closed.
func (s *Server) Serve(l net.Listener) error {
	for {
		conn, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		go s.serve(conn)
	}
}

// retryFor is RetryFor or its default.
func (s *Server) retryFor() time.Duration {
	if s.RetryFor == 0 {
		return 10 * time.Second
	}
	return s.RetryFor
}

// idle is how long a connection may send nothing.
func (s *Server) idle() time.Duration {
	if s.IdleTimeout == 0 {
		return 10 * time.Minute
	}
	return s.IdleTimeout
}

func (s *Server) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.New(slog.DiscardHandler)
}

// session is one client connection.
type session struct {
	s      *Server
	conn   net.Conn
	b      *pgproto3.Backend
	db     *sql.Conn // the session's handle on the cluster (tandem's driver)
	tx     *sql.Tx
	failed bool // the transaction met an error: only ROLLBACK (or COMMIT) ends it
	// The transaction's statements, to run it again (replay.go); the
	// query whose rows are being sent.
	txlog      []logged
	txlogBytes int
	noReplay   bool
	pending    *logged
	savepoints []savepoint
	types      *pgtype.Map
	// The extended protocol's named statements and portals, whether a
	// message of it is being handled, and whether an error has the
	// messages up to the next Sync ignored.
	stmts    map[string]*prepared
	portals  map[string]*portal
	ext      bool
	skipping bool

	key    [2]uint32          // process id and secret key the client cancels with
	mu     sync.Mutex         // guards cancel
	cancel context.CancelFunc // ends the statement running now; nil between statements
}

// statement returns the context of one statement, which a cancel request
// ends; done releases it.
func (ss *session) statement() (ctx context.Context, done func()) {
	ctx, cancel := context.WithCancel(context.Background())
	ss.mu.Lock()
	ss.cancel = cancel
	ss.mu.Unlock()
	return ctx, func() {
		ss.mu.Lock()
		ss.cancel = nil
		ss.mu.Unlock()
		cancel()
	}
}

// cancelRequest ends the statement of the session key names, if any runs.
func (s *Server) cancelRequest(pid, secret uint32) {
	s.mu.Lock()
	ss := s.running[[2]uint32{pid, secret}]
	s.mu.Unlock()
	if ss == nil {
		return
	}
	ss.mu.Lock()
	if ss.cancel != nil {
		ss.cancel()
	}
	ss.mu.Unlock()
}

func (s *Server) serve(conn net.Conn) {
	defer conn.Close()
	max := s.MaxConns
	if max == 0 {
		max = 100
	}
	s.mu.Lock()
	s.conns++
	over := s.conns > max
	s.mu.Unlock()
	defer func() { s.mu.Lock(); s.conns--; s.mu.Unlock() }()
	idle := s.idle()
	b := pgproto3.NewBackend(conn, conn)
	b.SetMaxBodyLen(maxMessage)
	conn.SetDeadline(time.Now().Add(30 * time.Second)) // the startup and authentication
	conn, b, user, cancel, err := s.startup(conn, b)
	if cancel != nil {
		s.cancelRequest(cancel.ProcessID, cancel.SecretKey)
		return
	}
	if err != nil {
		return
	}
	if over {
		b.Send(&pgproto3.ErrorResponse{Severity: "FATAL", Code: "53300", Message: fmt.Sprintf("sorry, too many clients already (the proxy serves at most %d)", max)})
		b.Flush()
		return
	}
	_, secure := conn.(*tls.Conn)
	loopback := isLoopback(conn.RemoteAddr())
	if s.RequireTLS && !secure && !loopback {
		b.Send(&pgproto3.ErrorResponse{Severity: "FATAL", Code: "28000", Message: "the proxy requires TLS (sslmode=require)"})
		b.Flush()
		return
	}
	if v, ok := s.Users[user]; ok && v.Trust {
		// trust: configured for this user, and only from this machine.
		if !loopback {
			s.log().Info("proxy: trust refused off loopback", "user", user, "remote", conn.RemoteAddr().String())
			b.Send(&pgproto3.ErrorResponse{Severity: "FATAL", Code: "28000", Message: fmt.Sprintf("user %q is trusted on loopback connections only", user)})
			b.Flush()
			return
		}
		b.Send(&pgproto3.AuthenticationOk{})
	} else if err := Authenticate(b, s.Users, user); err != nil {
		s.log().Info("proxy: authentication failed", "user", user, "remote", conn.RemoteAddr().String())
		return
	}
	db, err := s.DB.Conn(context.Background())
	if err != nil {
		b.Send(&pgproto3.ErrorResponse{Severity: "FATAL", Code: "08006", Message: "the proxy cannot reach its cluster: " + err.Error()})
		b.Flush()
		return
	}
	ss := &session{s: s, conn: conn, b: b, db: db, types: pgtype.NewMap(), stmts: map[string]*prepared{}, portals: map[string]*portal{}}
	defer ss.end()
	for _, p := range [][2]string{
		{"server_version", "15.0 (tandem proxy)"}, {"server_encoding", "UTF8"}, {"client_encoding", "UTF8"},
		{"DateStyle", "ISO, MDY"}, {"TimeZone", "UTC"}, {"integer_datetimes", "on"},
		{"standard_conforming_strings", "on"}, {"application_name", ""},
	} {
		b.Send(&pgproto3.ParameterStatus{Name: p[0], Value: p[1]})
	}
	var kb [8]byte
	if _, err := rand.Read(kb[:]); err != nil {
		return
	}
	ss.key = [2]uint32{binary.BigEndian.Uint32(kb[:4]) & 0x7fffffff, binary.BigEndian.Uint32(kb[4:])}
	s.mu.Lock()
	if s.running == nil {
		s.running = map[[2]uint32]*session{}
	}
	s.running[ss.key] = ss
	s.mu.Unlock()
	defer func() { s.mu.Lock(); delete(s.running, ss.key); s.mu.Unlock() }()
	b.Send(&pgproto3.BackendKeyData{ProcessID: ss.key[0], SecretKey: kb[4:]})
	ss.ready()
	for {
		conn.SetDeadline(time.Now().Add(idle))
		if err := b.Flush(); err != nil {
			return
		}
		msg, err := b.Receive()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				b.Send(&pgproto3.ErrorResponse{Severity: "FATAL", Code: "57P05", Message: fmt.Sprintf("terminating connection: idle for %v", idle)})
				b.Flush()
			} else if !errors.Is(err, io.EOF) {
				// A malformed or too large message: this client only.
				b.Send(&pgproto3.ErrorResponse{Severity: "FATAL", Code: "08P01", Message: "invalid message: " + err.Error()})
				b.Flush()
			}
			return
		}
		conn.SetDeadline(time.Time{}) // a statement may take long
		switch m := msg.(type) {
		case *pgproto3.Query:
			ss.simpleQuery(m.String)
			ss.ready()
		case *pgproto3.Terminate:
			return
		case *pgproto3.CopyData, *pgproto3.CopyDone, *pgproto3.CopyFail:
			// The rest of a COPY that failed: dropped, as PostgreSQL does.
		case *pgproto3.Parse, *pgproto3.Bind, *pgproto3.Describe, *pgproto3.Execute, *pgproto3.Close, *pgproto3.Sync, *pgproto3.Flush:
			ss.ext = true
			ss.extended(m)
			ss.ext = false
		default:
			b.Send(&pgproto3.ErrorResponse{Severity: "FATAL", Code: "08P01", Message: fmt.Sprintf("unexpected message %T", msg)})
			b.Flush()
			return
		}
	}
}

// cancelKey is a cancel request's key.
type cancelKey struct{ ProcessID, SecretKey uint32 }

// isLoopback reports whether addr is a loopback address (a client on
// this machine).
func isLoopback(addr net.Addr) bool {
	ta, ok := addr.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

// startup reads the startup message, after TLS if the client asks for it
// and s offers it (GSSAPI encryption is declined), and returns the
// connection and backend to go on with (over TLS, if so) and the user, or
// a cancel request's key.
func (s *Server) startup(conn net.Conn, b *pgproto3.Backend) (net.Conn, *pgproto3.Backend, string, *cancelKey, error) {
	for range 3 {
		msg, err := b.ReceiveStartupMessage()
		if err != nil {
			return conn, b, "", nil, err
		}
		switch m := msg.(type) {
		case *pgproto3.SSLRequest:
			_, already := conn.(*tls.Conn)
			if s.TLS == nil || already {
				if _, err := conn.Write([]byte("N")); err != nil {
					return conn, b, "", nil, err
				}
				continue
			}
			if _, err := conn.Write([]byte("S")); err != nil {
				return conn, b, "", nil, err
			}
			tc := tls.Server(conn, s.TLS)
			if err := tc.Handshake(); err != nil {
				return conn, b, "", nil, fmt.Errorf("TLS handshake: %w", err)
			}
			conn = tc
			b = pgproto3.NewBackend(tc, tc)
			b.SetMaxBodyLen(maxMessage)
		case *pgproto3.GSSEncRequest:
			if _, err := conn.Write([]byte("N")); err != nil {
				return conn, b, "", nil, err
			}
		case *pgproto3.StartupMessage:
			user := m.Parameters["user"]
			if user == "" {
				b.Send(&pgproto3.ErrorResponse{Severity: "FATAL", Code: "28000", Message: "no user in the startup message"})
				b.Flush()
				return conn, b, "", nil, errors.New("no user")
			}
			return conn, b, user, nil, nil
		case *pgproto3.CancelRequest:
			if len(m.SecretKey) != 4 {
				return conn, b, "", nil, errors.New("a cancel request with a key of another length")
			}
			return conn, b, "", &cancelKey{m.ProcessID, binary.BigEndian.Uint32(m.SecretKey)}, nil
		default:
			return conn, b, "", nil, errors.New("not a startup message")
		}
	}
	return conn, b, "", nil, errors.New("too many negotiation requests")
}

func (ss *session) ready() {
	status := byte('I')
	switch {
	case ss.tx != nil && ss.failed:
		status = 'E'
	case ss.tx != nil:
		status = 'T'
	}
	ss.b.Send(&pgproto3.ReadyForQuery{TxStatus: status})
}

func (ss *session) end() {
	if ss.tx != nil {
		ss.tx.Rollback()
	}
	ss.db.Close()
}

// simpleQuery runs one simple Query message (one statement: tandem refuses
// several in one string).
func (ss *session) simpleQuery(text string) {
	ctx, done := ss.statement()
	defer done()
	if strings.TrimSpace(strings.Trim(strings.TrimSpace(text), ";")) == "" {
		ss.b.Send(&pgproto3.EmptyQueryResponse{})
		return
	}
	kind, words, err := sqltext.Classify(text)
	if err != nil {
		ss.fail(fmt.Errorf("%w: %v", tandem.ErrRefused, err))
		return
	}
	if f := strings.Fields(text); strings.EqualFold(f[0], "DEALLOCATE") {
		ss.deallocate(f[1:])
		return
	} else if len(f) == 2 && strings.EqualFold(f[0], "SHOW") && strings.EqualFold(strings.TrimSuffix(f[1], ";"), "tandem_nodes") {
		ss.showNodes()
		return
	}
	if kind == sqltext.Txn {
		ss.txn(ctx, words, text)
		return
	}
	if ss.failed {
		ss.aborted()
		return
	}
	if in, out := sqltext.Copy(text); in {
		ss.copyIn(ctx, text)
		return
	} else if out {
		ss.copyOut(ctx, text)
		return
	}
	tag := strings.ToUpper(strings.Fields(words + " x")[0])
	if kind == sqltext.Maintenance {
		if _, err := ss.exec(ctx, text); err != nil {
			ss.fail(err)
			return
		}
		ss.complete(tag)
		return
	}
	if kind == sqltext.DDL || isPlainDML(text, tag) {
		res, err := ss.exec(ctx, text)
		if err != nil {
			ss.fail(err)
			return
		}
		ss.complete(commandTag(words, tag, res))
		return
	}
	rows, err := ss.query(ctx, text)
	if err != nil {
		ss.fail(err)
		return
	}
	if cols, err := rows.Columns(); err == nil && len(cols) == 0 {
		// A statement that returns no rows (CALL, a utility statement):
		// its tag alone, as PostgreSQL sends.
		if _, err := ss.dataRows(rows, nil, nil); err != nil {
			ss.fail(err)
			return
		}
		ss.complete(commandTag(words, tag, noResult{}))
		return
	}
	n, err := ss.sendRows(rows)
	if err != nil {
		ss.fail(err)
		return
	}
	ss.complete(rowsTag(tag, n))
}

// noResult is the result of a statement that reports no count.
type noResult struct{}

func (noResult) LastInsertId() (int64, error) { return 0, errors.New("no result") }
func (noResult) RowsAffected() (int64, error) { return 0, errors.New("no result") }

// exec runs a statement that returns no rows, in the session's
// transaction if one is open (run again, with the statements before it,
// when tandem committed nothing: replay.go).
func (ss *session) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if ss.tx == nil {
		var res sql.Result
		err := ss.again(ctx, func() (err error) {
			res, err = ss.db.ExecContext(ctx, query, args...)
			return err
		})
		return res, err
	}
	var res sql.Result
	err := ss.retrying(ctx, func() (err error) {
		res, err = ss.tx.ExecContext(ctx, query, args...)
		return err
	})
	if err != nil {
		return nil, err
	}
	n, _ := res.RowsAffected()
	ss.note(logged{query: query, args: args, n: n})
	return res, nil
}

// query runs a statement that returns rows, in the session's transaction
// if one is open; the rows sent (encodeRows) are noted for a replay.
func (ss *session) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	ss.pending = nil
	if ss.tx == nil {
		var rows *sql.Rows
		err := ss.again(ctx, func() (err error) {
			rows, err = ss.db.QueryContext(ctx, query, args...)
			return err
		})
		return rows, err
	}
	var rows *sql.Rows
	err := ss.retrying(ctx, func() (err error) {
		rows, err = ss.tx.QueryContext(ctx, query, args...)
		return err
	})
	if err != nil {
		return nil, err
	}
	ss.pending = &logged{query: query, args: args, rows: true}
	return rows, nil
}

// showNodes answers SHOW tandem_nodes, as pgpool-II's SHOW pool_nodes:
// a row per datasource, its role, state, keys behind, and last error.
func (ss *session) showNodes() {
	if ss.s.Status == nil {
		ss.fail(fmt.Errorf("%w: SHOW tandem_nodes: the proxy has no status to show", tandem.ErrRefused))
		return
	}
	st, err := ss.s.Status()
	if err != nil {
		ss.fail(err)
		return
	}
	cols := []string{"node", "driver", "role", "state", "behind", "conflicts", "in_doubt", "error"}
	desc := &pgproto3.RowDescription{}
	for _, c := range cols {
		desc.Fields = append(desc.Fields, pgproto3.FieldDescription{Name: []byte(c), DataTypeOID: pgtype.TextOID, DataTypeSize: -1, TypeModifier: -1})
	}
	ss.b.Send(desc)
	for _, n := range st.Nodes {
		role := "secondary"
		if n.Primary {
			role = "primary"
		}
		vals := []string{n.Name, n.Driver, role, n.State, strconv.FormatInt(n.Behind, 10), strconv.FormatInt(n.Conflicts, 10), strconv.FormatInt(n.InDoubt, 10), n.Error}
		row := make([][]byte, len(vals))
		for i, v := range vals {
			row[i] = []byte(v)
		}
		ss.b.Send(&pgproto3.DataRow{Values: row})
	}
	ss.complete("SHOW")
}

// deallocate runs DEALLOCATE [PREPARE] name | ALL, on the proxy's own
// statements (drivers such as PHP's PDO free theirs so).
func (ss *session) deallocate(args []string) {
	if len(args) > 0 && strings.EqualFold(args[0], "PREPARE") {
		args = args[1:]
	}
	if len(args) != 1 {
		ss.failWith(&pgproto3.ErrorResponse{Severity: "ERROR", Code: "42601", Message: "DEALLOCATE: want a statement's name, or ALL"})
		return
	}
	name := strings.Trim(strings.TrimSuffix(args[0], ";"), `"`)
	if strings.EqualFold(name, "ALL") {
		clear(ss.stmts)
		ss.complete("DEALLOCATE ALL")
		return
	}
	if _, ok := ss.stmts[name]; !ok {
		ss.failWith(&pgproto3.ErrorResponse{Severity: "ERROR", Code: "26000", Message: fmt.Sprintf("prepared statement %q does not exist", name)})
		return
	}
	delete(ss.stmts, name)
	ss.complete("DEALLOCATE")
}

// isPlainDML reports whether text is an INSERT, UPDATE or DELETE that
// returns no rows (its result is a count).
func isPlainDML(text, tag string) bool {
	switch tag {
	case "INSERT", "UPDATE", "DELETE":
		return !strings.Contains(strings.ToLower(text), "returning")
	case "TRUNCATE":
		return true
	}
	return false
}

// commandTag is the CommandComplete tag of a statement run with Exec.
func commandTag(words, tag string, res sql.Result) string {
	n, _ := res.RowsAffected()
	switch tag {
	case "INSERT":
		return "INSERT 0 " + strconv.FormatInt(n, 10)
	case "UPDATE", "DELETE":
		return tag + " " + strconv.FormatInt(n, 10)
	}
	f := strings.Fields(words) // CREATE TABLE, ALTER TABLE, DROP INDEX ...
	if len(f) > 2 {
		f = f[:2]
	}
	return strings.Join(f, " ")
}

// txn runs BEGIN, COMMIT, ROLLBACK and the savepoints' statements
// (savepoint.go); word is text's first keyword.
func (ss *session) txn(ctx context.Context, word, text string) {
	if word == "SAVEPOINT" || word == "RELEASE" || word == "ROLLBACK" && rollbackTo(text) {
		ss.savepoint(ctx, word, text)
		return
	}
	switch word {
	case "BEGIN", "START":
		if ss.tx != nil {
			ss.b.Send(&pgproto3.NoticeResponse{Severity: "WARNING", Code: "25001", Message: "there is already a transaction in progress"})
			ss.complete("BEGIN")
			return
		}
		// Not the statement's context: database/sql rolls a transaction
		// back when the context it began with ends.
		tx, err := ss.db.BeginTx(context.WithoutCancel(ctx), nil)
		if err != nil {
			ss.fail(err)
			return
		}
		ss.tx, ss.failed, ss.savepoints = tx, false, ss.savepoints[:0]
		ss.beginLog()
		ss.complete("BEGIN")
	case "COMMIT", "END":
		if ss.tx == nil {
			ss.b.Send(&pgproto3.NoticeResponse{Severity: "WARNING", Code: "25P01", Message: "there is no transaction in progress"})
			ss.complete("COMMIT")
			return
		}
		if ss.failed {
			ss.tx.Rollback()
			ss.tx, ss.failed = nil, false
			ss.complete("ROLLBACK")
			return
		}
		err := ss.retrying(ctx, func() error { return ss.tx.Commit() }) // the replay's ss.tx, after one
		if err != nil {
			ss.tx.Rollback() // a replay's transaction that did not commit
		}
		ss.tx, ss.failed = nil, false
		if err != nil {
			ss.fail(err)
			return
		}
		ss.complete("COMMIT")
	case "ROLLBACK", "ABORT":
		if ss.tx == nil {
			ss.b.Send(&pgproto3.NoticeResponse{Severity: "WARNING", Code: "25P01", Message: "there is no transaction in progress"})
		} else {
			ss.tx.Rollback()
			ss.tx, ss.failed = nil, false
		}
		ss.complete("ROLLBACK")
	default:
		ss.fail(fmt.Errorf("%w: %s: prepared transactions are not supported through the proxy", tandem.ErrRefused, word))
	}
}

func (ss *session) complete(tag string) {
	ss.b.Send(&pgproto3.CommandComplete{CommandTag: []byte(tag)})
}

// fail answers err: the database's own error with its SQLSTATE where it
// is one, else tandem's, mapped; inside a transaction, the transaction is
// aborted until it ends.
func (ss *session) fail(err error) {
	e := &pgproto3.ErrorResponse{Severity: "ERROR", Code: "XX000", Message: err.Error()}
	var pe *pgconn.PgError
	switch {
	case errors.As(err, &pe):
		// The database's own error, as the database said it.
		e.Message, e.Code, e.Detail, e.Hint = pe.Message, pe.Code, pe.Detail, pe.Hint
	case errors.Is(err, tandem.ErrRefused):
		e.Code = "0A000" // feature_not_supported
	case errors.Is(err, tandem.ErrOutcomeUnknown):
		e.Code = "40003" // statement_completion_unknown
	case errors.Is(err, tandem.ErrNotCommitted), errors.Is(err, tandem.ErrNodeDown), errors.Is(err, tandem.ErrBusy):
		e.Code = "40001" // serialization_failure: the client may run it again
	case errors.As(err, new(*pgconn.ConnectError)):
		// A database could not be reached: nothing was sent to it.
		e.Code = "40001"
	case lostConnection(err) && ss.tx != nil:
		// The primary's connection broke inside an open transaction: the
		// database rolled it back.
		e.Code = "40001"
	case lostConnection(err):
		// Outside a transaction, or at its COMMIT: it may have committed.
		e.Code = "40003"
	case errors.Is(err, context.Canceled):
		e.Code, e.Message = "57014", "canceling statement due to user request"
	}
	ss.failWith(e)
}

// failWith sends e: inside a transaction, it is aborted until it ends; in
// the extended protocol, the messages up to Sync are ignored.
func (ss *session) failWith(e *pgproto3.ErrorResponse) {
	ss.s.log().Debug("proxy: statement failed", "code", e.Code, "err", e.Message)
	if ss.tx != nil {
		ss.failed = true
	}
	if ss.ext {
		ss.skipping = true
	}
	ss.b.Send(e)
}

// aborted answers a statement sent to a transaction an error aborted.
func (ss *session) aborted() {
	ss.failWith(&pgproto3.ErrorResponse{Severity: "ERROR", Code: "25P02", Message: "current transaction is aborted, commands ignored until end of transaction block"})
}

// sendRows sends rows' description and its rows in text format, and
// returns how many.
func (ss *session) sendRows(rows *sql.Rows) (int64, error) {
	cols, err := rows.ColumnTypes()
	if err != nil {
		rows.Close()
		return 0, err
	}
	oids := make([]uint32, len(cols))
	desc := &pgproto3.RowDescription{Fields: make([]pgproto3.FieldDescription, len(cols))}
	for i, c := range cols {
		oids[i] = pgtype.TextOID
		if t, ok := ss.types.TypeForName(strings.ToLower(c.DatabaseTypeName())); ok {
			oids[i] = t.OID
		}
		desc.Fields[i] = pgproto3.FieldDescription{Name: []byte(c.Name()), DataTypeOID: oids[i], DataTypeSize: -1, TypeModifier: -1}
	}
	ss.b.Send(desc)
	return ss.dataRows(rows, oids, make([]int16, len(oids)))
}

// dataRows sends rows, each column of oids[i] in formats[i], and returns
// how many; in a transaction, the statement is noted with a digest of the
// rows sent, for a replay.
func (ss *session) dataRows(rows *sql.Rows, oids []uint32, formats []int16) (int64, error) {
	return ss.dataRowsTo(rows, oids, formats, ss.sendRow)
}

// dataRowsTo is dataRows handing the rows to sink.
func (ss *session) dataRowsTo(rows *sql.Rows, oids []uint32, formats []int16, sink func([][]byte)) (int64, error) {
	p := ss.pending
	ss.pending = nil
	var h hash.Hash
	if p != nil {
		h = sha256.New()
	}
	n, err := ss.encodeRows(rows, oids, formats, h, sink)
	if err == nil && p != nil {
		p.oids, p.formats, p.n = oids, formats, n
		p.digest = [sha256.Size]byte(h.Sum(nil))
		ss.note(*p)
	}
	return n, err
}

// sendRow sends one encoded row.
func (ss *session) sendRow(row [][]byte) { ss.b.Send(&pgproto3.DataRow{Values: row}) }

// encodeRows encodes rows, each column of oids[i] in formats[i], hands
// each to sink if not nil, hashes them into h if not nil, and returns how
// many.
func (ss *session) encodeRows(rows *sql.Rows, oids []uint32, formats []int16, h hash.Hash, sink func([][]byte)) (int64, error) {
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return 0, err
	}
	if len(cols) != len(oids) {
		return 0, fmt.Errorf("the statement returned %d columns, %d were described", len(cols), len(oids))
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	var n int64
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return n, err
		}
		row := make([][]byte, len(cols))
		for i, v := range vals {
			if v == nil {
				continue // NULL
			}
			enc, err := ss.encode(oids[i], formats[i], v)
			if err != nil {
				return n, fmt.Errorf("column %s: %v", cols[i], err)
			}
			row[i] = enc
		}
		if h != nil {
			digestOf(h, row)
		}
		if sink != nil {
			sink(row)
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return n, err
	}
	return n, rows.Close()
}

// encode encodes v, a value of type oid as the driver scanned it, in
// format. A value the driver hands over as text (numeric, intervals, a
// type pgx has no Go type for) is decoded from its text first where the
// binary format is asked for.
func (ss *session) encode(oid uint32, format int16, v any) ([]byte, error) {
	enc, err := ss.types.Encode(oid, format, v, nil)
	if err == nil {
		return enc, nil
	}
	if format == pgtype.TextFormatCode {
		return []byte(fmt.Sprint(v)), nil
	}
	var text []byte
	switch t := v.(type) {
	case string:
		text = []byte(t)
	case []byte:
		text = t
	default:
		return nil, err
	}
	dt, ok := ss.types.TypeForOID(oid)
	if !ok {
		return nil, err
	}
	val, derr := dt.Codec.DecodeValue(ss.types, oid, pgtype.TextFormatCode, text)
	if derr != nil {
		return nil, fmt.Errorf("%v (and as text: %v)", err, derr)
	}
	return ss.types.Encode(oid, format, val, nil)
}

// lostConnection reports whether err is a connection to a database that
// broke (rather than the database's answer).
func lostConnection(err error) bool {
	var ne net.Error
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, stdlib.ErrLostConnection) || errors.Is(err, driver.ErrBadConn) ||
		errors.As(err, &ne) || errors.Is(err, net.ErrClosed)
}
