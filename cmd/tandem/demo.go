package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/tandemdb/tandem/internal/demo"
)

// runDemo: tandem demo [--dir DIR] [--addr ADDR] [--config F] [--token T]
// [--check]. It serves the bookstore and the operator dashboard until
// interrupted; with --check it tells the demo's story through the HTTP API
// on a free port instead, prints it and exits (0: every datasource
// identical at the end).
func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("demo", stderr)
	setUsage(fs, "tandem demo [--dir DIR] [--addr A] [--config F] [--token T] [--check]",
		"Serves a bookstore written through tandem to two SQLite files (or the\n"+
			"datasources of --config), with an operator dashboard and metrics. --check\n"+
			"tells the demo's story through its HTTP API and exits.")
	dir := fs.String("dir", "tandem-demo", "directory for the embedded default: foo.db, bar.db and tandem.yaml (created if absent)")
	addr := fs.String("addr", "127.0.0.1:8080", "address to listen on")
	config := fs.String("config", "", "run on the datasources of this config instead of the embedded default")
	token := fs.String("token", "", "admin token for the dashboard's fault buttons (default: a random one, printed)")
	check := fs.Bool("check", false, "tell the demo's story through the HTTP API, print it and exit")
	if ok, code := parseFlags(fs, args); !ok {
		return code
	}
	if *check {
		*addr = "127.0.0.1:0"
	}
	s, err := demo.Open(ctx, demo.Options{Dir: *dir, Config: *config, Token: *token, Log: logger(stderr)})
	if err != nil {
		return fail(stderr, "demo", err)
	}
	defer s.Close()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fail(stderr, "demo", fmt.Errorf("listen on %s: %w (choose another with --addr)", *addr, err))
	}
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	defer srv.Close()
	base := "http://" + ln.Addr().String()
	if *check {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		if err := demo.Check(ctx, stdout, s, base); err != nil {
			return fail(stderr, "demo", err)
		}
		return 0
	}
	fmt.Fprintf(stdout, "tandem demo: a bookstore on %s (config %s)\n\n", strings.Join(s.Datasources(), ", "), s.ConfigPath())
	fmt.Fprintf(stdout, "  books:       %s/books\n  dashboard:   %s/tandem/\n  JSON API:    %s/api/books, %s/api/status\n  metrics:     %s/metrics\n  admin token: %s\n\n",
		base, base, base, base, base, s.Token())
	fmt.Fprintf(stdout, "On the dashboard, take bar offline, add books, bring it back, watch it catch up, run verify.\nCtrl-C stops.\n")
	select {
	case <-ctx.Done():
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(shut)
		return 0
	case err := <-served:
		if errors.Is(err, http.ErrServerClosed) {
			return 0
		}
		return fail(stderr, "demo", err)
	}
}
