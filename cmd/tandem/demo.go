package main

import (
	"context"
	"io"

	"github.com/tandemdb/tandem/demo"
)

// runDemo: tandem demo [--dir DIR] [--config F]. Without --config it runs on
// the embedded default, two SQLite files in DIR.
func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("demo", stderr)
	dir := fs.String("dir", "tandem-demo", "directory for the demo's config and SQLite files (created if absent)")
	config := fs.String("config", "", "run on the datasources of this config instead of the embedded default")
	if ok, code := parseFlags(fs, args); !ok {
		return code
	}
	path := *config
	if path == "" {
		var err error
		if path, err = demo.Setup(*dir); err != nil {
			return fail(stderr, "demo", err)
		}
	}
	if err := demo.Run(ctx, stdout, path, logger(stderr)); err != nil {
		return fail(stderr, "demo", err)
	}
	return 0
}
