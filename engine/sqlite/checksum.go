package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/ncruces/go-sqlite3"
	"github.com/ncruces/go-sqlite3/driver"

	"github.com/tandemdb/tandem/engine"
)

var _ engine.Checksummer = Engine{}

// checksumFunc is the aggregate SQL function behind Checksum, defined on
// every connection OpenPlain opens. SQLite has no hash function of its
// own; this one runs in Go, inside the query, over the stored values
// (no row leaves the database), and measured faster per row than SQLite's
// own sum(length(x)).
const checksumFunc = "tandem_checksum"

// Checksum implements engine.Checksummer.
func (Engine) Checksum(cols []string) string {
	return checksumFunc + "(" + strings.Join(cols, ", ") + ")"
}

// Stored implements engine.Checksummer. The unary + makes the column an
// expression: SQLite keeps the value and its storage class, and the driver,
// which decodes by declared type (TIMESTAMP as a time, BOOLEAN as a bool),
// sees no declared type.
func (Engine) Stored(col string) string { return "+" + col }

// checksum is one group's running sum.
type checksum struct{ sum uint64 }

func (c *checksum) Step(_ sqlite3.Context, args ...sqlite3.Value) {
	h := engine.NewRowHash()
	for _, v := range args {
		switch v.Type() {
		case sqlite3.INTEGER:
			h.Int(v.Int64())
		case sqlite3.FLOAT:
			h.Real(v.Float())
		case sqlite3.TEXT:
			h.Text(v.RawText())
		case sqlite3.BLOB:
			h.Blob(v.RawBlob())
		default:
			h.Null()
		}
	}
	c.sum += h.Sum()
}

func (c *checksum) Value(ctx sqlite3.Context) { ctx.ResultInt64(int64(c.sum)) }

func defineChecksum(c *sqlite3.Conn) error {
	return c.CreateWindowFunction(checksumFunc, -1, sqlite3.DETERMINISTIC,
		func() sqlite3.AggregateFunction { return &checksum{} })
}

// OpenPlain implements engine.Engine: the file must exist (mode=rw), and
// its journal mode is left as it is.
func (Engine) OpenPlain(ctx context.Context, s string) (*sql.DB, error) {
	d, err := parseDSN(s)
	if err != nil {
		return nil, err
	}
	// Writers (repair) begin with BEGIN IMMEDIATE, read-only transactions
	// (verify) with a plain BEGIN.
	db, err := driver.Open(driverDSN(d, true)+"&mode=rw", defineChecksum, defineCapture)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", d.path, err)
	}
	db.SetMaxOpenConns(4)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s: %w", d.path, err)
	}
	return db, nil
}
