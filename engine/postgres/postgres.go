// Package postgres is tandem's engine for PostgreSQL, through pgx v5's
// database/sql driver.
//
// Text columns are declared COLLATE "C", so keys order byte by byte as on
// SQLite and on MySQL's binary collations, and key ranges agree across the
// engines of a mixed pair. Times are TIMESTAMPTZ: tandem stores the instant
// (in UTC, to the microsecond), not the offset it was written with.
//
// Writes lock rows, not the database. tandem's database-wide lock
// (engine.Locker) is a transaction-level advisory lock: shared for writes,
// exclusive for catch-up and tandem's markers.
package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"net/url"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/tandemdb/tandem/engine"
)

// Engine is the PostgreSQL engine. Its zero value is ready to use.
type Engine struct{}

var (
	_ engine.Engine       = Engine{}
	_ engine.Locker       = Engine{}
	_ engine.AutoSyncer   = Engine{}
	_ engine.Checksummer  = Engine{}
	_ engine.TableChecker = Engine{}
	_ engine.TwoPhaser    = Engine{}
	_ engine.WithInserter = Engine{}
)

// init registers the engine under its name, so that a program that imports
// this package can open datasources with driver "postgres".
func init() { engine.Register("postgres", Engine{}) }

// Name implements engine.Engine.
func (Engine) Name() string { return "postgres" }

// ResolveDSN implements engine.Engine. It takes a URL
// (postgres://user:password@host:port/db?sslmode=disable) or keyword/value
// pairs (host=... dbname=...), as libpq and pgx do, and requires a
// database name. It connects to nothing.
func (e Engine) ResolveDSN(dsn, _ string) (string, error) {
	if strings.TrimSpace(dsn) == "" {
		return "", errors.New("empty DSN: want postgres://user:password@host:port/dbname")
	}
	cfg, err := parseConfig(dsn)
	if err != nil {
		return "", err
	}
	if cfg.Database == "" {
		return "", fmt.Errorf("DSN %s names no database: add /dbname (URL) or dbname=... ", e.Redact(dsn))
	}
	return dsn, nil
}

var (
	// A keyword/value password runs to the first unescaped white space or,
	// quoted, to the closing quote (to the end when there is none).
	keywordPassword = regexp.MustCompile(`(?is)(password\s*=\s*)('(?:[^'\\]|\\.)*(?:'|\\?$)|(?:[^\s\\]|\\.)*\\?)`)
	// pgx ends a URL's userinfo at its first '@', unless a '/' comes
	// first, and takes what follows its first ':' for the password,
	// whatever it holds ('?', spaces).
	urlUserinfo = regexp.MustCompile(`(://[^:/@]*:)[^@/]*@`)
	// What looks like a userinfo, though a '/' may end the password for
	// pgx ("postgres://u:pa/ss@h" has none): masked too.
	urlPassword = regexp.MustCompile(`(://[^:/@]*:)[^@]*@`)
	// The key of a URL's query parameter.
	queryKey = regexp.MustCompile(`[?&]([^&=?]*)=`)
)

// Redact implements engine.Engine. It masks a password wherever pgx would
// read one, reading the text as pgx does rather than as net/url does (pgx
// takes "postgres://u:12?x@h/db" for password "12?x", net/url for port
// 12), and masks where a malformed DSN leaves it unclear.
func (Engine) Redact(dsn string) string {
	if l := strings.ToLower(dsn); strings.HasPrefix(l, "postgres://") || strings.HasPrefix(l, "postgresql://") {
		// The query after the userinfo, or a '/' before an '@' would
		// hide a "?password=" that pgx reads.
		s := maskQuery(urlUserinfo.ReplaceAllString(dsn, "${1}xxxxx@"))
		return urlPassword.ReplaceAllString(s, "${1}xxxxx@")
	}
	s := urlPassword.ReplaceAllString(dsn, "${1}xxxxx@")
	return keywordPassword.ReplaceAllString(s, "${1}xxxxx")
}

// maskQuery masks the value of every password parameter (password,
// sslpassword, percent-encoded or not) of a URL, up to the next '&'. Keys
// are looked for everywhere, not only where a parser would start the
// query: in a malformed URL it is unclear where that is.
func maskQuery(s string) string {
	var b strings.Builder
	last := 0
	for _, m := range queryKey.FindAllStringSubmatchIndex(s, -1) {
		key := s[m[2]:m[3]]
		if k, err := url.PathUnescape(key); err == nil {
			key = k
		}
		if m[0] < last || !strings.Contains(strings.ToLower(key), "password") {
			continue
		}
		end := len(s)
		if i := strings.IndexByte(s[m[1]:], '&'); i >= 0 {
			end = m[1] + i
		}
		b.WriteString(s[last:m[1]] + "xxxxx")
		last = end
	}
	return b.String() + s[last:]
}

// parseConfig is pgx's parse, with an error that shows the DSN as Redact
// does: pgx's own masking of a DSN it cannot parse is a guess that shows
// part of a password with an escaped space ("password=se\ cret").
func parseConfig(dsn string) (*pgx.ConnConfig, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		if pe, ok := errors.AsType[*pgconn.ParseConfigError](err); ok {
			shown := *pe
			shown.ConnString = Engine{}.Redact(pe.ConnString)
			err = &shown
		}
		return nil, errors.New(redactText(dsn, err.Error()))
	}
	return cfg, nil
}

// redactText removes from text every password dsn holds, however the text
// quotes it.
func redactText(dsn, text string) string {
	var secrets []string
	if u, err := url.Parse(dsn); err == nil {
		if p, ok := u.User.Password(); ok {
			secrets = append(secrets, p)
		}
		if p := u.Query().Get("password"); p != "" {
			secrets = append(secrets, p)
		}
	}
	for _, m := range keywordPassword.FindAllStringSubmatch(dsn, -1) {
		secrets = append(secrets, strings.Trim(m[2], "'"))
	}
	for _, m := range urlPassword.FindAllStringSubmatch(dsn, -1) {
		secrets = append(secrets, strings.TrimSuffix(m[0][strings.LastIndex(m[1], ":")+1:], "@"))
	}
	for _, s := range secrets {
		if s != "" {
			text = strings.ReplaceAll(text, s, "xxxxx")
		}
	}
	return text
}

// openDB opens a pool on dsn whose sessions start with the given settings.
func openDB(dsn string, session map[string]string) (*sql.DB, error) {
	cfg, err := parseConfig(dsn)
	if err != nil {
		return nil, err
	}
	for name, value := range session {
		for k := range cfg.RuntimeParams {
			if strings.EqualFold(k, name) {
				delete(cfg.RuntimeParams, k)
			}
		}
		cfg.RuntimeParams[name] = value
	}
	return stdlib.OpenDB(*cfg), nil
}

// readSession is the read pool's (Open).
var readSession = map[string]string{"tandem.capture": "off", "default_transaction_read_only": "on"}

// plainSession fixes the text forms of values, which Checksum hashes, on
// OpenPlain's connections: otherwise they follow the server's and the
// database's defaults, and equal rows on databases with another TimeZone,
// DateStyle or bytea_output sum differently, while with extra_float_digits
// below 1 doubles that differ in their last digits sum alike. Session
// settings, not the database's.
var plainSession = map[string]string{
	"timezone":           "UTC",
	"datestyle":          "ISO, MDY",
	"intervalstyle":      "postgres",
	"extra_float_digits": "3",
	"bytea_output":       "hex",
	"tandem.capture":     "off", // repair writes rows as tandem does (capture.go)
}

// WithInsert implements engine.WithInserter with a data-modifying WITH.
func (Engine) WithInsert(stmt, insert string) string {
	return "WITH tandem_noted AS (" + insert + ") " + stmt
}

// Open implements engine.Engine.
func (Engine) Open(ctx context.Context, dsn string) (*engine.Conn, error) {
	db, err := openDB(dsn, captureSession)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(32)
	db.SetMaxIdleConns(16)
	db.SetConnMaxLifetime(30 * time.Minute)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect: %s", redactText(dsn, err.Error()))
	}
	// Reads have a pool of their own whose transactions are read-only: a
	// statement sent as a read that writes (INSERT ... RETURNING, a
	// writable CTE) is refused there instead of written on one database.
	r, err := openDB(dsn, readSession)
	if err != nil {
		db.Close()
		return nil, err
	}
	r.SetMaxOpenConns(16)
	r.SetMaxIdleConns(8)
	r.SetConnMaxLifetime(30 * time.Minute)
	return &engine.Conn{Write: db, Read: r}, nil
}

// OpenPlain implements engine.Engine.
func (Engine) OpenPlain(ctx context.Context, dsn string) (*sql.DB, error) {
	db, err := openDB(dsn, plainSession)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(4)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect: %s", redactText(dsn, err.Error()))
	}
	return db, nil
}

// lockKey is the advisory lock tandem takes: "tandem" in ASCII. Advisory
// locks belong to one database of the server, so each database has its own.
const lockKey = 0x74616e64656d

// Lock implements engine.Locker.
func (Engine) Lock(ctx context.Context, tx *sql.Tx, exclusive bool) error {
	q := "SELECT pg_advisory_xact_lock_shared($1)"
	if exclusive {
		q = "SELECT pg_advisory_xact_lock($1)"
	}
	_, err := tx.ExecContext(ctx, q, int64(lockKey))
	return err
}

// RowLock implements engine.Locker.
func (Engine) RowLock() string { return " FOR UPDATE" }

// Retryable implements engine.Locker: a deadlock victim and a
// serialization failure (SQLSTATE 40P01, 40001).
func (Engine) Retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001")
}

// Constraint implements engine.Engine: SQLSTATE class 23, integrity
// constraint violation.
func (Engine) Constraint(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && strings.HasPrefix(pe.Code, "23")
}

// SyncAuto implements engine.AutoSyncer: the identity sequence moves past
// the largest id, and never back.
func (e Engine) SyncAuto(ctx context.Context, q engine.Execer, t *engine.Table) error {
	var col *engine.Column
	for i := range t.Columns {
		if t.Columns[i].Auto {
			col = &t.Columns[i]
		}
	}
	if col == nil {
		return nil
	}
	_, err := q.ExecContext(ctx, fmt.Sprintf(`SELECT setval(s.seq, GREATEST(m.top, COALESCE(pg_sequence_last_value(s.seq), 0), 1), GREATEST(m.top, COALESCE(pg_sequence_last_value(s.seq), 0)) > 0)
		FROM (SELECT pg_get_serial_sequence($1, $2)::regclass AS seq) s, (SELECT COALESCE(max(%s), 0) AS top FROM %s) m`,
		e.Quote(col.Name), e.Quote(t.Name)), e.Quote(t.Name), col.Name)
	return err
}

// Quote implements engine.Engine.
func (Engine) Quote(ident string) string {
	return `"` + strings.ReplaceAll(ident, `"`, `""`) + `"`
}

// Placeholder implements engine.Engine.
func (Engine) Placeholder(n int) string { return fmt.Sprintf("$%d", n) }

func sqlType(c *engine.Column) string {
	switch c.Type {
	case engine.Integer:
		if c.Auto {
			return "BIGINT GENERATED BY DEFAULT AS IDENTITY"
		}
		return "BIGINT"
	case engine.Real:
		return "DOUBLE PRECISION"
	case engine.Text:
		if c.Size > 0 {
			return fmt.Sprintf(`VARCHAR(%d) COLLATE "C"`, c.Size)
		}
		return `TEXT COLLATE "C"`
	case engine.Blob:
		return "BYTEA"
	case engine.Bool:
		return "BOOLEAN"
	case engine.Time:
		return "TIMESTAMPTZ"
	}
	panic(fmt.Sprintf("postgres: no SQL type for %v", c.Type))
}

// CheckTable implements engine.TableChecker.
func (Engine) CheckTable(t *engine.Table) error {
	for _, c := range t.Columns {
		if c.Default != "" && c.Type == engine.Bool && c.Default != "0" && c.Default != "1" &&
			!strings.EqualFold(c.Default, "true") && !strings.EqualFold(c.Default, "false") {
			return fmt.Errorf("table %s: column %s: default %s is not a boolean", t.Name, c.Name, c.Default)
		}
	}
	return nil
}

// defaultLiteral renders a column default as PostgreSQL takes it.
func defaultLiteral(c *engine.Column) string {
	if c.Type == engine.Bool {
		switch strings.ToLower(c.Default) {
		case "1", "true":
			return "TRUE"
		case "0", "false":
			return "FALSE"
		}
	}
	if c.Type == engine.Blob && strings.HasPrefix(c.Default, "'") {
		return c.Default + "::bytea"
	}
	return c.Default
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
		if c.NotNull || c.Auto {
			b.WriteString(" NOT NULL")
		}
		if c.Default != "" && !c.Auto {
			b.WriteString(" DEFAULT " + defaultLiteral(c))
		}
	}
	fmt.Fprintf(&b, ", PRIMARY KEY (%s))", e.list(t.PK))
	return append([]string{b.String()}, engine.IndexStatements(t, e.Quote)...)
}

func (e Engine) list(names []string) string { return engine.QuoteList(e.Quote, names) }

func marks(from, n int) string {
	m := make([]string, n)
	for i := range m {
		m[i] = fmt.Sprintf("$%d", from+i)
	}
	return strings.Join(m, ", ")
}

// Upsert implements engine.Engine. ON CONFLICT names the primary key, so a
// clash on another unique index is an error, not an update of another row.
func (e Engine) Upsert(t *engine.Table) string {
	names := make([]string, len(t.Columns))
	for i := range t.Columns {
		names[i] = t.Columns[i].Name
	}
	var b strings.Builder
	// OVERRIDING SYSTEM VALUE: a GENERATED ALWAYS identity column takes
	// the primary's value (a no-op on tables without one).
	fmt.Fprintf(&b, "INSERT INTO %s (%s) OVERRIDING SYSTEM VALUE VALUES (%s) ON CONFLICT (%s) DO ", e.Quote(t.Name), e.list(names), marks(1, len(names)), e.list(t.PK))
	var sets []string
	for _, n := range names {
		if !contains(t.PK, n) {
			sets = append(sets, fmt.Sprintf("%s = EXCLUDED.%s", e.Quote(n), e.Quote(n)))
		}
	}
	if len(sets) == 0 {
		b.WriteString("NOTHING")
	} else {
		b.WriteString("UPDATE SET " + strings.Join(sets, ", "))
	}
	return b.String()
}

// InsertAuto implements engine.Engine: the id comes back through RETURNING.
func (e Engine) InsertAuto(t *engine.Table) (string, bool) {
	var names []string
	auto := ""
	for i := range t.Columns {
		if t.Columns[i].Auto {
			auto = t.Columns[i].Name
		} else {
			names = append(names, t.Columns[i].Name)
		}
	}
	if len(names) == 0 {
		return fmt.Sprintf("INSERT INTO %s DEFAULT VALUES RETURNING %s", e.Quote(t.Name), e.Quote(auto)), true
	}
	return fmt.Sprintf("INSERT INTO %s (%s) VALUES (%s) RETURNING %s", e.Quote(t.Name), e.list(names), marks(1, len(names)), e.Quote(auto)), true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Value implements engine.Engine. PostgreSQL refuses what it cannot store
// exactly; so does tandem, with the reason, before the write.
func (Engine) Value(c *engine.Column, v any) (any, error) {
	switch x := v.(type) {
	case time.Time:
		return x.UTC(), nil
	case float64:
		// SQLite cannot store NaN and MySQL neither NaN nor infinities;
		// NaN is refused here too so a mixed pair cannot diverge on it.
		if math.IsNaN(x) {
			return nil, fmt.Errorf("NaN cannot be stored")
		}
	case string:
		if !utf8.ValidString(x) {
			return nil, fmt.Errorf("text is not valid UTF-8")
		}
		if strings.IndexByte(x, 0) >= 0 {
			return nil, fmt.Errorf("PostgreSQL text cannot hold a NUL byte (0x00); store it as bytes")
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
		switch x := v.(type) {
		case int64:
			return x, nil
		case int32:
			return int64(x), nil
		case int16:
			return int64(x), nil
		}
	case engine.Real:
		switch x := v.(type) {
		case float64:
			return x, nil
		case float32:
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
		if b, ok := v.(bool); ok {
			return b, nil
		}
	case engine.Time:
		if t, ok := v.(time.Time); ok {
			return t.UTC(), nil
		}
	}
	return nil, fmt.Errorf("column %s (%v): cannot read a %T value %v", c.Name, c.Type, v, v)
}

// logical maps a declared type (format_type's spelling, upper case) to the
// logical type it stores.
func logical(declared string) engine.Type {
	d := strings.ToUpper(declared)
	switch {
	case d == "BOOLEAN":
		return engine.Bool
	case strings.HasPrefix(d, "TIMESTAMP") || d == "DATE":
		return engine.Time
	case d == "BIGINT" || d == "INTEGER" || d == "SMALLINT":
		return engine.Integer
	case d == "DOUBLE PRECISION" || d == "REAL":
		return engine.Real
	case d == "BYTEA":
		return engine.Blob
	}
	// text, character varying(n), numeric (tandem keeps decimals as
	// text), json, uuid...
	return engine.Text
}

// LimitClause implements engine.Engine.
func (Engine) LimitClause(limit, offset int) string {
	switch {
	case limit < 0 && offset <= 0:
		return ""
	case limit < 0:
		return fmt.Sprintf(" OFFSET %d", offset)
	case offset <= 0:
		return fmt.Sprintf(" LIMIT %d", limit)
	}
	return fmt.Sprintf(" LIMIT %d OFFSET %d", limit, offset)
}

// Tables implements engine.Engine: the tables of the connection's current
// schema.
func (Engine) Tables(ctx context.Context, q engine.Querier) ([]engine.TableInfo, error) {
	rows, err := q.QueryContext(ctx, `
		SELECT c.relname, a.attname, upper(format_type(a.atttypid, a.atttypmod)) || COALESCE(' COLLATE ' || quote_ident(co.collname), ''),
			a.attnotnull, COALESCE(array_position(pk.conkey, a.attnum), 0),
			COALESCE(pg_get_expr(d.adbin, d.adrelid), ''), a.attidentity
		FROM pg_class c
		JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = current_schema()
		JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
		LEFT JOIN pg_collation co ON co.oid = a.attcollation
		LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
		LEFT JOIN pg_constraint pk ON pk.conrelid = c.oid AND pk.contype = 'p'
		WHERE c.relkind IN ('r', 'p') AND c.relname NOT LIKE '\_tandem\_%'
		ORDER BY c.relname, a.attnum`)
	if err != nil {
		return nil, err
	}
	var tables []engine.TableInfo
	for rows.Next() {
		var table, identity string
		var col engine.ColumnInfo
		if err := rows.Scan(&table, &col.Name, &col.Type, &col.NotNull, &col.PK, &col.Default, &identity); err != nil {
			rows.Close()
			return nil, err
		}
		// tandem's text is COLLATE "C"; another collation orders keys
		// otherwise, and shows, so that verify refuses to compare ranges
		// of keys the two sides order differently.
		col.Type = strings.TrimSuffix(col.Type, ` COLLATE "C"`)
		col.Logical = logical(col.Type)
		if identity != "" {
			col.Default = "IDENTITY"
		}
		if len(tables) == 0 || tables[len(tables)-1].Name != table {
			tables = append(tables, engine.TableInfo{Name: table})
		}
		t := &tables[len(tables)-1]
		t.Columns = append(t.Columns, col)
	}
	if err := closeRows(rows); err != nil {
		return nil, err
	}
	for i := range tables {
		if tables[i].Indexes, err = indexes(ctx, q, tables[i].Name); err != nil {
			return nil, err
		}
	}
	return tables, nil
}

func indexes(ctx context.Context, q engine.Querier, table string) ([]engine.IndexInfo, error) {
	rows, err := q.QueryContext(ctx, `
		SELECT i.relname, x.indisunique, a.attname
		FROM pg_index x
		JOIN pg_class t ON t.oid = x.indrelid
		JOIN pg_namespace n ON n.oid = t.relnamespace AND n.nspname = current_schema()
		JOIN pg_class i ON i.oid = x.indexrelid
		JOIN LATERAL unnest(x.indkey) WITH ORDINALITY k(attnum, pos) ON true
		JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum
		WHERE t.relname = $1 AND NOT x.indisprimary
		ORDER BY i.relname, k.pos`, table)
	if err != nil {
		return nil, err
	}
	var list []engine.IndexInfo
	for rows.Next() {
		var name, col string
		var unique bool
		if err := rows.Scan(&name, &unique, &col); err != nil {
			rows.Close()
			return nil, err
		}
		if len(list) == 0 || list[len(list)-1].Name != name {
			list = append(list, engine.IndexInfo{Name: name, Unique: unique})
		}
		x := &list[len(list)-1]
		x.Columns = append(x.Columns, col)
	}
	return list, closeRows(rows)
}

func closeRows(rows *sql.Rows) error { return engine.CloseRows(rows) }

// Checksum implements engine.Checksummer: the sum, wrapped to 64 bits, of
// a 64-bit hash of each row's text form. The row form tells NULL from the
// empty string ("()" against `("")`), and a column has one type, so equal
// rows and only those hash alike (up to hash collisions).
func (Engine) Checksum(cols []string) string {
	const m = "18446744073709551616" // 2^64
	return fmt.Sprintf("((COALESCE(sum(hashtextextended(ROW(%s)::text, 0)), 0) %% %s + %s + 9223372036854775808) %% %s - 9223372036854775808)::int8",
		strings.Join(cols, ", "), m, m, m)
}

// Stored implements engine.Checksummer: pgx returns every type tandem
// declares as the value it stores.
func (Engine) Stored(col string) string { return col }

// gidPattern is what a prepared transaction's id may hold: tandem's ids
// are letters, digits and underscores, and go into the statement as text.
var gidPattern = regexp.MustCompile(`^[A-Za-z0-9_]{1,200}$`)

func gidLiteral(gid string) (string, error) {
	if !gidPattern.MatchString(gid) {
		return "", fmt.Errorf("transaction id %q: want letters, digits and underscores", gid)
	}
	return "'" + gid + "'", nil
}

// Prepare implements engine.TwoPhaser. The server needs
// max_prepared_transactions > 0.
func (Engine) Prepare(ctx context.Context, tx engine.Execer, gid string) error {
	lit, err := gidLiteral(gid)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, "PREPARE TRANSACTION "+lit)
	return err
}

// CommitPrepared implements engine.TwoPhaser.
func (Engine) CommitPrepared(ctx context.Context, db engine.Execer, gid string) error {
	lit, err := gidLiteral(gid)
	if err != nil {
		return err
	}
	_, err = db.ExecContext(ctx, "COMMIT PREPARED "+lit)
	return err
}

// RollbackPrepared implements engine.TwoPhaser.
func (Engine) RollbackPrepared(ctx context.Context, db engine.Execer, gid string) error {
	lit, err := gidLiteral(gid)
	if err != nil {
		return err
	}
	_, err = db.ExecContext(ctx, "ROLLBACK PREPARED "+lit)
	return err
}

// Prepared implements engine.TwoPhaser.
func (Engine) Prepared(ctx context.Context, q engine.Querier, prefix string, age time.Duration) ([]string, error) {
	rows, err := q.QueryContext(ctx, `SELECT gid FROM pg_prepared_xacts
		WHERE database = current_database() AND starts_with(gid, $1) AND prepared <= now() - make_interval(secs => $2)
		ORDER BY prepared`, prefix, age.Seconds())
	if err != nil {
		return nil, err
	}
	var out []string
	for rows.Next() {
		var gid string
		if err := rows.Scan(&gid); err != nil {
			rows.Close()
			return nil, err
		}
		out = append(out, gid)
	}
	return out, closeRows(rows)
}
