package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/tandemdb/tandem"
)

// Helpers shared by the commands that name datasources (promote, resolve,
// catch-up).

// parseArgs parses flags that may come before, between or after the
// positional arguments (tandem promote bar --force), and returns the
// positional ones. "--" ends the flags. On failure it returns the exit code
// to use.
func parseArgs(fs *flag.FlagSet, args []string) (pos []string, ok bool, code int) {
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, false, 0
			}
			return nil, false, 2
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, true, 0
		}
		if i := len(args) - len(rest); i > 0 && args[i-1] == "--" {
			return append(pos, rest...), true, 0
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// setUsage makes fs print synopsis, then its flags.
func setUsage(fs *flag.FlagSet, synopsis, about string) {
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "usage: %s\n\n%s\n\nflags:\n", synopsis, about)
		fs.PrintDefaults()
	}
}

// checkNames loads the config at path and checks that every one of names
// is a datasource of it, before anything is opened: a misspelt name is a
// usage error and touches no database. It returns the config's error as is.
func checkNames(path string, names ...string) error {
	cfg, err := tandem.LoadConfig(path)
	if err != nil {
		return err
	}
	known := make([]string, len(cfg.Datasources))
	for i, ds := range cfg.Datasources {
		known[i] = ds.Name
	}
	for _, n := range names {
		found := false
		for _, k := range known {
			found = found || k == n
		}
		if !found {
			return fmt.Errorf("no datasource called %q in %s (known: %s)", n, path, strings.Join(known, ", "))
		}
	}
	return nil
}

// usageErr prints a usage problem and returns exit code 2.
func usageErr(stderr io.Writer, cmd, format string, args ...any) int {
	fmt.Fprintf(stderr, "tandem %s: %s\nRun 'tandem %s -h' for its flags.\n", cmd, fmt.Sprintf(format, args...), cmd)
	return 2
}

// plural returns "1 conflict", "2 conflicts".
func plural(n int64, word string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.,:/@%+=") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
