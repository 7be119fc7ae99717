package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tandemdb/tandem"
	"github.com/tandemdb/tandem/verify"
)

// sqlFiles creates foo.db and bar.db in dir by plain SQL (databases tandem
// never wrote to), running schema on both and the given statements on
// each.
func sqlFiles(t *testing.T, dir, schema string, foo, bar []string) {
	t.Helper()
	for file, stmts := range map[string][]string{"foo.db": foo, "bar.db": bar} {
		db, err := sql.Open("sqlite3", "file:"+filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range append([]string{schema}, stmts...) {
			if _, err := db.Exec(s); err != nil {
				t.Fatalf("%s: %s: %v", file, s, err)
			}
		}
		db.Close()
	}
}

// verifyJSON is the shape of tandem verify --json, spelled out so that a
// change to it fails this test.
type verifyJSON struct {
	Identical   bool     `json:"identical"`
	Reference   string   `json:"reference"`
	Datasources []string `json:"datasources"`
	Tables      []struct {
		Table       string           `json:"table"`
		Rows        map[string]int64 `json:"rows"`
		Differences []struct {
			Datasource string         `json:"datasource"`
			Kind       string         `json:"kind"`
			Key        map[string]any `json:"key"`
			Columns    []string       `json:"columns"`
		} `json:"differences"`
	} `json:"tables"`
}

func TestVerifyAndRepairCommands(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, twoFiles)
	rows := []string{`INSERT INTO book VALUES (1, 'Dune', 9.5), (2, 'Emma', NULL), (3, 'Ulysses', 12)`,
		`INSERT INTO tag VALUES ('sf', 1, 'science fiction'), ('sf', 2, 'x')`}
	sqlFiles(t, dir, `CREATE TABLE book (id INTEGER PRIMARY KEY, title TEXT NOT NULL, price REAL);
		CREATE TABLE tag (name TEXT, book INTEGER, note TEXT, PRIMARY KEY (name, book))`, rows, rows)

	code, out, errOut := runT(t, "verify", "--config", cfg)
	if code != 0 || !strings.Contains(out, "identical: 2 tables") || errOut != "" {
		t.Fatalf("identical files: exit %d\n%s%s", code, out, errOut)
	}

	// bar drifts: a changed row, a missing one, an extra one.
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(dir, "bar.db"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{`UPDATE book SET price = 10 WHERE id = 1`, `DELETE FROM book WHERE id = 3`,
		`INSERT INTO book VALUES (4, 'Extra', 1)`, `UPDATE tag SET note = 'y' WHERE book = 2`} {
		if _, err := db.Exec(s); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	code, out, errOut = runT(t, "verify", "--config", cfg)
	for _, want := range []string{
		"book: 3 differing rows (3 rows on foo, 3 on bar)",
		"tag: 1 differing row (2 rows on foo, 2 on bar)",
		"  changed  id=1  on bar: price",
		"  missing  id=3  on foo, not on bar",
		"  extra    id=4  on bar, not on foo",
		"  changed  (name='sf', book=2)  on bar: note",
		"not identical: 4 differing rows",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("verify output lacks %q:\n%s", want, out)
		}
	}
	if code != 1 || errOut != "" {
		t.Errorf("differences: exit %d, stderr %q; want 1 and nothing (no progress off a terminal)", code, errOut)
	}

	code, out, _ = runT(t, "verify", "--config", cfg, "--json", "--table", "book")
	var rep verifyJSON
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("--json: %v\n%s", err, out)
	}
	if code != 1 || rep.Identical || rep.Reference != "foo" || !slices.Equal(rep.Datasources, []string{"bar"}) || len(rep.Tables) != 1 {
		t.Fatalf("--json: exit %d, %+v", code, rep)
	}
	book := rep.Tables[0]
	if book.Table != "book" || book.Rows["foo"] != 3 || book.Rows["bar"] != 3 || len(book.Differences) != 3 {
		t.Fatalf("--json table: %+v", book)
	}
	for i, want := range []struct {
		kind string
		id   float64
		cols []string
	}{{"changed", 1, []string{"price"}}, {"missing", 3, nil}, {"extra", 4, nil}} {
		d := book.Differences[i]
		if d.Kind != want.kind || d.Key["id"] != want.id || len(d.Key) != 1 || !slices.Equal(d.Columns, want.cols) || d.Datasource != "bar" {
			t.Errorf("--json difference %d: %+v, want %s id=%v %v", i, d, want.kind, want.id, want.cols)
		}
	}

	before := readFiles(t, dir)
	code, out, _ = runT(t, "repair", "--config", cfg, "--from", "foo", "--to", "bar", "--dry-run")
	wantChanges := []string{"update bar.book id=1 (price)", "insert bar.book id=3", "delete bar.book id=4", "update bar.tag (name='sf', book=2) (note)"}
	for _, c := range wantChanges {
		if !strings.Contains(out, "would "+c+"\n") {
			t.Errorf("dry run does not print %q:\n%s", "would "+c, out)
		}
	}
	if code != 1 || !strings.Contains(out, "dry run: 4 rows would change on bar; nothing written") {
		t.Errorf("dry run: exit %d\n%s", code, out)
	}
	if after := readFiles(t, dir); !maps2Equal(before, after) {
		t.Errorf("a dry run changed the files")
	}
	code, out, _ = runT(t, "repair", "--config", cfg, "--from", "foo", "--to", "bar", "--dry-run", "--json")
	var dry struct {
		DryRun  bool `json:"dry_run"`
		Written int  `json:"written"`
		Changes []struct {
			Table string `json:"table"`
			Kind  string `json:"kind"`
		} `json:"changes"`
	}
	if err := json.Unmarshal([]byte(out), &dry); err != nil || code != 1 || !dry.DryRun || dry.Written != 0 || len(dry.Changes) != 4 {
		t.Errorf("repair --dry-run --json: exit %d, %+v (%v)\n%s", code, dry, err, out)
	}
	if after := readFiles(t, dir); !maps2Equal(before, after) {
		t.Errorf("a dry run with --json changed the files")
	}

	code, out, errOut = runT(t, "repair", "--config", cfg, "--from", "foo", "--to", "bar")
	for _, c := range wantChanges {
		if !strings.Contains(out, c+"\n") || strings.Contains(out, "would") {
			t.Errorf("repair does not print %q:\n%s", c, out)
		}
	}
	if code != 0 || !strings.Contains(out, "repaired 4 rows on bar from foo") || !strings.Contains(out, "verify after the repair: foo and bar are identical") {
		t.Errorf("repair: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, _ := runT(t, "verify", "--config", cfg); code != 0 {
		t.Errorf("verify after the repair: exit %d\n%s", code, out)
	}
	code, out, _ = runT(t, "repair", "--config", cfg, "--from", "foo", "--to", "bar", "--json")
	var again struct {
		Written   int             `json:"written"`
		Identical bool            `json:"identical"`
		Changes   []any           `json:"changes"`
		After     json.RawMessage `json:"verify_after"`
	}
	if err := json.Unmarshal([]byte(out), &again); err != nil || code != 0 || again.Written != 0 || !again.Identical || again.Changes == nil || len(again.Changes) != 0 || len(again.After) == 0 {
		t.Errorf("repair --json with nothing to repair: exit %d, %+v (%v)\n%s", code, again, err, out)
	}
}

func readFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, f := range []string{"foo.db", "bar.db"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		out[f] = string(b)
	}
	return out
}

func maps2Equal(a, b map[string]string) bool {
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return len(a) == len(b)
}

func TestVerifyAndRepairErrors(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, twoFiles)
	sqlFiles(t, dir, `CREATE TABLE t (id INTEGER PRIMARY KEY)`, []string{`CREATE TABLE only_foo (id INTEGER PRIMARY KEY)`}, nil)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"verify", "--config", cfg}, "table only_foo: on foo, not on bar"},
		{[]string{"verify", "--config", cfg, "--table", "nope"}, "no such table on any datasource: nope (foo has: only_foo, t)"},
		{[]string{"verify", "--config", cfg, "--table", "t", "--table", "nope", "--table", "nix"}, "no such table on any datasource: nope, nix (foo has"},
		{[]string{"repair", "--config", cfg, "--from", "foo", "--to", "bar", "--table", "nope"}, "no such table on any datasource: nope"},
		{[]string{"verify", "--config", filepath.Join(dir, "missing.yaml")}, "missing.yaml"},
		{[]string{"verify", "--config", cfg, "extra"}, `unexpected argument "extra"`},
		{[]string{"repair", "--config", cfg, "--to", "bar"}, "--from is required"},
		{[]string{"repair", "--config", cfg, "--from", "foo"}, "--to is required"},
		{[]string{"repair", "--config", cfg, "--from", "foo", "--to", "baz", "--table", "t"}, `no datasource called "baz" (have: foo, bar)`},
		{[]string{"repair", "--config", cfg, "--from", "foo", "--to", "foo", "--table", "t"}, "two different datasources"},
		{[]string{"repair", "--config", cfg, "--from", "foo", "--to", "bar"}, "table only_foo: on foo, not on bar"},
	} {
		code, out, errOut := runT(t, tc.args...)
		if code != 2 || !strings.Contains(errOut, tc.want) {
			t.Errorf("tandem %s: exit %d, stderr %q (stdout %q); want 2 and %q", strings.Join(tc.args, " "), code, errOut, out, tc.want)
		}
	}
	// --table leaves the odd table out.
	if code, out, errOut := runT(t, "verify", "--config", cfg, "--table", "t"); code != 0 {
		t.Errorf("--table t: exit %d\n%s%s", code, out, errOut)
	}
}

// TestVerifyIgnoresTandemsBookkeeping verifies a cluster tandem wrote:
// its own tables (_tandem_meta holds a different node id on each
// database) are not compared.
func TestVerifyIgnoresTandemsBookkeeping(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, twoFiles)
	conf, err := tandem.LoadConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	type Note struct {
		ID   int64 `tandem:"id,pk,auto"`
		Text string
	}
	ctx := context.Background()
	c, err := tandem.Open(ctx, conf, tandem.WithoutBackground())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Migrate(ctx, &Note{}); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		if err := c.Save(ctx, &Note{Text: strings.Repeat("x", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runT(t, "verify", "--config", cfg, "--json")
	var rep verifyJSON
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v\n%s%s", err, out, errOut)
	}
	if code != 0 || !rep.Identical || len(rep.Tables) != 1 || rep.Tables[0].Table != "note" || rep.Tables[0].Rows["bar"] != 50 {
		t.Errorf("exit %d: %+v", code, rep)
	}
}

func TestProgressLine(t *testing.T) {
	var buf bytes.Buffer
	p := &progress{w: &buf}
	p.update(verify.Progress{Table: "t", Reference: "foo", Datasource: "bar", Rows: 1000, Fraction: 0.5, Elapsed: 2 * time.Second})
	if got, want := buf.String(), "\r\033[Kt (foo vs bar): 1000 rows checked, 500 rows/s, 50%, about 2s left"; got != want {
		t.Errorf("progress line %q, want %q", got, want)
	}
	buf.Reset()
	p.update(verify.Progress{Table: "t", Done: true})
	if got := buf.String(); got != "\r\033[K" {
		t.Errorf("at the end: %q, want the line cleared", got)
	}
	// Off a terminal: nothing.
	f, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if p := newProgress(f); p.w != nil {
		t.Errorf("progress shown on a regular file")
	}
	if p := newProgress(&buf); p.w != nil {
		t.Errorf("progress shown on a buffer")
	}
}

func TestLoggerFormats(t *testing.T) {
	var buf bytes.Buffer
	t.Setenv("TANDEM_LOG_FORMAT", "json")
	t.Setenv("TANDEM_LOG_LEVEL", "info")
	logger(&buf).Info("hello", "node", "bar")
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil || line["msg"] != "hello" || line["node"] != "bar" {
		t.Errorf("JSON log line %q: %v", buf.String(), err)
	}
	buf.Reset()
	t.Setenv("TANDEM_LOG_FORMAT", "")
	t.Setenv("TANDEM_LOG_LEVEL", "")
	logger(&buf).Info("quiet")
	logger(&buf).Warn("loud")
	if got := buf.String(); strings.Contains(got, "quiet") || !strings.Contains(got, "level=WARN msg=loud") {
		t.Errorf("text log %q: want warnings only", got)
	}
}
