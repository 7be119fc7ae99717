// Package sqltext reads what tandem needs to know of an application's SQL
// before running it: its kind (from the first keywords), whether the text
// holds one statement, and whether a statement sent as a query writes. It
// does not parse SQL otherwise: a statement runs on the primary as
// written, and the capture triggers say what it changed.
package sqltext

import (
	"fmt"
	"strings"
	"unicode"
)

// Kind is what a statement does, as far as tandem treats it.
type Kind int

const (
	Write       Kind = iota // DML, a query, a call: run with capture on
	DDL                     // CREATE, ALTER, DROP: run on every database
	Txn                     // BEGIN, COMMIT, SAVEPOINT...: refused, use the API
	Session                 // SET, RESET, PRAGMA: refused, changes what is stored
	Outside                 // COPY, GRANT...: refused, cannot be mirrored
	Maintenance             // VACUUM, ANALYZE, CHECKPOINT: run on every database, outside a transaction
)

// Classify returns the kind of query and its first keywords (upper
// case, for messages), and an error when query holds more than one
// statement or none.
func Classify(query string) (Kind, string, error) {
	toks, n := sqlWords(query, 3)
	if n == 0 {
		return 0, "", fmt.Errorf("empty statement")
	}
	if n > 1 {
		return 0, "", fmt.Errorf("%d statements in one string; send them one at a time (in a transaction to make them one write)", n)
	}
	if len(toks) == 0 {
		return Write, "", nil
	}
	first := toks[0]
	words := strings.Join(toks, " ")
	switch first {
	case "CREATE", "ALTER", "DROP":
		return DDL, words, nil
	case "BEGIN", "START", "COMMIT", "END", "ROLLBACK", "SAVEPOINT", "RELEASE", "ABORT", "PREPARE":
		return Txn, first, nil
	case "SET", "RESET", "PRAGMA", "USE", "DISCARD":
		return Session, first, nil
	case "VACUUM", "ANALYZE", "ANALYSE", "CHECKPOINT":
		return Maintenance, first, nil
	case "COPY", "ATTACH", "DETACH", "REINDEX", "CLUSTER", "LISTEN", "NOTIFY", "UNLISTEN", "LOAD", "GRANT", "REVOKE", "COMMENT", "SECURITY", "REFRESH", "IMPORT", "LOCK", "FLUSH", "OPTIMIZE", "HANDLER":
		return Outside, first, nil
	}
	return Write, words, nil
}

// sqlWords returns up to max leading keywords of the first statement of
// q (upper case; a leading parenthesis is skipped) and how many
// statements q holds. It knows SQL's quotes (”, "", “), comments (-- and
// /* */) and PostgreSQL's dollar quotes, so a semicolon inside them does
// not count. Whether a backslash escapes a quote depends on the engine
// and its settings, so q is read both ways and the larger count wins: a
// second statement is never missed.
func sqlWords(q string, max int) (words []string, statements int) {
	return scanBoth(q, max, true)
}

// allWords is sqlWords with every word of the first statement, not only
// the leading keywords.
func allWords(q string) (words []string, statements int) {
	return scanBoth(q, 1<<30, false)
}

func scanBoth(q string, max int, leading bool) (words []string, statements int) {
	words, statements = scanWords(q, max, true, leading)
	if _, n := scanWords(q, max, false, leading); n > statements {
		statements = n
	}
	return words, statements
}

func scanWords(q string, max int, backslash, leading bool) (words []string, statements int) {
	inStmt := false
	// A CREATE of a trigger or a routine holds statements of its own
	// between BEGIN and END (SQLite, MySQL); CASE ... END nests in them.
	create, depth := false, 0
	i := 0
	for i < len(q) {
		c := q[i]
		switch {
		case c == ';':
			if inStmt && depth == 0 {
				statements++
				inStmt, create = false, false
			}
			i++
			continue
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f':
			i++
			continue
		case c == '-' && i+1 < len(q) && q[i+1] == '-':
			for i < len(q) && q[i] != '\n' {
				i++
			}
			continue
		case c == '/' && i+1 < len(q) && q[i+1] == '*':
			depth := 0 // PostgreSQL nests block comments
			for i < len(q) {
				if q[i] == '/' && i+1 < len(q) && q[i+1] == '*' {
					depth++
					i += 2
				} else if q[i] == '*' && i+1 < len(q) && q[i+1] == '/' {
					depth--
					i += 2
					if depth == 0 {
						break
					}
				} else {
					i++
				}
			}
			continue
		}
		first := !inStmt
		inStmt = true
		switch {
		case c == '\'' || c == '"' || c == '`':
			i = skipQuoted(q, i, c, backslash)
			if leading && statements == 0 && len(words) < max {
				max = len(words) // the keywords end at the first quote
			}
		case c == '$':
			i = skipDollar(q, i)
			if leading && statements == 0 && len(words) < max {
				max = len(words)
			}
		case isWordByte(c):
			j := i
			for j < len(q) && isWordByte(q[j]) {
				j++
			}
			w := strings.ToUpper(q[i:j])
			switch {
			case first:
				create = w == "CREATE"
			case create && (w == "BEGIN" || w == "CASE"):
				depth++
			case create && w == "END" && depth > 0:
				depth--
			}
			if statements == 0 && len(words) < max && !unicode.IsDigit(rune(c)) {
				words = append(words, w)
			}
			i = j
		case c == '(' && statements == 0 && len(words) == 0:
			i++ // (SELECT ...) UNION ...
		default:
			if leading && statements == 0 && len(words) < max {
				max = len(words) // the keywords end at the first symbol
			}
			i++
		}
	}
	if inStmt {
		statements++
	}
	return words, statements
}

func isWordByte(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c >= 0x80
}

// skipQuoted returns the index after the quoted text starting at i: a
// doubled quote is one quote inside it, and with backslash a backslash
// escapes the next byte (MySQL's strings, PostgreSQL's E”).
func skipQuoted(q string, i int, quote byte, backslash bool) int {
	i++
	for i < len(q) {
		switch q[i] {
		case quote:
			if i+1 < len(q) && q[i+1] == quote {
				i += 2
				continue
			}
			return i + 1
		case '\\':
			if backslash && quote == '\'' {
				i += 2
				continue
			}
		}
		i++
	}
	return i
}

// skipDollar skips PostgreSQL's $tag$ ... $tag$ quoting starting at i; a
// $ that does not open one ($1, a lone $) is one byte.
func skipDollar(q string, i int) int {
	j := i + 1
	for j < len(q) && (q[j] == '_' || unicode.IsLetter(rune(q[j])) || (j > i+1 && q[j] >= '0' && q[j] <= '9')) {
		j++
	}
	if j >= len(q) || q[j] != '$' {
		return i + 1
	}
	tag := q[i : j+1]
	end := strings.Index(q[j+1:], tag)
	if end < 0 {
		return len(q)
	}
	return j + 1 + end + len(tag)
}

// Writes reports whether query, sent as a query, changes rows: INSERT,
// UPDATE, DELETE, REPLACE or MERGE (with RETURNING), a WITH that holds
// one of those, a CALL or DO. A SELECT that calls a function that writes
// is not seen; the read-only connection it runs on refuses it.
func Writes(query string) bool {
	words, n := allWords(query)
	if n != 1 || len(words) == 0 {
		return false
	}
	switch words[0] {
	case "INSERT", "UPDATE", "DELETE", "REPLACE", "MERGE", "UPSERT", "CALL", "DO":
		return true
	case "WITH":
		for _, w := range words[1:] {
			switch w {
			case "INSERT", "UPDATE", "DELETE", "MERGE":
				return true
			}
		}
	}
	return false
}

// DroppedTable returns the table a DROP TABLE statement drops ("" for any
// other statement, or several tables).
func DroppedTable(query string) string {
	f := strings.Fields(strings.TrimRight(strings.TrimSpace(query), ";"))
	if len(f) < 3 || !strings.EqualFold(f[0], "DROP") || !strings.EqualFold(f[1], "TABLE") {
		return ""
	}
	f = f[2:]
	if len(f) >= 3 && strings.EqualFold(f[0], "IF") && strings.EqualFold(f[1], "EXISTS") {
		f = f[2:]
	}
	name := f[0]
	if strings.Contains(name, ",") {
		return ""
	}
	return unquoted(name)
}

// AlteredTable returns the table an ALTER TABLE statement changes in a
// way that may write its rows with values each database decides for
// itself (a column added with a DEFAULT, a type changed USING an
// expression): then the primary's rows are to be copied to the others.
// "" for any other statement.
func AlteredTable(query string) string {
	f := strings.Fields(query)
	if len(f) < 4 || !strings.EqualFold(f[0], "ALTER") || !strings.EqualFold(f[1], "TABLE") {
		return ""
	}
	f = f[2:]
	for len(f) > 1 && (strings.EqualFold(f[0], "IF") || strings.EqualFold(f[0], "EXISTS") || strings.EqualFold(f[0], "ONLY")) {
		f = f[1:]
	}
	upper := " " + strings.ToUpper(strings.Join(f[1:], " ")) + " "
	if !strings.Contains(upper, " DEFAULT ") && !strings.Contains(upper, " USING ") {
		return ""
	}
	name := f[0]
	return unquoted(name)
}

// unquoted strips an identifier's quotes ("" or “).
func unquoted(name string) string {
	if len(name) >= 2 && (name[0] == '"' || name[0] == '`') && name[len(name)-1] == name[0] {
		return name[1 : len(name)-1]
	}
	return name
}

// Copy reports whether query is a COPY that reads its data from the
// client (COPY ... FROM STDIN: in) or sends it to the client (COPY ... TO
// STDOUT: out). Both are false for any other statement, and for a COPY
// from or to a file or a program on the server.
func Copy(query string) (in, out bool) {
	words, n := allWords(query)
	if n != 1 || len(words) < 3 || words[0] != "COPY" {
		return false, false
	}
	// The last FROM STDIN or TO STDOUT: a query copied out, COPY (SELECT
	// ... FROM t) TO STDOUT, has FROMs of its own.
	for i := len(words) - 2; i >= 1; i-- {
		switch {
		case words[i] == "FROM" && words[i+1] == "STDIN":
			return true, false
		case words[i] == "TO" && words[i+1] == "STDOUT":
			return false, true
		case words[i] == "FROM" || words[i] == "TO":
			return false, false // a file or a program
		}
	}
	return false, false
}
