package soak

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/tandemdb/tandem"
	"github.com/tandemdb/tandem/internal/jepsen"
	"github.com/tandemdb/tandem/verify"
)

// Findings is what the checks found in a run's databases, read directly
// once the run is over.
type Findings struct {
	// Lost holds each acknowledged value that some database does not hold,
	// exactly once, under the id acknowledged.
	Lost []string
	// Divergent: the databases differ (a row on one only, or different
	// rows under one key, in any table).
	Divergent bool
	// Invariant: the bank's invariant broke (a database's total or
	// accounts wrong, or a read through the cluster saw it so).
	Invariant bool
	// Problems describes each problem, one per line.
	Problems []string
	// Rows counts each database's rows of the unique table.
	Rows map[string]int
}

// OK reports whether nothing was found.
func (f *Findings) OK() bool {
	return len(f.Lost) == 0 && !f.Divergent && !f.Invariant && len(f.Problems) == 0
}

// Expect is what the databases must agree with: the writers'
// acknowledgements and violations, and the bank's size.
type Expect struct {
	Acked    map[string]int64 // value to the id its Save returned
	DupAcks  []string         // values acknowledged twice, with two ids
	BadReads []string         // reads through the cluster that saw wrong accounts
	Accounts int
	Total    int64
}

// Check reads every database directly (nodes) and through verify.Compare
// (cfg) and checks them against e: every acknowledged value on every
// database, once, under its acknowledged id; no id with different rows on
// different databases; each database's accounts complete, non-negative,
// adding up to e.Total, and the same on every database; every table
// identical; no wrong read. It fails only when a database cannot be read.
func Check(ctx context.Context, cfg *tandem.Config, nodes []jepsen.Node, e Expect) (*Findings, error) {
	f := &Findings{}
	u, err := jepsen.CompareUnique(ctx, e.Acked, nodes...)
	if err != nil {
		return nil, err
	}
	f.Lost, f.Rows = u.Lost, u.Rows
	f.Divergent = len(u.Divergent) > 0
	f.Problems = append(f.Problems, u.Problems...)
	for _, d := range e.DupAcks {
		f.Problems = append(f.Problems, "acknowledged twice: "+d)
	}

	if p := jepsen.BankProblems(ctx, e.Accounts, e.Total, nodes...); len(p) > 0 {
		f.Invariant = true
		f.Problems = append(f.Problems, p...)
	}
	for i, bad := range e.BadReads {
		f.Invariant = true
		if i == 10 {
			f.Problems = append(f.Problems, fmt.Sprintf("... and %d more wrong reads", len(e.BadReads)-i))
			break
		}
		f.Problems = append(f.Problems, "wrong read through the cluster: "+bad)
	}
	if p, err := sameAccounts(ctx, nodes); err != nil {
		return nil, err
	} else if p != "" {
		f.Divergent = true
		f.Problems = append(f.Problems, p)
	}

	rep, err := verify.Compare(ctx, cfg, verify.Options{})
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	if !rep.Identical {
		f.Divergent = true
		n := 0
		for _, tr := range rep.Tables {
			for _, d := range tr.Differences {
				if n++; n <= 10 {
					f.Problems = append(f.Problems, fmt.Sprintf("verify: table %s: %s %v on %s %v", tr.Table, d.Kind, d.Key, d.Datasource, d.Columns))
				}
			}
		}
		if n > 10 {
			f.Problems = append(f.Problems, fmt.Sprintf("verify: ... and %d more differing rows", n-10))
		}
		if n == 0 {
			f.Problems = append(f.Problems, "verify: the databases are not identical")
		}
	}
	return f, nil
}

// sameAccounts describes how the accounts differ between nodes, or "".
func sameAccounts(ctx context.Context, nodes []jepsen.Node) (string, error) {
	var first map[int64]int64
	var diffs []string
	for i, n := range nodes {
		bal, err := n.Balances(ctx)
		if err != nil {
			return "", fmt.Errorf("%s: read %s: %w", n.Name, jepsen.AccountTable, err)
		}
		if i == 0 {
			first = bal
			continue
		}
		if !maps.Equal(first, bal) {
			diffs = append(diffs, fmt.Sprintf("%s %s, %s %s", nodes[0].Name, balances(first), n.Name, balances(bal)))
		}
	}
	if len(diffs) == 0 {
		return "", nil
	}
	return "accounts differ between databases: " + strings.Join(diffs, "; "), nil
}

func balances(bal map[int64]int64) string {
	parts := make([]string, 0, len(bal))
	for _, id := range slices.Sorted(maps.Keys(bal)) {
		parts = append(parts, fmt.Sprintf("%d:%d", id, bal[id]))
	}
	return "{" + strings.Join(parts, " ") + "}"
}
