package stdlib

import (
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"testing"

	"github.com/tandemdb/tandem"
)

// A database's driver.ErrBadConn under tandem's error must not reach
// database/sql, which would close the connection (and its transaction)
// and, outside a transaction, run the statement again; tandem's errors
// stay visible.
func TestErrBadConnDoesNotReachDatabaseSQL(t *testing.T) {
	inner := &net.OpError{Op: "read", Err: errors.New("connection reset")}
	err := notBadConn(fmt.Errorf("exec on foo: %w: %w (%w)", tandem.ErrNotCommitted, driver.ErrBadConn, inner))
	if errors.Is(err, driver.ErrBadConn) {
		t.Error("driver.ErrBadConn reaches database/sql")
	}
	if !errors.Is(err, ErrLostConnection) {
		t.Error("not ErrLostConnection")
	}
	if !errors.Is(err, tandem.ErrNotCommitted) {
		t.Error("tandem.ErrNotCommitted is lost")
	}
	var ne *net.OpError
	if !errors.As(err, &ne) || ne != inner {
		t.Error("the network error is lost")
	}
	if plain := errors.New("x"); notBadConn(plain) != plain {
		t.Error("an error without ErrBadConn is changed")
	}
}
