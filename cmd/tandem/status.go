package main

import (
	"context"
	"encoding/json"
	"io"

	"github.com/tandemdb/tandem"
)

// runStatus: tandem status --config F [--json]. Exit 0 when every node is in
// sync, nothing is in doubt, no conflict waits and the structures match; 1
// when not; 2 on error. It only looks: it catches nothing up.
func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("status", stderr)
	setUsage(fs, "tandem status [--config F] [--json]",
		"Shows each datasource: its role, state (in sync, behind, catching up,\n"+
			"outdated, down), keys behind, conflicts, writes in doubt, structure and last\n"+
			"error, then the view. Exit 0 when every datasource is in sync, 1 otherwise.")
	config := configFlag(fs)
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	if ok, code := parseFlags(fs, args); !ok {
		return code
	}
	c, err := openCluster(ctx, *config, stderr, tandem.WithoutBackground())
	if err != nil {
		return fail(stderr, "status", err)
	}
	defer c.Close()
	st, err := c.Status(ctx)
	if err != nil {
		return fail(stderr, "status", err)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(st); err != nil {
			return fail(stderr, "status", err)
		}
	} else if err := st.WriteTable(stdout); err != nil {
		return fail(stderr, "status", err)
	}
	if !st.Healthy() {
		return 1
	}
	return 0
}
