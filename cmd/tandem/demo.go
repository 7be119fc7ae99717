package main

import (
	"context"
	"io"
	"path/filepath"

	"github.com/tandemdb/tandem/demo"
)

// runDemo: tandem demo [--dir DIR] [--config F]. Without --config it runs on
// the embedded default, two SQLite files in DIR, and also shows bar.db lost
// while writes go on, and caught up.
func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("demo", stderr)
	dir := fs.String("dir", "tandem-demo", "directory for the demo's config and SQLite files (created if absent)")
	config := fs.String("config", "", "run on the datasources of this config instead of the embedded default")
	if ok, code := parseFlags(fs, args); !ok {
		return code
	}
	path, lose := *config, ""
	if path == "" {
		var err error
		if path, err = demo.Setup(*dir); err != nil {
			return fail(stderr, "demo", err)
		}
		lose = filepath.Join(*dir, "bar.db") // the default's secondary
	}
	if err := demo.Run(ctx, stdout, path, logger(stderr), lose); err != nil {
		return fail(stderr, "demo", err)
	}
	return 0
}
