package pgwire

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// selfSigned writes a certificate for 127.0.0.1 and its key in dir and
// returns their paths and the server's TLS config.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, cfg *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "tandem proxy test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "proxy.crt"), filepath.Join(dir, "proxy.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
}

// serveOn starts a Server like proxyPair's, with users, TLS and
// RequireTLS as given, on addr ("127.0.0.1:0", or another address).
func serveOn(t *testing.T, addr string, p *pair, users Users, tc *tls.Config, require bool) string {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	describe := DescribeOn(ctx, p.a.DSN("app", ""), p.b.DSN("app", ""))
	go (&Server{DB: p.db, Users: users, TLS: tc, RequireTLS: require, Describe: describe}).Serve(l)
	return l.Addr().String()
}

// TLS when the client asks for it (pgx and psql with sslmode=require,
// verified against the certificate with verify-full), refused without it
// off loopback when required; trust for a user configured so, from
// loopback only.
func TestTLSAndTrust(t *testing.T) {
	p := proxyPairOf(t)
	addr := p.addr
	dir := t.TempDir()
	certFile, _, tc := selfSigned(t, dir)
	ctx := context.Background()
	// The proxy's cluster, through a proxy of its own: a second Server
	// over the same DB, with TLS and a trusted user.
	conn0, err := pgx.Connect(ctx, proxyDSN(addr))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn0.Exec(ctx, `CREATE TABLE tls_t (id int PRIMARY KEY, v text)`); err != nil {
		t.Fatal(err)
	}
	conn0.Close(ctx)
	v, err := NewVerifier("app pw")
	if err != nil {
		t.Fatal(err)
	}
	users := Users{"app": v, "local": Verifier{Trust: true}}
	tlsAddr := serveOn(t, "127.0.0.1:0", p, users, tc, true)
	host, port, _ := net.SplitHostPort(tlsAddr)

	// pgx over TLS, the certificate verified.
	conn, err := pgx.Connect(ctx, fmt.Sprintf("host=%s port=%s user=app password='app pw' dbname=app sslmode=verify-full sslrootcert=%s", host, port, certFile))
	if err != nil {
		t.Fatalf("pgx over TLS: %v", err)
	}
	if _, ok := conn.PgConn().Conn().(*tls.Conn); !ok {
		t.Errorf("pgx's connection is a %T, not TLS", conn.PgConn().Conn())
	}
	if _, err := conn.Exec(ctx, `INSERT INTO tls_t VALUES (1, 'over tls')`); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	// psql too.
	if psql, err := exec.LookPath("psql"); err == nil {
		cmd := exec.Command(psql, "-X", "-A", "-t", "-c", "SELECT v FROM tls_t",
			fmt.Sprintf("host=%s port=%s user=app dbname=app sslmode=verify-full sslrootcert=%s", host, port, certFile))
		cmd.Env = append(os.Environ(), "PGPASSWORD=app pw")
		if out, err := cmd.CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "over tls" {
			t.Errorf("psql over TLS: %v: %s", err, out)
		}
	} else {
		needTool(t, err, "postgresql-client")
	}
	// trust, on loopback, without a password (and without TLS: loopback).
	conn, err = pgx.Connect(ctx, fmt.Sprintf("host=%s port=%s user=local dbname=app sslmode=disable", host, port))
	if err != nil {
		t.Fatalf("a trusted user on loopback: %v", err)
	}
	var got string
	if err := conn.QueryRow(ctx, `SELECT v FROM tls_t WHERE id = 1`).Scan(&got); err != nil || got != "over tls" {
		t.Errorf("read as the trusted user: %q, %v", got, err)
	}
	conn.Close(ctx)
	// The password user still needs its password.
	if _, err := pgx.Connect(ctx, fmt.Sprintf("host=%s port=%s user=app password=wrong dbname=app sslmode=disable", host, port)); err == nil || !strings.Contains(err.Error(), "28P01") {
		t.Errorf("a wrong password: %v, want 28P01", err)
	}

	// Off loopback: trust is refused, and so is a client without TLS.
	ip := nonLoopbackIP(t)
	if ip == "" {
		t.Log("no address but loopback on this machine: the off-loopback refusals are not tried")
		return
	}
	far := serveOn(t, net.JoinHostPort(ip, "0"), p, users, tc, true)
	fhost, fport, _ := net.SplitHostPort(far)
	_, err = pgx.Connect(ctx, fmt.Sprintf("host=%s port=%s user=local dbname=app sslmode=require", fhost, fport))
	if err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Errorf("a trusted user from %s: %v, want refused (loopback only)", ip, err)
	}
	_, err = pgx.Connect(ctx, fmt.Sprintf("host=%s port=%s user=app password='app pw' dbname=app sslmode=disable", fhost, fport))
	if err == nil || !strings.Contains(err.Error(), "requires TLS") {
		t.Errorf("a client without TLS from %s: %v, want refused", ip, err)
	}
	conn, err = pgx.Connect(ctx, fmt.Sprintf("host=%s port=%s user=app password='app pw' dbname=app sslmode=require", fhost, fport))
	if err != nil {
		t.Errorf("a client with TLS from %s: %v", ip, err)
	} else {
		conn.Close(ctx)
	}
}

// nonLoopbackIP returns an IPv4 address of this machine other than
// loopback, "" if it has none.
func nonLoopbackIP(t *testing.T) string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			return n.IP.String()
		}
	}
	return ""
}
