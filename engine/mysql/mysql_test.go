package mysql_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/tandemdb/tandem/engine"
	tmysql "github.com/tandemdb/tandem/engine/mysql"
	"github.com/tandemdb/tandem/internal/dbserver"
)

var eng tmysql.Engine

const secret = "s3cretPW"

func TestResolveDSN(t *testing.T) {
	good := []struct {
		name, dsn string
		want      []string // substrings of the resolved DSN
	}{
		{"tcp", "tandem:" + secret + "@tcp(127.0.0.1:3306)/app",
			[]string{"tandem:" + secret + "@tcp(127.0.0.1:3306)/app?", "parseTime=true", "collation=utf8mb4_bin",
				"time_zone=%27%2B00%3A00%27", "tx_isolation=%27READ-COMMITTED%27", "sql_mode=%27STRICT_ALL_TABLES", "collation_connection=%27utf8mb4_nopad_bin%27", "interpolateParams=true"}},
		{"default port", "tandem:" + secret + "@tcp(db.example)/app", []string{"@tcp(db.example:3306)/app?"}},
		{"unix socket", "tandem:" + secret + "@unix(/run/mysqld/mysqld.sock)/app", []string{"@unix(/run/mysqld/mysqld.sock)/app?"}},
		{"no password", "tandem@tcp(h:1)/app", []string{"tandem@tcp(h:1)/app?"}},
		{"password with / @ : and ?", "tandem:p/a@s:s?w@tcp(h:1)/app", []string{"tandem:p/a@s:s?w@tcp(h:1)/app?"}},
		{"connection options kept", "tandem:" + secret + "@tcp(h:1)/app?timeout=5s&readTimeout=30s&tls=skip-verify&rejectReadOnly=true&compress=true",
			[]string{"timeout=5s", "readTimeout=30s", "tls=skip-verify", "rejectReadOnly=true", "compress=true"}},
		{"interpolateParams", "tandem:" + secret + "@tcp(h:1)/app?interpolateParams=true", []string{"interpolateParams=true"}},
		{"session timeout", "tandem:" + secret + "@tcp(h:1)/app?innodb_lock_wait_timeout=10", []string{"innodb_lock_wait_timeout=10"}},
		{"tandem's own values", "tandem:" + secret + "@tcp(h:1)/app?parseTime=true&loc=UTC&charset=utf8mb4&collation=utf8mb4_bin&time_zone=%27%2B00:00%27&tx_isolation=%27read-committed%27",
			[]string{"parseTime=true"}},
	}
	for _, c := range good {
		t.Run(c.name, func(t *testing.T) {
			got, err := eng.ResolveDSN(c.dsn, "/ignored")
			if err != nil {
				t.Fatalf("ResolveDSN(%q): %v", eng.Redact(c.dsn), err)
			}
			for _, w := range c.want {
				if !strings.Contains(got, w) {
					t.Errorf("ResolveDSN(%q) = %q, want it to hold %q", eng.Redact(c.dsn), eng.Redact(got), w)
				}
			}
			again, err := eng.ResolveDSN(got, "")
			if err != nil || again != got {
				t.Errorf("resolving again gives %q, %v; want the same DSN", eng.Redact(again), err)
			}
		})
	}

	bad := []struct{ name, dsn, want string }{
		{"empty", "", "no database name"},
		{"no database", "tandem:" + secret + "@tcp(h:1)/", "no database name"},
		{"no slash", "tandem:" + secret + "@tcp(h:1)", "cannot parse the DSN tandem:xxxxx@tcp(h:1)"},
		{"a URL", "mysql://tandem:" + secret + "@h:1/app", "not a URL"},
		{"password with / and no database", "tandem:" + secret + "/x@tcp(h:1)", "cannot parse"},
		{"unknown network", "tandem:" + secret + "@bogus(h:1)/app", "unknown network"},
		{"bad port", "tandem:" + secret + "@tcp(h:99999)/app", "invalid address"},
		{"bad host", "tandem:" + secret + "@tcp([)/app", "invalid address"},
		{"unterminated address", "tandem:" + secret + "@tcp(h:1/app", "cannot parse"},
		{"multiStatements", "tandem:" + secret + "@tcp(h:1)/app?multiStatements=true", "multiStatements=true"},
		{"interpolateParams off", "tandem:" + secret + "@tcp(h:1)/app?interpolateParams=false", "interpolateParams=false: tandem sends values inside"},
		{"allowAllFiles", "tandem:" + secret + "@tcp(h:1)/app?allowAllFiles=true", "allowAllFiles=true"},
		{"clientFoundRows", "tandem:" + secret + "@tcp(h:1)/app?clientFoundRows=true", "RowsAffected"},
		{"columnsWithAlias", "tandem:" + secret + "@tcp(h:1)/app?columnsWithAlias=true", "columnsWithAlias"},
		{"parseTime off", "tandem:" + secret + "@tcp(h:1)/app?parseTime=false", "parseTime=false"},
		{"local time", "tandem:" + secret + "@tcp(h:1)/app?loc=Local", "UTC"},
		{"timeTruncate", "tandem:" + secret + "@tcp(h:1)/app?timeTruncate=1s", "timeTruncate"},
		{"strict, which panics the driver", "tandem:" + secret + "@tcp(h:1)/app?strict=true", "option strict"},
		{"latin1", "tandem:" + secret + "@tcp(h:1)/app?charset=latin1", "utf8mb4"},
		{"case-insensitive collation", "tandem:" + secret + "@tcp(h:1)/app?collation=utf8mb4_general_ci", "collation"},
		{"time zone", "tandem:" + secret + "@tcp(h:1)/app?time_zone=%27SYSTEM%27", "tandem sets time_zone itself"},
		{"lax sql_mode", "tandem:" + secret + "@tcp(h:1)/app?sql_mode=%27%27", "tandem sets sql_mode itself"},
		{"repeatable read", "tandem:" + secret + "@tcp(h:1)/app?tx_isolation=%27REPEATABLE-READ%27", "tandem sets tx_isolation itself"},
		{"MySQL 8's isolation variable", "tandem:" + secret + "@tcp(h:1)/app?transaction_isolation=%27READ-COMMITTED%27", "tandem sets transaction_isolation itself"},
		{"unknown session variable", "tandem:" + secret + "@tcp(h:1)/app?autocommit=0", `unknown option "autocommit"`},
		{"timeout not a number", "tandem:" + secret + "@tcp(h:1)/app?innodb_lock_wait_timeout=x", "want a number of seconds"},
		{"bad bool", "tandem:" + secret + "@tcp(h:1)/app?tls=true&parseTime=maybe", "invalid bool value"},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			got, err := eng.ResolveDSN(c.dsn, "")
			if err == nil {
				t.Fatalf("ResolveDSN(%q) = %q, want an error", eng.Redact(c.dsn), eng.Redact(got))
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("ResolveDSN(%q): %v; want the error to say %q", eng.Redact(c.dsn), err, c.want)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("ResolveDSN: %v: the error holds the password", err)
			}
		})
	}
}

func TestRedact(t *testing.T) {
	cases := []struct{ in, want string }{
		{"tandem:" + secret + "@tcp(127.0.0.1:3306)/app?timeout=5s", "tandem:xxxxx@tcp(127.0.0.1:3306)/app?timeout=5s"},
		{"tandem@tcp(127.0.0.1:3306)/app", "tandem@tcp(127.0.0.1:3306)/app"},
		{"tandem:a@b/c@tcp(h)/app", "tandem:xxxxx@tcp(h)/app"},
		{"tandem:with space@tcp(h)/app", "tandem:xxxxx@tcp(h)/app"},
		{"tandem:" + secret + "/x@tcp(h)", "tandem:xxxxx@tcp(h)"},    // does not parse
		{"tandem:a(b)/" + secret + "@tcp(h)", "tandem:xxxxx@tcp(h)"}, // the driver would find no password
		// Error messages pass unchanged.
		{"Error 1045 (28000): Access denied for user 'tandem'@'127.0.0.1' (using password: YES)",
			"Error 1045 (28000): Access denied for user 'tandem'@'127.0.0.1' (using password: YES)"},
		{"dial tcp 127.0.0.1:3306: connect: connection refused", "dial tcp 127.0.0.1:3306: connect: connection refused"},
		{"read tcp 127.0.0.1:5000->127.0.0.1:3306: i/o timeout", "read tcp 127.0.0.1:5000->127.0.0.1:3306: i/o timeout"},
	}
	for _, c := range cases {
		if got := eng.Redact(c.in); got != c.want {
			t.Errorf("Redact(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	resolved, err := eng.ResolveDSN("tandem:"+secret+"@tcp(h:1)/app", "")
	if err != nil {
		t.Fatal(err)
	}
	if got := eng.Redact(resolved); strings.Contains(got, secret) || !strings.HasPrefix(got, "tandem:xxxxx@tcp(h:1)/app?") {
		t.Errorf("Redact(resolved DSN) = %q", got)
	}
}

// FuzzResolveDSN checks that ResolveDSN never panics, never shows the
// password of a DSN user:password@rest in an error, that Redact hides it
// (unless the DSN holds whitespace and does not parse: Redact passes error
// messages unchanged), and that a resolved DSN resolves to itself.
func FuzzResolveDSN(f *testing.F) {
	f.Add("tandem", "s3cret\x01", "tcp(127.0.0.1:3306)/app")
	f.Add("tandem", "pässwort", "tcp(h)/app?strict=true")
	f.Add("tandem", "pä/ss@w", "tcp(h)")
	f.Add("tandem", "ä(b)/cde", "tcp(h)")
	f.Add("tandem", "pässwort", "unix(/tmp/s)/app?loc=Nowhere&timeout=x")
	f.Add("u", "p@tcp(h)/d?x=ä", "y")
	f.Fuzz(func(t *testing.T, user, pass, rest string) {
		dsn := user + ":" + pass + "@" + rest
		// When the driver parses the DSN, the password is what it reads
		// ("u:x@/y@z" is password x, database y@z).
		password := pass
		if cfg := parseDSN(dsn); cfg != nil {
			password = cfg.Passwd
		}
		// A password is looked for when it is marked (it holds a byte
		// that no message of the engine and no other part of the DSN
		// holds), so that no message holds it by chance:
		// "DSN u:xxxxx@00: invalid" holds the password "00:". The
		// driver splits user and password at the first ':'.
		others := strings.Replace(dsn, password, "", 1)
		marked := false
		for i := 0; i < len(password); i++ {
			if b := password[i]; (b < ' ' || b > '~') && strings.IndexByte(others, b) < 0 {
				marked = true
			}
		}
		checkable := marked && strings.Count(dsn, password) == 1 && !strings.Contains(user, ":")
		out, err := eng.ResolveDSN(dsn, "")
		if checkable {
			if err != nil && strings.Contains(err.Error(), password) {
				t.Fatalf("ResolveDSN(%q): %v: the error holds the password", dsn, err)
			}
			// Text with spaces that does not parse is taken for a message.
			if r := eng.Redact(dsn); strings.Contains(r, password) && !strings.ContainsAny(dsn, " \t\r\n") {
				t.Fatalf("Redact(%q) = %q: holds the password", dsn, r)
			}
		}
		if err != nil {
			return
		}
		again, err := eng.ResolveDSN(out, "")
		if err != nil || again != out {
			t.Fatalf("ResolveDSN(%q) = %q; resolving that gives %q, %v", dsn, out, again, err)
		}
	})
}

// parseDSN is the driver's parse, nil where it fails (or panics).
func parseDSN(dsn string) (cfg *mysql.Config) {
	defer func() {
		if recover() != nil {
			cfg = nil
		}
	}()
	cfg, _ = mysql.ParseDSN(dsn)
	return cfg
}

func TestLimitClause(t *testing.T) {
	cases := []struct {
		limit, offset int
		want          string
	}{
		{-1, 0, ""},
		{10, 0, " LIMIT 10"},
		{10, 5, " LIMIT 10 OFFSET 5"},
		{-1, 5, " LIMIT 18446744073709551615 OFFSET 5"},
		{0, 0, " LIMIT 0"},
	}
	for _, c := range cases {
		if got := eng.LimitClause(c.limit, c.offset); got != c.want {
			t.Errorf("LimitClause(%d, %d) = %q, want %q", c.limit, c.offset, got, c.want)
		}
	}
}

func TestQuoteDoublesBackticks(t *testing.T) {
	if got := eng.Quote("a`b"); got != "`a``b`" {
		t.Errorf("Quote = %s", got)
	}
	if got := eng.Placeholder(3); got != "?" {
		t.Errorf("Placeholder(3) = %s", got)
	}
}

// server starts a MariaDB server for the test and opens databases on it.
type server struct {
	*dbserver.Server
	t *testing.T
}

func startServer(t *testing.T) server {
	t.Parallel()
	return server{dbserver.Start(t, dbserver.MariaDB), t}
}

// resolved creates database name (if needed) and returns its resolved DSN.
func (s server) resolved(name string, params ...string) string {
	s.t.Helper()
	s.CreateDatabase(s.t, name)
	dsn := s.DSN(name, "")
	if len(params) > 0 {
		dsn += "?" + strings.Join(params, "&")
	}
	resolved, err := eng.ResolveDSN(dsn, "")
	if err != nil {
		s.t.Fatal(err)
	}
	return resolved
}

// open creates database name (if needed) and opens it with the engine.
func (s server) open(name string, params ...string) *engine.Conn {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := eng.Open(ctx, s.resolved(name, params...))
	if err != nil {
		s.t.Fatalf("open %s: %v", name, err)
	}
	s.t.Cleanup(func() { c.Close() })
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

// upsert writes a row of tb, passing each value through Value.
func upsert(db interface {
	Exec(string, ...any) (sql.Result, error)
}, tb *engine.Table, row ...any) error {
	args := make([]any, len(row))
	for i, v := range row {
		a, err := eng.Value(&tb.Columns[i], v)
		if err != nil {
			return fmt.Errorf("column %s: %w", tb.Columns[i].Name, err)
		}
		args[i] = a
	}
	_, err := db.Exec(eng.Upsert(tb), args...)
	return err
}

// read returns the row of tb with key id, through Scan. With args, the
// driver reads it in the binary protocol; without, in the text protocol.
func read(t *testing.T, db *sql.DB, tb *engine.Table, id int64, binary bool) []any {
	t.Helper()
	cols := make([]string, len(tb.Columns))
	for i := range tb.Columns {
		cols[i] = eng.Quote(tb.Columns[i].Name)
	}
	q := "SELECT " + strings.Join(cols, ", ") + " FROM " + eng.Quote(tb.Name) + " WHERE " + eng.Quote(tb.PK[0])
	var rows *sql.Rows
	var err error
	if binary {
		rows, err = db.Query(q+" = ?", id)
	} else {
		rows, err = db.Query(fmt.Sprintf("%s = %d", q, id))
	}
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	if !rows.Next() {
		t.Fatalf("no row %d in %s (%v)", id, tb.Name, rows.Err())
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

func TestValueScanRoundTripThroughTheServer(t *testing.T) {
	s := startServer(t)
	// Values go inside the statement's text (interpolateParams, always on).
	plain := s.open("app")
	create(t, plain.Write, &everyType)

	bigBlob := make([]byte, 1<<20)
	for i := range bigBlob {
		bigBlob[i] = byte(rand.IntN(256))
	}
	allBytes := make([]byte, 50)
	for i := range allBytes {
		allBytes[i] = byte(i * 5)
	}
	type roundTrip struct {
		col  string
		v    any
		want any // when it differs from v
	}
	cases := []roundTrip{
		{col: "i", v: int64(0)}, {col: "i", v: int64(-1)},
		{col: "i", v: int64(math.MinInt64)}, {col: "i", v: int64(math.MaxInt64)},
		{col: "r", v: 0.0}, {col: "r", v: math.Copysign(0, -1), want: 0.0}, // MySQL drops the sign of zero
		{col: "r", v: 1e308}, {col: "r", v: math.MaxFloat64}, {col: "r", v: -math.MaxFloat64},
		{col: "r", v: 5e-324}, {col: "r", v: 2.2250738585072014e-308}, {col: "r", v: 0.1}, {col: "r", v: 1.0 / 3}, {col: "r", v: -math.Pi},
		{col: "s", v: ""}, {col: "s", v: "a "}, {col: "s", v: " a"}, {col: "s", v: "NUL\x00inside"},
		{col: "s", v: strings.Repeat("😀", 50)}, {col: "s", v: `quotes ' " \ backslash`}, {col: "s", v: "日本語\r\n\t"},
		{col: "lt", v: ""}, {col: "lt", v: strings.Repeat("long text 😀 ", 20000)},
		{col: "b", v: []byte{}}, {col: "b", v: []byte{0}}, {col: "b", v: allBytes},
		{col: "lb", v: []byte{}}, {col: "lb", v: bigBlob},
		{col: "bo", v: true}, {col: "bo", v: false},
		{col: "tm", v: time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC)},
		{col: "tm", v: time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC)},
		{col: "tm", v: time.Date(2024, 2, 29, 12, 34, 56, 789012000, time.UTC)},
		{col: "tm", v: time.Date(1970, 1, 1, 0, 0, 0, 1000, time.UTC)},
		{col: "tm", v: time.Date(2024, 7, 1, 2, 0, 0, 0, time.FixedZone("CEST", 7200)), want: time.Date(2024, 7, 1, 0, 0, 0, 0, time.UTC)},
		{col: "tm", v: time.Date(2024, 7, 1, 0, 0, 0, 123456789, time.UTC), want: time.Date(2024, 7, 1, 0, 0, 0, 123456000, time.UTC)},
	}
	for _, col := range everyType.Columns[1:] {
		cases = append(cases, roundTrip{col: col.Name, v: nil})
	}
	for _, conn := range []*engine.Conn{plain} {
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
			if err := upsert(conn.Write, &everyType, row...); err != nil {
				t.Fatalf("write %s = %.40v: %v", c.col, c.v, err)
			}
			want := c.want
			if want == nil {
				want = c.v
			}
			for _, binary := range []bool{true, false} {
				got := read(t, conn.Read, &everyType, id, binary)[ci]
				if !reflect.DeepEqual(got, want) {
					t.Errorf("%s: wrote %T %.60v, read back %T %.60v (binary protocol %v)", c.col, c.v, c.v, got, got, binary)
				}
				if f, ok := want.(float64); ok && math.Float64bits(f) != math.Float64bits(got.(float64)) {
					t.Errorf("%s: wrote %v, read back %v: different bits", c.col, f, got)
				}
			}
		}
	}
}

func TestValueRefusesWhatMySQLCannotStore(t *testing.T) {
	cases := []struct {
		typ  engine.Type
		v    any
		want string
	}{
		{engine.Real, math.NaN(), "NaN cannot be stored"},
		{engine.Real, math.Inf(1), "+Inf cannot be stored"},
		{engine.Real, math.Inf(-1), "-Inf cannot be stored"},
		{engine.Text, "bad \xff utf-8", "not valid UTF-8"},
		{engine.Time, time.Date(999, 12, 31, 23, 59, 59, 0, time.UTC), "year 999 cannot be stored: MySQL's DATETIME holds years 1000 to 9999"},
		{engine.Time, time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), "year 10000"},
		{engine.Time, time.Date(1000, 1, 1, 0, 30, 0, 0, time.FixedZone("", 3600)), "year 999"}, // 999 in UTC
	}
	for _, c := range cases {
		_, err := eng.Value(&engine.Column{Name: "c", Type: c.typ}, c.v)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Value(%v) = %v, want an error saying %q", c.v, err, c.want)
		}
	}
}

func TestTextKeysCompareByteByByte(t *testing.T) {
	s := startServer(t)
	c := s.open("app")
	tb := &engine.Table{
		Name:    "words",
		Columns: []engine.Column{{Name: "w", Type: engine.Text, Size: 20, NotNull: true}, {Name: "n", Type: engine.Integer}},
		PK:      []string{"w"},
	}
	create(t, c.Write, tb)
	words := []string{"a", "a ", "A", "", "b", "B", "é", "e", "z", "😀", "\x00", "ab"}
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
		rows.Scan(&w)
		got = append(got, w)
	}
	rows.Close()
	want := []string{"", "\x00", "A", "B", "a", "a ", "ab", "b", "e", "z", "é", "😀"} // code point order
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ORDER BY gives %q, want byte order %q", got, want)
	}
	var one string
	if err := c.Read.QueryRow("SELECT w FROM words WHERE w = ?", "a").Scan(&one); err != nil || one != "a" {
		t.Errorf("WHERE w = 'a' finds %q, %v", one, err)
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

// schemaTables is a definition using every type, defaults of every kind,
// a composite key and indexes.
func schemaTables() []*engine.Table {
	return []*engine.Table{
		{
			Name: "books",
			Columns: []engine.Column{
				{Name: "id", Type: engine.Integer, NotNull: true, Auto: true},
				{Name: "isbn", Type: engine.Text, Size: 13, NotNull: true},
				{Name: "title", Type: engine.Text, NotNull: true, Default: "'it''s \\ untitled'"},
				{Name: "price", Type: engine.Real, Default: "1e+300"},
				{Name: "rating", Type: engine.Real, NotNull: true, Default: "-2.5"},
				{Name: "pages", Type: engine.Integer, NotNull: true, Default: "-7"},
				{Name: "cover", Type: engine.Blob},
				{Name: "thumb", Type: engine.Blob, Size: 100},
				{Name: "in_print", Type: engine.Bool, Default: "1"},
				{Name: "out", Type: engine.Bool, NotNull: true, Default: "0"},
				{Name: "published", Type: engine.Time},
				{Name: "shelf", Type: engine.Text, Size: 10, Default: "''"},
			},
			PK: []string{"id"},
			Indexes: []engine.Index{
				{Name: "books_isbn_key", Unique: true, Columns: []string{"isbn"}},
				{Name: "books_shelf_idx", Columns: []string{"shelf", "published"}},
			},
		},
		{
			Name: "Authors", // upper case sorts first
			Columns: []engine.Column{
				{Name: "last", Type: engine.Text, Size: 100, NotNull: true},
				{Name: "first", Type: engine.Text, Size: 100, NotNull: true},
				{Name: "born", Type: engine.Time, NotNull: true},
			},
			PK: []string{"last", "first"},
		},
	}
}

func TestCreateTableAndTablesRoundTrip(t *testing.T) {
	s := startServer(t)
	a, b := s.open("a"), s.open("b")
	create(t, a.Write, schemaTables()...)
	create(t, a.Write, schemaTables()...) // a second time does nothing
	create(t, b.Write, schemaTables()...)
	// Bookkeeping tables are left out; _TANDEM_ is not tandem's.
	for _, q := range []string{"CREATE TABLE _tandem_x (id INT PRIMARY KEY)", "CREATE TABLE `_TANDEM_y` (id INT PRIMARY KEY)", "CREATE TABLE xtandem_z (id INT PRIMARY KEY)"} {
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
		{Name: "id", Type: "BIGINT AUTO_INCREMENT", Logical: engine.Integer, NotNull: true, PK: 1},
		{Name: "isbn", Type: "VARCHAR(13)", Logical: engine.Text, NotNull: true},
		{Name: "title", Type: "LONGTEXT", Logical: engine.Text, NotNull: true, Default: "'it''s \\ untitled'"},
		{Name: "price", Type: "DOUBLE", Logical: engine.Real, Default: "1e+300"},
		{Name: "rating", Type: "DOUBLE", Logical: engine.Real, NotNull: true, Default: "-2.5"},
		{Name: "pages", Type: "BIGINT", Logical: engine.Integer, NotNull: true, Default: "-7"},
		{Name: "cover", Type: "LONGBLOB", Logical: engine.Blob},
		{Name: "thumb", Type: "VARBINARY(100)", Logical: engine.Blob},
		{Name: "in_print", Type: "TINYINT(1)", Logical: engine.Bool, Default: "1"},
		{Name: "out", Type: "TINYINT(1)", Logical: engine.Bool, NotNull: true, Default: "0"},
		{Name: "published", Type: "DATETIME(6)", Logical: engine.Time},
		{Name: "shelf", Type: "VARCHAR(10)", Logical: engine.Text, Default: "''"},
	}
	if !reflect.DeepEqual(books.Columns, want) {
		t.Errorf("books columns:\n got %+v\nwant %+v", books.Columns, want)
	}
	// The defaults read back are the literals tandem gave.
	def := schemaTables()[0]
	for i, c := range books.Columns {
		if c.Default != def.Columns[i].Default {
			t.Errorf("column %s: default %q, defined %q", c.Name, c.Default, def.Columns[i].Default)
		}
	}
	wantIdx := []engine.IndexInfo{
		{Name: "books_isbn_key", Unique: true, Columns: []string{"isbn"}},
		{Name: "books_shelf_idx", Columns: []string{"shelf", "published"}},
	}
	if !reflect.DeepEqual(books.Indexes, wantIdx) {
		t.Errorf("books indexes %+v, want %+v", books.Indexes, wantIdx)
	}
	authors := ta[0]
	if authors.Columns[0].PK != 1 || authors.Columns[1].PK != 2 || authors.Columns[2].PK != 0 || authors.Indexes != nil {
		t.Errorf("Authors: %+v", authors)
	}
	// A column of another collation shows it.
	if _, err := b.Write.Exec("ALTER TABLE books MODIFY shelf VARCHAR(10) COLLATE utf8mb4_general_ci DEFAULT ''"); err != nil {
		t.Fatal(err)
	}
	tb, err = eng.Tables(ctx, b.Read)
	if err != nil {
		t.Fatal(err)
	}
	if got := tb[2].Columns[11].Type; got != "VARCHAR(10) COLLATE UTF8MB4_GENERAL_CI" {
		t.Errorf("shelf with another collation: %s", got)
	}
}

func TestTablesReadsForeignTypes(t *testing.T) {
	s := startServer(t)
	c := s.open("app")
	_, err := c.Write.Exec("CREATE TABLE legacy (id INT UNSIGNED NOT NULL PRIMARY KEY, amount DECIMAL(10,2), f FLOAT, tiny TINYINT, " +
		"kind ENUM('a','B'), d DATE, ts TIMESTAMP(3) NULL, raw BINARY(4), note TEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin, KEY note_prefix (note(10)))")
	if err != nil {
		t.Fatal(err)
	}
	tables, err := eng.Tables(context.Background(), c.Read)
	if err != nil || len(tables) != 1 {
		t.Fatalf("%+v, %v", tables, err)
	}
	got := map[string]string{}
	for _, col := range tables[0].Columns {
		got[col.Name] = col.Type + " " + col.Logical.String()
	}
	want := map[string]string{
		"id": "INT UNSIGNED integer", "amount": "DECIMAL(10,2) text", "f": "FLOAT real", "tiny": "TINYINT integer",
		"kind": "ENUM('a','B') COLLATE UTF8MB4_GENERAL_CI text", "d": "DATE time", "ts": "TIMESTAMP(3) time", "raw": "BINARY(4) blob",
		"note": "TEXT COLLATE UTF8MB4_BIN text",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("types %v, want %v", got, want)
	}
	if x := tables[0].Indexes; len(x) != 1 || x[0].Columns[0] != "note(10)" {
		t.Errorf("prefix index: %+v", x)
	}
	if _, err := c.Write.Exec("INSERT INTO legacy (id, amount, f) VALUES (4294967295, 12.30, 1.5)"); err != nil {
		t.Fatal(err)
	}
	var id, amount, f any
	if err := c.Read.QueryRow("SELECT id, amount, f FROM legacy").Scan(&id, &amount, &f); err != nil {
		t.Fatal(err)
	}
	for _, x := range []struct {
		typ  engine.Type
		raw  any
		want any
	}{{engine.Integer, id, int64(4294967295)}, {engine.Text, amount, "12.30"}, {engine.Real, f, 1.5}} {
		if v, err := eng.Scan(&engine.Column{Name: "x", Type: x.typ}, x.raw); err != nil || v != x.want {
			t.Errorf("Scan(%T %v) = %v, %v; want %v", x.raw, x.raw, v, err, x.want)
		}
	}
}

func TestUpsertInsertsReplacesAndRefusesUniqueViolations(t *testing.T) {
	s := startServer(t)
	c := s.open("app")
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
		return strings.Join(out, " ")
	}
	refused := func(err error) {
		t.Helper()
		var me *mysql.MySQLError
		if !errors.As(err, &me) || string(me.SQLState[:]) != "23000" {
			t.Fatalf("got %v, want an integrity constraint violation (SQLSTATE 23000)", err)
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
	// A new key whose email is row 2's: ON DUPLICATE KEY UPDATE alone would
	// update row 2.
	err := upsert(db, users, int64(3), "b@x", "Eve")
	refused(err)
	t.Logf("unique violation on another row: %v", err)
	// Row 1 taking row 2's email.
	refused(upsert(db, users, int64(1), "b@x", "Eve"))
	if got, want := state(users), "1,a2@x, 2,b@x,Bob"; got != want {
		t.Fatalf("after refused writes, users: %s, want %s", got, want)
	}
	// In a transaction, the refused statement leaves the others alone.
	tx, err := db.Begin()
	must(err)
	must(upsert(tx, users, int64(4), "d@x", "Dan"))
	refused(upsert(tx, users, int64(5), "d@x", "Dup"))
	must(tx.Commit())
	if got, want := state(users), "1,a2@x, 2,b@x,Bob 4,d@x,Dan"; got != want {
		t.Fatalf("users: %s, want %s", got, want)
	}

	// Why Upsert guards: ON DUPLICATE KEY UPDATE alone updates the row
	// the new one collides with on any unique index.
	plain := *users
	plain.Name, plain.Indexes = "users_plain", []engine.Index{{Name: "users_plain_email_key", Unique: true, Columns: []string{"email"}}}
	create(t, db, &plain)
	_, err = db.Exec("INSERT INTO users_plain VALUES (1, 'a@x', 'Ann'), (2, 'b@x', 'Bob')")
	must(err)
	_, err = db.Exec("INSERT INTO users_plain (id, email, name) VALUES (3, 'b@x', 'Eve') ON DUPLICATE KEY UPDATE email = VALUES(email), name = VALUES(name)")
	must(err)
	if got, want := state(&plain), "1,a@x,Ann 2,b@x,Eve"; got != want {
		t.Fatalf("plain ON DUPLICATE KEY UPDATE: %s, want %s (row 2 overwritten)", got, want)
	}

	must(upsert(db, pairs, int64(1), "x"))
	must(upsert(db, pairs, int64(1), "x")) // the same row again
	refused(upsert(db, pairs, int64(1), "y"))
	if got, want := state(pairs), "1,x"; got != want {
		t.Fatalf("pairs: %s, want %s", got, want)
	}
}

func TestInsertAutoAndTheCounterPassesExplicitIds(t *testing.T) {
	s := startServer(t)
	c := s.open("app")
	items := &engine.Table{
		Name: "items",
		Columns: []engine.Column{
			{Name: "id", Type: engine.Integer, NotNull: true, Auto: true},
			{Name: "name", Type: engine.Text},
		},
		PK: []string{"id"},
	}
	bare := &engine.Table{Name: "bare", Columns: []engine.Column{{Name: "id", Type: engine.Integer, NotNull: true, Auto: true}}, PK: []string{"id"}}
	create(t, c.Write, items, bare)
	insert := func(db *sql.DB, tb *engine.Table, args ...any) int64 {
		t.Helper()
		q, returning := eng.InsertAuto(tb)
		if returning {
			t.Fatal("InsertAuto: returning, want LastInsertId")
		}
		res, err := db.Exec(q, args...)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		id, err := res.LastInsertId()
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	if id := insert(c.Write, items, "first"); id != 1 {
		t.Fatalf("first id %d", id)
	}
	if id := insert(c.Write, bare); id != 1 {
		t.Fatalf("first id of a table with only the id: %d", id)
	}
	// A secondary receives ids explicitly; 0 too stays 0.
	for _, id := range []int64{0, 1000, 500} {
		if err := upsert(c.Write, items, id, "explicit"); err != nil {
			t.Fatal(err)
		}
	}
	var zero int
	c.Read.QueryRow("SELECT count(*) FROM items WHERE id = 0").Scan(&zero)
	if zero != 1 {
		t.Fatalf("explicit id 0: %d rows with id 0, want 1 (NO_AUTO_VALUE_ON_ZERO)", zero)
	}
	if id := insert(c.Write, items, "after"); id <= 1000 {
		t.Fatalf("after explicit id 1000, InsertAuto got id %d", id)
	}
	if err := upsert(c.Write, items, int64(2000), "explicit"); err != nil {
		t.Fatal(err)
	}
	// The counter survives a crash: MariaDB persists it (10.2.4 and later).
	c.Close()
	if err := s.Kill(); err != nil {
		t.Fatal(err)
	}
	s.Restart(t)
	c = s.open("app")
	if id := insert(c.Write, items, "after restart"); id <= 2000 {
		t.Fatalf("after explicit id 2000 and a restart, InsertAuto got id %d", id)
	}
}

func TestDeleteCountsDeletedRows(t *testing.T) {
	s := startServer(t)
	c := s.open("app")
	tb := &engine.Table{Name: "t", Columns: []engine.Column{{Name: "id", Type: engine.Integer, NotNull: true}, {Name: "v", Type: engine.Integer}}, PK: []string{"id"}}
	create(t, c.Write, tb)
	if err := upsert(c.Write, tb, int64(1), int64(1)); err != nil {
		t.Fatal(err)
	}
	for _, want := range []int64{1, 0} {
		res, err := c.Write.Exec("DELETE FROM `t` WHERE `id` = ?", int64(1))
		if err != nil {
			t.Fatal(err)
		}
		if n, err := res.RowsAffected(); err != nil || n != want {
			t.Errorf("RowsAffected = %d, %v; want %d", n, err, want)
		}
	}
}

func TestOpenSetsTheSessionAndOpenPlainCreatesNothing(t *testing.T) {
	s := startServer(t)
	s.CreateDatabase(t, "plain")
	dsn, err := eng.ResolveDSN(s.DSN("plain", ""), "")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	db, err := eng.OpenPlain(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'plain'").Scan(&n); err != nil || n != 0 {
		t.Fatalf("OpenPlain left %d tables (%v), want none", n, err)
	}
	var tz, mode, iso, coll string
	if err := db.QueryRow("SELECT @@time_zone, @@sql_mode, @@tx_isolation, @@collation_connection").Scan(&tz, &mode, &iso, &coll); err != nil {
		t.Fatal(err)
	}
	if tz != "+00:00" || !strings.Contains(mode, "STRICT_ALL_TABLES") || !strings.Contains(mode, "NO_AUTO_VALUE_ON_ZERO") ||
		iso != "READ-COMMITTED" || coll != "utf8mb4_nopad_bin" {
		t.Errorf("session: time_zone %s, sql_mode %s, isolation %s, collation %s", tz, mode, iso, coll)
	}
	c := s.open("plain")
	if err := c.Read.QueryRow("SELECT count(*) FROM _tandem_lock").Scan(&n); err != nil || n != 1 {
		t.Fatalf("after Open, _tandem_lock has %d rows (%v), want 1", n, err)
	}
	tables, err := eng.Tables(ctx, c.Read)
	if err != nil || len(tables) != 0 {
		t.Errorf("Tables after Open: %+v, %v; want none (the lock table is tandem's)", tables, err)
	}
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Passwd = "wrong" + secret
	if _, err := eng.Open(ctx, cfg.FormatDSN()); err == nil || strings.Contains(err.Error(), secret) {
		t.Errorf("Open with a wrong password: %v", err)
	}
}

func TestLockSharedHoldersCoexistAndExclusiveWaits(t *testing.T) {
	s := startServer(t)
	c := s.open("app")
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
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			tx, err := begin(ctx, exclusive)
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
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("after the holder released the lock: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("still waiting after the holder released the lock")
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
	// Open does not wait for the lock's holders.
	octx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := eng.Open(octx, s.resolved("app")); err != nil {
		t.Fatalf("Open while the lock is held exclusively: %v", err)
	}
	if err := short(false); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("shared while exclusive is held: %v, want to wait until the deadline", err)
	}
	waits(x, false)
}

func TestCheckTableRefusesWhatMariaDBCannotHold(t *testing.T) {
	s := startServer(t)
	c := s.open("app")
	text := func(name string, size int) engine.Column {
		return engine.Column{Name: name, Type: engine.Text, Size: size, NotNull: true}
	}
	blob := func(name string, size int) engine.Column {
		return engine.Column{Name: name, Type: engine.Blob, Size: size, NotNull: true}
	}
	id := engine.Column{Name: "id", Type: engine.Integer, NotNull: true}
	many := func(n int, col func(i int) engine.Column) []engine.Column {
		cols := []engine.Column{id}
		for i := range n {
			cols = append(cols, col(i))
		}
		return cols
	}
	cases := []struct {
		name string
		t    engine.Table
		want string // "" to accept
		// policy: tandem refuses what MariaDB would accept by changing
		// it: a unique index too long for InnoDB becomes a hash, another
		// index indexes a prefix of the column.
		policy bool
	}{
		{name: "unbounded text key", t: engine.Table{Columns: []engine.Column{text("k", 0)}, PK: []string{"k"}},
			want: `column k is in the primary key but has no size: MySQL indexes text of bounded length only; give it a size, e.g. ` + "`tandem:\"k,size=255\"`"},
		{name: "unbounded blob in a unique index", policy: true,
			t:    engine.Table{Columns: []engine.Column{id, blob("b", 0)}, PK: []string{"id"}, Indexes: []engine.Index{{Name: "bx", Unique: true, Columns: []string{"b"}}}},
			want: "column b is in index bx but has no size"},
		{name: "unbounded text in an index", policy: true, // MariaDB would index a prefix
			t:    engine.Table{Columns: []engine.Column{id, text("s", 0)}, PK: []string{"id"}, Indexes: []engine.Index{{Name: "sx", Columns: []string{"s"}}}},
			want: "column s is in index sx but has no size"},
		{name: "768 characters of key", t: engine.Table{Columns: []engine.Column{text("k", 768)}, PK: []string{"k"}}},
		{name: "769 characters of key", t: engine.Table{Columns: []engine.Column{text("k", 769)}, PK: []string{"k"}},
			want: "the primary key takes 3076 bytes; MySQL allows 3072"},
		{name: "3072 bytes of key", t: engine.Table{Columns: []engine.Column{blob("k", 3072)}, PK: []string{"k"}}},
		{name: "3073 bytes of key", t: engine.Table{Columns: []engine.Column{blob("k", 3073)}, PK: []string{"k"}}, want: "3073 bytes"},
		{name: "composite key too long", t: engine.Table{Columns: []engine.Column{text("k", 767), id}, PK: []string{"k", "id"}}, want: "3076 bytes"},
		{name: "long text in a unique index", policy: true,
			t:    engine.Table{Columns: []engine.Column{id, text("s", 769)}, PK: []string{"id"}, Indexes: []engine.Index{{Name: "sx", Unique: true, Columns: []string{"s"}}}},
			want: "index sx takes 3076 bytes"},
		{name: "long text in an index", policy: true,
			t:    engine.Table{Columns: []engine.Column{id, text("s", 769)}, PK: []string{"id"}, Indexes: []engine.Index{{Name: "sx", Columns: []string{"s"}}}},
			want: "index sx takes 3076 bytes"},
		{name: "33 key parts", t: engine.Table{Columns: many(32, func(i int) engine.Column {
			return engine.Column{Name: fmt.Sprint("c", i), Type: engine.Integer, NotNull: true}
		}), PK: []string{"id"}, Indexes: []engine.Index{{Name: "wide", Columns: func() []string {
			var cols []string
			for i := range 32 {
				cols = append(cols, fmt.Sprint("c", i))
			}
			return append(cols, "id")
		}()}}}, want: "index wide has 33 columns; MySQL allows 32"},
		{name: "largest VARCHAR", t: engine.Table{Columns: []engine.Column{text("s", 16383)}}},
		{name: "VARCHAR too large", t: engine.Table{Columns: []engine.Column{text("s", 16384)}}, want: "size 16384: MySQL's VARCHAR holds at most 16383"},
		{name: "VARBINARY too large", t: engine.Table{Columns: []engine.Column{blob("b", 65533)}}, want: "size 65533"},
		{name: "row of 65535 bytes", t: engine.Table{Columns: []engine.Column{blob("b", 65521), {Name: "lb", Type: engine.Blob, NotNull: true}}}},
		{name: "row of 65536 bytes", t: engine.Table{Columns: []engine.Column{blob("b", 65522), {Name: "lb", Type: engine.Blob, NotNull: true}}},
			want: "a row takes up to 65536 bytes, MySQL allows 65535"},
		{name: "row of 65535 bytes with NULLs", t: engine.Table{Columns: []engine.Column{{Name: "b", Type: engine.Blob, Size: 65516},
			{Name: "t", Type: engine.Time}, {Name: "r", Type: engine.Real}}}},
		{name: "row of 65536 bytes with NULLs", t: engine.Table{Columns: []engine.Column{{Name: "b", Type: engine.Blob, Size: 65517},
			{Name: "t", Type: engine.Time}, {Name: "r", Type: engine.Real}}}, want: "65536 bytes"},
		{name: "33 short texts", t: engine.Table{Columns: many(33, func(i int) engine.Column { return text(fmt.Sprint("c", i), 60) }), PK: []string{"id"}}},
		{name: "34 short texts", t: engine.Table{Columns: many(34, func(i int) engine.Column { return text(fmt.Sprint("c", i), 60) }), PK: []string{"id"}},
			want: "InnoDB would keep up to"},
		{name: "385 unbounded blobs", t: engine.Table{Columns: many(385, func(i int) engine.Column { return blob(fmt.Sprint("c", i), 0) }), PK: []string{"id"}}},
		{name: "386 unbounded blobs", t: engine.Table{Columns: many(386, func(i int) engine.Column { return blob(fmt.Sprint("c", i), 0) }), PK: []string{"id"}},
			want: "InnoDB would keep up to"},
		{name: "200 texts of 64", t: engine.Table{Columns: many(200, func(i int) engine.Column { return text(fmt.Sprint("c", i), 64) }), PK: []string{"id"}}},
		{name: "auto not leading the key", t: engine.Table{Columns: []engine.Column{text("k", 10), {Name: "n", Type: engine.Integer, NotNull: true, Auto: true}}, PK: []string{"k", "n"}},
			want: "column n: MySQL's AUTO_INCREMENT column must lead the primary key"},
		{name: "long name", t: engine.Table{Columns: []engine.Column{{Name: strings.Repeat("ü", 65), Type: engine.Integer}}}, want: "the name has 65 characters; MySQL allows 64"},
		{name: "64 characters", t: engine.Table{Columns: []engine.Column{{Name: strings.Repeat("ü", 64), Type: engine.Integer}}}},
		{name: "default as long as the column", t: engine.Table{Columns: []engine.Column{{Name: "s", Type: engine.Text, Size: 4, Default: "'it''s'"}}}},
		{name: "default longer than the column", t: engine.Table{Columns: []engine.Column{{Name: "s", Type: engine.Text, Size: 3, Default: "'it''s'"}}},
			want: "column s: the default has 4 characters, the column holds 3"},
		{name: "defaults on unbounded text and blobs", t: engine.Table{Columns: []engine.Column{
			{Name: "t", Type: engine.Text, Default: "'x'"}, {Name: "b", Type: engine.Blob, Default: "'y'"}}}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tb := tc.t
			tb.Name = fmt.Sprintf("t%d", i)
			err := eng.CheckTable(&tb)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("CheckTable: %v, want no error", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("CheckTable: %v, want an error saying %q", err, tc.want)
			case err != nil && !strings.Contains(err.Error(), "table "+tb.Name):
				t.Errorf("CheckTable: %v: does not name the table", err)
			}
			if tc.policy {
				return
			}
			// MariaDB agrees.
			var createErr error
			for _, stmt := range eng.CreateTable(&tb) {
				if _, createErr = c.Write.Exec(stmt); createErr != nil {
					break
				}
			}
			if (createErr == nil) != (err == nil) {
				t.Errorf("CheckTable says %v, MariaDB says %v", err, createErr)
			}
		})
	}
}

func TestRetryableIsADeadlockVictimOnly(t *testing.T) {
	s := startServer(t)
	c := s.open("app", "innodb_lock_wait_timeout=1")
	tb := &engine.Table{Name: "t", Columns: []engine.Column{{Name: "id", Type: engine.Integer, NotNull: true}, {Name: "v", Type: engine.Integer}}, PK: []string{"id"}}
	create(t, c.Write, tb)
	for id := int64(1); id <= 2; id++ {
		if err := upsert(c.Write, tb, id, id); err != nil {
			t.Fatal(err)
		}
	}
	sel := "SELECT v FROM t WHERE id = ?" + eng.RowLock()
	lock := func(tx *sql.Tx, id int64) error {
		var v int64
		return tx.QueryRow(sel, id).Scan(&v)
	}
	begin := func() *sql.Tx {
		tx, err := c.Write.Begin()
		if err != nil {
			t.Fatal(err)
		}
		return tx
	}

	// Two transactions each lock a row the other then asks for.
	tx1, tx2 := begin(), begin()
	if err := lock(tx1, 1); err != nil {
		t.Fatal(err)
	}
	if err := lock(tx2, 2); err != nil {
		t.Fatal(err)
	}
	first := make(chan error, 1)
	go func() { first <- lock(tx1, 2) }()
	time.Sleep(200 * time.Millisecond) // tx1 waits for tx2
	err2 := lock(tx2, 1)
	err1 := <-first
	if (err1 == nil) == (err2 == nil) {
		t.Fatalf("deadlock: %v, %v; want exactly one victim", err1, err2)
	}
	victim, survivor, err := tx1, tx2, err1
	if err1 == nil {
		victim, survivor, err = tx2, tx1, err2
	}
	if !eng.Retryable(err) {
		t.Fatalf("the deadlock victim's error %v is not Retryable", err)
	}
	victim.Rollback()
	if err := survivor.Commit(); err != nil {
		t.Fatal(err)
	}

	// A lock wait timeout undoes the statement only: not Retryable.
	holder, waiter := begin(), begin()
	if err := lock(holder, 1); err != nil {
		t.Fatal(err)
	}
	if err := upsert(waiter, tb, int64(3), int64(3)); err != nil {
		t.Fatal(err)
	}
	err = lock(waiter, 1)
	var me *mysql.MySQLError
	if !errors.As(err, &me) || me.Number != 1205 || eng.Retryable(err) {
		t.Fatalf("lock wait timeout: %v (Retryable %v), want error 1205, not Retryable", err, eng.Retryable(err))
	}
	holder.Rollback()
	if err := waiter.Commit(); err != nil {
		t.Fatalf("commit after a lock wait timeout: %v", err)
	}
	var n int
	if err := c.Read.QueryRow("SELECT count(*) FROM t WHERE id = 3").Scan(&n); err != nil || n != 1 {
		t.Errorf("the write before the timeout: %d rows, %v; want it committed", n, err)
	}
	if eng.Retryable(errors.New("Error 1213")) || eng.Retryable(nil) {
		t.Error("Retryable of errors that are not the server's")
	}
}

// TestRegisteredAsMysql: importing the package is what a program does to
// open datasources with driver "mysql".
func TestRegisteredAsMysql(t *testing.T) {
	e, ok := engine.Lookup("mysql")
	if !ok || e != (tmysql.Engine{}) || e.Name() != "mysql" {
		t.Fatalf(`engine.Lookup("mysql") = %#v, %v; want mysql.Engine{}`, e, ok)
	}
}
