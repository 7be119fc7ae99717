package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tandemdb/tandem"
)

// item is the model the failover tests write.
type item struct {
	ID  string `tandem:"id,pk,size=16"`
	Val string `tandem:"val,size=64"`
}

// openLib opens the cluster of the config at path through the library, as
// an application would, without the health loop and with logs discarded.
func openLib(t *testing.T, path string) *tandem.Cluster {
	t.Helper()
	cfg, err := tandem.LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := tandem.Open(context.Background(), cfg, tandem.WithoutBackground(),
		tandem.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// save writes each id=val pair through a cluster of the config at path.
func save(t *testing.T, path string, pairs ...string) {
	t.Helper()
	c := openLib(t, path)
	defer c.Close()
	ctx := context.Background()
	if err := c.Migrate(ctx, &item{}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(pairs); i += 2 {
		if err := c.Save(ctx, &item{ID: pairs[i], Val: pairs[i+1]}); err != nil {
			t.Fatalf("save %s=%s through %s: %v", pairs[i], pairs[i+1], path, err)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}

// halfConfig writes, in dir/name, a config with the same datasource names
// as twoFiles in which only the datasource called live reaches its file
// (in dir); the other's dsn is a symbolic link into a directory that does
// not exist. (A dsn written directly into a missing directory is refused
// by the config check, which requires the directory; the link passes that
// check and fails when SQLite opens it, like a lost mount.)
func halfConfig(t *testing.T, dir, name, live string) string {
	t.Helper()
	sub := filepath.Join(dir, name)
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	dsn := map[string]string{}
	for _, n := range []string{"foo", "bar"} {
		if n == live {
			dsn[n] = "../" + n + ".db"
			continue
		}
		link := filepath.Join(sub, n+".db")
		if err := os.Symlink(filepath.Join(dir, "nonexistent", n+".db"), link); err != nil {
			t.Fatal(err)
		}
		dsn[n] = n + ".db"
	}
	return writeConfig(t, sub, "datasources:\n"+
		"  - name: foo\n    driver: sqlite\n    dsn: "+dsn["foo"]+"\n"+
		"  - name: bar\n    driver: sqlite\n    dsn: "+dsn["bar"]+"\n")
}

// splitBrain builds a real split brain on two SQLite files: foo and bar
// start identical, then two processes, each cut off from the other
// database, write through the same datasource names: k1 and k4 on both
// sides, differently; k2 only through foo, k3 only through bar. It returns
// the directory and the config that reaches both files.
func splitBrain(t *testing.T) (dir, path string) {
	t.Helper()
	dir = t.TempDir()
	path = writeConfig(t, dir, twoFiles)
	save(t, path, "k1", "before", "k4", "before")
	// Each half has an arbiter of its own (the witness beside its config)
	// and cannot read the other's database: writes are refused until an
	// operator forces its datasource, as on two machines cut apart.
	onlyFoo, onlyBar := halfConfig(t, dir, "only-foo", "foo"), halfConfig(t, dir, "only-bar", "bar")
	want(t, 0, nil, "promote", "--force", "foo", "--config", onlyFoo)
	save(t, onlyFoo, "k1", "foo's k1", "k2", "foo's k2", "k4", "foo's k4")
	want(t, 0, nil, "promote", "--force", "bar", "--config", onlyBar)
	save(t, onlyBar, "k1", "bar's k1", "k3", "bar's k3", "k4", "bar's k4")
	// Each file has its own side's rows.
	for file, want := range map[string]map[string]string{
		"foo.db": {"k1": "foo's k1", "k2": "foo's k2", "k4": "foo's k4"},
		"bar.db": {"k1": "bar's k1", "k3": "bar's k3", "k4": "bar's k4"},
	} {
		got := readItems(t, filepath.Join(dir, file))
		for k, v := range want {
			if got[k] != v {
				t.Fatalf("split brain not built: %s holds %v, want %s=%q", file, got, k, v)
			}
		}
	}
	return dir, path
}

// readItems reads the item table of a SQLite file on its own.
func readItems(t *testing.T, file string) map[string]string {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+file)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query("SELECT id, val FROM item")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var id, val string
		if err := rows.Scan(&id, &val); err != nil {
			t.Fatal(err)
		}
		out[id] = val
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// readMeta reads a key of a SQLite file's _tandem_meta on its own; "" when absent.
func readMeta(t *testing.T, file, key string) string {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+file)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v string
	err = db.QueryRow("SELECT v FROM _tandem_meta WHERE k = ?", key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// want runs the command and checks its exit code and that each of wantOut
// is in its stdout; it returns stdout and stderr.
func want(t *testing.T, code int, wantOut []string, args ...string) (stdout, stderr string) {
	t.Helper()
	got, stdout, stderr := runT(t, args...)
	if got != code {
		t.Fatalf("tandem %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), got, code, stdout, stderr)
	}
	for _, w := range wantOut {
		if !strings.Contains(stdout, w) {
			t.Errorf("tandem %s: stdout lacks %q:\n%s", strings.Join(args, " "), w, stdout)
		}
	}
	return stdout, stderr
}

// conflictsJSON runs conflicts --json and decodes it strictly.
func conflictsJSON(t *testing.T, wantCode int, args ...string) []tandem.Conflict {
	t.Helper()
	stdout, stderr := want(t, wantCode, nil, append([]string{"conflicts", "--json"}, args...)...)
	var out struct {
		Conflicts []tandem.Conflict `json:"conflicts"`
	}
	dec := json.NewDecoder(strings.NewReader(stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&out); err != nil {
		t.Fatalf("conflicts --json: %v\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
	}
	if out.Conflicts == nil {
		t.Errorf("conflicts --json: \"conflicts\" is null, want a list:\n%s", stdout)
	}
	return out.Conflicts
}

// checkRow checks that a conflict's row is the JSON object {"id":id,"val":val}.
func checkRow(t *testing.T, what string, raw json.RawMessage, id, val string) {
	t.Helper()
	var got map[string]string
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Errorf("%s: %s is not a row: %v", what, raw, err)
		return
	}
	if w := map[string]string{"id": id, "val": val}; !maps.Equal(got, w) {
		t.Errorf("%s: row %v, want %v", what, got, w)
	}
}

// checkItems checks that both files hold exactly want.
func checkItems(t *testing.T, dir string, want map[string]string) {
	t.Helper()
	for _, f := range []string{"foo.db", "bar.db"} {
		if got := readItems(t, filepath.Join(dir, f)); !maps.Equal(got, want) {
			t.Errorf("%s holds %v, want %v", f, got, want)
		}
	}
}

func TestSplitBrainConflictsResolve(t *testing.T) {
	dir, path := splitBrain(t)
	foo, bar := filepath.Join(dir, "foo.db"), filepath.Join(dir, "bar.db")

	// Each side misses what the other wrote; status only looks.
	if code, st := statusJSON(t, path); code != 1 || node(t, st, "bar").Behind != 3 {
		t.Errorf("status before catch-up: exit %d, bar behind %d; want 1, 3 (k1, k2, k4)", code, node(t, st, "bar").Behind)
	}

	// Catch-up copies the keys one side changed and records the keys both
	// changed as conflicts (the default policy is manual), which leaves bar
	// outdated.
	stdout, stderr := want(t, 1, []string{"2 unresolved conflicts"}, "catch-up", "--config", path)
	if r := row(t, stdout, "bar"); !strings.Contains(r, tandem.StateOutdated) {
		t.Errorf("catch-up: bar's row %q is not %q", r, tandem.StateOutdated)
	}
	if strings.Contains(stdout, "\nfoo ") {
		t.Errorf("catch-up without NODE caught up the primary foo too:\n%s", stdout)
	}
	if !strings.Contains(stderr, "tandem resolve") {
		t.Errorf("catch-up: the log does not point at tandem resolve:\n%s", stderr)
	}
	if got := readItems(t, foo); got["k3"] != "bar's k3" || got["k1"] != "foo's k1" {
		t.Errorf("foo.db after catch-up: %v; want bar's k3 copied, foo's k1 kept", got)
	}
	if got := readItems(t, bar); got["k2"] != "foo's k2" || got["k1"] != "bar's k1" {
		t.Errorf("bar.db after catch-up: %v; want foo's k2 copied, bar's k1 kept", got)
	}

	stdout, _ = want(t, 1, []string{
		`item ["k1"]: unresolved`, `{"id":"k1","val":"foo's k1"}`, `{"id":"k1","val":"bar's k1"}`,
		`item ["k4"]: unresolved`, `{"id":"k4","val":"foo's k4"}`, `{"id":"k4","val":"bar's k4"}`,
		`tandem resolve --take foo|bar --table item --key '["k1"]'`,
		"2 unresolved conflicts",
	}, "conflicts", "--config", path)
	if strings.Index(stdout, `{"id":"k1","val":"foo's k1"}`) > strings.Index(stdout, `{"id":"k1","val":"bar's k1"}`) {
		t.Errorf("conflicts: foo's row should come first (node_a):\n%s", stdout)
	}
	list := conflictsJSON(t, 1, "--config", path)
	if len(list) != 2 {
		t.Fatalf("conflicts --json: %d conflicts, want 2: %+v", len(list), list)
	}
	for i, k := range []string{"k1", "k4"} {
		c := list[i]
		if c.Table != "item" || c.Key != `["`+k+`"]` || c.NodeA != "foo" || c.NodeB != "bar" || c.Resolution != "" || c.ResolvedAt != nil {
			t.Errorf("conflict %d: %+v; want item [%q] between foo and bar, unresolved", i, c, k)
		}
		if c.FoundAt.IsZero() || time.Since(c.FoundAt) > time.Minute {
			t.Errorf("conflict %d: found_at %v, want just now", i, c.FoundAt)
		}
		checkRow(t, "row_a", c.RowA, k, "foo's "+k)
		checkRow(t, "row_b", c.RowB, k, "bar's "+k)
	}

	// One conflict by table and key (a one-column key may be given bare),
	// keeping bar's row; then the rest, keeping foo's.
	want(t, 0, []string{"resolved 1 conflict: kept bar's row"}, "resolve", "--config", path, "--take", "bar", "--table", "item", "--key", "k4")
	if _, stderr := want(t, 2, nil, "resolve", "--config", path, "--take", "foo", "--table", "item", "--key", `["k4"]`); !strings.Contains(stderr, "no unresolved conflict") {
		t.Errorf("resolving a resolved conflict: stderr %q lacks %q", stderr, "no unresolved conflict")
	}
	want(t, 0, []string{"resolved 1 conflict: kept foo's row"}, "resolve", "--config", path, "--take", "foo", "--all")
	want(t, 0, []string{"resolved 0 conflicts"}, "resolve", "--config", path, "--take", "foo", "--all")
	want(t, 0, []string{`"resolved": 0`, `"kept": "foo"`}, "resolve", "--config", path, "--take", "foo", "--all", "--json")

	want(t, 0, []string{"no unresolved conflicts"}, "conflicts", "--config", path)
	if list := conflictsJSON(t, 0, "--config", path); len(list) != 0 {
		t.Errorf("conflicts --json after resolve: %+v, want none", list)
	}
	want(t, 0, []string{
		`item ["k1"]: resolved at `, "kept foo's row",
		`item ["k4"]: resolved at `, "kept bar's row",
		"2 conflicts, 0 unresolved",
	}, "conflicts", "--all", "--config", path)
	for _, c := range conflictsJSON(t, 0, "--all", "--config", path) {
		if c.Resolution == "" || c.ResolvedAt == nil {
			t.Errorf("conflicts --all --json: %+v is not resolved", c)
		}
	}
	checkItems(t, dir, map[string]string{"k1": "foo's k1", "k2": "foo's k2", "k3": "bar's k3", "k4": "bar's k4"})

	// Status only looks: bar stays outdated until a catch-up finds nothing
	// left and clears its marker.
	if code, st := statusJSON(t, path); code != 1 || node(t, st, "bar").State != tandem.StateOutdated {
		t.Errorf("status after resolve: exit %d, bar %q; want 1, %q", code, node(t, st, "bar").State, tandem.StateOutdated)
	}
	stdout, _ = want(t, 0, nil, "catch-up", "--config", path)
	if r := row(t, stdout, "bar"); !strings.Contains(r, tandem.StateInSync) {
		t.Errorf("catch-up: bar's row %q is not %q", r, tandem.StateInSync)
	}
	stdout, _ = want(t, 0, nil, "catch-up", "--config", path, "--json")
	var cu struct {
		Nodes  []tandem.NodeStatus `json:"nodes"`
		Synced bool                `json:"synced"`
	}
	if err := json.Unmarshal([]byte(stdout), &cu); err != nil || !cu.Synced || len(cu.Nodes) != 1 || cu.Nodes[0].Name != "bar" || cu.Nodes[0].State != tandem.StateInSync {
		t.Errorf("catch-up --json: %+v (%v)\n%s", cu, err, stdout)
	}
	if code, st := statusJSON(t, path); code != 0 || !st.Healthy() {
		t.Errorf("status after catch-up: exit %d, %+v; want 0, healthy", code, st)
	}
	want(t, 0, []string{"in sync"}, "status", "--config", path)
	if m := readMeta(t, bar, "outdated"); m != "" {
		t.Errorf("bar.db still has the outdated marker %q", m)
	}
	checkItems(t, dir, map[string]string{"k1": "foo's k1", "k2": "foo's k2", "k3": "bar's k3", "k4": "bar's k4"})
}

func TestPromote(t *testing.T) {
	dir, path := splitBrain(t)
	onlyBar := filepath.Join(dir, "only-bar", "tandem.yaml")
	foo := filepath.Join(dir, "foo.db")

	// Catch-up decides the view again (each half's arbiter took part in a
	// newer one than the config's witness holds): foo the primary, bar left
	// out while the conflicts wait.
	want(t, 1, nil, "catch-up", "--config", path)
	_, st := statusJSON(t, path)
	mark := node(t, st, "bar").Outdated
	if !node(t, st, "bar").LeftOut || !strings.HasPrefix(mark, "left out of the writes") {
		t.Fatalf("bar after catch-up: left out %v, %q; want left out", node(t, st, "bar").LeftOut, mark)
	}

	// Without --force: refused, saying what bar missed; nothing changes.
	stdout, stderr := want(t, 1, nil, "promote", "--config", path, "bar")
	for _, w := range []string{"tandem promote: bar is outdated: " + mark, "2 unresolved conflicts", "Use --force", "tandem promote --force bar"} {
		if !strings.Contains(stderr, w) {
			t.Errorf("promote bar: stderr lacks %q:\n%s", w, stderr)
		}
	}
	if stdout != "" {
		t.Errorf("promote bar: stdout not empty:\n%s", stdout)
	}
	if _, after := statusJSON(t, path); after.View != st.View || after.Primary != "foo" {
		t.Errorf("promote without --force changed the view: generation %d, primary %q; want %d, foo", after.View, after.Primary, st.View)
	}

	// With foo out of reach, and a view newer than the half's witness
	// holds, nothing may take writes: the way out is named.
	code, st := statusJSON(t, onlyBar)
	if code != 1 || !strings.Contains(st.WriteError, "older than generation") {
		t.Errorf("status with foo unreachable: exit %d, write_error %q; want 1, the view older than a database's", code, st.WriteError)
	}
	func() {
		c := openLib(t, onlyBar)
		defer c.Close()
		err := c.Save(context.Background(), &item{ID: "k5", Val: "refused"})
		if !errors.Is(err, tandem.ErrNodeDown) || !strings.Contains(err.Error(), "tandem promote --force") {
			t.Errorf("save with foo unreachable: %v, want ErrNodeDown naming tandem promote --force", err)
		}
	}()

	// --force (after the name: flags may follow it).
	want(t, 0, []string{"promoted bar", "It may have missed writes"}, "promote", "bar", "--force", "--config", onlyBar)
	if code, st := statusJSON(t, onlyBar); st.Primary != "bar" {
		t.Errorf("status with foo unreachable after promote: exit %d, primary %q (write_error %q), want bar", code, st.Primary, st.WriteError)
	}
	save(t, onlyBar, "k5", "written on bar after promote")
	want(t, 0, []string{"bar is the primary already"}, "promote", "--force", "bar", "--config", onlyBar)
	want(t, 0, []string{`"primary": "bar"`, `"changed": false`}, "promote", "--json", "bar", "--config", onlyBar)

	// foo returns: the view is decided again from the databases (bar, which
	// misses nothing, stays the primary; the application's processes hand
	// the writes back to foo once it misses nothing), catch-up brings foo
	// what bar took while promoted, and the conflicts still wait for an
	// operator.
	want(t, 1, []string{"2 unresolved conflicts"}, "catch-up", "--config", path)
	if got := readItems(t, foo); got["k5"] != "written on bar after promote" {
		t.Errorf("foo.db after catch-up: %v; want k5 from bar", got)
	}
	want(t, 0, []string{"resolved 2 conflicts: kept foo's row"}, "resolve", "--take", "foo", "--all", "--config", path)
	want(t, 0, nil, "catch-up", "--config", path)
	if code, st := statusJSON(t, path); code != 0 || !st.Healthy() {
		t.Errorf("status at the end: exit %d; want 0, healthy\n%+v", code, st)
	}
	checkItems(t, dir, map[string]string{"k1": "foo's k1", "k2": "foo's k2", "k3": "bar's k3", "k4": "foo's k4", "k5": "written on bar after promote"})
}

func TestCatchUpUnreachable(t *testing.T) {
	dir, _ := splitBrain(t)
	onlyFoo := filepath.Join(dir, "only-foo", "tandem.yaml")
	// bar's file is out of reach: it ends down, not in sync.
	stdout, stderr := want(t, 1, nil, "catch-up", "--config", onlyFoo, "bar")
	if r := row(t, stdout, "bar"); !strings.Contains(r, tandem.StateDown) {
		t.Errorf("bar's row %q is not %q", r, tandem.StateDown)
	}
	if !strings.Contains(stderr, "tandem catch-up: ") || !strings.Contains(stderr, "bar") {
		t.Errorf("stderr does not say catching up bar failed:\n%s", stderr)
	}
	// Naming the primary catches up nothing and finds it in sync.
	stdout, _ = want(t, 0, nil, "catch-up", "--config", onlyFoo, "foo", "foo")
	if r := row(t, stdout, "foo"); !strings.Contains(r, "primary") || !strings.Contains(r, tandem.StateInSync) {
		t.Errorf("foo's row %q: want primary, in sync", r)
	}
	if strings.Count(stdout, "\nfoo ") != 1 {
		t.Errorf("foo named twice is listed %d times:\n%s", strings.Count(stdout, "\nfoo "), stdout)
	}
}

func TestCatchUpFresh(t *testing.T) {
	dir := t.TempDir()
	path := writeConfig(t, dir, twoFiles)
	stdout, stderr := want(t, 0, nil, "catch-up", "--config", path)
	if r := row(t, stdout, "bar"); !strings.Contains(r, tandem.StateInSync) {
		t.Errorf("bar's row %q is not in sync", r)
	}
	if stderr != "" {
		t.Errorf("stderr not empty:\n%s", stderr)
	}
	want(t, 0, []string{"no unresolved conflicts"}, "conflicts", "--config", path)
	if list := conflictsJSON(t, 0, "--config", path); len(list) != 0 {
		t.Errorf("conflicts on a fresh cluster: %+v", list)
	}
	want(t, 0, []string{"resolved 0 conflicts"}, "resolve", "--config", path, "--take", "bar", "--all")
}

func TestFailoverUsage(t *testing.T) {
	tests := []struct {
		name    string
		args    []string // $CONFIG: a valid config of foo and bar
		code    int
		wantErr []string // substrings of stderr (of either stream when code is 0)
	}{
		{"promote no node", []string{"promote", "--force"}, 2, []string{"NODE", "got 0"}},
		{"promote two nodes", []string{"promote", "foo", "bar"}, 2, []string{"NODE", "got 2"}},
		{"promote unknown flag", []string{"promote", "--bogus", "foo"}, 2, []string{"-bogus"}},
		{"promote unknown node", []string{"promote", "--config", "$CONFIG", "baz"}, 2, []string{`"baz"`, "foo, bar"}},
		{"promote -h", []string{"promote", "-h"}, 0, []string{"tandem promote [--force] [--json] NODE", "-force", "-json", "-config"}},
		{"conflicts unknown flag", []string{"conflicts", "--bogus"}, 2, []string{"-bogus"}},
		{"conflicts argument", []string{"conflicts", "extra"}, 2, []string{`unexpected argument "extra"`}},
		{"conflicts missing config", []string{"conflicts", "--config", "absent.yaml"}, 2, []string{"tandem conflicts: absent.yaml"}},
		{"conflicts -h", []string{"conflicts", "-h"}, 0, []string{"-all", "-json", "-config"}},
		{"resolve no take", []string{"resolve", "--all"}, 2, []string{"--take"}},
		{"resolve neither", []string{"resolve", "--take", "foo"}, 2, []string{"--all", "--table", "--key"}},
		{"resolve both", []string{"resolve", "--take", "foo", "--all", "--table", "item", "--key", "1"}, 2, []string{"--all and --table/--key"}},
		{"resolve table without key", []string{"resolve", "--take", "foo", "--table", "item"}, 2, []string{"--table needs --key"}},
		{"resolve key without table", []string{"resolve", "--take", "foo", "--key", "1"}, 2, []string{"--key needs --table"}},
		{"resolve argument", []string{"resolve", "--take", "foo", "--all", "extra"}, 2, []string{`unexpected argument "extra"`}},
		{"resolve unknown node", []string{"resolve", "--config", "$CONFIG", "--take", "baz", "--all"}, 2, []string{`"baz"`, "foo, bar"}},
		{"resolve -h", []string{"resolve", "-h"}, 0, []string{"-take", "-all", "-table", "-key"}},
		{"catch-up unknown flag", []string{"catch-up", "--bogus"}, 2, []string{"-bogus"}},
		{"catch-up unknown node", []string{"catch-up", "--config", "$CONFIG", "foo", "baz"}, 2, []string{`"baz"`, "foo, bar"}},
		{"catch-up -h", []string{"catch-up", "-h"}, 0, []string{"NODE...", "-config"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Run in an empty directory: nothing may be opened or created.
			dir := t.TempDir()
			t.Chdir(dir)
			cfgDir := t.TempDir()
			config := writeConfig(t, cfgDir, twoFiles)
			args := make([]string, len(tt.args))
			for i, a := range tt.args {
				args[i] = strings.ReplaceAll(a, "$CONFIG", config)
			}
			code, stdout, stderr := runT(t, args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, stdout, stderr)
			}
			got := stderr
			if tt.code == 0 {
				got = stdout + stderr
			} else if stdout != "" {
				t.Errorf("stdout not empty:\n%s", stdout)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(got, w) {
					t.Errorf("output lacks %q:\n%s", w, got)
				}
			}
			if names := listDir(t, dir); len(names) > 0 {
				t.Errorf("created %v", names)
			}
			if names := listDir(t, cfgDir); len(names) != 1 {
				t.Errorf("config directory holds %v: a usage error must open no database", names)
			}
		})
	}
}

func TestConflictDeletedRow(t *testing.T) {
	// A split brain in which foo's side deleted the row bar's side changed.
	dir := t.TempDir()
	path := writeConfig(t, dir, twoFiles)
	save(t, path, "k6", "before", "k7", "same")
	onlyFoo := halfConfig(t, dir, "only-foo", "foo")
	want(t, 0, nil, "promote", "--force", "foo", "--config", onlyFoo)
	func() {
		c := openLib(t, onlyFoo)
		defer c.Close()
		if err := c.Delete(context.Background(), &item{ID: "k6"}); err != nil {
			t.Fatal(err)
		}
	}()
	// Both sides write the same row for k7: identical rows are no conflict.
	save(t, onlyFoo, "k7", "both")
	onlyBar := halfConfig(t, dir, "only-bar", "bar")
	want(t, 0, nil, "promote", "--force", "bar", "--config", onlyBar)
	save(t, onlyBar, "k6", "bar's k6", "k7", "both")

	want(t, 1, []string{"1 unresolved conflict wait"}, "catch-up", "--config", path)
	stdout, _ := want(t, 1, []string{`item ["k6"]: unresolved`, "(no row: deleted)", `{"id":"k6","val":"bar's k6"}`, "1 unresolved conflict\n"},
		"conflicts", "--config", path)
	if strings.Contains(stdout, "k7") {
		t.Errorf("identical rows listed as a conflict:\n%s", stdout)
	}
	list := conflictsJSON(t, 1, "--config", path)
	if len(list) != 1 || string(list[0].RowA) != "null" {
		t.Fatalf("conflicts --json: %+v; want k6 with row_a null", list)
	}
	checkRow(t, "row_b", list[0].RowB, "k6", "bar's k6")

	want(t, 0, []string{"resolved 1 conflict: kept foo's row"}, "resolve", "--config", path, "--take", "foo", "--table", "item", "--key", `["k6"]`)
	want(t, 0, nil, "catch-up", "--config", path)
	checkItems(t, dir, map[string]string{"k7": "both"})
	want(t, 0, nil, "status", "--config", path)
}

func TestConflictPrimaryPolicy(t *testing.T) {
	// Under the primary policy catch-up resolves conflicts itself; they are
	// still recorded, and listed by --all.
	dir, path := splitBrain(t)
	writeConfig(t, dir, twoFiles+"conflicts:\n  policy: primary\n")
	if _, stderr := want(t, 0, nil, "catch-up", "--config", path); !strings.Contains(stderr, "conflict resolved by policy") {
		t.Errorf("catch-up: no log of the conflicts resolved:\n%s", stderr)
	}
	want(t, 0, []string{"no unresolved conflicts"}, "conflicts", "--config", path)
	want(t, 0, []string{`item ["k1"]: resolved at `, "primary policy: kept foo's row", "2 conflicts, 0 unresolved"}, "conflicts", "--all", "--config", path)
	checkItems(t, dir, map[string]string{"k1": "foo's k1", "k2": "foo's k2", "k3": "bar's k3", "k4": "foo's k4"})
	want(t, 0, nil, "status", "--config", path)
}
