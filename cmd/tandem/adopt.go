package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/tandemdb/tandem"
	"github.com/tandemdb/tandem/verify"
)

// runAdopt: tandem adopt --config F. It takes databases an application
// already has (its tables, its rows) into tandem for SQL writes: it proves
// them identical first (or refuses, exit 1, pointing to repair), then
// installs tandem's bookkeeping tables and the capture triggers on every
// table, creating no table of the application's and rewriting no row, and
// proves them identical again (a write made meanwhile, around tandem,
// would show). Stop the application's writers while it runs. Exit 2 on
// an error (bad config, a datasource unreachable, structures that differ).
func runAdopt(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("adopt", stderr)
	setUsage(fs, "tandem adopt [--json] [--config F]",
		"Takes an application's identical databases into tandem for SQL writes: proves\n"+
			"them identical, installs tandem's bookkeeping tables and capture triggers\n"+
			"(creating no table of the application's, rewriting no row), and proves them\n"+
			"identical again. Exit 1 when they differ (then nothing is installed).")
	config := configFlag(fs)
	asJSON := fs.Bool("json", false, "print one JSON object: adopted or not, the tables, and verify's report when the datasources differ")
	if ok, code := parseFlags(fs, args); !ok {
		return code
	}
	cfg, err := tandem.LoadConfig(*config)
	if err != nil {
		return fail(stderr, "adopt", err)
	}
	type adoptJSON struct {
		Adopted     bool           `json:"adopted"`
		Reference   string         `json:"reference,omitempty"`
		Datasources []string       `json:"datasources,omitempty"`
		Tables      int            `json:"tables"`
		Keyless     []string       `json:"keyless"`
		Differences *verify.Report `json:"differences,omitempty"` // verify's report, when the datasources differ
	}
	writeVerify := func(w io.Writer, rep *verify.Report) {
		if *asJSON {
			writeJSON(w, adoptJSON{Reference: rep.Reference, Datasources: rep.Datasources, Tables: len(rep.Tables), Keyless: rep.Keyless, Differences: rep})
			return
		}
		writeVerify(w, rep)
	}
	compare := func() (*verify.Report, int) {
		prog := newProgress(stderr)
		rep, err := verify.Compare(ctx, cfg, verify.Options{KeyedOnly: true, Progress: prog.update})
		prog.clear()
		if err != nil {
			return nil, fail(stderr, "adopt", err)
		}
		if !rep.Identical {
			writeVerify(stdout, rep)
			fmt.Fprintf(stderr, "tandem adopt: the datasources differ: make them identical first (tandem repair --config %s --from %s --to ...), then adopt again\n", *config, rep.Reference)
			return rep, 1
		}
		return rep, 0
	}
	rep, code := compare()
	if code != 0 {
		return code
	}
	c, err := openCluster(ctx, *config, stderr)
	if err != nil {
		return fail(stderr, "adopt", err)
	}
	defer c.Close()
	if err := c.Capture(ctx); err != nil {
		return fail(stderr, "adopt", err)
	}
	if _, code := compare(); code != 0 {
		fmt.Fprintln(stderr, "tandem adopt: capture is installed, but a write reached one datasource around tandem meanwhile: repair, then verify")
		return code
	}
	if *asJSON {
		keyless := rep.Keyless
		if keyless == nil {
			keyless = []string{}
		}
		if err := writeJSON(stdout, adoptJSON{Adopted: true, Reference: rep.Reference, Datasources: rep.Datasources, Tables: len(rep.Tables), Keyless: keyless}); err != nil {
			return fail(stderr, "adopt", err)
		}
		return 0
	}
	fmt.Fprintf(stdout, "adopted: %s identical on %s and %s; capture installed: SQL writes through tandem (Cluster.Exec, the database/sql driver) reach every datasource, and writes around it are refused\n",
		plural(int64(len(rep.Tables)), "table"), rep.Reference, strings.Join(rep.Datasources, ", "))
	if len(rep.Keyless) > 0 {
		fmt.Fprintf(stdout, "tables without a primary key, whose writes tandem refuses until they have one: %s\n", strings.Join(rep.Keyless, ", "))
	}
	return 0
}
