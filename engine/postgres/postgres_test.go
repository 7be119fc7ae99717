package postgres_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tandemdb/tandem/engine"
	"github.com/tandemdb/tandem/engine/postgres"
	"github.com/tandemdb/tandem/internal/dbserver"
)

var eng postgres.Engine

// secret is a password no message of pgx or of the engine holds by chance.
const secret = "s3cretPW"

// noDefaults keeps pgx from filling in a database name from the
// environment, so that a DSN naming none is refused as in production.
func noDefaults(t *testing.T) {
	for _, env := range []string{"PGDATABASE", "PGSERVICE", "PGSERVICEFILE"} {
		t.Setenv(env, "")
	}
}

func TestResolveDSN(t *testing.T) {
	noDefaults(t)
	good := []struct{ name, dsn string }{
		{"URL", "postgres://tandem:" + secret + "@127.0.0.1:5432/app?sslmode=disable"},
		{"postgresql scheme", "postgresql://tandem:" + secret + "@db.example/app"},
		{"URL without password", "postgres://tandem@127.0.0.1/app"},
		{"URL, password in the query", "postgres://tandem@h/app?sslmode=disable&password=" + secret},
		{"URL, percent-encoded password", "postgres://tandem:p%40ss%2Fw%20" + secret + "@h/app"},
		{"URL, several hosts", "postgres://tandem:" + secret + "@h1:5432,h2:5433/app?target_session_attrs=read-write"},
		{"URL, runtime parameter", "postgres://tandem:" + secret + "@h/app?application_name=tandem&search_path=app"},
		{"keyword/value", "host=127.0.0.1 port=5432 user=tandem password=" + secret + " dbname=app sslmode=disable"},
		{"keyword/value, quoted password", "host=h user=tandem password='se cret " + secret + "' dbname=app"},
		{"keyword/value, spaces around =", "host = h dbname = app password = " + secret},
		{"keyword/value, unix socket", "host=/run/postgresql dbname=app"},
	}
	for _, c := range good {
		t.Run(c.name, func(t *testing.T) {
			got, err := eng.ResolveDSN(c.dsn, "/ignored")
			if err != nil {
				t.Fatalf("ResolveDSN(%q): %v", eng.Redact(c.dsn), err)
			}
			if got != c.dsn {
				t.Errorf("ResolveDSN(%q) = %q, want the DSN unchanged", eng.Redact(c.dsn), eng.Redact(got))
			}
			again, err := eng.ResolveDSN(got, "")
			if err != nil || again != got {
				t.Errorf("resolving again gives %q, %v; want the same DSN", eng.Redact(again), err)
			}
		})
	}

	bad := []struct{ name, dsn, want string }{
		{"empty", "", "empty DSN"},
		{"blank", " \t\n", "empty DSN"},
		{"URL without database", "postgres://tandem:" + secret + "@h:5432/?sslmode=disable", "names no database: add /dbname"},
		{"URL without path", "postgres://tandem:" + secret + "@h", "names no database"},
		{"keyword/value without dbname", "host=h user=tandem password=" + secret, "names no database"},
		{"keyword/value without dbname, quoted password", "host=h password='se cret " + secret + "'", "names no database"},
		{"keyword/value without dbname, escaped space in the password", `host=h password=se\ ` + secret, "names no database"},
		{"URL without database, ';' in the query password", "postgres://tandem@h/?sslmode=disable&password=se;" + secret, "names no database"},
		{"URL without database, password with '?'", "postgres://tandem:12?" + secret + "@h/", "names no database"},
		{"garbage", "not a DSN", "cannot parse"},
		{"MySQL's form", "tandem:" + secret + "@tcp(h:3306)/app", "cannot parse"},
		{"mysql URL", "mysql://tandem:" + secret + "@h/app", "cannot parse"},
		{"bad port", "postgres://tandem:" + secret + "@h:99999/app", "invalid port"},
		{"port not a number", "host=h dbname=app password=" + secret + " port=abc", "invalid port"},
		{"bad sslmode", "postgres://tandem:" + secret + "@h/app?sslmode=bogus", "sslmode is invalid"},
		{"bad connect_timeout", "postgres://tandem:" + secret + "@h/app?connect_timeout=x", "connect_timeout"},
		{"unterminated IPv6 address", "postgres://tandem:" + secret + "@[::1/app", `matching "]"`},
		{"space in a URL password", "postgres://tandem:se " + secret + "@h/app", "spaces"},
		{"bad percent-encoding in the password", "postgres://tandem:" + secret + "%zz@h/app", "percent-encoded"},
		{"unterminated quoted password", "host=h dbname=app password='" + secret, "unterminated quoted string"},
		{"keyword without value", "host=h password=" + secret + " dbname", "invalid keyword/value"},
		{"escaped space in the password, bad port", `dbname=app password=se\ ` + secret + " port=x", "invalid port"},
		{"NUL byte", "postgres://tandem:" + secret + "@h/app\x00", "NUL"},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			got, err := eng.ResolveDSN(c.dsn, "")
			if err == nil {
				t.Fatalf("ResolveDSN(%q) = %q, want an error", eng.Redact(c.dsn), eng.Redact(got))
			}
			if strings.Contains(err.Error(), secret) {
				t.Fatalf("ResolveDSN: %v: the error holds the password", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("ResolveDSN(%q): %v; want the error to say %q", eng.Redact(c.dsn), err, c.want)
			}
		})
	}
}

func TestRedact(t *testing.T) {
	cases := []struct{ in, want string }{
		// URL form.
		{"postgres://tandem:" + secret + "@127.0.0.1:5432/app?sslmode=disable", "postgres://tandem:xxxxx@127.0.0.1:5432/app?sslmode=disable"},
		{"postgresql://tandem:" + secret + "@h/app", "postgresql://tandem:xxxxx@h/app"},
		{"postgres://tandem:p%40ss%2F" + secret + "@h/app", "postgres://tandem:xxxxx@h/app"},
		{"postgres://tandem:" + secret + "@h1:5432,h2:5433/app", "postgres://tandem:xxxxx@h1:5432,h2:5433/app"},
		// pgx reads the password up to the first '@': "12?s3cretPW".
		{"postgres://tandem:12?" + secret + "@h/app", "postgres://tandem:xxxxx@h/app"},
		{"postgres://tandem:se " + secret + "@h/app", "postgres://tandem:xxxxx@h/app"}, // pgx refuses it; still masked
		// ?password= form.
		{"postgres://tandem@h/app?password=" + secret + "&sslmode=disable", "postgres://tandem@h/app?password=xxxxx&sslmode=disable"},
		{"postgres://tandem@h/app?sslmode=disable&password=" + secret, "postgres://tandem@h/app?sslmode=disable&password=xxxxx"},
		{"postgres://tandem@h/app?password=se;" + secret, "postgres://tandem@h/app?password=xxxxx"},
		{"postgres://tandem@h/app?password=" + secret + "%zz", "postgres://tandem@h/app?password=xxxxx"},
		{"postgres://tandem@h/app?pass%77ord=" + secret, "postgres://tandem@h/app?pass%77ord=xxxxx"},
		{"postgres://tandem@h/app?sslpassword=" + secret, "postgres://tandem@h/app?sslpassword=xxxxx"},
		// A '/' before the '@': no userinfo, and the password is the query's.
		{"postgres://h:5432/app?password=x@" + secret, "postgres://h:5432/app?password=xxxxx"},
		{"postgres://tandem:pa/ss" + secret + "@h/app", "postgres://tandem:xxxxx@h/app"}, // pgx reads no password; still masked
		// Keyword/value form.
		{"host=h user=tandem password=" + secret + " dbname=app", "host=h user=tandem password=xxxxx dbname=app"},
		{"host=h password='se cret" + secret + "' dbname=app", "host=h password=xxxxx dbname=app"},
		{`host=h password='it\'s ` + secret + `' dbname=app`, "host=h password=xxxxx dbname=app"},
		{`host=h password=se\ ` + secret + ` dbname=app`, "host=h password=xxxxx dbname=app"},
		{"host=h password = " + secret + " dbname=app", "host=h password = xxxxx dbname=app"},
		{"host=h password='se cret " + secret, "host=h password=xxxxx"}, // unterminated
		// No password: unchanged.
		{"postgres://tandem@127.0.0.1:5432/app?sslmode=disable", "postgres://tandem@127.0.0.1:5432/app?sslmode=disable"},
		{"postgres://h/app?application_name=my%20app&search_path=a,b", "postgres://h/app?application_name=my%20app&search_path=a,b"},
		{"postgresql:///app?host=/run/postgresql", "postgresql:///app?host=/run/postgresql"},
		{"host=h user=tandem dbname=app sslmode=disable", "host=h user=tandem dbname=app sslmode=disable"},
		// Error messages pass unchanged.
		{"failed to connect to `user=tandem database=app`: 127.0.0.1:5432 (127.0.0.1): failed SASL auth: FATAL: password authentication failed for user \"tandem\" (SQLSTATE 28P01)",
			"failed to connect to `user=tandem database=app`: 127.0.0.1:5432 (127.0.0.1): failed SASL auth: FATAL: password authentication failed for user \"tandem\" (SQLSTATE 28P01)"},
		{`ERROR: duplicate key value violates unique constraint "users_email_key" (SQLSTATE 23505)`,
			`ERROR: duplicate key value violates unique constraint "users_email_key" (SQLSTATE 23505)`},
		{"dial tcp 127.0.0.1:5432: connect: connection refused", "dial tcp 127.0.0.1:5432: connect: connection refused"},
	}
	for _, c := range cases {
		if got := eng.Redact(c.in); got != c.want {
			t.Errorf("Redact(%q)\n = %q\nwant %q", c.in, got, c.want)
		}
	}
}

// FuzzResolveDSN checks that ResolveDSN never panics, that a DSN it accepts
// resolves to itself, and that no byte of a password planted in a DSN shows
// in ResolveDSN's error or in Redact's output. form picks where the password
// goes: the URL's userinfo, its query, a keyword/value pair, plain or
// quoted. A password is checked when pgx's syntax reads exactly it as the
// password (it holds no delimiter of its place), and only its marked bytes
// are looked for: bytes outside printable ASCII that no other part of the
// DSN holds, so that no message holds them by chance ("xxxxx" holds a
// password "x"). A marked byte in the output is a piece of the password.
func FuzzResolveDSN(f *testing.F) {
	f.Add(uint8(0), "tandem", "s3cret\x01", "127.0.0.1:5432/app?sslmode=disable")
	f.Add(uint8(0), "tandem", "pässwort", "h:5432/")
	f.Add(uint8(0), "tandem", "12?pä", "h/")
	f.Add(uint8(0), "tandem", "se cret\x7f", "h/app")
	f.Add(uint8(1), "", "se;crét", "h/?sslmode=disable")
	f.Add(uint8(1), "", "a%zz\x02", "tandem@h/app")
	f.Add(uint8(2), "", `se\ crét`, "host=h")
	f.Add(uint8(2), "", "pässwort", "host=h dbname=app port=x")
	f.Add(uint8(3), "", `it\'s ä`, "host=h")
	f.Add(uint8(3), "", "se cret\x03", "dbname")
	f.Add(uint8(4), "u", "pä", "[::1/db")
	f.Fuzz(func(t *testing.T, form uint8, user, pass, rest string) {
		dsn, checkable := plant(form, user, pass, rest)
		out, err := eng.ResolveDSN(dsn, "")
		redacted := eng.Redact(dsn)
		if err == nil {
			if again, err := eng.ResolveDSN(out, ""); err != nil || again != out {
				t.Fatalf("ResolveDSN(%q) = %q; resolving that gives %q, %v", dsn, out, again, err)
			}
		}
		if !checkable {
			return
		}
		others := strings.Replace(dsn, pass, "", 1)
		for i := 0; i < len(pass); i++ {
			b := pass[i]
			if (b >= ' ' && b <= '~') || strings.IndexByte(others, b) >= 0 {
				continue
			}
			if err != nil && strings.IndexByte(err.Error(), b) >= 0 {
				t.Fatalf("ResolveDSN(%q): %q: the error holds byte %#x of the password %q", dsn, err, b, pass)
			}
			if strings.IndexByte(redacted, b) >= 0 {
				t.Fatalf("Redact(%q) = %q: holds byte %#x of the password %q", dsn, redacted, b, pass)
			}
		}
	})
}

// plant builds a DSN holding pass as its password, and reports whether
// pgx's syntax reads exactly pass as the password.
func plant(form uint8, user, pass, rest string) (dsn string, checkable bool) {
	switch form % 5 {
	case 0, 4: // postgres://user:pass@rest
		scheme := "postgres://"
		if form%5 == 4 {
			scheme = "postgresql://"
		}
		// The userinfo ends at the first '@', unless a '/' comes first.
		return scheme + user + ":" + pass + "@" + rest,
			!strings.ContainsAny(user, ":@/") && !strings.ContainsAny(pass, "@/")
	case 1: // postgres://rest?password=pass
		// The query starts at the first '?' (a '[' starts an IPv6 address,
		// which may hold one); a pair ends at '&'. An '@' with no '/'
		// before it ends a userinfo, here "rest?password=pass".
		return "postgres://" + rest + "?password=" + pass,
			!strings.ContainsAny(rest, "?[]") && !strings.Contains(pass, "&") &&
				(!strings.Contains(pass, "@") || strings.Contains(rest, "/"))
	case 2: // password=pass rest
		// A plain value ends at an unescaped space.
		end, quoted := valueEnd(pass, false)
		return "password=" + pass + " " + rest, !quoted && end == len(pass)
	default: // password='pass' rest
		end, _ := valueEnd(pass, true)
		return "password='" + pass + "' " + rest, end == len(pass)
	}
}

// valueEnd is where pgx ends a keyword/value value s (quoted: inside the
// quotes), and whether a plain value starts a quoted one instead.
func valueEnd(s string, quoted bool) (end int, startsQuote bool) {
	if !quoted && strings.HasPrefix(s, "'") {
		return 0, true
	}
	for end = 0; end < len(s); end++ {
		c := s[end]
		if quoted && c == '\'' || !quoted && strings.IndexByte(" \t\n\v\f\r", c) >= 0 {
			return end, false
		}
		if c == '\\' {
			end++
			if end == len(s) {
				return -1, false // escapes what follows s
			}
		}
	}
	return end, false
}

func TestLimitClauseQuoteAndPlaceholder(t *testing.T) {
	for _, c := range []struct {
		limit, offset int
		want          string
	}{{-1, 0, ""}, {10, 0, " LIMIT 10"}, {10, 5, " LIMIT 10 OFFSET 5"}, {-1, 5, " OFFSET 5"}, {0, 0, " LIMIT 0"}} {
		if got := eng.LimitClause(c.limit, c.offset); got != c.want {
			t.Errorf("LimitClause(%d, %d) = %q, want %q", c.limit, c.offset, got, c.want)
		}
	}
	if got := eng.Quote(`a"b`); got != `"a""b"` {
		t.Errorf("Quote = %s", got)
	}
	if got := eng.Placeholder(3); got != "$3" {
		t.Errorf("Placeholder(3) = %s", got)
	}
}

func TestValueRefusesWhatPostgreSQLCannotStore(t *testing.T) {
	cases := []struct {
		typ  engine.Type
		v    any
		want string
	}{
		{engine.Real, math.NaN(), "NaN cannot be stored"},
		{engine.Text, "bad \xff utf-8", "text is not valid UTF-8"},
		{engine.Text, "NUL\x00inside", "PostgreSQL text cannot hold a NUL byte (0x00); store it as bytes"},
	}
	for _, c := range cases {
		v, err := eng.Value(&engine.Column{Name: "c", Type: c.typ}, c.v)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Value(%q) = %v, %v; want an error saying %q", c.v, v, err, c.want)
		}
	}
	// PostgreSQL stores infinities, NUL bytes in a blob and years beyond
	// MySQL's.
	for _, c := range []struct {
		typ engine.Type
		v   any
	}{{engine.Real, math.Inf(1)}, {engine.Real, math.Inf(-1)}, {engine.Blob, []byte{0}},
		{engine.Time, time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)}} {
		if _, err := eng.Value(&engine.Column{Name: "c", Type: c.typ}, c.v); err != nil {
			t.Errorf("Value(%v): %v", c.v, err)
		}
	}
}

// TestServer runs the engine against one PostgreSQL server, shared by the
// subtests; each works in databases of its own.
func TestServer(t *testing.T) {
	s := server{Server: dbserver.Start(t, dbserver.Postgres)}
	t.Run("ValueScanRoundTrip", s.testValueScanRoundTrip)
	t.Run("CreateTableAndTablesRoundTrip", s.testCreateTableAndTables)
	t.Run("UpsertInsertsReplacesAndRefusesUniqueViolations", s.testUpsert)
	t.Run("InsertAutoReturnsTheID", s.testInsertAuto)
	t.Run("SyncAutoMovesTheSequencePastEveryIDAndNeverBack", s.testSyncAuto)
	t.Run("LockSharedHoldersCoexistAndExclusiveWaits", s.testLock)
	t.Run("RetryableIsADeadlockVictimOrSerializationFailure", s.testRetryable)
	t.Run("ChecksumSeesRowsNotTheirOrder", s.testChecksum)
	t.Run("TextKeysCompareByteByByte", s.testTextKeys)
	t.Run("OpenPlainCreatesNothingAndErrorsHideThePassword", s.testOpen)
}

// server is the test's PostgreSQL server.
type server struct {
	*dbserver.Server
}

var databases atomic.Int64

// database creates a fresh database and returns its DSN, with params.
func (s server) database(t *testing.T, params ...string) string {
	t.Helper()
	name := fmt.Sprintf("db%d", databases.Add(1))
	s.CreateDatabase(t, name)
	dsn := s.DSN(name, "")
	if len(params) > 0 {
		dsn += "&" + strings.Join(params, "&")
	}
	resolved, err := eng.ResolveDSN(dsn, "")
	if err != nil {
		t.Fatal(err)
	}
	return resolved
}

// open opens dsn with the engine, closed at test end.
func open(t *testing.T, dsn string) *engine.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := eng.Open(ctx, dsn)
	if err != nil {
		t.Fatalf("open %s: %v", eng.Redact(dsn), err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func create(t *testing.T, db *sql.DB, tables ...*engine.Table) {
	t.Helper()
	for _, tb := range tables {
		if err := eng.CheckTable(tb); err != nil {
			t.Fatalf("CheckTable(%s): %v", tb.Name, err)
		}
		for _, stmt := range eng.CreateTable(tb) {
			if _, err := db.Exec(stmt); err != nil {
				t.Fatalf("%s: %v", stmt, err)
			}
		}
	}
}

type execer interface {
	Exec(string, ...any) (sql.Result, error)
}

// args passes row through Value.
func args(tb *engine.Table, row []any) ([]any, error) {
	out := make([]any, len(row))
	for i, v := range row {
		a, err := eng.Value(&tb.Columns[i], v)
		if err != nil {
			return nil, fmt.Errorf("column %s: %w", tb.Columns[i].Name, err)
		}
		out[i] = a
	}
	return out, nil
}

// upsert writes a full row of tb through Upsert.
func upsert(db execer, tb *engine.Table, row ...any) error {
	a, err := args(tb, row)
	if err != nil {
		return err
	}
	_, err = db.Exec(eng.Upsert(tb), a...)
	return err
}

// read returns the row of tb whose first key column is key, through Scan.
func read(t *testing.T, db *sql.DB, tb *engine.Table, key any) []any {
	t.Helper()
	cols := make([]string, len(tb.Columns))
	for i := range tb.Columns {
		cols[i] = eng.Quote(tb.Columns[i].Name)
	}
	rows, err := db.Query("SELECT "+strings.Join(cols, ", ")+" FROM "+eng.Quote(tb.Name)+" WHERE "+eng.Quote(tb.PK[0])+" = $1", key)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	if !rows.Next() {
		t.Fatalf("no row %v in %s (%v)", key, tb.Name, rows.Err())
	}
	raw := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range raw {
		ptrs[i] = &raw[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		t.Fatal(err)
	}
	out := make([]any, len(cols))
	for i := range raw {
		v, err := eng.Scan(&tb.Columns[i], raw[i])
		if err != nil {
			t.Fatalf("Scan: %v", err)
		}
		out[i] = v
	}
	return out
}

// everyType has a column of every logical type, bounded and unbounded.
var everyType = engine.Table{
	Name: "every_type",
	Columns: []engine.Column{
		{Name: "id", Type: engine.Integer, NotNull: true},
		{Name: "i", Type: engine.Integer},
		{Name: "r", Type: engine.Real},
		{Name: "s", Type: engine.Text, Size: 50},
		{Name: "lt", Type: engine.Text},
		{Name: "b", Type: engine.Blob, Size: 50},
		{Name: "lb", Type: engine.Blob},
		{Name: "bo", Type: engine.Bool},
		{Name: "tm", Type: engine.Time},
	},
	PK: []string{"id"},
}

func (s server) testValueScanRoundTrip(t *testing.T) {
	dsn := s.database(t)
	extended := open(t, dsn)
	// The simple protocol (as behind PgBouncer) sends every value as text.
	simple := open(t, dsn+"&default_query_exec_mode=simple_protocol")
	create(t, extended.Write, &everyType)

	bigBlob := make([]byte, 1<<20)
	for i := range bigBlob {
		bigBlob[i] = byte(rand.IntN(256))
	}
	allBytes := make([]byte, 50)
	for i := range allBytes {
		allBytes[i] = byte(i * 5)
	}
	utc := func(y int, mo time.Month, d, h, mi, sec, ns int) time.Time {
		return time.Date(y, mo, d, h, mi, sec, ns, time.UTC)
	}
	type roundTrip struct {
		col  string
		v    any
		want any // when it differs from v
	}
	cases := []roundTrip{
		{col: "i", v: int64(0)}, {col: "i", v: int64(-1)},
		{col: "i", v: int64(math.MinInt64)}, {col: "i", v: int64(math.MaxInt64)},
		{col: "r", v: 0.0}, {col: "r", v: math.Copysign(0, -1)},
		{col: "r", v: math.MaxFloat64}, {col: "r", v: -math.MaxFloat64},
		{col: "r", v: 5e-324}, {col: "r", v: 2.2250738585072014e-308}, {col: "r", v: 0.1}, {col: "r", v: 1.0 / 3}, {col: "r", v: -math.Pi},
		{col: "r", v: math.Inf(1)}, {col: "r", v: math.Inf(-1)},
		{col: "s", v: ""}, {col: "s", v: "a"}, {col: "s", v: "a "}, {col: "s", v: " a"},
		{col: "s", v: strings.Repeat("😀", 50)}, {col: "s", v: `quotes ' " \ backslash`}, {col: "s", v: "日本語\r\n\t"},
		{col: "lt", v: ""}, {col: "lt", v: strings.Repeat("long text 😀 ", 20000)},
		{col: "b", v: []byte{}}, {col: "b", v: []byte{0}}, {col: "b", v: allBytes},
		{col: "lb", v: []byte{}}, {col: "lb", v: bigBlob},
		{col: "bo", v: true}, {col: "bo", v: false},
		{col: "tm", v: utc(1, 1, 1, 0, 0, 0, 0)},
		{col: "tm", v: utc(9999, 12, 31, 23, 59, 59, 999999000)},
		{col: "tm", v: utc(2024, 2, 29, 12, 34, 56, 789012000)},
		{col: "tm", v: utc(1970, 1, 1, 0, 0, 0, 1000)},
		{col: "tm", v: utc(1969, 12, 31, 23, 59, 59, 999999000)},
		{col: "tm", v: time.Date(2024, 7, 1, 2, 0, 0, 1000, time.FixedZone("CEST", 2*3600)), want: utc(2024, 7, 1, 0, 0, 0, 1000)},
		{col: "tm", v: time.Date(1, 1, 1, 0, 30, 0, 0, time.FixedZone("", -3600)), want: utc(1, 1, 1, 1, 30, 0, 0)},
		{col: "tm", v: time.Date(9999, 12, 31, 20, 0, 0, 5000, time.FixedZone("", -5*3600-30*60)), want: utc(10000, 1, 1, 1, 30, 0, 5000)},
		// Nanoseconds: PostgreSQL keeps microseconds.
		{col: "tm", v: utc(2024, 7, 1, 0, 0, 0, 123456789), want: utc(2024, 7, 1, 0, 0, 0, 123456000)},
		{col: "tm", v: utc(2024, 7, 1, 0, 0, 59, 999999999), want: utc(2024, 7, 1, 0, 0, 59, 999999000)},
	}
	for _, col := range everyType.Columns[1:] {
		cases = append(cases, roundTrip{col: col.Name, v: nil})
	}
	for _, conn := range []struct {
		name string
		c    *engine.Conn
	}{{"extended protocol", extended}, {"simple protocol", simple}} {
		for n, c := range cases {
			id := int64(n + 1)
			row := make([]any, len(everyType.Columns))
			row[0] = id
			ci := -1
			for i, col := range everyType.Columns {
				if col.Name == c.col {
					ci = i
				}
			}
			row[ci] = c.v
			if err := upsert(conn.c.Write, &everyType, row...); err != nil {
				t.Errorf("%s: write %s = %.40v: %v", conn.name, c.col, c.v, err)
				continue
			}
			want := c.want
			if want == nil {
				want = c.v
			}
			// Read through both protocols: what one wrote, the other reads.
			for _, reader := range []*engine.Conn{extended, simple} {
				got := read(t, reader.Read, &everyType, id)[ci]
				if !reflect.DeepEqual(got, want) {
					t.Errorf("%s: %s: wrote %T %.60v, read back %T %.60v", conn.name, c.col, c.v, c.v, got, got)
				}
				if f, ok := want.(float64); ok && math.Float64bits(f) != math.Float64bits(got.(float64)) {
					t.Errorf("%s: %s: wrote %v, read back %v: different bits", conn.name, c.col, f, got)
				}
			}
		}
	}
}

// schemaTables is a definition using every type, defaults of every kind,
// a composite key whose order is not the columns' and indexes.
func schemaTables() []*engine.Table {
	return []*engine.Table{
		{
			Name: "books",
			Columns: []engine.Column{
				{Name: "id", Type: engine.Integer, NotNull: true, Auto: true},
				{Name: "isbn", Type: engine.Text, Size: 13, NotNull: true},
				{Name: "title", Type: engine.Text, NotNull: true, Default: `'it''s \ untitled'`},
				{Name: "price", Type: engine.Real, Default: "1e+300"},
				{Name: "rating", Type: engine.Real, NotNull: true, Default: "-2.5"},
				{Name: "pages", Type: engine.Integer, NotNull: true, Default: "-7"},
				{Name: "cover", Type: engine.Blob, Default: "'y'"},
				{Name: "thumb", Type: engine.Blob, Size: 100},
				{Name: "in_print", Type: engine.Bool, Default: "1"},
				{Name: "out", Type: engine.Bool, NotNull: true, Default: "false"},
				{Name: "published", Type: engine.Time},
				{Name: "shelf", Type: engine.Text, Size: 10, Default: "''"},
			},
			PK: []string{"id"},
			Indexes: []engine.Index{
				{Name: "books_shelf_idx", Columns: []string{"shelf", "published"}},
				{Name: "books_isbn_key", Unique: true, Columns: []string{"isbn"}},
			},
		},
		{
			Name: "Authors", // upper case sorts first
			Columns: []engine.Column{
				{Name: "last", Type: engine.Text, Size: 100, NotNull: true},
				{Name: "first", Type: engine.Text, Size: 100, NotNull: true},
				{Name: "born", Type: engine.Time, NotNull: true},
			},
			PK: []string{"first", "last"},
		},
	}
}

func (s server) testCreateTableAndTables(t *testing.T) {
	a, b := open(t, s.database(t)), open(t, s.database(t))
	create(t, a.Write, schemaTables()...)
	create(t, a.Write, schemaTables()...) // a second time does nothing
	create(t, b.Write, schemaTables()...)
	// Bookkeeping tables are left out; _TANDEM_ is not tandem's.
	for _, q := range []string{`CREATE TABLE _tandem_x (id INT PRIMARY KEY)`, `CREATE TABLE "_TANDEM_y" (id INT PRIMARY KEY)`, `CREATE TABLE xtandem_z (id INT PRIMARY KEY)`} {
		for _, c := range []*engine.Conn{a, b} {
			if _, err := c.Write.Exec(q); err != nil {
				t.Fatal(err)
			}
		}
	}
	ctx := context.Background()
	ta, err := eng.Tables(ctx, a.Read)
	if err != nil {
		t.Fatal(err)
	}
	tb, err := eng.Tables(ctx, b.Read)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(ta, tb) {
		t.Errorf("two databases made from one definition differ:\n%+v\n%+v", ta, tb)
	}
	var names []string
	for _, ti := range ta {
		names = append(names, ti.Name)
	}
	if want := []string{"Authors", "_TANDEM_y", "books", "xtandem_z"}; !reflect.DeepEqual(names, want) {
		t.Fatalf("tables %q, want %q", names, want)
	}
	books := ta[2]
	want := []engine.ColumnInfo{
		{Name: "id", Type: "BIGINT", Logical: engine.Integer, NotNull: true, PK: 1, Default: "IDENTITY"},
		{Name: "isbn", Type: "CHARACTER VARYING(13)", Logical: engine.Text, NotNull: true},
		{Name: "title", Type: "TEXT", Logical: engine.Text, NotNull: true, Default: `'it''s \ untitled'::text`},
		{Name: "price", Type: "DOUBLE PRECISION", Logical: engine.Real, Default: "'1" + strings.Repeat("0", 300) + "'::numeric"},
		{Name: "rating", Type: "DOUBLE PRECISION", Logical: engine.Real, NotNull: true, Default: "'-2.5'::numeric"},
		{Name: "pages", Type: "BIGINT", Logical: engine.Integer, NotNull: true, Default: "'-7'::integer"},
		{Name: "cover", Type: "BYTEA", Logical: engine.Blob, Default: `'\x79'::bytea`},
		{Name: "thumb", Type: "BYTEA", Logical: engine.Blob},
		{Name: "in_print", Type: "BOOLEAN", Logical: engine.Bool, Default: "true"},
		{Name: "out", Type: "BOOLEAN", Logical: engine.Bool, NotNull: true, Default: "false"},
		{Name: "published", Type: "TIMESTAMP WITH TIME ZONE", Logical: engine.Time},
		{Name: "shelf", Type: "CHARACTER VARYING(10)", Logical: engine.Text, Default: "''::character varying"},
	}
	if !reflect.DeepEqual(books.Columns, want) {
		t.Errorf("books columns:\n got %+v\nwant %+v", books.Columns, want)
	}
	wantIdx := []engine.IndexInfo{
		{Name: "books_isbn_key", Unique: true, Columns: []string{"isbn"}},
		{Name: "books_shelf_idx", Columns: []string{"shelf", "published"}},
	}
	if !reflect.DeepEqual(books.Indexes, wantIdx) {
		t.Errorf("books indexes %+v, want %+v (sorted by name)", books.Indexes, wantIdx)
	}
	authors := ta[0]
	wantAuthors := []engine.ColumnInfo{
		{Name: "last", Type: "CHARACTER VARYING(100)", Logical: engine.Text, NotNull: true, PK: 2},
		{Name: "first", Type: "CHARACTER VARYING(100)", Logical: engine.Text, NotNull: true, PK: 1},
		{Name: "born", Type: "TIMESTAMP WITH TIME ZONE", Logical: engine.Time, NotNull: true},
	}
	if !reflect.DeepEqual(authors.Columns, wantAuthors) || authors.Indexes != nil {
		t.Errorf("Authors: %+v\nwant columns %+v and no index", authors, wantAuthors)
	}
	// The defaults work for writers other than tandem.
	if _, err := a.Write.Exec(`INSERT INTO books (isbn) VALUES ('x')`); err != nil {
		t.Fatal(err)
	}
	var title, shelf string
	var price, rating float64
	var pages int64
	var cover []byte
	var inPrint, out bool
	err = a.Read.QueryRow(`SELECT title, price, rating, pages, cover, in_print, "out", shelf FROM books`).Scan(&title, &price, &rating, &pages, &cover, &inPrint, &out, &shelf)
	if err != nil || title != `it's \ untitled` || price != 1e300 || rating != -2.5 || pages != -7 || string(cover) != "y" || !inPrint || out || shelf != "" {
		t.Errorf("defaults: %q %v %v %v %q %v %v %q, %v", title, price, rating, pages, cover, inPrint, out, shelf, err)
	}

	// A column of another collation than tandem's "C" shows it: its keys
	// order otherwise, so verify must not compare ranges of them.
	for _, q := range []string{`ALTER TABLE books ALTER shelf TYPE VARCHAR(10) COLLATE "POSIX"`, `CREATE TABLE legacy (k TEXT PRIMARY KEY, n BIGINT)`} {
		if _, err := b.Write.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	if tb, err = eng.Tables(ctx, b.Read); err != nil {
		t.Fatal(err)
	}
	if got := tb[2].Columns[11]; got.Type != `CHARACTER VARYING(10) COLLATE "POSIX"` || got.Logical != engine.Text {
		t.Errorf("shelf with another collation: %s (%v)", got.Type, got.Logical)
	}
	if got := tb[3].Columns[0]; tb[3].Name != "legacy" || got.Type != `TEXT COLLATE "default"` || got.Logical != engine.Text {
		t.Errorf("a text column of the database's default collation: %s %s (%v)", tb[3].Name, got.Type, got.Logical)
	}
}

func (s server) testUpsert(t *testing.T) {
	c := open(t, s.database(t))
	users := &engine.Table{
		Name: "users",
		Columns: []engine.Column{
			{Name: "id", Type: engine.Integer, NotNull: true},
			{Name: "email", Type: engine.Text, Size: 50, NotNull: true},
			{Name: "name", Type: engine.Text},
		},
		PK:      []string{"id"},
		Indexes: []engine.Index{{Name: "users_email_key", Unique: true, Columns: []string{"email"}}},
	}
	pairs := &engine.Table{ // every column is a key column
		Name: "pairs",
		Columns: []engine.Column{
			{Name: "a", Type: engine.Integer, NotNull: true},
			{Name: "b", Type: engine.Text, Size: 10, NotNull: true},
		},
		PK:      []string{"a", "b"},
		Indexes: []engine.Index{{Name: "pairs_a_key", Unique: true, Columns: []string{"a"}}},
	}
	create(t, c.Write, users, pairs)
	db := c.Write
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	state := func(tb *engine.Table) string {
		t.Helper()
		rows, err := db.Query("SELECT * FROM " + tb.Name + " ORDER BY 1")
		must(err)
		defer rows.Close()
		var out []string
		for rows.Next() {
			vals := make([]sql.NullString, len(tb.Columns))
			ptrs := make([]any, len(vals))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			must(rows.Scan(ptrs...))
			var f []string
			for _, v := range vals {
				f = append(f, v.String)
			}
			out = append(out, strings.Join(f, ","))
		}
		must(rows.Err())
		return strings.Join(out, " ")
	}
	refused := func(err error, index string) {
		t.Helper()
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "23505" || pe.ConstraintName != index {
			t.Fatalf("got %v, want a unique violation (SQLSTATE 23505) of %s", err, index)
		}
		if eng.Retryable(err) {
			t.Errorf("a unique violation is Retryable: %v", err)
		}
	}

	must(upsert(db, users, int64(1), "a@x", "Ann"))
	must(upsert(db, users, int64(2), "b@x", "Bob"))
	must(upsert(db, users, int64(1), "a@x", "Anne")) // replaces
	must(upsert(db, users, int64(1), "a2@x", nil))   // replaces the unique column too
	must(upsert(db, users, int64(1), "a2@x", nil))   // the same row again
	if got, want := state(users), "1,a2@x, 2,b@x,Bob"; got != want {
		t.Fatalf("users: %s, want %s", got, want)
	}
	// A new key whose email is row 2's is refused, not an update of row 2.
	refused(upsert(db, users, int64(3), "b@x", "Eve"), "users_email_key")
	// Row 1 taking row 2's email.
	refused(upsert(db, users, int64(1), "b@x", "Eve"), "users_email_key")
	if got, want := state(users), "1,a2@x, 2,b@x,Bob"; got != want {
		t.Fatalf("after refused writes, users: %s, want %s", got, want)
	}

	must(upsert(db, pairs, int64(1), "x"))
	must(upsert(db, pairs, int64(1), "x")) // the same row again
	refused(upsert(db, pairs, int64(1), "y"), "pairs_a_key")
	if got, want := state(pairs), "1,x"; got != want {
		t.Fatalf("pairs: %s, want %s", got, want)
	}
}

// insertAuto inserts a row of tb without its auto column and returns the id.
func insertAuto(t *testing.T, db *sql.DB, tb *engine.Table, row ...any) int64 {
	t.Helper()
	q, returning := eng.InsertAuto(tb)
	if !returning {
		t.Fatalf("InsertAuto(%s): not returning, want RETURNING", tb.Name)
	}
	var id int64
	if err := db.QueryRow(q, row...).Scan(&id); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return id
}

func autoTable(name string) *engine.Table {
	return &engine.Table{
		Name: name,
		Columns: []engine.Column{
			{Name: "ID", Type: engine.Integer, NotNull: true, Auto: true},
			{Name: "name", Type: engine.Text},
		},
		PK: []string{"ID"},
	}
}

func (s server) testInsertAuto(t *testing.T) {
	c := open(t, s.database(t))
	items := autoTable("items")
	bare := &engine.Table{Name: "bare", Columns: []engine.Column{{Name: "id", Type: engine.Integer, NotNull: true, Auto: true}}, PK: []string{"id"}}
	create(t, c.Write, items, bare)
	for want := int64(1); want <= 3; want++ {
		if id := insertAuto(t, c.Write, items, fmt.Sprint("item ", want)); id != want {
			t.Fatalf("InsertAuto gave id %d, want %d", id, want)
		}
	}
	if got := read(t, c.Read, items, int64(2))[1]; got != "item 2" {
		t.Errorf("row 2: %v", got)
	}
	if id := insertAuto(t, c.Write, bare); id != 1 {
		t.Fatalf("first id of a table with only the id: %d", id)
	}
	// A secondary receives ids explicitly, 0 too.
	if err := upsert(c.Write, items, int64(0), "zero"); err != nil {
		t.Fatal(err)
	}
	if got := read(t, c.Read, items, int64(0))[1]; got != "zero" {
		t.Errorf("row 0: %v", got)
	}
}

// nextAuto is the id the next InsertAuto on tb would get, found by
// inserting a row and deleting it again.
func nextAuto(t *testing.T, db *sql.DB, tb *engine.Table) int64 {
	t.Helper()
	id := insertAuto(t, db, tb, "probe")
	if _, err := db.Exec("DELETE FROM "+eng.Quote(tb.Name)+" WHERE "+eng.Quote(tb.PK[0])+" = $1", id); err != nil {
		t.Fatal(err)
	}
	return id
}

func (s server) testSyncAuto(t *testing.T) {
	c := open(t, s.database(t))
	ctx := context.Background()
	items, empty := autoTable("Items"), autoTable("empty items")
	create(t, c.Write, items, empty)
	sync := func(q engine.Execer, tb *engine.Table) {
		t.Helper()
		if err := eng.SyncAuto(ctx, q, tb); err != nil {
			t.Fatalf("SyncAuto(%s): %v", tb.Name, err)
		}
	}

	// A table never written: the next id stays 1.
	sync(c.Write, empty)
	sync(c.Write, empty)
	if id := insertAuto(t, c.Write, empty, "first"); id != 1 {
		t.Errorf("after SyncAuto on an empty table, the first id is %d, want 1", id)
	}

	// Rows written with explicit ids, as a secondary receives them.
	for id := int64(1); id <= 100; id++ {
		if err := upsert(c.Write, items, id, "explicit"); err != nil {
			t.Fatal(err)
		}
	}
	tx, err := c.Write.Begin()
	if err != nil {
		t.Fatal(err)
	}
	sync(tx, items)
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if id := nextAuto(t, c.Write, items); id < 101 {
		t.Fatalf("after explicit ids 1..100 and SyncAuto, the next id is %d, want 101 or more", id)
	}
	// The sequence never moves back: not after the top rows are deleted,
	// not when SyncAuto runs again.
	if _, err := c.Write.Exec(`DELETE FROM "Items" WHERE "ID" > 50`); err != nil {
		t.Fatal(err)
	}
	before := nextAuto(t, c.Write, items)
	sync(c.Write, items)
	sync(c.Write, items)
	if id := nextAuto(t, c.Write, items); id <= before {
		t.Fatalf("SyncAuto moved the sequence back: next id %d after %d", id, before)
	}
	// A table without an auto column: nothing to do.
	sync(c.Write, &everyType)
}

func (s server) testLock(t *testing.T) {
	c := open(t, s.database(t))
	begin := func(ctx context.Context, exclusive bool) (*sql.Tx, error) {
		tx, err := c.Write.BeginTx(ctx, nil)
		if err != nil {
			return nil, err
		}
		if err := eng.Lock(ctx, tx, exclusive); err != nil {
			tx.Rollback()
			return nil, err
		}
		return tx, nil
	}
	short := func(exclusive bool) error {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		tx, err := begin(ctx, exclusive)
		if err == nil {
			tx.Rollback()
		}
		return err
	}
	// waits starts taking the lock, checks that it is still waiting while
	// the holder holds it, then releases the holder and expects the lock.
	waits := func(holder *sql.Tx, exclusive bool) {
		t.Helper()
		done := make(chan error, 1)
		go func() {
			tx, err := begin(context.Background(), exclusive)
			if err == nil {
				err = tx.Commit()
			}
			done <- err
		}()
		select {
		case err := <-done:
			t.Fatalf("took the lock (exclusive %v) while it was held: %v", exclusive, err)
		case <-time.After(500 * time.Millisecond):
		}
		if err := holder.Commit(); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatalf("after the holder released the lock: %v", err)
		}
	}
	ctx := context.Background()

	s1, err := begin(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := begin(ctx, false)
	if err != nil {
		t.Fatalf("a second shared holder: %v", err)
	}
	if err := s2.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := short(true); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("exclusive while shared is held: %v, want to wait until the deadline", err)
	}
	waits(s1, true)

	x, err := begin(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := short(false); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("shared while exclusive is held: %v, want to wait until the deadline", err)
	}
	if err := short(true); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("exclusive while exclusive is held: %v, want to wait until the deadline", err)
	}
	waits(x, false)

	// The lock ends with its transaction, rolled back too.
	r, err := begin(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Rollback(); err != nil {
		t.Fatal(err)
	}
	if err := short(true); err != nil {
		t.Fatalf("exclusive after the holder rolled back: %v", err)
	}
	// Each database has its own lock.
	other := open(t, s.database(t))
	x, err = begin(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Rollback()
	otx, err := other.Write.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer otx.Rollback()
	octx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := eng.Lock(octx, otx, true); err != nil {
		t.Fatalf("exclusive on another database while this one's is held: %v", err)
	}
}

func (s server) testRetryable(t *testing.T) {
	c := open(t, s.database(t))
	tb := &engine.Table{Name: "t", Columns: []engine.Column{{Name: "id", Type: engine.Integer, NotNull: true}, {Name: "v", Type: engine.Integer}}, PK: []string{"id"}}
	create(t, c.Write, tb)
	for id := int64(1); id <= 2; id++ {
		if err := upsert(c.Write, tb, id, id); err != nil {
			t.Fatal(err)
		}
	}
	lock := func(tx *sql.Tx, id int64) error {
		var v int64
		return tx.QueryRow("SELECT v FROM t WHERE id = $1"+eng.RowLock(), id).Scan(&v)
	}
	begin := func(opts *sql.TxOptions) *sql.Tx {
		tx, err := c.Write.BeginTx(context.Background(), opts)
		if err != nil {
			t.Fatal(err)
		}
		return tx
	}

	// Two transactions each lock a row the other then asks for: whichever
	// asks second closes the cycle, and the server picks a victim, whose
	// error ends its transaction and frees its locks for the survivor.
	tx1, tx2 := begin(nil), begin(nil)
	if err := lock(tx1, 1); err != nil {
		t.Fatal(err)
	}
	if err := lock(tx2, 2); err != nil {
		t.Fatal(err)
	}
	type result struct {
		tx  *sql.Tx
		err error
	}
	results := make(chan result, 2)
	go func() { results <- result{tx1, lock(tx1, 2)} }()
	go func() { results <- result{tx2, lock(tx2, 1)} }()
	victim, survivor := <-results, <-results
	if victim.err == nil {
		victim, survivor = survivor, victim
	}
	victim.tx.Rollback()
	if survivor.err != nil {
		t.Fatalf("deadlock: %v, %v; want exactly one victim", victim.err, survivor.err)
	}
	if err := survivor.tx.Commit(); err != nil {
		t.Fatal(err)
	}
	var pe *pgconn.PgError
	if !errors.As(victim.err, &pe) || pe.Code != "40P01" || !eng.Retryable(victim.err) {
		t.Fatalf("the deadlock victim's error %v: want SQLSTATE 40P01, Retryable", victim.err)
	}

	// A serialization failure: an update of a row another transaction
	// changed since this one's snapshot.
	rr := begin(&sql.TxOptions{Isolation: sql.LevelRepeatableRead})
	defer rr.Rollback()
	var v int64
	if err := rr.QueryRow("SELECT v FROM t WHERE id = 1").Scan(&v); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write.Exec("UPDATE t SET v = v + 1 WHERE id = 1"); err != nil {
		t.Fatal(err)
	}
	_, err := rr.Exec("UPDATE t SET v = 0 WHERE id = 1")
	if !errors.As(err, &pe) || pe.Code != "40001" || !eng.Retryable(err) {
		t.Fatalf("serialization failure %v: want SQLSTATE 40001, Retryable", err)
	}

	// Other errors are not.
	err = upsert(c.Write, tb, "x", nil)
	if err == nil || eng.Retryable(err) {
		t.Errorf("a bad value: %v, Retryable %v", err, eng.Retryable(err))
	}
	if eng.Retryable(nil) || eng.Retryable(errors.New("40P01")) || eng.Retryable(context.DeadlineExceeded) {
		t.Error("Retryable of errors that are not the server's")
	}
}

func (s server) testChecksum(t *testing.T) {
	dsn := s.database(t)
	c := open(t, dsn)
	ctx := context.Background()
	plain, err := eng.OpenPlain(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	table := func(name string) *engine.Table {
		tb := everyType
		tb.Name = name
		return &tb
	}
	at := time.Date(2024, 2, 29, 12, 34, 56, 789012000, time.UTC)
	rows := [][]any{
		{int64(1), int64(math.MinInt64), -0.0, "", "long", []byte{}, []byte{0, 1}, true, at},
		{int64(2), int64(math.MaxInt64), math.Inf(1), "a ", "", []byte{0xff}, []byte{}, false, at.Add(time.Microsecond)},
		{int64(3), nil, nil, nil, nil, nil, nil, nil, nil},
		{int64(4), int64(1), 1.0, "1", "(1,\"\")", []byte("1"), nil, nil, time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)},
		{int64(5), int64(0), 5e-324, "😀", "é", nil, []byte("x"), true, at},
	}
	sum := func(db *sql.DB, tb string) (n, sum int64) {
		t.Helper()
		cols := make([]string, len(everyType.Columns))
		for i, col := range everyType.Columns {
			cols[i] = eng.Stored(eng.Quote(col.Name))
		}
		if err := db.QueryRow("SELECT count(*), "+eng.Checksum(cols)+" FROM "+eng.Quote(tb)).Scan(&n, &sum); err != nil {
			t.Fatalf("checksum of %s: %v", tb, err)
		}
		return n, sum
	}
	fill := func(db *sql.DB, tb *engine.Table, order []int) {
		t.Helper()
		create(t, db, tb)
		for _, i := range order {
			if err := upsert(db, tb, rows[i]...); err != nil {
				t.Fatal(err)
			}
		}
	}
	fill(c.Write, table("a"), []int{0, 1, 2, 3, 4})
	fill(c.Write, table("b"), []int{4, 2, 0, 3, 1})
	na, sa := sum(plain, "a")
	nb, sb := sum(plain, "b")
	if na != 5 || nb != 5 || sa != sb {
		t.Fatalf("same rows in another order: %d rows, sum %d against %d rows, sum %d; want equal", na, sa, nb, sb)
	}
	if sa == 0 {
		t.Errorf("checksum of 5 rows is 0")
	}

	// One value differs: the sum does.
	changes := []struct {
		col int
		v   any
	}{{1, int64(math.MaxInt64 - 1)}, {2, 0.0}, {3, "a"}, {4, nil}, {5, []byte{0xfe}}, {6, nil}, {7, true}, {8, at.Add(2 * time.Microsecond)}}
	for _, ch := range changes {
		row := append([]any(nil), rows[1]...)
		row[ch.col] = ch.v
		if err := upsert(c.Write, table("b"), row...); err != nil {
			t.Fatal(err)
		}
		if _, sb := sum(plain, "b"); sb == sa {
			t.Errorf("column %s changed from %v to %v: the checksum did not change", everyType.Columns[ch.col].Name, rows[1][ch.col], ch.v)
		}
	}
	if err := upsert(c.Write, table("b"), rows[1]...); err != nil {
		t.Fatal(err)
	}
	if _, sb := sum(plain, "b"); sb != sa {
		t.Fatalf("the row restored: sums %d and %d", sa, sb)
	}

	// NULL and '' differ, in any column of text or bytes.
	for _, col := range []int{3, 4, 5, 6} {
		x, y := table(fmt.Sprint("null", col)), table(fmt.Sprint("empty", col))
		row := make([]any, len(everyType.Columns))
		row[0] = int64(1)
		fill(c.Write, x, nil)
		fill(c.Write, y, nil)
		if err := upsert(c.Write, x, row...); err != nil {
			t.Fatal(err)
		}
		if everyType.Columns[col].Type == engine.Text {
			row[col] = ""
		} else {
			row[col] = []byte{}
		}
		if err := upsert(c.Write, y, row...); err != nil {
			t.Fatal(err)
		}
		_, sx := sum(plain, x.Name)
		_, sy := sum(plain, y.Name)
		if sx == sy {
			t.Errorf("column %s: NULL and empty give one checksum", everyType.Columns[col].Name)
		}
	}

	// An empty table.
	fill(c.Write, table("empty"), nil)
	if n, s := sum(plain, "empty"); n != 0 || s != 0 {
		t.Errorf("empty table: %d rows, sum %d; want 0, 0", n, s)
	}

	// Equal rows give equal sums on every database of the engine, whatever
	// its settings for the text forms of values, and rows a bit apart
	// still differ there.
	for _, set := range []string{"TimeZone = 'Pacific/Chatham'", "DateStyle = 'SQL, DMY'",
		"extra_float_digits = -15", "bytea_output = 'escape'", "IntervalStyle = 'sql_standard'"} {
		t.Run(set, func(t *testing.T) {
			other := s.database(t)
			cfg, err := pgx.ParseConfig(other)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Write.Exec("ALTER DATABASE " + eng.Quote(cfg.Database) + " SET " + set); err != nil {
				t.Fatal(err)
			}
			oc := open(t, other)
			fill(oc.Write, table("a"), []int{3, 1, 4, 0, 2})
			oplain, err := eng.OpenPlain(ctx, other)
			if err != nil {
				t.Fatal(err)
			}
			defer oplain.Close()
			if n, so := sum(oplain, "a"); n != 5 || so != sa {
				t.Errorf("the same rows: sum %d, want %d", so, sa)
			}
			// Values a little apart still differ there: a double 1 ulp
			// away, a microsecond later.
			for _, ch := range changes {
				from, to := rows[1][ch.col], ch.v
				if ch.col == 2 {
					from, to = 1.0/3, math.Nextafter(1.0/3, 1)
				}
				row := append([]any(nil), rows[1]...)
				var sums [2]int64
				for i, v := range []any{from, to} {
					row[ch.col] = v
					if err := upsert(oc.Write, table("a"), row...); err != nil {
						t.Fatal(err)
					}
					_, sums[i] = sum(oplain, "a")
				}
				if sums[0] == sums[1] {
					t.Errorf("column %s: %v and %v give one checksum", everyType.Columns[ch.col].Name, from, to)
				}
			}
		})
	}
}

func (s server) testTextKeys(t *testing.T) {
	c := open(t, s.database(t))
	tb := &engine.Table{
		Name:    "words",
		Columns: []engine.Column{{Name: "w", Type: engine.Text, Size: 20, NotNull: true}, {Name: "n", Type: engine.Integer}},
		PK:      []string{"w"},
	}
	create(t, c.Write, tb)
	words := []string{"a", "a ", "A", "", "b", "B", "é", "e", "z", "Z", "😀", "ab", "\u00e9\u0301"}
	for i, w := range words {
		if err := upsert(c.Write, tb, w, int64(i)); err != nil {
			t.Fatalf("write %q: %v", w, err)
		}
	}
	var n int
	if err := c.Read.QueryRow("SELECT count(*) FROM words").Scan(&n); err != nil || n != len(words) {
		t.Fatalf("%d rows (%v), want %d: every word a key of its own", n, err, len(words))
	}
	rows, err := c.Read.Query("SELECT w FROM words ORDER BY w")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var w string
		if err := rows.Scan(&w); err != nil {
			t.Fatal(err)
		}
		got = append(got, w)
	}
	rows.Close()
	want := []string{"", "A", "B", "Z", "a", "a ", "ab", "b", "e", "z", "é", "\u00e9\u0301", "😀"} // byte order
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ORDER BY gives %q, want byte order %q", got, want)
	}
	// Key ranges compare byte by byte too: 'Z' < 'a' < 'é'.
	var between []string
	rows, err = c.Read.Query("SELECT w FROM words WHERE w > $1 AND w <= $2 ORDER BY w", "Z", "é")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var w string
		if err := rows.Scan(&w); err != nil {
			t.Fatal(err)
		}
		between = append(between, w)
	}
	rows.Close()
	if want := []string{"a", "a ", "ab", "b", "e", "z", "é"}; !reflect.DeepEqual(between, want) {
		t.Errorf("'Z' < w <= 'é' gives %q, want %q", between, want)
	}
	for _, w := range []string{"a", "a "} {
		if got := read(t, c.Read, tb, w); got[0] != w {
			t.Errorf("WHERE w = %q finds %q", w, got[0])
		}
	}
	var nulls, empties int
	if err := upsert(c.Write, tb, "null", nil); err != nil {
		t.Fatal(err)
	}
	c.Read.QueryRow("SELECT count(*) FROM words WHERE n IS NULL").Scan(&nulls)
	c.Read.QueryRow("SELECT count(*) FROM words WHERE w = ''").Scan(&empties)
	if nulls != 1 || empties != 1 {
		t.Errorf("%d NULL and %d empty, want 1 of each: '' is not NULL", nulls, empties)
	}
}

func (s server) testOpen(t *testing.T) {
	dsn := s.database(t)
	ctx := context.Background()
	db, err := eng.OpenPlain(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'").Scan(&n); err != nil || n != 0 {
		t.Fatalf("OpenPlain left %d relations (%v), want none", n, err)
	}
	if tables, err := eng.Tables(ctx, db); err != nil || len(tables) != 0 {
		t.Errorf("Tables of an empty database: %+v, %v", tables, err)
	}

	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	wrong := strings.Replace(dsn, ":"+cfg.Password+"@", ":wrong"+secret+"@", 1)
	if _, err := eng.Open(ctx, wrong); err == nil || strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), cfg.Password) {
		t.Errorf("Open with a wrong password: %v", err)
	}
	if _, err := eng.OpenPlain(ctx, wrong); err == nil || strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), cfg.Password) {
		t.Errorf("OpenPlain with a wrong password: %v", err)
	}
	// A server that is not there: the error names the address, not the password.
	down := strings.Replace(dsn, s.Addr(), "127.0.0.1:1", 1)
	if _, err := eng.Open(ctx, down); err == nil || strings.Contains(err.Error(), cfg.Password) {
		t.Errorf("Open of a closed port: %v", err)
	}
}

// TestRegisteredAsPostgres: importing the package is what a program does to
// open datasources with driver "postgres".
func TestRegisteredAsPostgres(t *testing.T) {
	e, ok := engine.Lookup("postgres")
	if !ok || e != (postgres.Engine{}) || e.Name() != "postgres" {
		t.Fatalf(`engine.Lookup("postgres") = %#v, %v; want postgres.Engine{}`, e, ok)
	}
}
