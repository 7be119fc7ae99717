package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"

	"github.com/tandemdb/tandem"
)

// runCatchUp: tandem catch-up [--config F] [NODE...]. It brings the named
// datasources (default: every one but the primary) up to date now, as the
// health loop of an application would, and prints what status says of each
// after. Exit 0 when every one ends in sync, 1 when not, 2 on bad usage or
// an error.
func runCatchUp(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("catch-up", stderr)
	config := configFlag(fs)
	asJSON := fs.Bool("json", false, "print JSON instead of a table: the datasources caught up, as status reports them, and whether all are in sync")
	setUsage(fs, "tandem catch-up [--config F] [--json] [NODE...]",
		"Copies to each NODE (default: every datasource but the primary) the rows\n"+
			"it missed, copies from it the rows only it holds, and records keys both\n"+
			"sides changed as conflicts (resolved by the configured policy, else by\n"+
			"tandem resolve). Exit 0 when every NODE ends in sync.")
	names, ok, code := parseArgs(fs, args)
	if !ok {
		return code
	}
	if err := checkNames(*config, names...); err != nil {
		return fail(stderr, "catch-up", err)
	}
	c, err := openCluster(ctx, *config, stderr, tandem.WithoutBackground())
	if err != nil {
		return fail(stderr, "catch-up", err)
	}
	defer c.Close()
	if len(names) == 0 {
		st, err := c.Status(ctx)
		if err != nil {
			return fail(stderr, "catch-up", err)
		}
		primary := st.Primary
		if primary == "" {
			primary = c.Primary().Name()
		}
		for _, n := range st.Nodes {
			// An alias is caught up with the datasource it is the same database as.
			if n.Name != primary && n.SameAs == "" {
				names = append(names, n.Name)
			}
		}
	}
	var uniq []string
	for _, n := range names {
		if !slices.Contains(uniq, n) {
			uniq = append(uniq, n)
		}
	}
	for _, n := range uniq {
		if err := c.CatchUp(ctx, n); err != nil {
			// The node ends not in sync, which the table shows.
			fmt.Fprintf(stderr, "tandem catch-up: %v\n", err)
		}
	}
	st, err := c.Status(ctx)
	if err != nil {
		return fail(stderr, "catch-up", err)
	}
	var synced bool
	if *asJSON {
		out := struct {
			Nodes  []tandem.NodeStatus `json:"nodes"`
			Synced bool                `json:"synced"`
		}{Nodes: []tandem.NodeStatus{}, Synced: true}
		for _, n := range st.Nodes {
			if slices.Contains(uniq, n.Name) {
				out.Nodes = append(out.Nodes, n)
				out.Synced = out.Synced && n.State == tandem.StateInSync
			}
		}
		synced = out.Synced
		err = writeJSON(stdout, out)
	} else {
		synced, err = writeCatchUp(stdout, st, uniq)
	}
	if err != nil {
		return fail(stderr, "catch-up", err)
	}
	if !synced {
		return 1
	}
	return 0
}

// writeCatchUp prints the status of the datasources called names, and
// reports whether every one of them is in sync.
func writeCatchUp(w io.Writer, st *tandem.Status, names []string) (bool, error) {
	if len(names) == 0 {
		_, err := fmt.Fprintln(w, "nothing to catch up: no datasource but the primary")
		return true, err
	}
	synced := true
	var conflicts int64
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tROLE\tSTATE\tBEHIND\tCONFLICTS\tNOTE")
	for _, n := range st.Nodes {
		if !slices.Contains(names, n.Name) {
			continue
		}
		role := "secondary"
		if n.Primary {
			role = "primary"
		}
		note := n.Error
		switch {
		case n.SameAs != "":
			note = "same database as " + n.SameAs
		case note == "" && n.Outdated != "":
			note = n.Outdated
		}
		if n.State != tandem.StateInSync {
			synced = false
		}
		conflicts = max(conflicts, n.Conflicts)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\n", n.Name, role, n.State, n.Behind, n.Conflicts, note)
	}
	if err := tw.Flush(); err != nil {
		return false, err
	}
	if conflicts > 0 {
		if _, err := fmt.Fprintf(w, "%s wait: see tandem conflicts, then tandem resolve and catch-up again\n", plural(conflicts, "unresolved conflict")); err != nil {
			return false, err
		}
	}
	return synced, nil
}
