package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	_ "github.com/ncruces/go-sqlite3/driver"

	"github.com/tandemdb/tandem"
)

// twoFiles is a fresh two-SQLite-file config: foo (primary by default, the
// first) and bar.
const twoFiles = `datasources:
  - name: foo
    driver: sqlite
    dsn: foo.db
  - name: bar
    driver: sqlite
    dsn: bar.db
`

// runT runs the command in-process and returns its exit code and output.
func runT(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

// writeConfig writes text as dir/tandem.yaml and returns its path.
func writeConfig(t *testing.T, dir, text string) string {
	t.Helper()
	path := filepath.Join(dir, "tandem.yaml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// listDir returns the sorted names in dir.
func listDir(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// statusJSON runs status --json on path and decodes it.
func statusJSON(t *testing.T, path string) (int, tandem.Status) {
	t.Helper()
	code, stdout, stderr := runT(t, "status", "--config", path, "--json")
	var st tandem.Status
	dec := json.NewDecoder(strings.NewReader(stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		t.Fatalf("status --json: output is not a tandem.Status: %v\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
	}
	if dec.More() {
		t.Errorf("status --json: more than one JSON value:\n%s", stdout)
	}
	return code, st
}

func node(t *testing.T, st tandem.Status, name string) tandem.NodeStatus {
	t.Helper()
	for _, n := range st.Nodes {
		if n.Name == name {
			return n
		}
	}
	t.Fatalf("no node %q in %+v", name, st.Nodes)
	return tandem.NodeStatus{}
}

// row returns the line of the status table (the lines after its NODE
// header) that starts with name.
func row(t *testing.T, out, name string) string {
	t.Helper()
	i := strings.Index(out, "NODE ")
	if i < 0 {
		t.Fatalf("no status table in:\n%s", out)
	}
	table := out[i:]
	for _, l := range strings.Split(table, "\n")[1:] {
		if f := strings.Fields(l); len(f) > 0 && f[0] == name {
			return l
		}
	}
	t.Fatalf("no row for %q in table:\n%s", name, table)
	return ""
}

var identityRE = regexp.MustCompile(`^[0-9a-f]{16}$`)

func TestUsage(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  []string // substrings of stderr (of either stream when wantCode is 0)
	}{
		{"no arguments", nil, 2, []string{"usage: tandem <command>", "status", "demo"}},
		{"help", []string{"help"}, 0, []string{"usage: tandem <command>", "status", "demo"}},
		{"-h", []string{"-h"}, 0, []string{"usage: tandem <command>"}},
		{"--help", []string{"--help"}, 0, []string{"usage: tandem <command>"}},
		{"unknown command", []string{"frobnicate"}, 2, []string{`unknown command "frobnicate"`, "usage: tandem"}},
		{"status unknown flag", []string{"status", "--bogus"}, 2, []string{"-bogus"}},
		{"demo unknown flag", []string{"demo", "--bogus"}, 2, []string{"-bogus"}},
		{"status unexpected argument", []string{"status", "--config", "x.yaml", "extra"}, 2, []string{`unexpected argument "extra"`}},
		{"demo unexpected argument", []string{"demo", "extra"}, 2, []string{`unexpected argument "extra"`}},
		{"status -h", []string{"status", "-h"}, 0, []string{"-config", "-json"}},
		{"demo -h", []string{"demo", "-h"}, 0, []string{"-dir", "-config"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Run in an empty directory, so that nothing a case might wrongly
			// open or create lands in the source tree.
			t.Chdir(t.TempDir())
			code, stdout, stderr := runT(t, tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d\nstderr:\n%s", code, tt.wantCode, stderr)
			}
			got := stderr
			if tt.wantCode == 0 {
				// Asked-for help may go to either stream.
				got = stdout + stderr
			} else if stdout != "" {
				t.Errorf("stdout not empty:\n%s", stdout)
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(got, want) {
					t.Errorf("output lacks %q:\n%s", want, got)
				}
			}
			if names := listDir(t, "."); len(names) > 0 {
				t.Errorf("created %v", names)
			}
		})
	}
}

func TestStatusFresh(t *testing.T) {
	dir := t.TempDir()
	path := writeConfig(t, dir, twoFiles)

	code, stdout, stderr := runT(t, "status", "--config", path)
	if code != 0 {
		t.Fatalf("status: exit %d, want 0\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if stderr != "" {
		t.Errorf("status: stderr not empty:\n%s", stderr)
	}
	if !strings.HasPrefix(stdout, "NODE") {
		t.Errorf("status: no table header:\n%s", stdout)
	}
	for _, name := range []string{"foo", "bar"} {
		r := row(t, stdout, name)
		for _, want := range []string{"sqlite", "in sync", "matches"} {
			if !strings.Contains(r, want) {
				t.Errorf("row %q lacks %q", r, want)
			}
		}
	}
	if r := row(t, stdout, "foo"); !strings.Contains(r, "primary") {
		t.Errorf("foo's row %q: not primary", r)
	}
	if r := row(t, stdout, "bar"); !strings.Contains(r, "secondary") {
		t.Errorf("bar's row %q: not secondary", r)
	}
	if strings.Contains(stdout, "structure differs") {
		t.Errorf("status reports a structure difference:\n%s", stdout)
	}
	for _, f := range []string{"foo.db", "bar.db"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("status did not create %s: %v", f, err)
		}
	}

	code, st := statusJSON(t, path)
	if code != 0 {
		t.Errorf("status --json: exit %d, want 0", code)
	}
	if !st.StructureMatch || len(st.StructureDiffs) != 0 {
		t.Errorf("structure_match %v, diffs %v; want true, none", st.StructureMatch, st.StructureDiffs)
	}
	if len(st.Nodes) != 2 || st.Nodes[0].Name != "foo" || st.Nodes[1].Name != "bar" {
		t.Fatalf("nodes %+v, want foo then bar", st.Nodes)
	}
	for _, n := range st.Nodes {
		if n.Driver != "sqlite" {
			t.Errorf("%s: driver %q, want sqlite", n.Name, n.Driver)
		}
		if !identityRE.MatchString(n.Identity) {
			t.Errorf("%s: identity %q, want 16 hex digits", n.Name, n.Identity)
		}
		if n.Primary != (n.Name == "foo") {
			t.Errorf("%s: primary %v", n.Name, n.Primary)
		}
		if n.State != tandem.StateInSync {
			t.Errorf("%s: state %q, want %q", n.Name, n.State, tandem.StateInSync)
		}
		if !n.StructureMatches {
			t.Errorf("%s: structure_matches false", n.Name)
		}
		if n.SameAs != "" || n.Error != "" || n.InDoubt != 0 {
			t.Errorf("%s: same_as %q, error %q, in_doubt %d; want none", n.Name, n.SameAs, n.Error, n.InDoubt)
		}
	}
	if st.Nodes[0].Identity == st.Nodes[1].Identity {
		t.Errorf("foo and bar share identity %s", st.Nodes[0].Identity)
	}

	// The identities are stored: a second look reports the same ones.
	_, again := statusJSON(t, path)
	for i := range st.Nodes {
		if again.Nodes[i].Identity != st.Nodes[i].Identity {
			t.Errorf("%s: identity changed from %s to %s", st.Nodes[i].Name, st.Nodes[i].Identity, again.Nodes[i].Identity)
		}
	}
}

func TestStatusPrimaryConfigured(t *testing.T) {
	dir := t.TempDir()
	path := writeConfig(t, dir, "primary: bar\n"+twoFiles)
	code, st := statusJSON(t, path)
	if code != 0 {
		t.Fatalf("exit %d, want 0", code)
	}
	if node(t, st, "foo").Primary || !node(t, st, "bar").Primary {
		t.Errorf("primary: bar, but nodes are %+v", st.Nodes)
	}
}

func TestStatusBadConfig(t *testing.T) {
	tests := []struct {
		name  string
		yaml  string // "" : no config file at all
		line  int    // 0: the message names no line
		field string // "": the message names no field
		msg   string // $DIR: the config's directory
	}{
		{
			name: "unknown driver",
			yaml: `datasources:
  - name: foo
    driver: sqlite
    dsn: foo.db
  - name: bar
    driver: oracle
    dsn: bar.db
`,
			line: 6, field: "datasources[1].driver", msg: `unknown driver "oracle" (known: mysql, postgres, sqlite)`,
		},
		{
			name: "duplicate names",
			yaml: `datasources:
  - name: foo
    driver: sqlite
    dsn: foo.db
  - name: foo
    driver: sqlite
    dsn: bar.db
`,
			line: 5, field: "datasources[1].name", msg: `"foo" is already the name of datasources[0]`,
		},
		{
			name: "single datasource",
			yaml: `# only one
datasources:
  - name: foo
    driver: sqlite
    dsn: foo.db
`,
			line: 2, field: "datasources", msg: "1 given: tandem mirrors at least two",
		},
		{
			name: "YAML syntax error",
			yaml: `datasources:
  - name: foo
    driver: sqlite
    dsn: foo.db
  - name: bar
    driver: sqlite: x
    dsn: bar.db
`,
			line: 6, msg: "YAML syntax: mapping values are not allowed in this context",
		},
		{
			// go-yaml reports parser (not scanner) errors at the 0-based
			// line of their context: here line 5, the line before the '['
			// that is never closed.
			name: "YAML syntax error: unclosed flow sequence",
			yaml: `datasources:
  - name: foo
    driver: sqlite
    dsn: foo.db
  - name: bar
    driver: [sqlite
    dsn: bar.db
`,
			line: 6, msg: "YAML syntax: did not find expected ',' or ']'",
		},
		{
			name: "unknown primary",
			yaml: "primary: baz\n" + twoFiles,
			line: 1, field: "primary", msg: `"baz" is not a datasource (have: bar, foo)`,
		},
		{
			name: "unknown field",
			yaml: twoFiles + "    password: x\n",
			line: 8, field: "datasources[1].password", msg: "unknown field",
		},
		{
			name: "dsn directory missing",
			yaml: `datasources:
  - name: foo
    driver: sqlite
    dsn: foo.db
  - name: bar
    driver: sqlite
    dsn: nodir/bar.db
`,
			line: 7, field: "datasources[1].dsn", msg: "directory $DIR/nodir does not exist",
		},
		{
			name: "missing file",
			msg:  "cannot read: no such file or directory",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "tandem.yaml")
			if tt.yaml != "" {
				path = writeConfig(t, dir, tt.yaml)
			}
			before := listDir(t, dir)

			code, stdout, stderr := runT(t, "status", "--config", path)
			if code != 2 {
				t.Errorf("exit %d, want 2", code)
			}
			if stdout != "" {
				t.Errorf("stdout not empty:\n%s", stdout)
			}
			want := "tandem status: " + path
			if tt.line > 0 {
				want += fmt.Sprintf(":%d", tt.line)
			}
			want += ": "
			if tt.field != "" {
				want += tt.field + ": "
			}
			want += strings.ReplaceAll(tt.msg, "$DIR", dir)
			if !strings.HasPrefix(stderr, want) {
				t.Errorf("stderr:\n%s\nwant it to begin %q", stderr, want)
			}
			if strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
				t.Errorf("stderr has more than one line:\n%s", stderr)
			}
			if after := listDir(t, dir); !slices.Equal(before, after) {
				t.Errorf("directory was %v, is %v: a bad config must create nothing", before, after)
			}

			// The demo refuses the same config the same way.
			code, _, stderr = runT(t, "demo", "--config", path, "--dir", filepath.Join(dir, "demo"))
			if code != 2 {
				t.Errorf("demo: exit %d, want 2", code)
			}
			if want := strings.Replace(want, "tandem status:", "tandem demo:", 1); !strings.HasPrefix(stderr, want) {
				t.Errorf("demo: stderr:\n%s\nwant it to begin %q", stderr, want)
			}
			if after := listDir(t, dir); !slices.Equal(before, after) {
				t.Errorf("demo: directory was %v, is %v: a bad config must create nothing", before, after)
			}
		})
	}
}

func TestStatusConfigFromEnv(t *testing.T) {
	dir := t.TempDir()
	path := writeConfig(t, dir, twoFiles)
	t.Chdir(t.TempDir()) // no tandem.yaml here
	t.Setenv("TANDEM_CONFIG", path)

	code, stdout, stderr := runT(t, "status")
	if code != 0 {
		t.Fatalf("status with $TANDEM_CONFIG: exit %d, want 0\nstderr:\n%s", code, stderr)
	}
	row(t, stdout, "foo")
	row(t, stdout, "bar")

	// --config wins over $TANDEM_CONFIG.
	t.Setenv("TANDEM_CONFIG", filepath.Join(dir, "absent.yaml"))
	if code, _, stderr := runT(t, "status", "--config", path); code != 0 {
		t.Errorf("--config with a bad $TANDEM_CONFIG: exit %d, want 0\nstderr:\n%s", code, stderr)
	}
	// And without --config the bad one is used, and named.
	code, _, stderr = runT(t, "status")
	if code != 2 || !strings.Contains(stderr, filepath.Join(dir, "absent.yaml")) {
		t.Errorf("bad $TANDEM_CONFIG: exit %d, stderr %q; want 2 naming absent.yaml", code, stderr)
	}
}

func TestStatusDefaultConfigFile(t *testing.T) {
	dir := t.TempDir()
	writeConfig(t, dir, twoFiles)
	t.Chdir(dir)
	t.Setenv("TANDEM_CONFIG", "")
	if code, _, stderr := runT(t, "status"); code != 0 {
		t.Errorf("status with ./tandem.yaml: exit %d, want 0\nstderr:\n%s", code, stderr)
	}
}

// checkSameDatabase checks that bar is reported as foo's database.
func checkSameDatabase(t *testing.T, path string) {
	t.Helper()
	code, stdout, stderr := runT(t, "status", "--config", path)
	if code != 0 {
		t.Errorf("status: exit %d, want 0\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if r := row(t, stdout, "bar"); !strings.Contains(r, "same database as foo") {
		t.Errorf("bar's row %q lacks %q", r, "same database as foo")
	}
	if r := row(t, stdout, "foo"); strings.Contains(r, "same database") {
		t.Errorf("foo's row %q says it is the same database as another", r)
	}

	code, st := statusJSON(t, path)
	if code != 0 {
		t.Errorf("status --json: exit %d, want 0", code)
	}
	foo, bar := node(t, st, "foo"), node(t, st, "bar")
	if foo.SameAs != "" {
		t.Errorf("foo: same_as %q, want none", foo.SameAs)
	}
	if bar.SameAs != "foo" {
		t.Errorf("bar: same_as %q, want foo", bar.SameAs)
	}
	if !identityRE.MatchString(foo.Identity) || bar.Identity != foo.Identity {
		t.Errorf("identities foo %q, bar %q: want one, 16 hex digits", foo.Identity, bar.Identity)
	}
	if bar.State != tandem.StateInSync || !bar.StructureMatches || !st.StructureMatch {
		t.Errorf("bar: state %q, structure_matches %v, structure_match %v; want in sync, true, true",
			bar.State, bar.StructureMatches, st.StructureMatch)
	}
}

func TestStatusSameDatabase(t *testing.T) {
	t.Run("dotdot path", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
			t.Fatal(err)
		}
		path := writeConfig(t, dir, strings.Replace(twoFiles, "dsn: bar.db", "dsn: ./sub/../foo.db", 1))
		checkSameDatabase(t, path)
		if _, err := os.Stat(filepath.Join(dir, "bar.db")); err == nil {
			t.Errorf("bar.db exists: bar should be foo.db")
		}
	})
	t.Run("symlink to existing file", func(t *testing.T) {
		dir := t.TempDir()
		// Create foo.db through a first status on a config whose bar is
		// another file, then point bar at foo.db by a symbolic link.
		first := writeConfig(t, dir, strings.Replace(twoFiles, "dsn: bar.db", "dsn: other.db", 1))
		if code, _, stderr := runT(t, "status", "--config", first); code != 0 {
			t.Fatalf("first status: exit %d\n%s", code, stderr)
		}
		if err := os.Symlink("foo.db", filepath.Join(dir, "bar.db")); err != nil {
			t.Fatal(err)
		}
		checkSameDatabase(t, writeConfig(t, dir, twoFiles))
	})
	t.Run("symlink to file not created yet", func(t *testing.T) {
		// foo and bar are opened concurrently, so whether bar's link still
		// dangles when it is opened is a race: try a few fresh directories.
		for i := range 8 {
			t.Run(fmt.Sprint(i), func(t *testing.T) {
				dir := t.TempDir()
				if err := os.Symlink("foo.db", filepath.Join(dir, "bar.db")); err != nil {
					t.Fatal(err)
				}
				checkSameDatabase(t, writeConfig(t, dir, twoFiles))
			})
		}
	})
}

func TestStatusStructureMismatch(t *testing.T) {
	dir := t.TempDir()
	path := writeConfig(t, dir, twoFiles)
	if code, stdout, stderr := runT(t, "status", "--config", path); code != 0 {
		t.Fatalf("first status: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}

	db, err := sql.Open("sqlite3", "file:"+filepath.Join(dir, "bar.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("CREATE TABLE extra (id INTEGER PRIMARY KEY, note TEXT)"); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	code, stdout, stderr := runT(t, "status", "--config", path)
	if code != 1 {
		t.Errorf("status: exit %d, want 1\nstderr:\n%s", code, stderr)
	}
	if r := row(t, stdout, "bar"); !strings.Contains(r, "differs") {
		t.Errorf("bar's row %q lacks %q", r, "differs")
	}
	if r := row(t, stdout, "foo"); !strings.Contains(r, "matches") {
		t.Errorf("foo's (the primary's) row %q lacks %q", r, "matches")
	}
	if want := "structure differs: table extra: missing on foo\n"; !strings.Contains(stdout, want) {
		t.Errorf("stdout lacks %q:\n%s", want, stdout)
	}

	code, st := statusJSON(t, path)
	if code != 1 {
		t.Errorf("status --json: exit %d, want 1", code)
	}
	if st.StructureMatch {
		t.Errorf("structure_match true, want false")
	}
	if !slices.Equal(st.StructureDiffs, []string{"table extra: missing on foo"}) {
		t.Errorf("structure_diffs %q, want [table extra: missing on foo]", st.StructureDiffs)
	}
	if foo, bar := node(t, st, "foo"), node(t, st, "bar"); !foo.StructureMatches || bar.StructureMatches {
		t.Errorf("structure_matches: foo %v, bar %v; want true, false", foo.StructureMatches, bar.StructureMatches)
	}
}

func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the demo's story twice")
	}
	dir := filepath.Join(t.TempDir(), "demo") // created by the demo
	for i := 1; i <= 2; i++ {
		code, stdout, stderr := runT(t, "demo", "--dir", dir, "--check")
		if code != 0 {
			t.Fatalf("demo run %d: exit %d, want 0\nstdout:\n%s\nstderr:\n%s", i, code, stdout, stderr)
		}
		for _, want := range []string{"bar taken offline", "added 2 books without bar", "verify (POST /api/verify): identical",
			fmt.Sprintf("the store holds %d books; every row is identical on every datasource", 5*i), "NODE", "in sync"} {
			if !strings.Contains(stdout, want) {
				t.Errorf("demo run %d: stdout lacks %q:\n%s", i, want, stdout)
			}
		}
		if r := row(t, stdout, "foo"); !strings.Contains(r, "primary") {
			t.Errorf("demo run %d: foo's row %q: not primary", i, r)
		}
		for _, f := range []string{"tandem.yaml", "foo.db", "bar.db"} {
			if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
				t.Errorf("demo run %d: %v", i, err)
			}
		}
	}

	// The demo's config is a valid config for status and verify.
	if code, stdout, stderr := runT(t, "status", "--config", filepath.Join(dir, "tandem.yaml")); code != 0 {
		t.Errorf("status on the demo: exit %d, want 0\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if code, stdout, stderr := runT(t, "verify", "--config", filepath.Join(dir, "tandem.yaml")); code != 0 {
		t.Errorf("verify on the demo: exit %d, want 0\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
}

// Every command's help has one format: "usage: tandem NAME ...", what it
// does, then its flags; exit 0.
func TestEveryCommandsHelpHasOneFormat(t *testing.T) {
	for _, c := range commands {
		args := []string{c.name, "-h"}
		if c.name == "config" {
			args = []string{"config", "import", "-h"}
		}
		var out, errs bytes.Buffer
		code := run(t.Context(), args, &out, &errs)
		help := out.String() + errs.String()
		if code != 0 || !strings.HasPrefix(help, "usage: tandem "+strings.Join(args[:len(args)-1], " ")) || !strings.Contains(help, "\n\nflags:\n  -") {
			t.Errorf("tandem %s: exit %d, help:\n%s", strings.Join(args, " "), code, help)
		}
	}
}
