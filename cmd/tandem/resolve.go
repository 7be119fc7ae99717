package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/tandemdb/tandem"
)

// runResolve: tandem resolve --take NODE (--all | --table T --key K)
// [--config F]. It resolves unresolved conflicts by keeping NODE's row on
// every database of the conflict. Exit 0 (it prints how many it resolved);
// 2 on bad usage or an error.
func runResolve(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("resolve", stderr)
	config := configFlag(fs)
	take := fs.String("take", "", "keep this datasource's row (required)")
	all := fs.Bool("all", false, "resolve every unresolved conflict the --take datasource is part of")
	table := fs.String("table", "", "resolve the conflict of this table (with --key)")
	key := fs.String("key", "", "the conflict's key as tandem conflicts prints it, e.g. '[42]' (with --table); a one-column key may be given bare: 42")
	asJSON := fs.Bool("json", false, "print JSON: how many conflicts were resolved, keeping whose rows")
	setUsage(fs, "tandem resolve --take NODE (--all | --table T --key K) [--json] [--config F]",
		"Resolves conflicts by keeping NODE's row (or its absence) on every database\n"+
			"of the conflict. A datasource left outdated by the conflict rejoins the writes\n"+
			"once caught up (tandem catch-up, or any application's health loop).")
	if ok, code := parseFlags(fs, args); !ok {
		return code
	}
	switch {
	case *take == "":
		return usageErr(stderr, "resolve", "--take NODE is required: the datasource whose row to keep")
	case *all && (*table != "" || *key != ""):
		return usageErr(stderr, "resolve", "--all and --table/--key exclude each other: give one")
	case !*all && *table == "" && *key == "":
		return usageErr(stderr, "resolve", "give --all, or --table T and --key K for one conflict")
	case *table != "" && *key == "":
		return usageErr(stderr, "resolve", "--table needs --key: the key of the conflict to resolve")
	case *key != "" && *table == "":
		return usageErr(stderr, "resolve", "--key needs --table: the table of the conflict to resolve")
	}
	if err := checkNames(*config, *take); err != nil {
		return fail(stderr, "resolve", err)
	}
	c, err := openCluster(ctx, *config, stderr, tandem.WithoutBackground())
	if err != nil {
		return fail(stderr, "resolve", err)
	}
	defer c.Close()
	k := *key
	if k != "" {
		if k, err = conflictKey(ctx, c, *table, k); err != nil {
			return fail(stderr, "resolve", err)
		}
	}
	n, err := c.Resolve(ctx, *table, k, *take)
	if err != nil {
		return fail(stderr, "resolve", err)
	}
	if *asJSON {
		if err := writeJSON(stdout, struct {
			Resolved int    `json:"resolved"`
			Kept     string `json:"kept"`
		}{n, *take}); err != nil {
			return fail(stderr, "resolve", err)
		}
		return 0
	}
	if n == 0 {
		fmt.Fprintf(stdout, "resolved 0 conflicts: none unresolved that %s is part of\n", *take)
		return 0
	}
	fmt.Fprintf(stdout, "resolved %s: kept %s's row\n", plural(int64(n), "conflict"), *take)
	fmt.Fprintln(stdout, "A datasource left outdated rejoins the writes once caught up: tandem catch-up")
	return 0
}

// conflictKey returns the key of table's unresolved conflict that key
// names: the key as tandem conflicts prints it (a JSON array), or for a
// one-column key its value alone.
func conflictKey(ctx context.Context, c *tandem.Cluster, table, key string) (string, error) {
	if strings.HasPrefix(strings.TrimSpace(key), "[") {
		return key, nil
	}
	list, err := c.Conflicts(ctx, false)
	if err != nil {
		return "", err
	}
	for _, r := range list {
		if r.Table != table {
			continue
		}
		var vals []json.RawMessage
		if json.Unmarshal([]byte(r.Key), &vals) != nil || len(vals) != 1 {
			continue
		}
		var s string
		if (json.Unmarshal(vals[0], &s) == nil && s == key) || string(vals[0]) == key {
			return r.Key, nil
		}
	}
	return "", fmt.Errorf("no unresolved conflict on table %s with key %s (tandem conflicts lists them)", table, key)
}
