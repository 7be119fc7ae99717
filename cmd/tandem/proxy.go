package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"

	"github.com/tandemdb/tandem"
	"github.com/tandemdb/tandem/proxy/pgwire"
	"github.com/tandemdb/tandem/stdlib"
)

// stdin is where hash-password reads the password (tests replace it).
var stdin io.Reader = os.Stdin

// runProxy: tandem proxy [--config F] --users F [--listen A], or
// tandem proxy hash-password. Serves PostgreSQL's protocol in front of the
// cluster until interrupted (exit 0); 2 on bad usage or an error.
func runProxy(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "hash-password" {
		return runHashPassword(args[1:], stdin, stdout, stderr)
	}
	fs := newFlags("proxy", stderr)
	config := configFlag(fs)
	usersFile := fs.String("users", "", "the users file: name:verifier lines (tandem proxy hash-password makes a verifier) (required)")
	listen := fs.String("listen", "127.0.0.1:6432", "the address to listen on")
	certFile := fs.String("tls-cert", "", "a PEM certificate (chain): TLS is offered to clients that ask for it")
	keyFile := fs.String("tls-key", "", "the PEM key of --tls-cert")
	requireTLS := fs.Bool("require-tls", false, "refuse clients without TLS, but on loopback (needs --tls-cert)")
	setUsage(fs, "tandem proxy [--config F] --users F [--listen 127.0.0.1:6432] [--tls-cert F --tls-key F [--require-tls]] | tandem proxy hash-password",
		"Serves PostgreSQL's wire protocol in front of the cluster: psql and any\n"+
			"PostgreSQL client write through it to every datasource. Clients authenticate\n"+
			"with SCRAM-SHA-256 against the users file (a line name:trust lets that user\n"+
			"in without a password from loopback only); the simple and the extended query\n"+
			"protocols, COPY, transactions. hash-password reads a password on stdin and\n"+
			"prints its verifier for the users file.")
	if ok, code := parseFlags(fs, args); !ok {
		return code
	}
	if *usersFile == "" {
		return usageErr(stderr, "proxy", "--users is required: the file of name:verifier lines")
	}
	if (*certFile == "") != (*keyFile == "") {
		return usageErr(stderr, "proxy", "--tls-cert and --tls-key go together")
	}
	if *requireTLS && *certFile == "" {
		return usageErr(stderr, "proxy", "--require-tls needs --tls-cert and --tls-key")
	}
	var tlsConfig *tls.Config
	if *certFile != "" {
		pair, err := tls.LoadX509KeyPair(*certFile, *keyFile)
		if err != nil {
			return fail(stderr, "proxy", fmt.Errorf("--tls-cert/--tls-key: %w", err))
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	}
	f, err := os.Open(*usersFile)
	if err != nil {
		return fail(stderr, "proxy", err)
	}
	users, err := pgwire.ReadUsers(f)
	f.Close()
	if err != nil {
		return fail(stderr, "proxy", fmt.Errorf("%s: %w", *usersFile, err))
	}
	cfg, err := tandem.LoadConfig(*config)
	if err != nil {
		return fail(stderr, "proxy", err)
	}
	for _, ds := range cfg.Datasources {
		if ds.Driver != "postgres" {
			return fail(stderr, "proxy", fmt.Errorf("datasource %s uses driver %s: the proxy speaks PostgreSQL's protocol and its SQL, and needs every datasource on PostgreSQL", ds.Name, ds.Driver))
		}
	}
	c, err := tandem.Open(ctx, cfg, tandem.WithLogger(logger(stderr)))
	if err != nil {
		return fail(stderr, "proxy", err)
	}
	defer c.Close()
	db := stdlib.OpenDB(c)
	defer db.Close()
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		return fail(stderr, "proxy", err)
	}
	fmt.Fprintf(stdout, "tandem proxy: listening on %s for %s (%d users)\n", l.Addr(), strings.Join(datasourceNames(cfg), ", "), len(users))
	go func() {
		<-ctx.Done()
		l.Close()
	}()
	var dsns []string // what the extended protocol's statements are is asked of any of them
	for _, ds := range cfg.Datasources {
		dsns = append(dsns, ds.ResolvedDSN())
	}
	srv := &pgwire.Server{DB: db, Users: users, Log: logger(stderr), Describe: pgwire.DescribeOn(ctx, dsns...), Status: c.LastStatus,
		TLS: tlsConfig, RequireTLS: *requireTLS}
	if err := srv.Serve(l); err != nil && !errors.Is(err, net.ErrClosed) {
		return fail(stderr, "proxy", err)
	}
	return 0
}

func datasourceNames(cfg *tandem.Config) []string {
	var out []string
	for _, ds := range cfg.Datasources {
		out = append(out, ds.Name)
	}
	return out
}

// runHashPassword reads a password (one line) from stdin and prints its
// SCRAM-SHA-256 verifier: on stdin, so that the password stays out of the
// shell's history and the process list.
func runHashPassword(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		return usageErr(stderr, "proxy", "hash-password takes no argument: it reads the password on stdin")
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fail(stderr, "proxy hash-password", err)
	}
	password := strings.TrimRight(line, "\r\n")
	if password == "" {
		return usageErr(stderr, "proxy", "hash-password: no password on stdin")
	}
	v, err := pgwire.NewVerifier(password)
	if err != nil {
		return fail(stderr, "proxy hash-password", err)
	}
	fmt.Fprintln(stdout, v)
	return 0
}
