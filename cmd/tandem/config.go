package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/tandemdb/tandem/propel"
)

// configUsage prints the config command's subcommands.
func configUsage(w io.Writer) {
	fmt.Fprint(w, `usage: tandem config <subcommand> [flags]

subcommands:
  import     print a tandem config converted from a Propel runtime-conf.xml or propel.yaml

Run 'tandem config import -h' for its flags.
`)
}

// runConfig: tandem config import [--datasource NAME] [--out F] FILE.
func runConfig(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		configUsage(stderr)
		return 2
	}
	switch args[0] {
	case "-h", "--help", "help":
		configUsage(stdout)
		return 0
	case "import":
		return runConfigImport(args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "tandem config: unknown subcommand %q\n\n", args[0])
	configUsage(stderr)
	return 2
}

// runConfigImport converts a Propel configuration file: the YAML goes to
// stdout or --out, the warnings to stderr.
func runConfigImport(args []string, stdout, stderr io.Writer) int {
	const cmd = "config import"
	flags := newFlags(cmd, stderr)
	datasource := flags.String("datasource", "", "the Propel datasource (runtime-conf.xml) or connection (propel.yaml) to convert (default: Propel's default one)")
	out := flags.String("out", "", "write the tandem config to this new file (never overwritten) instead of stdout")
	setUsage(flags, "tandem config import [--datasource NAME] [--out F] FILE",
		"Converts one datasource of a Propel 1 runtime-conf.xml or Propel 2 propel.yaml\n"+
			"into a tandem config: its master becomes the primary and each slave another\n"+
			"datasource. Warnings (what to do before using it) go to stderr.")
	pos, ok, code := parseArgs(flags, args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return usageErr(stderr, cmd, "want one FILE, the Propel runtime-conf.xml or propel.yaml (got %d arguments)", len(pos))
	}
	file := pos[0]
	data, err := os.ReadFile(file)
	if err != nil {
		return fail(stderr, cmd, fmt.Errorf("cannot read %s: %w", file, errors.Unwrap(err)))
	}
	imp, err := propel.ImportConfig(data, file, propel.ImportOptions{Datasource: *datasource})
	if err != nil {
		return fail(stderr, cmd, err)
	}
	if *out != "" {
		if err := writeNewConfig(*out, []byte(imp.YAML)); err != nil {
			return fail(stderr, cmd, err)
		}
	} else if _, err := io.WriteString(stdout, imp.YAML); err != nil {
		return fail(stderr, cmd, err)
	}
	for _, w := range imp.Warnings {
		fmt.Fprintf(stderr, "tandem %s: warning: %s\n", cmd, w)
	}
	return 0
}

// writeNewConfig writes data to a file that must not exist yet, readable
// by its owner only: a tandem config holds passwords.
func writeNewConfig(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s already exists: not overwritten", path)
	}
	if err != nil {
		return fmt.Errorf("cannot create %s: %w", path, errors.Unwrap(err))
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	return nil
}
