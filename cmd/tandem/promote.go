package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/tandemdb/tandem"
)

// runPromote: tandem promote [--force] NODE [--config F]. It lets an
// outdated datasource (one that missed writes it has not received) take
// writes again. Exit 0 when it was promoted or was not outdated; 1 when it
// is outdated and --force was not given (nothing is changed); 2 on bad
// usage, an unknown datasource or an error.
func runPromote(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("promote", stderr)
	config := configFlag(fs)
	force := fs.Bool("force", false, "promote the datasource although it is outdated")
	setUsage(fs, "tandem promote --force NODE [--config F]",
		"Lets the outdated datasource NODE take writes again: it becomes the primary\n"+
			"while every datasource ranked before it is down. What it missed comes back\n"+
			"when the database that has it returns: catch-up merges the two and lists\n"+
			"the keys both changed as conflicts (see tandem conflicts).")
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

	// Without force Promote changes nothing: it reports whether the node
	// is outdated.
	err = c.Promote(ctx, name, false)
	if err == nil {
		fmt.Fprintf(stdout, "%s is not outdated: it already may take writes; nothing to promote\n", name)
		return 0
	}
	if !errors.Is(err, tandem.ErrOutdated) {
		return fail(stderr, "promote", err)
	}
	missed := whatMissed(ctx, c, name)
	if !*force {
		fmt.Fprintf(stderr, "tandem promote: %s is outdated: %s.\n"+
			"Promoted, it takes writes without what it missed until the database that has those writes returns.\n"+
			"Use --force to promote it anyway: tandem promote --force %s\n", name, missed, name)
		return 1
	}
	if err := c.Promote(ctx, name, true); err != nil {
		return fail(stderr, "promote", err)
	}
	fmt.Fprintf(stdout, "promoted %s: it may take writes again (it was outdated: %s)\n"+
		"It is the primary while every datasource ranked before it is down. When the database that\n"+
		"has what it missed returns, catch-up merges the two; keys both changed become conflicts\n"+
		"(tandem conflicts).\n", name, missed)
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
