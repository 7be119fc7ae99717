package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/tandemdb/tandem"
)

// runConflicts: tandem conflicts [--all] [--json] [--config F]. It lists the
// keys both sides of a split brain changed, with both rows as they were
// found. Exit 0 when none is unresolved, 1 when some are, 2 on error.
func runConflicts(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("conflicts", stderr)
	config := configFlag(fs)
	all := fs.Bool("all", false, "list the resolved conflicts too")
	asJSON := fs.Bool("json", false, `print JSON ({"conflicts": [...]}) instead of text`)
	setUsage(fs, "tandem conflicts [--all] [--json] [--config F]",
		"Lists the keys both sides of a split brain changed, with both rows as they\n"+
			"were found. Exit 0 when none is unresolved, 1 when some are.")
	if ok, code := parseFlags(fs, args); !ok {
		return code
	}
	c, err := openCluster(ctx, *config, stderr, tandem.WithoutBackground())
	if err != nil {
		return fail(stderr, "conflicts", err)
	}
	defer c.Close()
	list, err := c.Conflicts(ctx, *all)
	if err != nil {
		return fail(stderr, "conflicts", err)
	}
	var open int64
	for _, r := range list {
		if r.Resolution == "" {
			open++
		}
	}
	if *asJSON {
		out := struct {
			Conflicts []tandem.Conflict `json:"conflicts"`
		}{Conflicts: append([]tandem.Conflict{}, list...)}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return fail(stderr, "conflicts", err)
		}
	} else if err := writeConflicts(stdout, list, *all, open); err != nil {
		return fail(stderr, "conflicts", err)
	}
	if open > 0 {
		return 1
	}
	return 0
}

// writeConflicts prints the conflicts for people, one block each:
//
//	item ["k1"]: unresolved
//	  found at  2026-11-26T10:00:00Z
//	  foo       {"id":"k1","val":"a"}
//	  bar       {"id":"k1","val":"b"}
//	  resolve   tandem resolve --take foo|bar --table item --key '["k1"]'
func writeConflicts(w io.Writer, list []tandem.Conflict, all bool, open int64) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, r := range list {
		state := "unresolved"
		if r.Resolution != "" {
			state = "resolved"
			if r.ResolvedAt != nil {
				state += " at " + r.ResolvedAt.UTC().Format(time.RFC3339)
			}
			state += ": " + r.Resolution
		}
		fmt.Fprintf(tw, "%s %s: %s\n", r.Table, r.Key, state)
		fmt.Fprintf(tw, "  found at\t%s\n", r.FoundAt.UTC().Format(time.RFC3339))
		fmt.Fprintf(tw, "  %s\t%s\n", r.NodeA, showRow(r.RowA))
		fmt.Fprintf(tw, "  %s\t%s\n", r.NodeB, showRow(r.RowB))
		if r.Resolution == "" {
			fmt.Fprintf(tw, "  resolve\ttandem resolve --take %s|%s --table %s --key %s\n",
				r.NodeA, r.NodeB, shellQuote(r.Table), shellQuote(r.Key))
		}
		fmt.Fprintln(tw)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var err error
	switch {
	case all:
		_, err = fmt.Fprintf(w, "%s, %d unresolved\n", plural(int64(len(list)), "conflict"), open)
	case open == 0:
		_, err = fmt.Fprintln(w, "no unresolved conflicts")
	default:
		_, err = fmt.Fprintf(w, "%s\n", plural(open, "unresolved conflict"))
	}
	return err
}

// showRow prints a row's JSON, or says there is none.
func showRow(row json.RawMessage) string {
	if len(row) == 0 || string(row) == "null" {
		return "(no row: deleted)"
	}
	return string(row)
}
