package pgwire

// Savepoints, on the transaction's log (replay.go): SAVEPOINT marks where
// the log is; ROLLBACK TO SAVEPOINT rolls the whole transaction back,
// begins it again and runs its statements up to the mark again (each must
// return what it returned the first time, as in a replay); RELEASE drops
// the mark. The databases never see a savepoint: tandem's transaction on
// each is one, begun again. A ROLLBACK TO costs the statements before it.

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/tandemdb/tandem"
)

// savepoint is a SAVEPOINT of the session's transaction: its name and how
// many statements of the log came before it.
type savepoint struct {
	name string
	at   int
}

// rollbackTo reports whether text is a ROLLBACK TO [SAVEPOINT] name.
func rollbackTo(text string) bool {
	f := strings.Fields(strings.ToUpper(strings.TrimRight(strings.TrimSpace(text), ";")))
	return len(f) >= 3 && (f[1] == "TO" || len(f) >= 4 && (f[1] == "WORK" || f[1] == "TRANSACTION") && f[2] == "TO")
}

// savepointName returns the name a savepoint statement ends with, folded
// as PostgreSQL folds identifiers ("" if there is none).
func savepointName(text string) string {
	f := strings.Fields(strings.TrimRight(strings.TrimSpace(text), ";"))
	if len(f) < 2 {
		return ""
	}
	name := f[len(f)-1]
	if strings.HasPrefix(name, `"`) && strings.HasSuffix(name, `"`) && len(name) >= 2 {
		return strings.ReplaceAll(name[1:len(name)-1], `""`, `"`)
	}
	if up := strings.ToUpper(name); up == "SAVEPOINT" || up == "TO" {
		return ""
	}
	return strings.ToLower(name)
}

// find returns the index of the latest savepoint called name, or -1.
func (ss *session) find(name string) int {
	for i := len(ss.savepoints) - 1; i >= 0; i-- {
		if ss.savepoints[i].name == name {
			return i
		}
	}
	return -1
}

// savepoint runs SAVEPOINT, RELEASE [SAVEPOINT] or ROLLBACK TO
// [SAVEPOINT].
func (ss *session) savepoint(ctx context.Context, word, text string) {
	name := savepointName(text)
	what := word
	if word == "ROLLBACK" {
		what = "ROLLBACK TO SAVEPOINT"
	}
	switch {
	case ss.tx == nil:
		ss.failWith(&pgproto3.ErrorResponse{Severity: "ERROR", Code: "25P01", Message: what + " can only be used in transaction blocks"})
		return
	case name == "":
		ss.failWith(&pgproto3.ErrorResponse{Severity: "ERROR", Code: "42601", Message: what + ": want a savepoint's name"})
		return
	case ss.failed && word != "ROLLBACK":
		ss.aborted()
		return
	}
	switch word {
	case "SAVEPOINT":
		ss.savepoints = append(ss.savepoints, savepoint{name, len(ss.txlog)})
		ss.complete("SAVEPOINT")
	case "RELEASE":
		i := ss.find(name)
		if i < 0 {
			ss.failWith(&pgproto3.ErrorResponse{Severity: "ERROR", Code: "3B001", Message: fmt.Sprintf("savepoint %q does not exist", name)})
			return
		}
		ss.savepoints = ss.savepoints[:i]
		ss.complete("RELEASE")
	default:
		i := ss.find(name)
		if i < 0 {
			ss.failWith(&pgproto3.ErrorResponse{Severity: "ERROR", Code: "3B001", Message: fmt.Sprintf("savepoint %q does not exist", name)})
			return
		}
		if ss.noReplay {
			ss.fail(fmt.Errorf("%w: ROLLBACK TO SAVEPOINT: the transaction ran a COPY, or too many statements, to be run again to the savepoint; roll it back whole", tandem.ErrRefused))
			return
		}
		sp := ss.savepoints[i]
		ss.savepoints = ss.savepoints[:i+1] // the savepoint stays, as in PostgreSQL
		ss.txlog = ss.txlog[:sp.at]
		ss.failed = false
		if err := ss.replay(ctx, fmt.Errorf("rollback to savepoint %s", name)); err != nil {
			ss.fail(err)
			return
		}
		ss.complete("ROLLBACK")
	}
}
