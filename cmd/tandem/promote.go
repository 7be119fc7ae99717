package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/tandemdb/tandem"
)

// runPromote: tandem promote [--force] NODE [--config F]. It makes NODE the
// primary: the cluster's view changes, by compare-and-swap, so that every
// process writes NODE first. A datasource left out of the writes (it missed
// writes it has not received) needs --force. Exit 0 when NODE is the
// primary; 1 when it is left out and --force was not given (nothing is
// changed); 2 on bad usage, an unknown datasource or an error.
func runPromote(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("promote", stderr)
	config := configFlag(fs)
	force := fs.Bool("force", false, "promote the datasource although it is left out of the writes (it missed writes)")
	asJSON := fs.Bool("json", false, "print JSON: the primary, the view generation, whether it changed, and what a forced promotion may have missed")
	setUsage(fs, "tandem promote [--force] [--json] NODE [--config F]",
		"Makes NODE the primary: every process writes it first from then on. Without an\n"+
			"arbiter this is how the primary changes when it is lost; with one, the first\n"+
			"datasource in rank order that misses nothing takes over again once it can.\n"+
			"A datasource left out of the writes missed writes: --force promotes it anyway,\n"+
			"and what it missed comes back when the database that has it returns (catch-up\n"+
			"merges the two and lists the keys both changed as conflicts: tandem conflicts).")
	names, ok, code := parseArgs(fs, args)
	if !ok {
		return code
	}
	if len(names) != 1 {
		return usageErr(stderr, "promote", "want one datasource NODE to promote, got %d arguments", len(names))
	}
	name := names[0]
	if err := checkNames(*config, name); err != nil {
		return fail(stderr, "promote", err)
	}
	c, err := openCluster(ctx, *config, stderr, tandem.WithoutBackground())
	if err != nil {
		return fail(stderr, "promote", err)
	}
	defer c.Close()

	st, err := c.Status(ctx)
	if err != nil {
		return fail(stderr, "promote", err)
	}
	type promoted struct {
		Primary string `json:"primary"`
		View    int64  `json:"view"`
		Changed bool   `json:"changed"`
		Missed  string `json:"missed,omitempty"` // with --force: what it may have missed
	}
	if st.Primary == name && st.View > 0 && st.WriteError == "" {
		if *asJSON {
			if err := writeJSON(stdout, promoted{Primary: name, View: int64(st.View)}); err != nil {
				return fail(stderr, "promote", err)
			}
			return 0
		}
		fmt.Fprintf(stdout, "%s is the primary already (view generation %d): nothing to change\n", name, st.View)
		return 0
	}
	missed := whatMissed(ctx, c, name)
	err = c.Promote(ctx, name, *force)
	switch {
	case errors.Is(err, tandem.ErrOutdated):
		fmt.Fprintf(stderr, "tandem promote: %s is outdated: %s.\n"+
			"Promoted, it takes writes without what it missed until the database that has those writes returns.\n"+
			"Use --force to promote it anyway: tandem promote --force %s\n", name, missed, name)
		return 1
	case err != nil:
		return fail(stderr, "promote", err)
	}
	if st, err = c.Status(ctx); err != nil {
		return fail(stderr, "promote", err)
	}
	if *asJSON {
		out := promoted{Primary: name, View: int64(st.View), Changed: true}
		if *force {
			out.Missed = missed
		}
		if err := writeJSON(stdout, out); err != nil {
			return fail(stderr, "promote", err)
		}
		return 0
	}
	fmt.Fprintf(stdout, "promoted %s: it is the primary (view generation %d)\n", name, st.View)
	if *force {
		fmt.Fprintf(stdout, "It may have missed writes (%s). When the database that has them returns,\n"+
			"catch-up merges the two; keys both changed become conflicts (tandem conflicts).\n", missed)
	}
	return 0
}

// whatMissed describes what the datasource called name missed, as status
// reports it: its outdated marker, the keys it still misses and its
// unresolved conflicts.
func whatMissed(ctx context.Context, c *tandem.Cluster, name string) string {
	st, err := c.Status(ctx)
	if err != nil {
		return "missed writes"
	}
	for _, n := range st.Nodes {
		if n.Name != name {
			continue
		}
		parts := []string{"missed writes"}
		if n.Outdated != "" {
			parts = []string{n.Outdated}
		}
		if n.Behind > 0 {
			parts = append(parts, plural(n.Behind, "key")+" still to copy to it")
		}
		if n.Conflicts > 0 {
			parts = append(parts, plural(n.Conflicts, "unresolved conflict")+" (tandem conflicts)")
		}
		return strings.Join(parts, "; ")
	}
	return "missed writes"
}
