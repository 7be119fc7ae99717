package mysql

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
)

// session are the session variables every connection gets: the driver sends
// them, as one SET statement, when it connects. None of them persists in the
// database, so OpenPlain sets them too.
var session = map[string]string{
	// DATETIME stores no zone; NOW() and TIMESTAMP columns of other
	// writers should agree with tandem's UTC.
	"time_zone": "'+00:00'",
	// Refuse what does not fit instead of storing something else.
	// NO_AUTO_VALUE_ON_ZERO: a row mirrored with id 0 keeps id 0 instead
	// of getting a new id from the counter. NO_BACKSLASH_ESCAPES: string
	// literals (Column.Default, conditions in queries) mean what they
	// mean in standard SQL, SQLite and PostgreSQL: '\' is a backslash.
	"sql_mode": "'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION,NO_ZERO_DATE,NO_ZERO_IN_DATE,ERROR_FOR_DIVISION_BY_ZERO,NO_AUTO_VALUE_ON_ZERO,NO_BACKSLASH_ESCAPES'",
	// MariaDB < 11.1 knows tx_isolation only; MySQL 8 transaction_isolation only.
	"tx_isolation": "'READ-COMMITTED'",
	// Literals compare like the columns: byte by byte, trailing spaces count.
	"collation_connection": "'" + collation + "'",
}

// collation is every text column's: binary (byte order is code point
// order, as in SQLite and PostgreSQL's "C") and NO PAD ('a' and 'a ' are
// different keys).
const collation = "utf8mb4_nopad_bin"

// driverCollation is the connection's collation in the handshake: the
// driver only knows MySQL's collation ids, so it announces utf8mb4_bin and
// collation_connection (above) switches to NO PAD.
const driverCollation = "utf8mb4_bin"

// sessionOptions are the session variables a DSN may set: timeouts, in
// seconds.
var sessionOptions = []string{
	"innodb_lock_wait_timeout", "lock_wait_timeout", "max_statement_time",
	"net_read_timeout", "net_write_timeout", "wait_timeout",
}

// driverOptions are the driver's parameters a DSN may set as it likes:
// they change how tandem connects, not what it reads or writes.
var driverOptions = []string{
	"allowCleartextPasswords", "allowFallbackToPlaintext", "allowNativePasswords",
	"allowOldPasswords", "checkConnLiveness", "compress", "connectionAttributes",
	"maxAllowedPacket", "readTimeout", "rejectReadOnly",
	"serverPubKey", "timeout", "tls", "writeTimeout",
}

// refused explains the driver parameters that would change what tandem
// reads or writes, when set to anything but the value tandem uses.
var refused = map[string]string{
	"allowAllFiles":    "it lets the server read any file of this machine (LOAD DATA LOCAL INFILE), which tandem never needs",
	"clientFoundRows":  "it changes what RowsAffected counts",
	"columnsWithAlias": "it renames the columns of results",
	"multiStatements":  "tandem sends one statement at a time, and several per query widen what an injected value could do",
	// Values go inside the statement's text: one round trip per statement
	// instead of two (prepare, execute), and exact for every value Value
	// returns (tested both ways).
	"interpolateParams": "tandem sends values inside the statement's text (one round trip per statement instead of two)",
	"parseTime":         "tandem reads DATETIME columns as time.Time",
	"loc":               "tandem writes and reads times in UTC",
	"timeTruncate":      "it would change the times tandem stores (to the microsecond)",
	"strict":            "the driver dropped it; tandem sets a strict sql_mode itself",
	"charset":           "tandem's text is utf8mb4",
	"collation":         "tandem sets the connection's collation itself",
}

// parse is mysql.ParseDSN, which panics on some parameters.
func parse(dsn string) (cfg *mysql.Config, err error) {
	defer func() {
		if recover() != nil {
			cfg, err = nil, fmt.Errorf("the driver cannot parse it")
		}
	}()
	return mysql.ParseDSN(dsn)
}

// config parses a DSN and applies tandem's settings. Its errors hold no
// password.
func config(dsn string) (*mysql.Config, error) {
	for _, p := range rawParams(dsn) {
		if key, _, _ := strings.Cut(p, "="); key == "strict" {
			return nil, fmt.Errorf("option strict: %s; leave it out", refused[key])
		}
	}
	cfg, err := parse(dsn)
	if err != nil {
		return nil, parseError(dsn)
	}
	if err := apply(cfg, dsn); err != nil {
		return nil, fmt.Errorf("%s", scrub(err.Error(), cfg.Passwd))
	}
	return cfg, nil
}

// apply checks the parameters of dsn, parsed into cfg, and sets tandem's.
func apply(cfg *mysql.Config, dsn string) error {
	if cfg.DBName == "" {
		return fmt.Errorf("no database name: write user:password@tcp(host:port)/dbname")
	}
	// The network and address are not echoed: a password holding '/' or
	// '(' can end up in them.
	switch cfg.Net {
	case "tcp", "tcp6":
		_, port, err := net.SplitHostPort(cfg.Addr)
		if n, perr := strconv.Atoi(port); err != nil || perr != nil || n < 1 || n > 65535 {
			return fmt.Errorf("invalid address: want tcp(host:port), tcp(host) or tcp([ipv6]:port)")
		}
	case "unix":
	default:
		return fmt.Errorf("unknown network: want tcp(host:port) or unix(/path/to/socket)")
	}
	params := map[string]string{}
	for _, p := range rawParams(dsn) {
		key, value, _ := strings.Cut(p, "=")
		if slices.Contains(driverOptions, key) {
			continue
		}
		if why, ok := refused[key]; ok {
			if !usual(cfg, key, value) {
				return fmt.Errorf("option %s=%s: %s; leave it out", key, value, why)
			}
			continue
		}
		v := cfg.Params[key]
		if ours, ok := session[key]; ok || key == "transaction_isolation" {
			if !ok || !strings.EqualFold(unquote(v), unquote(ours)) {
				return fmt.Errorf("option %s=%s: tandem sets %s itself; leave it out", key, value, key)
			}
			continue
		}
		if !slices.Contains(sessionOptions, key) {
			return fmt.Errorf("unknown option %q (known: %s, and the session variables %s)",
				key, strings.Join(driverOptions, ", "), strings.Join(sessionOptions, ", "))
		}
		if f, err := strconv.ParseFloat(v, 64); err != nil || f < 0 {
			return fmt.Errorf("option %s=%s: want a number of seconds", key, value)
		}
		params[key] = v
	}
	for k, v := range session {
		params[k] = v
	}
	cfg.Params = params
	cfg.InterpolateParams = true
	cfg.ParseTime = true
	cfg.Loc = time.UTC
	cfg.Collation = driverCollation
	return nil
}

// usual reports whether a refused parameter is set to the value tandem
// uses anyway.
func usual(cfg *mysql.Config, key, value string) bool {
	switch key {
	case "allowAllFiles":
		return !cfg.AllowAllFiles
	case "clientFoundRows":
		return !cfg.ClientFoundRows
	case "columnsWithAlias":
		return !cfg.ColumnsWithAlias
	case "multiStatements":
		return !cfg.MultiStatements
	case "interpolateParams":
		return cfg.InterpolateParams
	case "parseTime":
		return cfg.ParseTime
	case "loc":
		return cfg.Loc == time.UTC
	case "charset":
		return value == "utf8mb4"
	case "collation":
		return value == driverCollation || value == collation
	}
	return false
}

// rawParams returns the key=value parameters of a DSN as the driver finds
// them: after the first '?' that follows the last '/'.
func rawParams(dsn string) []string {
	_, query, ok := strings.Cut(dsn[strings.LastIndexByte(dsn, '/')+1:], "?")
	if !ok {
		return nil
	}
	var out []string
	for _, p := range strings.Split(query, "&") {
		if strings.Contains(p, "=") { // the driver skips the others
			out = append(out, p)
		}
	}
	return out
}

func unquote(s string) string {
	if len(s) >= 2 && (s[0] == '\'' || s[0] == '"') && s[len(s)-1] == s[0] {
		return s[1 : len(s)-1]
	}
	return s
}

// parseError explains why a DSN does not parse without quoting any of it
// but what a redacted copy shows: a password holding '/' or '@' can fool
// the driver into reading part of it as an address or a database name.
func parseError(dsn string) error {
	const form = "want user:password@tcp(host:port)/dbname?param=value"
	if strings.Contains(dsn, "://") {
		return fmt.Errorf("cannot parse the DSN: not a URL, %s", form)
	}
	red := dsn
	if start, end, ok := looseSpan(dsn); ok {
		red = dsn[:start] + "xxxxx" + dsn[end:]
	}
	if _, err := parse(red); err != nil {
		return fmt.Errorf("cannot parse the DSN %s: %s (%s)", red, err, form)
	}
	return fmt.Errorf("cannot parse the DSN %s: %s", red, form)
}

// looseSpan finds where a password may be in text that does not parse: from
// the first ':' to the last '@'.
func looseSpan(s string) (start, end int, ok bool) {
	k, j := strings.IndexByte(s, ':'), strings.LastIndexByte(s, '@')
	return k + 1, j, k >= 0 && k < j
}

// passwordSpan finds the password the driver reads in dsn: between the
// first ':' and the last '@' before the last '/'.
func passwordSpan(dsn string, cfg *mysql.Config) (start, end int, ok bool) {
	if cfg.Passwd == "" {
		return 0, 0, false
	}
	i := strings.LastIndexByte(dsn, '/')
	if i < 0 {
		return 0, 0, false
	}
	j := strings.LastIndexByte(dsn[:i], '@')
	if j < 0 {
		return 0, 0, false
	}
	k := strings.IndexByte(dsn[:j], ':')
	if k < 0 || dsn[k+1:j] != cfg.Passwd {
		return 0, 0, false
	}
	return k + 1, j, true
}

// scrub removes a password from an error text, should one of the values
// the text quotes hold it.
func scrub(text, password string) string {
	if len(password) < 3 {
		return text
	}
	return strings.ReplaceAll(text, password, "xxxxx")
}

// redact replaces the password of a DSN, or of any text that holds one.
func redact(s string) string {
	if cfg, err := parse(s); err == nil {
		if start, end, ok := passwordSpan(s, cfg); ok {
			return s[:start] + "xxxxx" + s[end:]
		}
	}
	// No DSN, or one where the driver finds no password: a password
	// holding '/' can make it read the rest as an address. Error
	// messages hold spaces, and ':' before '@' in "Error 1045 (28000):
	// Access denied for user 'a'@'h'"; DSNs hold no space.
	if start, end, ok := looseSpan(s); ok && !strings.ContainsAny(s, " \t\r\n") {
		return s[:start] + "xxxxx" + s[end:]
	}
	return s
}
