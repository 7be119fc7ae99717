package pgwire

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/tandemdb/tandem/internal/dbserver"
)

// serveAuth accepts connections on a loopback port and authenticates each
// against users, as the proxy's front does; a client that passes gets a
// ready session (and nothing else). It returns the address.
func serveAuth(t *testing.T, users Users) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(10 * time.Second))
				b := pgproto3.NewBackend(conn, conn)
				msg, err := b.ReceiveStartupMessage()
				if _, ssl := msg.(*pgproto3.SSLRequest); ssl {
					if _, err := conn.Write([]byte("N")); err != nil {
						return
					}
					msg, err = b.ReceiveStartupMessage()
				}
				start, ok := msg.(*pgproto3.StartupMessage)
				if err != nil || !ok {
					return
				}
				if Authenticate(b, users, start.Parameters["user"]) != nil {
					return
				}
				b.Send(&pgproto3.ParameterStatus{Name: "server_version", Value: "15"})
				b.Send(&pgproto3.BackendKeyData{ProcessID: 1, SecretKey: []byte{0, 0, 0, 1}})
				b.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
				if b.Flush() != nil {
					return
				}
				b.Receive() // Terminate, or the client going away
			}()
		}
	}()
	return l.Addr().String()
}

func connect(addr, user, password string) error {
	host, port, _ := net.SplitHostPort(addr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgconn.Connect(ctx, fmt.Sprintf("host=%s port=%s user=%s password=%s dbname=app sslmode=prefer", host, port, user, password))
	if err != nil {
		return err
	}
	return c.Close(ctx)
}

// pgx's client (SCRAM-SHA-256, as libpq and every driver built on the
// protocol speak it) is let in with the right password only; a wrong
// password and an unknown user get the same 28P01 error.
func TestSCRAMWithPgxsClient(t *testing.T) {
	v, err := NewVerifier("s3cret pass")
	if err != nil {
		t.Fatal(err)
	}
	addr := serveAuth(t, Users{"app": v})
	if err := connect(addr, "app", "'s3cret pass'"); err != nil {
		t.Fatalf("the right password: %v", err)
	}
	for _, tc := range []struct{ user, password string }{{"app", "wrong"}, {"nobody", "'s3cret pass'"}, {"app", "''"}} {
		err := connect(addr, tc.user, tc.password)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "28P01" || !strings.Contains(pe.Message, "password authentication failed") {
			t.Errorf("user %s, password %s: %v, want 28P01", tc.user, tc.password, err)
		}
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("the error shows the password: %v", err)
		}
	}
}

// A verifier PostgreSQL made (CREATE ROLE ... PASSWORD with scram-sha-256)
// parses, and lets in the password it was made from: a hash can be copied
// from pg_authid into tandem's config.
func TestVerifierFromPostgreSQL(t *testing.T) {
	srv := dbserver.Start(t, dbserver.Postgres)
	srv.CreateDatabase(t, "auth")
	ctx := context.Background()
	c, err := pgconn.Connect(ctx, srv.DSN("auth", ""))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	res := c.ExecParams(ctx, "SELECT rolpassword FROM pg_authid WHERE rolname = current_user", nil, nil, nil, nil).Read()
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if err := c.Exec(ctx, "SET password_encryption = 'scram-sha-256'; CREATE ROLE proxy_user LOGIN PASSWORD 'from postgres'").Close(); err != nil {
		t.Fatal(err)
	}
	res = c.ExecParams(ctx, "SELECT rolpassword FROM pg_authid WHERE rolname = 'proxy_user'", nil, nil, nil, nil).Read()
	if res.Err != nil || len(res.Rows) != 1 {
		t.Fatalf("read the verifier: %v", res.Err)
	}
	text := string(res.Rows[0][0])
	v, err := ParseVerifier(text)
	if err != nil {
		t.Fatalf("PostgreSQL's verifier: %v", err)
	}
	if v.String() != text {
		t.Errorf("the verifier does not print back as PostgreSQL wrote it")
	}
	addr := serveAuth(t, Users{"proxy_user": v})
	if err := connect(addr, "proxy_user", "'from postgres'"); err != nil {
		t.Errorf("the password PostgreSQL's verifier was made from: %v", err)
	}
	if err := connect(addr, "proxy_user", "other"); err == nil {
		t.Error("another password was let in")
	}
}

// A client that breaks the exchange gets an error and the connection
// ends; nothing panics.
func TestSCRAMProtocolViolations(t *testing.T) {
	v, _ := NewVerifier("pw")
	for _, tc := range []struct {
		name string
		send func(f *pgproto3.Frontend)
	}{
		{"a query instead of SASL", func(f *pgproto3.Frontend) { f.Send(&pgproto3.Query{String: "SELECT 1"}) }},
		{"another mechanism", func(f *pgproto3.Frontend) {
			f.Send(&pgproto3.SASLInitialResponse{AuthMechanism: "SCRAM-SHA-1", Data: []byte("n,,n=,r=abc")})
		}},
		{"channel binding", func(f *pgproto3.Frontend) {
			f.Send(&pgproto3.SASLInitialResponse{AuthMechanism: "SCRAM-SHA-256", Data: []byte("p=tls-server-end-point,,n=,r=abc")})
		}},
		{"no nonce", func(f *pgproto3.Frontend) {
			f.Send(&pgproto3.SASLInitialResponse{AuthMechanism: "SCRAM-SHA-256", Data: []byte("n,,n=")})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			server, client := net.Pipe()
			defer client.Close()
			done := make(chan error, 1)
			go func() {
				defer server.Close()
				done <- Authenticate(pgproto3.NewBackend(server, server), Users{"u": v}, "u")
			}()
			f := pgproto3.NewFrontend(client, client)
			if msg, err := f.Receive(); err != nil {
				t.Fatal(err)
			} else if _, ok := msg.(*pgproto3.AuthenticationSASL); !ok {
				t.Fatalf("first message %T, want AuthenticationSASL", msg)
			}
			tc.send(f)
			if err := f.Flush(); err != nil {
				t.Fatal(err)
			}
			msg, err := f.Receive()
			if e, ok := msg.(*pgproto3.ErrorResponse); err != nil || !ok || e.Code != "08P01" {
				t.Errorf("answer %#v (%v), want an ErrorResponse 08P01", msg, err)
			}
			if err := <-done; err == nil {
				t.Error("Authenticate succeeded")
			}
		})
	}
}

func TestParseVerifier(t *testing.T) {
	v, err := NewVerifier("x")
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseVerifier(v.String())
	if err != nil || back.String() != v.String() {
		t.Fatalf("round trip: %v", err)
	}
	for _, bad := range []string{"", "md5abc", "SCRAM-SHA-256$", "SCRAM-SHA-256$4096:c2FsdA==$", "SCRAM-SHA-256$0:c2FsdA==$" + v.String()[strings.LastIndex(v.String(), "$")+1:],
		"SCRAM-SHA-256$4096:!!$a:b", "SCRAM-SHA-256$4096:c2FsdA==$c2hvcnQ=:c2hvcnQ="} {
		if _, err := ParseVerifier(bad); err == nil {
			t.Errorf("ParseVerifier(%q) accepted it", bad)
		}
	}
}

// FuzzParseVerifier: any text is a verifier or an error, never a panic,
// and what parses prints back the same.
func FuzzParseVerifier(f *testing.F) {
	v, _ := verifierOf("x", []byte("salt"), 4096)
	f.Add(v.String())
	f.Add("SCRAM-SHA-256$1:AA==$AA==:AA==")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseVerifier(s)
		if err != nil {
			return
		}
		if q, err := ParseVerifier(p.String()); err != nil || q.String() != p.String() {
			t.Fatalf("%q parses, but its print %q does not parse back the same: %v", s, p.String(), err)
		}
	})
}

func TestReadUsers(t *testing.T) {
	a, _ := NewVerifier("a")
	b, _ := NewVerifier("b")
	users, err := ReadUsers(strings.NewReader("# the proxy's users\n\napp:" + a.String() + "\n ops : " + b.String() + " \n"))
	if err != nil || len(users) != 2 || users["app"].String() != a.String() || users["ops"].String() != b.String() {
		t.Fatalf("ReadUsers: %v, %v", users, err)
	}
	_, err = ReadUsers(strings.NewReader("app:" + a.String() + "\nno colon\napp:" + b.String() + "\nx:md5secret\n"))
	for _, want := range []string{"line 2: want name:verifier", `line 3: user "app" given twice`, `line 4: user "x": not a SCRAM-SHA-256 verifier`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ReadUsers of bad lines: %v, want %q", err, want)
		}
	}
	if err != nil && strings.Contains(err.Error(), "md5secret") {
		t.Errorf("the error repeats a verifier's text: %v", err)
	}
	if _, err := ReadUsers(strings.NewReader("# nobody\n")); err == nil {
		t.Error("a file without users was accepted")
	}
}

// FuzzReadUsers: any text is users or an error, never a panic.
func FuzzReadUsers(f *testing.F) {
	v, _ := verifierOf("x", []byte("salt"), 4096)
	f.Add("app:" + v.String() + "\n")
	f.Add("# c\n:x\na:b:c\n")
	f.Fuzz(func(t *testing.T, s string) {
		users, err := ReadUsers(strings.NewReader(s))
		if err == nil && len(users) == 0 {
			t.Fatal("no error and no user")
		}
	})
}
