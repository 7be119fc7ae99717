package pgwire

import (
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgproto3"
)

// Users are the proxy's users: a name to the verifier of its password.
type Users map[string]Verifier

// dummy is the verifier an unknown user is checked against, so that the
// exchange looks alike whether or not the user exists.
var dummy = func() Verifier {
	v, err := verifierOf("", []byte("tandem-no-such-user"), scramIterations)
	if err != nil {
		panic(err)
	}
	return v
}()

// Authenticate runs SCRAM-SHA-256 for user (from the startup message) on
// b, after the startup message: on success it has sent AuthenticationOk;
// on failure it has sent an ErrorResponse (28P01 for a wrong password or
// an unknown user, 08P01 for a protocol violation) and returns its error.
func Authenticate(b *pgproto3.Backend, users Users, user string) error {
	v, known := users[user]
	if !known || v.Trust { // a trusted user has no password to check
		v, known = dummy, false
	}
	s := &scramServer{v: v}
	fail := func(code string, err error) error {
		b.Send(&pgproto3.ErrorResponse{Severity: "FATAL", Code: code, Message: err.Error()})
		b.Flush() // the connection closes after: its error does not matter
		return err
	}
	b.Send(&pgproto3.AuthenticationSASL{AuthMechanisms: []string{"SCRAM-SHA-256"}})
	if err := b.Flush(); err != nil {
		return err
	}
	if err := b.SetAuthType(pgproto3.AuthTypeSASL); err != nil {
		return err
	}
	msg, err := b.Receive()
	if err != nil {
		return fail("08P01", fmt.Errorf("SCRAM: %w", err))
	}
	initial, ok := msg.(*pgproto3.SASLInitialResponse)
	if !ok || initial.AuthMechanism != "SCRAM-SHA-256" {
		return fail("08P01", errors.New("SCRAM: want a SASLInitialResponse for SCRAM-SHA-256"))
	}
	serverFirst, err := s.first(string(initial.Data))
	if err != nil {
		return fail("08P01", err)
	}
	b.Send(&pgproto3.AuthenticationSASLContinue{Data: []byte(serverFirst)})
	if err := b.Flush(); err != nil {
		return err
	}
	if err := b.SetAuthType(pgproto3.AuthTypeSASLContinue); err != nil {
		return err
	}
	if msg, err = b.Receive(); err != nil {
		return fail("08P01", fmt.Errorf("SCRAM: %w", err))
	}
	resp, ok := msg.(*pgproto3.SASLResponse)
	if !ok {
		return fail("08P01", errors.New("SCRAM: want a SASLResponse"))
	}
	serverFinal, err := s.final(string(resp.Data))
	if err == nil && !known {
		err = errAuth
	}
	if errors.Is(err, errAuth) {
		return fail("28P01", fmt.Errorf("password authentication failed for user %q", user))
	}
	if err != nil {
		return fail("08P01", err)
	}
	b.Send(&pgproto3.AuthenticationSASLFinal{Data: []byte(serverFinal)})
	b.Send(&pgproto3.AuthenticationOk{})
	return b.Flush()
}
