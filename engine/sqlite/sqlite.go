// Package sqlite is tandem's engine for SQLite database files.
//
// Every database is opened in WAL mode, with writes in BEGIN IMMEDIATE
// transactions (so a writer takes the file's write lock when it begins, not
// when it first writes, and two writers never deadlock on a lock upgrade) and
// a single write connection per process.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ncruces/go-sqlite3"
	"github.com/ncruces/go-sqlite3/driver"

	"github.com/tandemdb/tandem/engine"
)

// Engine is the SQLite engine. Its zero value is ready to use.
type Engine struct{}

var (
	_ engine.Engine       = Engine{}
	_ engine.FileEngine   = Engine{}
	_ engine.SingleWriter = Engine{}
)

// StatementOnly implements engine.SingleWriter: SQLite backs out a statement
// that violates a constraint and leaves the transaction open; other errors
// (I/O, a full disk, an interrupt) may roll the whole transaction back.
func (Engine) StatementOnly(err error) bool {
	var e *sqlite3.Error
	return errors.As(err, &e) && e.Code() == sqlite3.CONSTRAINT
}

// Constraint implements engine.Engine.
func (e Engine) Constraint(err error) bool { return e.StatementOnly(err) }

// init registers the engine under its name, so that a program that imports
// this package can open datasources with driver "sqlite".
func init() { engine.Register("sqlite", Engine{}) }

// Name implements engine.Engine.
func (Engine) Name() string { return "sqlite" }

// TimeFormat is how time values are stored: UTC, microseconds, fixed width,
// so that text order is time order and every node stores the same bytes.
const TimeFormat = "2006-01-02T15:04:05.000000Z"

// options are the DSN query parameters tandem understands, with defaults.
var options = map[string]string{
	"synchronous":  "full", // durable commits: an acknowledged write survives power loss
	"busy_timeout": "5000", // ms another process's lock is waited for
}

var synchronousModes = map[string]bool{"off": true, "normal": true, "full": true, "extra": true}

// dsn is a parsed SQLite data source name: a file path and options.
type dsn struct {
	path string
	opts map[string]string
}

func parseDSN(s string) (dsn, error) {
	d := dsn{opts: map[string]string{}}
	for k, v := range options {
		d.opts[k] = v
	}
	path, query, _ := strings.Cut(strings.TrimPrefix(s, "file:"), "?")
	if path == "" {
		return d, fmt.Errorf("empty file path")
	}
	if path == ":memory:" {
		return d, fmt.Errorf("in-memory databases cannot be mirrored: give a file path")
	}
	d.path = path
	if query == "" {
		return d, nil
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return d, fmt.Errorf("options %q: %v", query, err)
	}
	for k, vs := range q {
		if _, ok := options[k]; !ok {
			return d, fmt.Errorf("unknown option %q (known: busy_timeout, synchronous)", k)
		}
		v := strings.ToLower(vs[len(vs)-1])
		switch k {
		case "synchronous":
			if !synchronousModes[v] {
				return d, fmt.Errorf("option synchronous=%q: want off, normal, full or extra", v)
			}
		case "busy_timeout":
			if n, err := strconv.Atoi(v); err != nil || n < 0 {
				return d, fmt.Errorf("option busy_timeout=%q: want milliseconds, a whole number >= 0", v)
			}
		}
		d.opts[k] = v
	}
	return d, nil
}

func (d dsn) String() string {
	if len(d.opts) == 0 {
		return d.path
	}
	q := url.Values{}
	for k, v := range d.opts {
		if options[k] != v {
			q.Set(k, v)
		}
	}
	if len(q) == 0 {
		return d.path
	}
	return d.path + "?" + q.Encode()
}

// ResolveDSN implements engine.Engine. The file may be absent (it is created
// on first open), but its directory must exist.
func (Engine) ResolveDSN(s, baseDir string) (string, error) {
	d, err := parseDSN(s)
	if err != nil {
		return "", err
	}
	if !filepath.IsAbs(d.path) {
		d.path = filepath.Join(baseDir, d.path)
	}
	d.path = filepath.Clean(d.path)
	dir := filepath.Dir(d.path)
	st, err := os.Stat(dir)
	switch {
	case err != nil:
		return "", fmt.Errorf("directory %s does not exist", dir)
	case !st.IsDir():
		return "", fmt.Errorf("%s is not a directory", dir)
	}
	if st, err := os.Stat(d.path); err == nil && !st.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file", d.path)
	}
	return d.String(), nil
}

// Path returns the file path of a DSN (absolute once ResolveDSN resolved
// it), for tools that work on the file itself.
func Path(dsn string) (string, error) { return Engine{}.Path(dsn) }

// Path implements engine.FileEngine.
func (Engine) Path(dsn string) (string, error) {
	d, err := parseDSN(dsn)
	return d.path, err
}

// SameFile implements engine.FileEngine. Files that exist are compared by
// device and inode (hard links, symbolic links); a file not created yet is
// compared by its path with symbolic links resolved.
func (Engine) SameFile(a, b string) bool {
	da, errA := parseDSN(a)
	db, errB := parseDSN(b)
	if errA != nil || errB != nil {
		return false
	}
	sa, errA := os.Stat(da.path)
	sb, errB := os.Stat(db.path)
	if errA == nil && errB == nil {
		return os.SameFile(sa, sb)
	}
	return canonicalPath(da.path) == canonicalPath(db.path)
}

// canonicalPath resolves the symbolic links of a file path that may not
// exist yet: those of its directories, and a link at the path itself even
// when its target has not been created.
func canonicalPath(p string) string {
	abs, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	for range 40 { // a chain of links, bounded like the kernel's
		fi, err := os.Lstat(abs)
		if err != nil || fi.Mode()&os.ModeSymlink == 0 {
			break
		}
		target, err := os.Readlink(abs)
		if err != nil {
			break
		}
		if !filepath.IsAbs(target) {
			target = filepath.Join(filepath.Dir(abs), target)
		}
		abs = filepath.Clean(target)
	}
	if dir, err := filepath.EvalSymlinks(filepath.Dir(abs)); err == nil {
		return filepath.Join(dir, filepath.Base(abs))
	}
	return abs
}

// Redact implements engine.Engine: a file path holds no secret.
func (Engine) Redact(s string) string { return s }

// Open implements engine.Engine.
func (Engine) Open(ctx context.Context, s string) (*engine.Conn, error) {
	d, err := parseDSN(s)
	if err != nil {
		return nil, err
	}
	// Both pools define tandem's capture functions (capture.go); readers
	// are query_only, so a statement that writes (INSERT ... RETURNING
	// sent as a query) is refused there rather than written uncaptured.
	w, err := driver.Open(driverDSN(d, true), defineCapture)
	if err != nil {
		return nil, err
	}
	// One writer per process: SQLite admits one writer per file anyway, and
	// queueing in database/sql is fairer and cheaper than the busy handler.
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	r, err := driver.Open(driverDSN(d, false)+"&_pragma=query_only(1)", defineCapture)
	if err != nil {
		w.Close()
		return nil, err
	}
	r.SetMaxOpenConns(8)
	r.SetMaxIdleConns(8)
	c := &engine.Conn{Write: w, Read: r}
	// journal_mode=WAL is persistent in the file; set it once through the writer.
	var mode string
	if err := w.QueryRowContext(ctx, "PRAGMA journal_mode=WAL").Scan(&mode); err != nil {
		c.Close()
		return nil, err
	}
	if !strings.EqualFold(mode, "wal") {
		c.Close()
		return nil, fmt.Errorf("cannot switch %s to WAL mode (got %q)", d.path, mode)
	}
	if err := r.PingContext(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Quote implements engine.Engine.
func (Engine) Quote(ident string) string {
	return `"` + strings.ReplaceAll(ident, `"`, `""`) + `"`
}

// Placeholder implements engine.Engine.
func (Engine) Placeholder(int) string { return "?" }

func sqlType(c *engine.Column) string {
	switch c.Type {
	case engine.Integer:
		return "INTEGER"
	case engine.Real:
		return "REAL"
	case engine.Text:
		if c.Size > 0 {
			return fmt.Sprintf("VARCHAR(%d)", c.Size)
		}
		return "TEXT"
	case engine.Blob:
		return "BLOB"
	case engine.Bool:
		return "BOOLEAN"
	case engine.Time:
		return "TIMESTAMP"
	}
	panic(fmt.Sprintf("sqlite: no SQL type for %v", c.Type))
}

// CreateTable implements engine.Engine.
func (e Engine) CreateTable(t *engine.Table) []string {
	var b strings.Builder
	fmt.Fprintf(&b, "CREATE TABLE IF NOT EXISTS %s (", e.Quote(t.Name))
	for i := range t.Columns {
		c := &t.Columns[i]
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %s", e.Quote(c.Name), sqlType(c))
		if c.NotNull {
			b.WriteString(" NOT NULL")
		}
		if c.Default != "" {
			b.WriteString(" DEFAULT " + c.Default)
		}
	}
	fmt.Fprintf(&b, ", PRIMARY KEY (%s))", e.list(t.PK))
	if strings.HasPrefix(t.Name, "_tandem_") {
		// tandem's bookkeeping: one B-tree clustered on the key instead of
		// a rowid table plus a key index, so recording a write's keys
		// dirties one page, not two.
		b.WriteString(" WITHOUT ROWID")
	}
	return append([]string{b.String()}, engine.IndexStatements(t, e.Quote)...)
}

func (e Engine) list(names []string) string { return engine.QuoteList(e.Quote, names) }

// Upsert implements engine.Engine.
func (e Engine) Upsert(t *engine.Table) string {
	names := make([]string, len(t.Columns))
	for i := range t.Columns {
		names[i] = t.Columns[i].Name
	}
	var b strings.Builder
	fmt.Fprintf(&b, "INSERT INTO %s (%s) VALUES (%s) ON CONFLICT (%s) DO ", e.Quote(t.Name), e.list(names), marks(len(names)), e.list(t.PK))
	var sets []string
	for _, n := range names {
		if !contains(t.PK, n) {
			sets = append(sets, fmt.Sprintf("%s = excluded.%s", e.Quote(n), e.Quote(n)))
		}
	}
	if len(sets) == 0 {
		b.WriteString("NOTHING")
	} else {
		b.WriteString("UPDATE SET " + strings.Join(sets, ", "))
	}
	return b.String()
}

// InsertAuto implements engine.Engine.
func (e Engine) InsertAuto(t *engine.Table) (string, bool) {
	var names []string
	for i := range t.Columns {
		if !t.Columns[i].Auto {
			names = append(names, t.Columns[i].Name)
		}
	}
	if len(names) == 0 {
		return fmt.Sprintf("INSERT INTO %s DEFAULT VALUES", e.Quote(t.Name)), false
	}
	return fmt.Sprintf("INSERT INTO %s (%s) VALUES (%s)", e.Quote(t.Name), e.list(names), marks(len(names))), false
}

func marks(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Value implements engine.Engine.
func (Engine) Value(c *engine.Column, v any) (any, error) {
	switch x := v.(type) {
	case bool:
		if x {
			return int64(1), nil
		}
		return int64(0), nil
	case time.Time:
		return x.UTC().Format(TimeFormat), nil
	case float64:
		// SQLite stores NaN as NULL; refuse rather than change the value.
		if math.IsNaN(x) {
			return nil, fmt.Errorf("NaN cannot be stored")
		}
	}
	return v, nil
}

// Scan implements engine.Engine.
func (Engine) Scan(c *engine.Column, v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch c.Type {
	case engine.Integer:
		if i, ok := v.(int64); ok {
			return i, nil
		}
	case engine.Real:
		switch x := v.(type) {
		case float64:
			return x, nil
		case int64:
			return float64(x), nil
		}
	case engine.Text:
		switch x := v.(type) {
		case string:
			return x, nil
		case []byte:
			return string(x), nil
		}
	case engine.Blob:
		switch x := v.(type) {
		case []byte:
			return x, nil
		case string:
			return []byte(x), nil
		}
	case engine.Bool:
		switch x := v.(type) {
		case int64:
			if x == 0 || x == 1 {
				return x == 1, nil
			}
		case bool:
			return x, nil
		}
	case engine.Time:
		// The driver decodes columns declared TIMESTAMP itself when it
		// scans into an interface; other declarations arrive as text.
		switch x := v.(type) {
		case time.Time:
			return x.UTC(), nil
		case string:
			t, err := time.Parse(TimeFormat, x)
			if err != nil {
				// Text another writer stored (CURRENT_TIMESTAMP's
				// "2006-01-02 15:04:05", an application's own layout):
				// kept as it is, so that every copy stores the same text.
				return x, nil
			}
			return t, nil
		}
	}
	return nil, fmt.Errorf("column %s (%v): cannot read a %T value %v", c.Name, c.Type, v, v)
}

// logical maps a declared column type to the logical type it stores,
// following SQLite's affinity rules for types tandem did not declare.
func logical(declared string) engine.Type {
	d := strings.ToUpper(declared)
	switch {
	case d == "BOOLEAN":
		return engine.Bool
	case d == "TIMESTAMP" || d == "DATETIME":
		return engine.Time
	case strings.Contains(d, "INT"):
		return engine.Integer
	case strings.Contains(d, "CHAR") || strings.Contains(d, "CLOB") || strings.Contains(d, "TEXT"):
		return engine.Text
	case d == "" || strings.Contains(d, "BLOB"):
		return engine.Blob
	}
	return engine.Real
}

// LimitClause implements engine.Engine.
func (Engine) LimitClause(limit, offset int) string {
	switch {
	case limit < 0 && offset <= 0:
		return ""
	case offset <= 0:
		return fmt.Sprintf(" LIMIT %d", limit)
	}
	return fmt.Sprintf(" LIMIT %d OFFSET %d", limit, offset)
}

// Tables implements engine.Engine.
func (Engine) Tables(ctx context.Context, q engine.Querier) ([]engine.TableInfo, error) {
	names, err := strings1(ctx, q, `SELECT name FROM sqlite_schema WHERE type = 'table'
		AND name NOT LIKE 'sqlite\_%' ESCAPE '\' AND name NOT LIKE '\_tandem\_%' ESCAPE '\' ORDER BY name`)
	if err != nil {
		return nil, err
	}
	tables := make([]engine.TableInfo, 0, len(names))
	for _, name := range names {
		t := engine.TableInfo{Name: name}
		rows, err := q.QueryContext(ctx, `SELECT name, type, "notnull", COALESCE(dflt_value, ''), pk FROM pragma_table_info(?) ORDER BY cid`, name)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var c engine.ColumnInfo
			if err := rows.Scan(&c.Name, &c.Type, &c.NotNull, &c.Default, &c.PK); err != nil {
				rows.Close()
				return nil, err
			}
			c.Type = strings.ToUpper(strings.TrimSpace(c.Type))
			c.Logical = logical(c.Type)
			t.Columns = append(t.Columns, c)
		}
		if err := closeRows(rows); err != nil {
			return nil, err
		}
		idx, err := indexes(ctx, q, name)
		if err != nil {
			return nil, err
		}
		t.Indexes = idx
		tables = append(tables, t)
	}
	return tables, nil
}

func indexes(ctx context.Context, q engine.Querier, table string) ([]engine.IndexInfo, error) {
	rows, err := q.QueryContext(ctx, `SELECT name, "unique", origin FROM pragma_index_list(?) WHERE origin <> 'pk' ORDER BY name`, table)
	if err != nil {
		return nil, err
	}
	var list []engine.IndexInfo
	var origins []string
	for rows.Next() {
		var x engine.IndexInfo
		var origin string
		if err := rows.Scan(&x.Name, &x.Unique, &origin); err != nil {
			rows.Close()
			return nil, err
		}
		list = append(list, x)
		origins = append(origins, origin)
	}
	if err := closeRows(rows); err != nil {
		return nil, err
	}
	for i := range list {
		cols, err := strings1(ctx, q, `SELECT name FROM pragma_index_info(?) ORDER BY seqno`, list[i].Name)
		if err != nil {
			return nil, err
		}
		list[i].Columns = cols
		if origins[i] == "u" {
			// Indexes behind UNIQUE constraints get names from SQLite's
			// counter; name them by what they are instead.
			list[i].Name = "UNIQUE(" + strings.Join(cols, ",") + ")"
		}
	}
	return list, nil
}

func strings1(ctx context.Context, q engine.Querier, query string, args ...any) ([]string, error) {
	return engine.QueryStrings(ctx, q, query, args...)
}

func closeRows(rows *sql.Rows) error { return engine.CloseRows(rows) }
