package mysql

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/tandemdb/tandem/engine"
)

// Limits of MariaDB 10.11 with InnoDB's defaults (DYNAMIC rows, 16 KiB pages).
const (
	maxName     = 64    // characters in a table, column or index name
	maxVarchar  = 16383 // characters of a utf8mb4 VARCHAR
	maxVarbin   = 65532 // bytes of a VARBINARY
	maxKeyBytes = 3072  // bytes of the columns of an index
	maxKeyParts = 32    // columns of an index
	maxRowBytes = 65535 // bytes of a row, not counting LONGTEXT and LONGBLOB
	maxRecord   = 8126  // bytes of a row InnoDB keeps in its page, at most
)

// CheckTable implements engine.TableChecker. It refuses, before anything is
// created, what MariaDB would refuse when the table is created: an index
// over unbounded text or bytes, keys longer than 3072 bytes, sizes beyond
// VARCHAR's and VARBINARY's, rows beyond MySQL's 65535 bytes or InnoDB's
// 8126 in a page, an AUTO_INCREMENT column that does not lead the primary
// key, a default longer than its column, and names longer than 64
// characters.
func (Engine) CheckTable(t *engine.Table) error {
	if n := utf8.RuneCountInString(t.Name); n > maxName {
		return fmt.Errorf("table %s: the name has %d characters; MySQL allows %d", t.Name, n, maxName)
	}
	for i := range t.Columns {
		c := &t.Columns[i]
		if n := utf8.RuneCountInString(c.Name); n > maxName {
			return fmt.Errorf("table %s: column %s: the name has %d characters; MySQL allows %d", t.Name, c.Name, n, maxName)
		}
		switch {
		case c.Type == engine.Text && c.Size > maxVarchar:
			return fmt.Errorf("table %s: column %s: size %d: MySQL's VARCHAR holds at most %d characters of utf8mb4; give a smaller size, or none for LONGTEXT",
				t.Name, c.Name, c.Size, maxVarchar)
		case c.Type == engine.Blob && c.Size > maxVarbin:
			return fmt.Errorf("table %s: column %s: size %d: MySQL's VARBINARY holds at most %d bytes; give a smaller size, or none for LONGBLOB",
				t.Name, c.Name, c.Size, maxVarbin)
		case c.Auto && (len(t.PK) == 0 || t.PK[0] != c.Name):
			return fmt.Errorf("table %s: column %s: MySQL's AUTO_INCREMENT column must lead the primary key", t.Name, c.Name)
		}
		if d := c.Default; c.Type == engine.Text && c.Size > 0 && len(d) >= 2 && d[0] == '\'' && d[len(d)-1] == '\'' {
			if n := utf8.RuneCountInString(strings.ReplaceAll(d[1:len(d)-1], "''", "'")); n > c.Size {
				return fmt.Errorf("table %s: column %s: the default has %d characters, the column holds %d", t.Name, c.Name, n, c.Size)
			}
		}
	}
	if err := checkKey(t, "the primary key", t.PK); err != nil {
		return err
	}
	for _, x := range t.Indexes {
		if n := utf8.RuneCountInString(x.Name); n > maxName {
			return fmt.Errorf("table %s: index %s: the name has %d characters; MySQL allows %d", t.Name, x.Name, n, maxName)
		}
		if err := checkKey(t, "index "+x.Name, x.Columns); err != nil {
			return err
		}
	}
	row, record := rowSizes(t)
	if row > maxRowBytes {
		return fmt.Errorf("table %s: a row takes up to %d bytes, MySQL allows %d (LONGTEXT and LONGBLOB count 12): make sizes smaller, or give the largest columns no size (LONGTEXT, LONGBLOB)",
			t.Name, row, maxRowBytes)
	}
	if record >= maxRecord {
		return fmt.Errorf("table %s: InnoDB would keep up to %d bytes of a row in its page, more than it allows (%d with its overhead): text of up to 63 characters and bytes of up to 255 stay in the page; give some of those columns a larger size, or none",
			t.Name, record, maxRecord)
	}
	return nil
}

// checkKey checks the columns of an index (what names it) against InnoDB's
// limits.
func checkKey(t *engine.Table, what string, cols []string) error {
	if len(cols) > maxKeyParts {
		return fmt.Errorf("table %s: %s has %d columns; MySQL allows %d", t.Name, what, len(cols), maxKeyParts)
	}
	n := 0
	for _, name := range cols {
		c := t.Column(name)
		if c == nil {
			return fmt.Errorf("table %s: %s names no column %s", t.Name, what, name)
		}
		if (c.Type == engine.Text || c.Type == engine.Blob) && c.Size == 0 {
			return fmt.Errorf("table %s: column %s is in %s but has no size: MySQL indexes %v of bounded length only; give it a size, e.g. `tandem:\"%s,size=255\"` (an index holds at most %d bytes: %d characters of text)",
				t.Name, c.Name, what, c.Type, c.Name, maxKeyBytes, maxKeyBytes/4)
		}
		n += keyBytes(c)
	}
	if n > maxKeyBytes {
		return fmt.Errorf("table %s: %s takes %d bytes; MySQL allows %d (a text character counts 4): make its columns' sizes smaller",
			t.Name, what, n, maxKeyBytes)
	}
	return nil
}

// keyBytes is what a column counts toward an index's length.
func keyBytes(c *engine.Column) int {
	switch c.Type {
	case engine.Text:
		return 4 * c.Size
	case engine.Blob:
		return c.Size
	case engine.Bool:
		return 1
	}
	return 8
}

// rowSizes returns the largest row of t as MySQL counts it against 65535
// bytes, and as InnoDB counts what it keeps in the page against 8126. Both
// match MariaDB 10.11 at the limits.
func rowSizes(t *engine.Table) (row, record int) {
	nullable := 0
	for i := range t.Columns {
		c := &t.Columns[i]
		if !c.NotNull && !c.Auto && !contains(t.PK, c.Name) {
			nullable++
		}
		var size int // bytes of the value, at most
		switch c.Type {
		case engine.Text:
			size = 4 * c.Size
		case engine.Blob:
			size = c.Size
		default:
			n := keyBytes(c)
			row += n
			record += n
			continue
		}
		lenBytes := 1
		if size > 255 {
			lenBytes = 2
		}
		switch {
		case size == 0: // LONGTEXT, LONGBLOB: a length and a pointer
			row += 12
			record += 21
		case size > 255: // may move out of the page, leaving a reference
			row += size + lenBytes
			record += 21
		default:
			row += size + lenBytes
			record += size + lenBytes
		}
	}
	nulls := (nullable + 7) / 8
	row += nulls
	// A record header, the transaction id and roll pointer, and a row
	// id when there is no primary key.
	record += 5 + nulls + 13
	if len(t.PK) == 0 {
		record += 6
	}
	return row, record
}

// Tables implements engine.Engine: the base tables of the connection's
// current database.
func (Engine) Tables(ctx context.Context, q engine.Querier) ([]engine.TableInfo, error) {
	// information_schema compares names case-insensitively; compare bytes.
	names, err := strings1(ctx, q, `SELECT table_name FROM information_schema.tables
		WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE'
		AND CAST(table_name AS BINARY) NOT LIKE '!_tandem!_%' ESCAPE '!'`)
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	byName := make(map[string]*engine.TableInfo, len(names))
	tables := make([]engine.TableInfo, len(names))
	for i, n := range names {
		tables[i].Name = n
		byName[n] = &tables[i]
	}
	if err := columns(ctx, q, byName); err != nil {
		return nil, err
	}
	if err := keys(ctx, q, byName); err != nil {
		return nil, err
	}
	return tables, nil
}

func columns(ctx context.Context, q engine.Querier, byName map[string]*engine.TableInfo) error {
	rows, err := q.QueryContext(ctx, `SELECT table_name, column_name, column_type, is_nullable, column_default, extra, collation_name
		FROM information_schema.columns WHERE table_schema = DATABASE() ORDER BY table_name, ordinal_position`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var table, nullable, extra string
		var def, coll sql.NullString
		var c engine.ColumnInfo
		if err := rows.Scan(&table, &c.Name, &c.Type, &nullable, &def, &extra, &coll); err != nil {
			rows.Close()
			return err
		}
		t := byName[table]
		if t == nil {
			continue
		}
		c.Logical = logical(c.Type)
		c.Type = declared(c.Type, extra, coll.String)
		c.NotNull = nullable == "NO"
		c.Default = normalDefault(def, c.Logical)
		t.Columns = append(t.Columns, c)
	}
	return closeRows(rows)
}

func keys(ctx context.Context, q engine.Querier, byName map[string]*engine.TableInfo) error {
	rows, err := q.QueryContext(ctx, `SELECT table_name, index_name, non_unique, seq_in_index, column_name, sub_part
		FROM information_schema.statistics WHERE table_schema = DATABASE() ORDER BY table_name, index_name, seq_in_index`)
	if err != nil {
		return err
	}
	type key struct{ table, index string }
	indexes := map[key]*engine.IndexInfo{}
	for rows.Next() {
		var k key
		var nonUnique, seq int
		var col string
		var part sql.NullInt64
		if err := rows.Scan(&k.table, &k.index, &nonUnique, &seq, &col, &part); err != nil {
			rows.Close()
			return err
		}
		t := byName[k.table]
		if t == nil {
			continue
		}
		if k.index == "PRIMARY" {
			for i := range t.Columns {
				if t.Columns[i].Name == col {
					t.Columns[i].PK = seq
				}
			}
			continue
		}
		if part.Valid { // an index on a prefix of the column
			col += "(" + strconv.FormatInt(part.Int64, 10) + ")"
		}
		x := indexes[k]
		if x == nil {
			x = &engine.IndexInfo{Name: k.index, Unique: nonUnique == 0}
			indexes[k] = x
		}
		x.Columns = append(x.Columns, col)
	}
	if err := closeRows(rows); err != nil {
		return err
	}
	for k, x := range indexes {
		t := byName[k.table]
		t.Indexes = append(t.Indexes, *x)
	}
	for _, t := range byName {
		sort.Slice(t.Indexes, func(i, j int) bool { return t.Indexes[i].Name < t.Indexes[j].Name })
	}
	return nil
}

// displayWidth is an integer type's display width, which MariaDB shows
// (BIGINT(20)) and MySQL 8 does not; TINYINT(1) is how BOOLEAN shows.
var displayWidth = regexp.MustCompile(`^((?:tiny|small|medium|big)?int)\(\d+\)`)

// declared renders a column's type as information_schema describes it,
// upper case but for quoted ENUM values, with the attributes that change
// what the column stores: AUTO_INCREMENT, ON UPDATE, and a collation other
// than tandem's.
func declared(columnType, extra, coll string) string {
	t := columnType
	if !strings.HasPrefix(t, "tinyint(1)") {
		t = displayWidth.ReplaceAllString(t, "$1")
	}
	t = upperOutsideQuotes(t)
	extra = strings.ToUpper(extra)
	if strings.Contains(extra, "AUTO_INCREMENT") {
		t += " AUTO_INCREMENT"
	}
	if i := strings.Index(extra, "ON UPDATE "); i >= 0 {
		t += " " + extra[i:]
	}
	if coll != "" && coll != collation {
		t += " COLLATE " + strings.ToUpper(coll)
	}
	return t
}

func upperOutsideQuotes(s string) string {
	var b strings.Builder
	quoted := false
	for _, r := range s {
		if r == '\'' {
			quoted = !quoted
		}
		if !quoted {
			r = unicode.ToUpper(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// logical maps a column_type to the logical type it stores. DECIMAL is
// Text: its exact digits, as tandem stores decimals.
func logical(columnType string) engine.Type {
	t := strings.ToLower(columnType)
	base := t
	if i := strings.IndexAny(t, "( "); i >= 0 {
		base = t[:i]
	}
	switch base {
	case "tinyint":
		if strings.HasPrefix(t, "tinyint(1)") && !strings.Contains(t, "unsigned") {
			return engine.Bool
		}
		return engine.Integer
	case "bool", "boolean":
		return engine.Bool
	case "smallint", "mediumint", "int", "integer", "bigint", "year":
		return engine.Integer
	case "float", "double", "real":
		return engine.Real
	case "decimal", "numeric", "char", "varchar", "tinytext", "text", "mediumtext", "longtext",
		"enum", "set", "json", "time", "uuid", "inet4", "inet6":
		return engine.Text
	case "datetime", "timestamp", "date":
		return engine.Time
	}
	return engine.Blob // binary, varbinary, the blobs, bit, geometry
}

// normalDefault turns information_schema's column_default into the
// literal tandem's Column.Default holds: text quoted with doubled quotes,
// numbers as Go formats them, "" for none or NULL. Expressions
// (current_timestamp(6)) stay as they are.
func normalDefault(def sql.NullString, t engine.Type) string {
	d := def.String
	switch {
	case !def.Valid || d == "NULL":
		return ""
	case len(d) >= 2 && d[0] == '\'' && d[len(d)-1] == '\'':
		return "'" + strings.ReplaceAll(unescapeLiteral(d[1:len(d)-1]), "'", "''") + "'"
	case t == engine.Real:
		if f, err := strconv.ParseFloat(d, 64); err == nil && !math.IsInf(f, 0) {
			return strconv.FormatFloat(f, 'g', -1, 64)
		}
	}
	return d
}

// unescapeLiteral undoes MariaDB's escapes in the text of a quoted literal.
func unescapeLiteral(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s):
			i++
			switch s[i] {
			case '0':
				b.WriteByte(0)
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			case 'b':
				b.WriteByte('\b')
			case 'Z':
				b.WriteByte(26)
			default: // \\, \', \" and the rest stand for themselves
				b.WriteByte(s[i])
			}
		case c == '\'' && i+1 < len(s) && s[i+1] == '\'':
			i++
			b.WriteByte('\'')
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func strings1(ctx context.Context, q engine.Querier, query string, args ...any) ([]string, error) {
	return engine.QueryStrings(ctx, q, query, args...)
}

func closeRows(rows *sql.Rows) error { return engine.CloseRows(rows) }
