package main

import (
	"context"
	"fmt"
	"io"

	"github.com/tandemdb/tandem"
	"github.com/tandemdb/tandem/verify"
)

// runRepair: tandem repair --config F --from A --to B [--table T ...]
// [--dry-run]. It prints each row it changes (with --dry-run: would change),
// then compares the two again. Exit 0 when they are identical afterwards
// (with --dry-run: when nothing needed changing), 1 when rows still differ,
// 2 on an error.
func runRepair(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("repair", stderr)
	setUsage(fs, "tandem repair --from A --to B [--table T...] [--dry-run] [--json] [--config F]",
		"Makes B's rows equal A's: copies the rows B lacks or holds otherwise, deletes\n"+
			"those only B holds. --dry-run lists what it would change.")
	config := configFlag(fs)
	from := fs.String("from", "", "the datasource whose rows are right (required)")
	to := fs.String("to", "", "the datasource to repair (required)")
	var tables listFlag
	fs.Var(&tables, "table", "repair only this table (repeat, or separate by commas)")
	dryRun := fs.Bool("dry-run", false, "print the changes, write nothing")
	asJSON := fs.Bool("json", false, "print one JSON object: the changes, how many, and the verify after the repair")
	if ok, code := parseFlags(fs, args); !ok {
		return code
	}
	for _, f := range []struct{ name, val string }{{"--from", *from}, {"--to", *to}} {
		if f.val == "" {
			return usageErr(stderr, "repair", "%s is required", f.name)
		}
	}
	cfg, err := tandem.LoadConfig(*config)
	if err != nil {
		return fail(stderr, "repair", err)
	}
	verb := ""
	if *dryRun {
		verb = "would "
	}
	prog := newProgress(stderr)
	out := repairJSON{From: *from, To: *to, DryRun: *dryRun, Changes: []verify.RowChange{}}
	rep, err := verify.Repair(ctx, cfg, verify.RepairOptions{
		From: *from, To: *to, Tables: tables, DryRun: *dryRun, Progress: prog.update,
		Change: func(c verify.RowChange) {
			prog.clear()
			if *asJSON {
				out.Changes = append(out.Changes, c)
				return
			}
			fmt.Fprintf(stdout, "%s%s\n", verb, c)
		},
	})
	prog.clear()
	if *asJSON {
		return repairAsJSON(ctx, cfg, tables, rep, err, out, stdout, stderr)
	}
	if err != nil {
		if rep != nil && rep.Changes > 0 {
			fmt.Fprintf(stdout, "%s written before the error\n", plural(int64(rep.Changes), "row"))
		}
		return fail(stderr, "repair", err)
	}
	if *dryRun {
		fmt.Fprintf(stdout, "dry run: %s would change on %s; nothing written\n", plural(int64(rep.Changes), "row"), *to)
		if rep.Changes > 0 {
			return 1
		}
		return 0
	}
	fmt.Fprintf(stdout, "repaired %s on %s from %s\n", plural(int64(rep.Changes), "row"), *to, *from)
	after, err := verify.Compare(ctx, cfg, verify.Options{Tables: tables, Between: []string{*from, *to}, Progress: prog.update})
	prog.clear()
	if err != nil {
		return fail(stderr, "repair", fmt.Errorf("verify after the repair: %w", err))
	}
	if !after.Identical {
		fmt.Fprintf(stdout, "verify after the repair: rows still differ (written meanwhile?)\n")
		writeVerify(stdout, after)
		return 1
	}
	fmt.Fprintf(stdout, "verify after the repair: %s and %s are identical\n", *from, *to)
	return 0
}

// repairJSON is what repair --json prints.
type repairJSON struct {
	From    string             `json:"from"`
	To      string             `json:"to"`
	DryRun  bool               `json:"dry_run"`
	Changes []verify.RowChange `json:"changes"`
	Written int                `json:"written"` // rows changed on To (0 with dry_run)
	// Identical: verify after the repair found From and To identical
	// (not run with dry_run).
	Identical bool           `json:"identical"`
	After     *verify.Report `json:"verify_after,omitempty"`
	Error     string         `json:"error,omitempty"`
}

// repairAsJSON finishes repair --json: the verify after the repair, then
// one JSON object; the exit code as without --json.
func repairAsJSON(ctx context.Context, cfg *tandem.Config, tables []string, rep *verify.RepairReport, err error, out repairJSON, stdout, stderr io.Writer) int {
	code := 0
	if rep != nil && !out.DryRun {
		out.Written = rep.Changes
	}
	switch {
	case err != nil:
		out.Error, code = err.Error(), 2
	case out.DryRun:
		if len(out.Changes) > 0 {
			code = 1
		}
	default:
		after, verr := verify.Compare(ctx, cfg, verify.Options{Tables: tables, Between: []string{out.From, out.To}})
		if verr != nil {
			out.Error, code = fmt.Sprintf("verify after the repair: %v", verr), 2
			break
		}
		out.After, out.Identical = after, after.Identical
		if !after.Identical {
			code = 1
		}
	}
	if werr := writeJSON(stdout, out); werr != nil {
		return fail(stderr, "repair", werr)
	}
	if out.Error != "" {
		fmt.Fprintf(stderr, "tandem repair: %s\n", out.Error)
	}
	return code
}
