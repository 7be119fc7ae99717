package tandem_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tandemdb/tandem"
)

// cfgListTree returns every path under dir (relative, sorted), so a test can
// prove that loading a config created nothing.
func cfgListTree(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out = append(out, rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// cfgWrite writes text as tandem.yaml in dir and returns its path.
func cfgWrite(t testing.TB, dir, text string) string {
	t.Helper()
	path := filepath.Join(dir, "tandem.yaml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// cfgAsError asserts that err is a *tandem.ConfigError matching ErrConfig.
// cfgProblem returns the problem err reports about field (the first when
// it reports one only).
func cfgProblem(t testing.TB, err error, field string) *tandem.ConfigError {
	t.Helper()
	first := cfgAsError(t, err)
	var many *tandem.ConfigErrors
	if !errors.As(err, &many) {
		return first
	}
	for _, ce := range many.Errors {
		if ce.Field == field {
			return ce
		}
	}
	t.Errorf("no problem about %q among %v", field, err)
	return first
}

func cfgAsError(t testing.TB, err error) *tandem.ConfigError {
	t.Helper()
	if err == nil {
		t.Fatal("want a config error, got nil")
	}
	if !errors.Is(err, tandem.ErrConfig) {
		t.Errorf("errors.Is(%v, ErrConfig) = false", err)
	}
	var ce *tandem.ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("error %v (%T) is not a *tandem.ConfigError", err, err)
	}
	return ce
}

const cfgTwoSQLite = `datasources:
  - name: foo
    driver: sqlite
    dsn: foo.db
  - name: bar
    driver: sqlite
    dsn: bar.db
`

func TestConfigAcceptsTwoSQLiteFilesWithoutPrimary(t *testing.T) {
	dir := t.TempDir()
	before := cfgListTree(t, dir)
	cfg, err := tandem.ParseConfig([]byte(cfgTwoSQLite), dir)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Primary != "" {
		t.Errorf("Primary = %q, want empty (the first datasource)", cfg.Primary)
	}
	want := []tandem.Datasource{
		{Name: "foo", Driver: "sqlite", DSN: "foo.db"},
		{Name: "bar", Driver: "sqlite", DSN: "bar.db"},
	}
	if len(cfg.Datasources) != len(want) {
		t.Fatalf("%d datasources, want %d", len(cfg.Datasources), len(want))
	}
	for i, ds := range cfg.Datasources {
		if ds.Name != want[i].Name || ds.Driver != want[i].Driver || ds.DSN != want[i].DSN {
			t.Errorf("datasources[%d] = %s/%s/%s, want %s/%s/%s", i, ds.Name, ds.Driver, ds.DSN, want[i].Name, want[i].Driver, want[i].DSN)
		}
	}
	if after := cfgListTree(t, dir); !slices.Equal(before, after) {
		t.Errorf("parsing a config created files: %v -> %v", before, after)
	}
}

func TestConfigAcceptsNamedPrimaryAndSQLiteOptions(t *testing.T) {
	dir := t.TempDir()
	text := `primary: bar
datasources:
  - name: foo
    driver: sqlite
    dsn: foo.db?synchronous=NORMAL&busy_timeout=100
  - name: bar
    driver: sqlite
    dsn: file:bar.db?synchronous=extra
`
	cfg, err := tandem.ParseConfig([]byte(text), dir)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Primary != "bar" {
		t.Errorf("Primary = %q, want bar", cfg.Primary)
	}
	if len(cfg.Datasources) != 2 {
		t.Fatalf("%d datasources, want 2", len(cfg.Datasources))
	}
}

func TestConfigResolvesRelativeDSNAgainstConfigDirectory(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	path := cfgWrite(t, dir, `datasources:
  - name: foo
    driver: sqlite
    dsn: data/foo.db
  - name: bar
    driver: sqlite
    dsn: ./data/../data/bar.db
`)
	// The test's working directory has no data/ directory: the config can
	// only be valid if data/ is looked up next to the config file.
	if _, err := os.Stat("data"); err == nil {
		t.Skip("the working directory has a data directory")
	}
	cfg, err := tandem.LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := tandem.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, name := range []string{"foo.db", "bar.db"} {
		if _, err := os.Stat(filepath.Join(dir, "data", name)); err != nil {
			t.Errorf("Open did not create %s next to the config: %v", name, err)
		}
	}
}

func TestConfigKeepsAbsoluteDSN(t *testing.T) {
	dir := t.TempDir()
	other := t.TempDir()
	text := fmt.Sprintf("datasources:\n  - name: foo\n    driver: sqlite\n    dsn: %s\n  - name: bar\n    driver: sqlite\n    dsn: bar.db\n",
		filepath.Join(other, "foo.db"))
	if _, err := tandem.ParseConfig([]byte(text), dir); err != nil {
		t.Fatal(err)
	}
	// An absolute path in a missing directory is refused, naming that directory.
	text = strings.Replace(text, other, filepath.Join(other, "missing"), 1)
	_, err := tandem.ParseConfig([]byte(text), dir)
	ce := cfgAsError(t, err)
	if !strings.Contains(ce.Msg, filepath.Join(other, "missing")) {
		t.Errorf("message %q does not name the missing directory", ce.Msg)
	}
}

// Every way a config can be wrong, with the field and line the error must
// name. setup prepares the config directory (it runs before the snapshot).
var cfgBadCases = []struct {
	name  string
	setup func(t *testing.T, dir string)
	text  string
	field string
	line  int
	msg   string // a substring of the message
}{
	{
		name: "YAMLSyntaxError",
		text: "datasources:\n  - name: foo\n    driver: 'sqlite\n",
		line: 3, msg: "YAML syntax",
	},
	{
		name: "NotAMapping",
		text: "- foo\n- bar\n",
		line: 1, msg: "want a mapping",
	},
	{
		name:  "UnknownTopLevelField",
		text:  "primry: foo\n" + cfgTwoSQLite,
		field: "primry", line: 1, msg: "unknown field",
	},
	{
		name:  "MissingDatasources",
		text:  "primary: foo\n",
		field: "datasources", line: 1, msg: "missing",
	},
	{
		name:  "DatasourcesNotAList",
		text:  "datasources: foo.db\n",
		field: "datasources", line: 1, msg: "want a list",
	},
	{
		name:  "DatasourceNotAMapping",
		text:  "datasources:\n  - foo.db\n  - bar.db\n",
		field: "datasources[0]", line: 2, msg: "want a mapping",
	},
	{
		name:  "UnknownDatasourceField",
		text:  "datasources:\n  - name: foo\n    driver: sqlite\n    dns: foo.db\n",
		field: "datasources[0].dns", line: 4, msg: "unknown field",
	},
	{
		name:  "DatasourceFieldGivenTwice",
		text:  "datasources:\n  - name: foo\n    name: bar\n",
		field: "datasources[0].name", line: 3, msg: "given twice",
	},
	{
		name:  "NameNotAString",
		text:  "datasources:\n  - name: [foo]\n",
		field: "datasources[0].name", line: 2, msg: "want a string",
	},
	{
		name:  "NullDSN",
		text:  "datasources:\n  - name: foo\n    driver: sqlite\n    dsn:\n  - name: bar\n    driver: sqlite\n    dsn: bar.db\n",
		field: "datasources[0].dsn", line: 4, msg: "want a string",
	},
	{
		name:  "DuplicateNames",
		text:  "datasources:\n  - name: foo\n    driver: sqlite\n    dsn: a.db\n  - name: foo\n    driver: sqlite\n    dsn: b.db\n",
		field: "datasources[1].name", line: 5, msg: "already the name of datasources[0]",
	},
	{
		name:  "UnknownPrimary",
		text:  "primary: baz\n" + cfgTwoSQLite,
		field: "primary", line: 1, msg: `"baz" is not a datasource (have: bar, foo)`,
	},
	{
		name:  "TwoPhaseOnSQLite",
		text:  "commit: two-phase\n" + cfgTwoSQLite,
		field: "commit", line: 1, msg: "two-phase: datasources[0] (foo) uses driver sqlite, which has no two-phase commit (postgres has)",
	},
	{
		name:  "UnknownCommit",
		text:  "commit: eventually\n" + cfgTwoSQLite,
		field: "commit", line: 1, msg: `"eventually": want concurrent or two-phase`,
	},
	{
		name:  "UnknownDriver",
		text:  "datasources:\n  - name: foo\n    driver: oracle\n    dsn: foo\n  - name: bar\n    driver: sqlite\n    dsn: bar.db\n",
		field: "datasources[0].driver", line: 3, msg: `unknown driver "oracle" (known: mysql, postgres, sqlite)`,
	},
	{
		name:  "MissingName",
		text:  "datasources:\n  - name: foo\n    driver: sqlite\n    dsn: foo.db\n  - driver: sqlite\n    dsn: bar.db\n",
		field: "datasources[1].name", line: 5, msg: "missing",
	},
	{
		name:  "MissingDriver",
		text:  "datasources:\n  - name: foo\n    dsn: foo.db\n  - name: bar\n    driver: sqlite\n    dsn: bar.db\n",
		field: "datasources[0].driver", line: 2, msg: "missing (known: mysql, postgres, sqlite)",
	},
	{
		name:  "MissingDSN",
		text:  "datasources:\n  - name: foo\n    driver: sqlite\n  - name: bar\n    driver: sqlite\n    dsn: bar.db\n",
		field: "datasources[0].dsn", line: 2, msg: "missing",
	},
	{
		name:  "EmptyDSN",
		text:  "datasources:\n  - name: foo\n    driver: sqlite\n    dsn: ''\n  - name: bar\n    driver: sqlite\n    dsn: bar.db\n",
		field: "datasources[0].dsn", line: 2, msg: "missing",
	},
	{
		name:  "DSNDirectoryDoesNotExist",
		text:  "datasources:\n  - name: foo\n    driver: sqlite\n    dsn: foo.db\n  - name: bar\n    driver: sqlite\n    dsn: nowhere/bar.db\n",
		field: "datasources[1].dsn", line: 7, msg: "does not exist",
	},
	{
		name:  "DSNIsADirectory",
		setup: func(t *testing.T, dir string) { os.Mkdir(filepath.Join(dir, "data"), 0o755) },
		text:  "datasources:\n  - name: foo\n    driver: sqlite\n    dsn: data\n  - name: bar\n    driver: sqlite\n    dsn: bar.db\n",
		field: "datasources[0].dsn", line: 4, msg: "not a regular file",
	},
	{
		name:  "DSNParentIsAFile",
		setup: func(t *testing.T, dir string) { os.WriteFile(filepath.Join(dir, "plain"), nil, 0o644) },
		text:  "datasources:\n  - name: foo\n    driver: sqlite\n    dsn: plain/foo.db\n  - name: bar\n    driver: sqlite\n    dsn: bar.db\n",
		field: "datasources[0].dsn", line: 4, msg: "not a directory",
	},
	{
		name:  "InMemoryDSN",
		text:  "datasources:\n  - name: foo\n    driver: sqlite\n    dsn: ':memory:'\n  - name: bar\n    driver: sqlite\n    dsn: bar.db\n",
		field: "datasources[0].dsn", line: 4, msg: "in-memory",
	},
	{
		name:  "BadNameStartsWithDigit",
		text:  "datasources:\n  - name: 1foo\n    driver: sqlite\n    dsn: foo.db\n  - name: bar\n    driver: sqlite\n    dsn: bar.db\n",
		field: "datasources[0].name", line: 2, msg: `"1foo"`,
	},
	{
		name:  "BadNameWithSpace",
		text:  "datasources:\n  - name: foo\n    driver: sqlite\n    dsn: foo.db\n  - name: b ar\n    driver: sqlite\n    dsn: bar.db\n",
		field: "datasources[1].name", line: 5, msg: `"b ar"`,
	},
	{
		name:  "BadNameTooLong",
		text:  "datasources:\n  - name: f" + strings.Repeat("o", 63) + "\n    driver: sqlite\n    dsn: foo.db\n  - name: bar\n    driver: sqlite\n    dsn: bar.db\n",
		field: "datasources[0].name", line: 2, msg: "at most 63",
	},
	{
		name:  "UnknownSQLiteOption",
		text:  "datasources:\n  - name: foo\n    driver: sqlite\n    dsn: foo.db?foo=1\n  - name: bar\n    driver: sqlite\n    dsn: bar.db\n",
		field: "datasources[0].dsn", line: 4, msg: `unknown option "foo"`,
	},
	{
		name:  "BadSynchronous",
		text:  "datasources:\n  - name: foo\n    driver: sqlite\n    dsn: foo.db\n  - name: bar\n    driver: sqlite\n    dsn: bar.db?synchronous=sometimes\n",
		field: "datasources[1].dsn", line: 7, msg: "synchronous",
	},
	{
		name:  "BadBusyTimeout",
		text:  "datasources:\n  - name: foo\n    driver: sqlite\n    dsn: foo.db?busy_timeout=-1\n  - name: bar\n    driver: sqlite\n    dsn: bar.db\n",
		field: "datasources[0].dsn", line: 4, msg: "busy_timeout",
	},
	{
		name:  "BadTimeout",
		text:  "timeout: soon\n" + cfgTwoSQLite,
		field: "timeout", line: 1, msg: "positive duration",
	},
	{
		name:  "NegativeHealthInterval",
		text:  "health_interval: -1s\n" + cfgTwoSQLite,
		field: "health_interval", line: 1, msg: "positive duration",
	},
	{
		name:  "UnknownConflictPolicy",
		text:  "conflicts:\n  policy: coin-toss\n" + cfgTwoSQLite,
		field: "conflicts.policy", line: 2, msg: "want manual, primary or newest",
	},
	{
		name:  "NewestWithoutColumn",
		text:  "conflicts:\n  policy: newest\n" + cfgTwoSQLite,
		field: "conflicts.column", line: 2, msg: "missing",
	},
	{
		name:  "ColumnWithoutNewest",
		text:  "conflicts:\n  policy: primary\n  column: updated_at\n" + cfgTwoSQLite,
		field: "conflicts.column", line: 3, msg: "only the newest policy",
	},
	{
		name:  "UnknownConflictsField",
		text:  "conflicts:\n  polcy: manual\n" + cfgTwoSQLite,
		field: "conflicts.polcy", line: 2, msg: "unknown field",
	},
	{
		name:  "ConflictsNotAMapping",
		text:  "conflicts: manual\n" + cfgTwoSQLite,
		field: "conflicts", line: 1, msg: "want a mapping",
	},
}

func TestConfigReadsTimeoutsAndConflictPolicy(t *testing.T) {
	dir := t.TempDir()
	path := cfgWrite(t, dir, "timeout: 750ms\nhealth_interval: 2s\nconflicts:\n  policy: newest\n  column: updated_at\n"+cfgTwoSQLite)
	cfg, err := tandem.LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Timeout != 750*time.Millisecond || cfg.HealthInterval != 2*time.Second {
		t.Errorf("timeout %v, health_interval %v; want 750ms, 2s", cfg.Timeout, cfg.HealthInterval)
	}
	if want := (tandem.ConflictPolicy{Policy: tandem.ConflictNewest, Column: "updated_at"}); cfg.Conflicts != want {
		t.Errorf("conflicts %+v, want %+v", cfg.Conflicts, want)
	}
}

func TestConfigRejectsBadConfigNamingFieldAndLine(t *testing.T) {
	for _, tc := range cfgBadCases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.setup != nil {
				tc.setup(t, dir)
			}
			path := cfgWrite(t, dir, tc.text)
			before := cfgListTree(t, dir)

			cfg, err := tandem.LoadConfig(path)
			if cfg != nil {
				t.Errorf("LoadConfig returned a config with its error")
			}
			ce := cfgProblem(t, err, tc.field)
			if ce.File != path || ce.Field != tc.field || ce.Line != tc.line || !strings.Contains(ce.Msg, tc.msg) {
				t.Errorf("got File=%q Field=%q Line=%d Msg=%q\nwant File=%q Field=%q Line=%d Msg containing %q",
					ce.File, ce.Field, ce.Line, ce.Msg, path, tc.field, tc.line, tc.msg)
			}
			prefix := fmt.Sprintf("%s:%d: ", path, tc.line)
			if tc.field != "" {
				prefix += tc.field + ": "
			}
			if !strings.HasPrefix(err.Error(), prefix) && !strings.Contains(err.Error(), "\n"+prefix) {
				t.Errorf("Error() = %q, want a line starting with %q", err, prefix)
			}

			// ParseConfig reports the same field and line, without a file.
			_, err = tandem.ParseConfig([]byte(tc.text), dir)
			pe := cfgProblem(t, err, tc.field)
			if pe.File != "" || pe.Field != tc.field || pe.Line != tc.line {
				t.Errorf("ParseConfig: got File=%q Field=%q Line=%d, want no file, Field=%q Line=%d", pe.File, pe.Field, pe.Line, tc.field, tc.line)
			}

			if after := cfgListTree(t, dir); !slices.Equal(before, after) {
				t.Errorf("a bad config created files: %v -> %v", before, after)
			}
		})
	}
}

// The count of datasources is checked after parsing, but the error must
// still point at the datasources field's line, as LoadConfig promises.
func TestConfigRejectsFewerThanTwoDatasourcesNamingFieldAndLine(t *testing.T) {
	for _, tc := range []struct {
		name string
		text string
		msg  string
	}{
		{"None", "\ndatasources: []\n", "0 given"},
		{"One", "\ndatasources:\n  - name: foo\n    driver: sqlite\n    dsn: foo.db\n", "1 given"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			before := cfgListTree(t, dir)
			_, err := tandem.ParseConfig([]byte(tc.text), dir)
			ce := cfgAsError(t, err)
			if ce.Field != "datasources" || !strings.Contains(ce.Msg, tc.msg) {
				t.Errorf("got Field=%q Msg=%q, want Field=datasources Msg containing %q", ce.Field, ce.Msg, tc.msg)
			}
			if ce.Line != 2 {
				t.Errorf("Line = %d, want 2 (the line of the datasources field)", ce.Line)
			}
			if after := cfgListTree(t, dir); !slices.Equal(before, after) {
				t.Errorf("a bad config created files: %v -> %v", before, after)
			}
		})
	}
}

// A key given twice at the top level is as wrong as one given twice in a
// datasource (which is refused): one of the two values would be silently lost.
func TestConfigRejectsTopLevelFieldGivenTwice(t *testing.T) {
	for _, tc := range []struct {
		name  string
		text  string
		field string
		line  int
	}{
		{"Primary", "primary: foo\nprimary: bar\n" + cfgTwoSQLite, "primary", 2},
		{"Datasources", cfgTwoSQLite + "datasources:\n  - name: baz\n    driver: sqlite\n    dsn: baz.db\n", "datasources", 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := tandem.ParseConfig([]byte(tc.text), t.TempDir())
			if err == nil {
				t.Fatalf("accepted: primary=%q, %d datasources", cfg.Primary, len(cfg.Datasources))
			}
			ce := cfgAsError(t, err)
			if ce.Field != tc.field || ce.Line != tc.line {
				t.Errorf("got Field=%q Line=%d, want Field=%q Line=%d", ce.Field, ce.Line, tc.field, tc.line)
			}
		})
	}
}

// Only the first YAML document is read; a second one would be silently ignored.
func TestConfigRejectsASecondYAMLDocument(t *testing.T) {
	text := cfgTwoSQLite + "---\nprimary: bar\n"
	cfg, err := tandem.ParseConfig([]byte(text), t.TempDir())
	if err == nil {
		t.Fatalf("accepted, primary = %q: the second document was ignored", cfg.Primary)
	}
	ce := cfgAsError(t, err)
	if ce.Line != 8 {
		t.Errorf("Line = %d, want 8", ce.Line)
	}
}

func TestConfigRejectsEmptyFileAsEmpty(t *testing.T) {
	for _, text := range []string{"", "# only a comment\n"} {
		_, err := tandem.ParseConfig([]byte(text), t.TempDir())
		ce := cfgAsError(t, err)
		if !strings.Contains(ce.Msg, "empty") {
			t.Errorf("%q: Msg = %q, want it to say the config is empty", text, ce.Msg)
		}
	}
}

func TestConfigLoadMissingFileIsConfigError(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "absent.yaml")
	cfg, err := tandem.LoadConfig(path)
	if cfg != nil {
		t.Error("LoadConfig returned a config for a missing file")
	}
	ce := cfgAsError(t, err)
	if ce.File != path || ce.Line != 0 || !strings.Contains(ce.Msg, "cannot read") || !strings.Contains(ce.Msg, "no such file") {
		t.Errorf("got File=%q Line=%d Msg=%q", ce.File, ce.Line, ce.Msg)
	}
	if !strings.HasPrefix(err.Error(), path+": ") {
		t.Errorf("Error() = %q, want it to start with the path", err)
	}
	if after := cfgListTree(t, dir); len(after) != 1 {
		t.Errorf("LoadConfig of a missing file created files: %v", after)
	}
}

func TestConfigOpenValidatesAConfigBuiltInGo(t *testing.T) {
	dir := t.TempDir()
	cfg := &tandem.Config{Datasources: []tandem.Datasource{
		{Name: "foo", Driver: "sqlite", DSN: filepath.Join(dir, "foo.db")},
		{Name: "bar", Driver: "oracle", DSN: filepath.Join(dir, "bar.db")},
	}}
	c, err := tandem.Open(context.Background(), cfg)
	if c != nil {
		c.Close()
	}
	ce := cfgAsError(t, err)
	if ce.Field != "datasources[1].driver" {
		t.Errorf("Field = %q, want datasources[1].driver", ce.Field)
	}
	if after := cfgListTree(t, dir); len(after) != 1 {
		t.Errorf("Open of a bad config created files: %v", after)
	}
}

var cfgNameRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]{0,62}$`)

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(cfgTwoSQLite))
	f.Add([]byte("primary: bar\n" + cfgTwoSQLite))
	f.Add([]byte("datasources:\n  - {name: a, driver: sqlite, dsn: 'sub/a.db?synchronous=off&busy_timeout=0'}\n  - {name: b, driver: sqlite, dsn: file:b.db}\n"))
	f.Add([]byte(""))
	f.Add([]byte("---\n"))
	f.Add([]byte("datasources: []\n"))
	f.Add([]byte("primary: [a]\n"))
	f.Add([]byte("a: &x 1\nb: *x\n"))
	f.Add([]byte("datasources:\n  - &d {name: a, driver: sqlite, dsn: a.db}\n  - *d\n"))
	f.Add([]byte("datasources:\n  - <<: {name: a}\n"))
	for _, tc := range cfgBadCases {
		f.Add([]byte(tc.text))
	}
	dir := f.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		f.Fatal(err)
	}
	before := cfgListTree(f, dir)
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := tandem.ParseConfig(data, dir)
		if err != nil {
			if cfg != nil {
				t.Fatalf("config returned with error %v", err)
			}
			var ce *tandem.ConfigError
			if !errors.As(err, &ce) || !errors.Is(err, tandem.ErrConfig) {
				t.Fatalf("error %v (%T) is not a *ConfigError", err, err)
			}
			if ce.Line < 0 {
				t.Fatalf("negative line in %v", err)
			}
			return
		}
		if len(cfg.Datasources) < 2 {
			t.Fatalf("accepted %d datasources", len(cfg.Datasources))
		}
		seen := map[string]bool{}
		for _, ds := range cfg.Datasources {
			if seen[ds.Name] {
				t.Fatalf("accepted duplicate name %q", ds.Name)
			}
			seen[ds.Name] = true
			if !cfgNameRE.MatchString(ds.Name) {
				t.Fatalf("accepted bad name %q", ds.Name)
			}
			if ds.Driver != "sqlite" {
				t.Fatalf("accepted unknown driver %q", ds.Driver)
			}
			if ds.DSN == "" {
				t.Fatalf("accepted empty dsn for %q", ds.Name)
			}
		}
		if cfg.Primary != "" && !seen[cfg.Primary] {
			t.Fatalf("accepted unknown primary %q", cfg.Primary)
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("accepted config fails Validate: %v", err)
		}
		if after := cfgListTree(t, dir); !slices.Equal(before, after) {
			t.Fatalf("parsing created files: %v", after)
		}
	})
}

// Every problem of a config is reported at once, each with its line, in
// the order of the file.
func TestConfigReportsEveryProblemAtOnce(t *testing.T) {
	dir := t.TempDir()
	path := cfgWrite(t, dir, `timeout: soon
datasources:
  - name: foo
    driver: sqlite
    dsn: foo.db
  - name: 9bar
    driver: sqlite
    dsn: bar.db
  - name: baz
    driver: nosuch
    dsn: baz.db
  - name: qux
    drvier: sqlite
commit: sometimes
`)
	_, err := tandem.LoadConfig(path)
	var many *tandem.ConfigErrors
	if !errors.As(err, &many) || !errors.Is(err, tandem.ErrConfig) {
		t.Fatalf("LoadConfig = %v, want *ConfigErrors", err)
	}
	want := []struct {
		line  int
		field string
	}{
		{1, "timeout"},
		{6, "datasources[1].name"},
		{10, "datasources[2].driver"},
		{13, "datasources[3].drvier"},
		{14, "commit"},
	}
	if len(many.Errors) != len(want) {
		t.Fatalf("%d problems, want %d:\n%v", len(many.Errors), len(want), err)
	}
	for i, w := range want {
		ce := many.Errors[i]
		if ce.Line != w.line || ce.Field != w.field || ce.File != path {
			t.Errorf("problem %d: %s:%d %s, want %s:%d %s", i, ce.File, ce.Line, ce.Field, path, w.line, w.field)
		}
	}
	if !strings.HasPrefix(err.Error(), "5 problems:\n"+path+":1: timeout: ") {
		t.Errorf("Error() = %q", err)
	}
}
