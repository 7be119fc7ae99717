package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/tandemdb/tandem"
	"github.com/tandemdb/tandem/verify"
)

// runVerify: tandem verify --config F [--table T ...] [--json]. Exit 0 when
// every table is identical on every datasource, 1 when rows differ, 2 on an
// error (bad config, a datasource unreachable, a table missing on one side
// or with other columns, a table without a primary key).
func runVerify(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("verify", stderr)
	setUsage(fs, "tandem verify [--table T...] [--json] [--config F]",
		"Proves the datasources identical, comparing checksums of key ranges inside\n"+
			"each database, or lists every row that differs (missing, extra, changed).\n"+
			"Exit 0 when identical, 1 when rows differ, 2 on an error.")
	config := configFlag(fs)
	var tables listFlag
	fs.Var(&tables, "table", "compare only this table (repeat, or separate by commas)")
	asJSON := fs.Bool("json", false, "print JSON instead of a report")
	if ok, code := parseFlags(fs, args); !ok {
		return code
	}
	cfg, err := tandem.LoadConfig(*config)
	if err != nil {
		return fail(stderr, "verify", err)
	}
	prog := newProgress(stderr)
	rep, err := verify.Compare(ctx, cfg, verify.Options{Tables: tables, Progress: prog.update})
	prog.clear()
	if err != nil {
		return fail(stderr, "verify", err)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return fail(stderr, "verify", err)
		}
	} else {
		writeVerify(stdout, rep)
	}
	if !rep.Identical {
		return 1
	}
	return 0
}

// writeVerify prints a report for people.
func writeVerify(w io.Writer, rep *verify.Report) {
	fmt.Fprintf(w, "reference: %s; compared with: %s\n", rep.Reference, strings.Join(rep.Datasources, ", "))
	for name, of := range rep.Aliases {
		fmt.Fprintf(w, "%s is the same database as %s: not compared\n", name, of)
	}
	total := 0
	for _, t := range rep.Tables {
		var counts []string
		for _, ds := range append([]string{rep.Reference}, rep.Datasources...) {
			if n, ok := t.Rows[ds]; ok {
				if len(counts) == 0 {
					counts = append(counts, fmt.Sprintf("%s on %s", plural(n, "row"), ds))
				} else {
					counts = append(counts, fmt.Sprintf("%d on %s", n, ds))
				}
			}
		}
		state := "identical"
		if n := len(t.Differences); n > 0 {
			state = plural(int64(n), "differing row")
		}
		fmt.Fprintf(w, "%s: %s (%s)\n", t.Table, state, strings.Join(counts, ", "))
		for _, d := range t.Differences {
			switch d.Kind {
			case verify.DiffMissing:
				fmt.Fprintf(w, "  missing  %s  on %s, not on %s\n", d.Key, rep.Reference, d.Datasource)
			case verify.DiffExtra:
				fmt.Fprintf(w, "  extra    %s  on %s, not on %s\n", d.Key, d.Datasource, rep.Reference)
			default:
				fmt.Fprintf(w, "  changed  %s  on %s: %s\n", d.Key, d.Datasource, strings.Join(d.Columns, ", "))
			}
		}
		total += len(t.Differences)
	}
	if total == 0 {
		fmt.Fprintf(w, "identical: %s\n", plural(int64(len(rep.Tables)), "table"))
	} else {
		fmt.Fprintf(w, "not identical: %s\n", plural(int64(total), "differing row"))
	}
}

// listFlag is a flag that may be repeated or hold a comma-separated list.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// progress shows how far a comparison has got on one line of a terminal,
// rewritten in place; it shows nothing when stderr is not a terminal.
type progress struct {
	w     io.Writer
	shown bool
}

func newProgress(stderr io.Writer) *progress {
	f, ok := stderr.(*os.File)
	if !ok {
		return &progress{}
	}
	if st, err := f.Stat(); err != nil || st.Mode()&os.ModeCharDevice == 0 {
		return &progress{}
	}
	return &progress{w: stderr}
}

func (p *progress) update(v verify.Progress) {
	if p.w == nil {
		return
	}
	if v.Done {
		p.clear()
		return
	}
	line := fmt.Sprintf("%s (%s vs %s): %d rows checked", v.Table, v.Reference, v.Datasource, v.Rows)
	if secs := v.Elapsed.Seconds(); secs > 0 {
		line += fmt.Sprintf(", %.0f rows/s", float64(v.Rows)/secs)
	}
	if v.Fraction > 0 && v.Fraction < 1 {
		left := time.Duration(float64(v.Elapsed) * (1 - v.Fraction) / v.Fraction)
		if left < time.Second {
			line += fmt.Sprintf(", %.0f%%, under 1s left", v.Fraction*100)
		} else {
			line += fmt.Sprintf(", %.0f%%, about %s left", v.Fraction*100, left.Round(time.Second))
		}
	}
	fmt.Fprintf(p.w, "\r\033[K%s", line)
	p.shown = true
}

// clear removes the progress line.
func (p *progress) clear() {
	if p.w != nil && p.shown {
		fmt.Fprint(p.w, "\r\033[K")
		p.shown = false
	}
}
