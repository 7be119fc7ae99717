// Command tandem operates a set of SQL databases kept identical by the
// tandem library: it shows their status, catches up datasources, lists and
// resolves split-brain conflicts, promotes a datasource to primary, verifies
// and repairs the copies, and runs the demo.
//
// Exit codes: 0 success; 1 the command ran and found a problem (a node not
// in sync, structures that differ); 2 bad usage or configuration, or an error.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/tandemdb/tandem"

	// The command works on any config, so it links every engine and
	// arbiter tandem ships; each registers its name when imported.
	_ "github.com/tandemdb/tandem/arbiter/etcd"
	_ "github.com/tandemdb/tandem/engine/mysql"
	_ "github.com/tandemdb/tandem/engine/postgres"
	_ "github.com/tandemdb/tandem/engine/sqlite"
)

// command is one subcommand.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

var commands = []command{
	{"status", "show each datasource: identity, state, structure", runStatus},
	{"catch-up", "copy to datasources the writes they missed, now", runCatchUp},
	{"conflicts", "list the rows both sides of a split brain changed", runConflicts},
	{"resolve", "resolve conflicts by keeping one datasource's rows", runResolve},
	{"promote", "make a datasource the primary (--force: although it missed writes)", runPromote},
	{"verify", "prove the datasources identical, or list the rows that differ", runVerify},
	{"repair", "make one datasource's rows equal another's", runRepair},
	{"adopt", "take identical databases an application has into tandem (capture triggers, no row rewritten)", runAdopt},
	{"gen", "generate Go models from a Propel schema.xml", runGen},
	{"config", "import a Propel runtime-conf.xml or propel.yaml as a tandem config", runConfig},
	{"demo", "write a bookstore to two SQLite files and show they are identical", runDemo},
	{"proxy", "serve PostgreSQL's protocol in front of the cluster (tandem proxy hash-password: a user's verifier)", runProxy},
	{"version", "print tandem's version and the revision it was built from", runVersion},
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
		return 0
	}
	for _, c := range commands {
		if c.name == args[0] {
			return c.run(ctx, args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "tandem: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: tandem <command> [flags]\n\ncommands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'tandem <command> -h' for a command's flags.")
}

// newFlags returns a flag set that reports errors to stderr without exiting.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("tandem "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parseFlags parses args; on failure it returns the exit code to use.
func parseFlags(fs *flag.FlagSet, args []string) (ok bool, code int) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return false, 0
		}
		return false, 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "%s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return false, 2
	}
	return true, 0
}

// configFlag adds the --config flag; its default comes from $TANDEM_CONFIG,
// else tandem.yaml.
func configFlag(fs *flag.FlagSet) *string {
	def := os.Getenv("TANDEM_CONFIG")
	if def == "" {
		def = "tandem.yaml"
	}
	return fs.String("config", def, "config file (default from $TANDEM_CONFIG)")
}

// logger logs to stderr: warnings and errors, as text; with
// TANDEM_LOG_FORMAT=json as JSON lines, and with TANDEM_LOG_LEVEL=info (or
// debug) more. tandem's logs never hold a DSN password.
func logger(stderr io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: slog.LevelWarn}
	switch strings.ToLower(os.Getenv("TANDEM_LOG_LEVEL")) {
	case "debug":
		opts.Level = slog.LevelDebug
	case "info":
		opts.Level = slog.LevelInfo
	case "error":
		opts.Level = slog.LevelError
	}
	if strings.EqualFold(os.Getenv("TANDEM_LOG_FORMAT"), "json") {
		return slog.New(slog.NewJSONHandler(stderr, opts))
	}
	return slog.New(slog.NewTextHandler(stderr, opts))
}

// fail prints err and returns its exit code: 2 for everything but the
// problems a command reports as findings.
func fail(stderr io.Writer, cmd string, err error) int {
	fmt.Fprintf(stderr, "tandem %s: %v\n", cmd, err)
	return 2
}

// openCluster loads the config and opens the cluster.
func openCluster(ctx context.Context, path string, stderr io.Writer, opts ...tandem.Option) (*tandem.Cluster, error) {
	cfg, err := tandem.LoadConfig(path)
	if err != nil {
		return nil, err
	}
	return tandem.Open(ctx, cfg, append([]tandem.Option{tandem.WithLogger(logger(stderr))}, opts...)...)
}

// writeJSON prints v as indented JSON.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
