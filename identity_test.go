package tandem_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/tandemdb/tandem"
	"github.com/tandemdb/tandem/internal/testcluster"
)

// Gauge is a model with an application-chosen key.
type Gauge struct {
	ID      int64 `tandem:"id,pk"`
	Reading int64 `tandem:"reading"`
}

// Gadget and Gizmo are models whose tables are created by hand in the
// structure tests.
type Gadget struct {
	ID   int64  `tandem:"id,pk,auto"`
	Name string `tandem:"name,size=40"`
}

type Gizmo struct {
	ID    int64   `tandem:"id,pk,auto"`
	Price float64 `tandem:"price"`
}

// writeDatasources writes a config of SQLite datasources in dir, in the order
// given as name, dsn pairs, and returns its path.
func writeDatasources(t *testing.T, dir string, nameDSN ...string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("datasources:\n")
	for i := 0; i+1 < len(nameDSN); i += 2 {
		fmt.Fprintf(&b, "  - name: %s\n    driver: sqlite\n    dsn: %q\n", nameDSN[i], nameDSN[i+1])
	}
	path := filepath.Join(dir, "tandem.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// initialise makes tandem initialise dir/foo.db (identity, bookkeeping
// tables) through a throw-away cluster, then closes it.
func initialiseFooDB(t *testing.T, dir string) {
	t.Helper()
	sub := filepath.Join(dir, "init")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	path := writeDatasources(t, sub, "foo", "../foo.db", "seed", "seed.db")
	c := testcluster.Open(t, path, discardLogs())
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}

// execRaw runs statements on a SQLite file directly, bypassing tandem.
func execRaw(t *testing.T, file string, stmts ...string) {
	t.Helper()
	db := openRawSQLite(t, file)
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %s: %v", filepath.Base(file), s, err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

func copyFileBytes(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

func statusOf(t *testing.T, c *tandem.Cluster, name string) tandem.NodeStatus {
	t.Helper()
	st, err := c.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range st.Nodes {
		if n.Name == name {
			return n
		}
	}
	t.Fatalf("Status has no node %s: %+v", name, st)
	return tandem.NodeStatus{}
}

func TestWriteOnceWhenTwoDatasourcesReachOneFile(t *testing.T) {
	cases := []struct {
		name string
		// setup prepares dir and returns bar's dsn, which reaches dir/foo.db.
		setup func(t *testing.T, dir string) string
	}{
		{"the same file by two paths", func(t *testing.T, dir string) string {
			if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
				t.Fatal(err)
			}
			return "./sub/../foo.db"
		}},
		{"an absolute and a relative path to an initialised file", func(t *testing.T, dir string) string {
			initialiseFooDB(t, dir)
			return filepath.Join(dir, "foo.db")
		}},
		{"a symbolic link to the file", func(t *testing.T, dir string) string {
			initialiseFooDB(t, dir)
			if err := os.Symlink("foo.db", filepath.Join(dir, "bar.db")); err != nil {
				t.Fatal(err)
			}
			return "bar.db"
		}},
		{"a symbolic link to the file's directory", func(t *testing.T, dir string) string {
			initialiseFooDB(t, dir)
			if err := os.Symlink(".", filepath.Join(dir, "again")); err != nil {
				t.Fatal(err)
			}
			return "again/foo.db"
		}},
		{"a hard link to an empty file", func(t *testing.T, dir string) string {
			if err := os.WriteFile(filepath.Join(dir, "foo.db"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Link(filepath.Join(dir, "foo.db"), filepath.Join(dir, "bar.db")); err != nil {
				t.Fatal(err)
			}
			return "bar.db"
		}},
		{"a hard link to the file", func(t *testing.T, dir string) string {
			initialiseFooDB(t, dir)
			if err := os.Link(filepath.Join(dir, "foo.db"), filepath.Join(dir, "bar.db")); err != nil {
				t.Fatal(err)
			}
			return "bar.db"
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			barDSN := tc.setup(t, dir)
			path := writeDatasources(t, dir, "foo", "foo.db", "bar", barDSN)
			c := testcluster.Open(t, path, discardLogs())

			nodes := c.Nodes()
			if nodes[1].SameAs() != nodes[0] {
				t.Errorf("bar.SameAs() = %v, want foo (ids: foo %q, bar %q)", nodes[1].SameAs(), nodes[0].ID(), nodes[1].ID())
			}
			if ns := statusOf(t, c, "bar"); ns.SameAs != "foo" || ns.State != tandem.StateInSync {
				t.Errorf("Status of bar: SameAs %q, State %q, Error %q; want SameAs foo, in sync", ns.SameAs, ns.State, ns.Error)
			}
			if err := c.Migrate(ctx, &Gauge{}); err != nil {
				t.Fatalf("Migrate: %v", err)
			}

			// A trigger on the file counts every row SQLite inserts or
			// updates in gauge: one per write that reaches the file.
			foo := filepath.Join(dir, "foo.db")
			execRaw(t, foo,
				`CREATE TABLE tally (n INTEGER NOT NULL)`,
				`INSERT INTO tally VALUES (0)`,
				`CREATE TRIGGER gauge_ins AFTER INSERT ON gauge BEGIN UPDATE tally SET n = n + 1; END`,
				`CREATE TRIGGER gauge_upd AFTER UPDATE ON gauge BEGIN UPDATE tally SET n = n + 1; END`,
			)
			const keys, rounds = 10, 3 // an insert, then updates, of each key
			saves := 0
			for r := range rounds {
				for id := int64(1); id <= keys; id++ {
					if err := c.Save(ctx, &Gauge{ID: id, Reading: int64(r)*100 + id}); err != nil {
						t.Fatalf("Save gauge %d (round %d): %v", id, r, err)
					}
					saves++
				}
			}
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			raw := openRawSQLite(t, foo)
			var check string
			if err := raw.QueryRow(`PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
				t.Errorf("foo.db integrity_check: %q, %v", check, err)
			}
			var tally int
			if err := raw.QueryRow(`SELECT n FROM tally`).Scan(&tally); err != nil {
				t.Fatal(err)
			}
			if tally != saves {
				t.Errorf("the file saw %d row writes for %d saves; want each save applied exactly once", tally, saves)
			}
			if n := testcluster.Count(t, foo, "gauge"); n != keys {
				t.Errorf("foo.db holds %d gauges, want %d", n, keys)
			}
			// Both names show the same rows.
			viaBar := barDSN
			if !filepath.IsAbs(viaBar) {
				viaBar = filepath.Join(dir, viaBar)
			}
			if a, b := testcluster.Dump(t, foo), testcluster.Dump(t, viaBar); a != b {
				t.Errorf("foo.db and %s show different rows:\n%s", barDSN, firstDumpDiff(a, b))
			}
		})
	}
}

func TestCopiedDatabaseFileIsRefusedWithIdentityClash(t *testing.T) {
	ctx := context.Background()
	path := testcluster.Config(t)
	dir := filepath.Dir(path)
	foo, bar := filepath.Join(dir, "foo.db"), filepath.Join(dir, "bar.db")
	c := testcluster.Open(t, path, discardLogs())
	if err := c.Migrate(ctx, &Gauge{}); err != nil {
		t.Fatal(err)
	}
	if err := c.Save(ctx, &Gauge{ID: 1, Reading: 10}); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	// Someone replaces bar.db by a copy of foo.db: same identity, another file.
	for _, suffix := range []string{"", "-wal", "-shm"} {
		os.Remove(bar + suffix)
	}
	copyFileBytes(t, foo, bar)
	if _, err := os.Stat(foo + "-wal"); err == nil {
		copyFileBytes(t, foo+"-wal", bar+"-wal")
	}
	before := testcluster.DumpDir(t, dir, "foo", "bar")

	c = testcluster.Open(t, path, discardLogs())
	nodes := c.Nodes()
	if nodes[0].ID() == "" || nodes[0].ID() != nodes[1].ID() {
		t.Errorf("want both nodes to carry one identity, got foo %q, bar %q", nodes[0].ID(), nodes[1].ID())
	}
	if nodes[1].SameAs() != nil {
		t.Errorf("bar.SameAs() = %s for a copy; want nil", nodes[1].SameAs().Name())
	}
	ns := statusOf(t, c, "bar")
	if ns.State != tandem.StateDown || !strings.Contains(ns.Error, "foo") || !strings.Contains(ns.Error, "bar") {
		t.Errorf("Status of bar: State %q, Error %q; want down, with an error naming foo and bar", ns.State, ns.Error)
	}
	writes := map[string]func() error{
		"Save":   func() error { return c.Save(ctx, &Gauge{ID: 2, Reading: 20}) },
		"Delete": func() error { return c.Delete(ctx, &Gauge{ID: 1}) },
		"Tx": func() error {
			return c.Tx(ctx, func(tx *tandem.Tx) error { return tx.Save(ctx, &Gauge{ID: 3, Reading: 30}) })
		},
	}
	for name, write := range writes {
		if err := write(); !errors.Is(err, tandem.ErrIdentityClash) {
			t.Errorf("%s on a copied database: err = %v, want ErrIdentityClash", name, err)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	after := testcluster.DumpDir(t, dir, "foo", "bar")
	for i, name := range []string{"foo", "bar"} {
		if before[i] != after[i] {
			t.Errorf("%s.db changed although every write was refused:\n%s", name, firstDumpDiff(before[i], after[i]))
		}
		if n := testcluster.Count(t, filepath.Join(dir, name+".db"), "_tandem_pending"); n != 0 {
			t.Errorf("%s.db: %d intent records, want none", name, n)
		}
	}
}

func TestStructureMismatchRefusesWritesUntilFixed(t *testing.T) {
	// What tandem's Migrate would create for Gadget and Gizmo.
	const gadgetDDL = `CREATE TABLE "gadget" ("id" INTEGER NOT NULL, "name" VARCHAR(40) NOT NULL, PRIMARY KEY ("id"))`
	gizmoDDL := func(priceType string) string {
		return `CREATE TABLE "gizmo" ("id" INTEGER NOT NULL, "price" ` + priceType + ` NOT NULL, PRIMARY KEY ("id"))`
	}
	cases := []struct {
		name string
		// setup creates tables by hand in dir before the cluster opens.
		setup func(t *testing.T, dir string)
		// diff lists the words the structure difference must name.
		diff []string
		// write is refused while the structures differ.
		write func(ctx context.Context, c *tandem.Cluster) error
		// fix makes the structures equal.
		fix func(t *testing.T, ctx context.Context, c *tandem.Cluster, dir string)
	}{
		{
			name:  "a table only on bar",
			setup: func(t *testing.T, dir string) { execRaw(t, filepath.Join(dir, "bar.db"), gadgetDDL) },
			diff:  []string{"gadget", "foo"},
			write: func(ctx context.Context, c *tandem.Cluster) error { return c.Save(ctx, &Gadget{Name: "lever"}) },
			fix: func(t *testing.T, ctx context.Context, c *tandem.Cluster, dir string) {
				if err := c.Migrate(ctx, &Gadget{}); err != nil {
					t.Fatalf("Migrate to create the missing table: %v", err)
				}
			},
		},
		{
			name: "a column whose type differs",
			setup: func(t *testing.T, dir string) {
				execRaw(t, filepath.Join(dir, "foo.db"), gizmoDDL("REAL"))
				execRaw(t, filepath.Join(dir, "bar.db"), gizmoDDL("TEXT"))
			},
			diff:  []string{"gizmo", "price", "foo", "bar", "REAL", "TEXT"},
			write: func(ctx context.Context, c *tandem.Cluster) error { return c.Save(ctx, &Gizmo{Price: 1.5}) },
			fix: func(t *testing.T, ctx context.Context, c *tandem.Cluster, dir string) {
				execRaw(t, filepath.Join(dir, "bar.db"), `DROP TABLE gizmo`, gizmoDDL("REAL"))
				if err := c.Migrate(ctx, &Gizmo{}); err != nil {
					t.Fatalf("Migrate after fixing bar by hand: %v", err)
				}
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			path := testcluster.Config(t)
			dir := filepath.Dir(path)
			tc.setup(t, dir)
			c := testcluster.Open(t, path, discardLogs())

			st := c.Structure()
			if st.Match {
				t.Fatalf("Structure().Match is true; want a mismatch (%+v)", st)
			}
			named := false
			for _, d := range st.Diffs {
				all := true
				for _, w := range tc.diff {
					all = all && strings.Contains(d, w)
				}
				named = named || all
			}
			if !named {
				t.Errorf("no structure difference names all of %q: %q", tc.diff, st.Diffs)
			}
			if status, err := c.Status(ctx); err != nil || status.StructureMatch {
				t.Errorf("Status: StructureMatch true or error %v; want a mismatch", err)
			}

			before := testcluster.DumpDir(t, dir, "foo", "bar")
			if err := tc.write(ctx, c); !errors.Is(err, tandem.ErrSchemaMismatch) {
				t.Errorf("write while structures differ: err = %v, want ErrSchemaMismatch", err)
			}
			if err := c.Delete(ctx, &Gauge{ID: 1}); !errors.Is(err, tandem.ErrSchemaMismatch) {
				t.Errorf("delete while structures differ: err = %v, want ErrSchemaMismatch", err)
			}
			after := testcluster.DumpDir(t, dir, "foo", "bar")
			for i, name := range []string{"foo", "bar"} {
				if before[i] != after[i] {
					t.Errorf("%s.db changed although the write was refused:\n%s", name, firstDumpDiff(before[i], after[i]))
				}
				if n := testcluster.Count(t, filepath.Join(dir, name+".db"), "_tandem_pending"); n != 0 {
					t.Errorf("%s.db: %d intent records, want none", name, n)
				}
			}

			tc.fix(t, ctx, c, dir)
			if st := c.Structure(); !st.Match {
				t.Fatalf("after the fix, Structure().Match is false: %q", st.Diffs)
			}
			if err := tc.write(ctx, c); err != nil {
				t.Fatalf("write after the fix: %v", err)
			}
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			dumps := testcluster.DumpDir(t, dir, "foo", "bar")
			if dumps[0] != dumps[1] {
				t.Errorf("after the fix, foo.db and bar.db differ:\n%s", firstDumpDiff(dumps[0], dumps[1]))
			}
			if dumps[0] == before[0] {
				t.Errorf("the write after the fix left foo.db unchanged")
			}
		})
	}
}

// Several processes may open one config at once, and each writes its own
// identity probe. While other openers keep probing the file (simulated here
// by a connection writing the probe row that Open writes, as fast as it can,
// as a burst of other processes' Opens would), every Open must still
// recognise two datasources that reach one file. Real concurrent Opens lose
// the same race about once in a thousand.
func TestOpenRecognisesTwoPathsToOneFileWhileOthersProbeIt(t *testing.T) {
	dir := t.TempDir()
	initialiseFooDB(t, dir)
	foo := filepath.Join(dir, "foo.db")
	path := writeDatasources(t, dir, "foo", "foo.db", "bar", foo)
	cfg, err := tandem.LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	other, err := sql.Open("sqlite3", "file:"+foo+"?_pragma=busy_timeout(5000)&_pragma=synchronous(off)")
	if err != nil {
		t.Fatal(err)
	}
	other.SetMaxOpenConns(1)
	defer other.Close()
	stop := make(chan struct{})
	var probes int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := other.Exec(`INSERT INTO _tandem_meta (k, v) VALUES ('probe', ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v`, fmt.Sprint("other-", i)); err == nil {
				probes++
			}
		}
	}()
	const opens = 300 // each loses the race a few percent of the time
	var wrong []string
	for r := 0; r < opens && len(wrong) == 0; r++ {
		c, err := tandem.Open(context.Background(), cfg, discardLogs())
		if err != nil {
			t.Fatal(err)
		}
		if c.Nodes()[1].SameAs() == nil {
			msg := ""
			if st, err := c.Status(context.Background()); err == nil {
				msg = st.Nodes[1].Error
			}
			wrong = append(wrong, fmt.Sprintf("open %d: bar not recognised as foo: %s", r, msg))
		}
		c.Close()
	}
	close(stop)
	wg.Wait()
	t.Logf("the other opener wrote %d probes meanwhile", probes)
	if len(wrong) > 0 {
		t.Errorf("an Open did not recognise one file: %s", wrong[0])
	}
}

// takeoverPair writes a config of foo (foo.db) and bar (bar.db, a symbolic
// link to bar-own.db, an empty file) in a new directory; point retargets
// the link, atomically, as a taken-over address does.
func takeoverPair(t *testing.T) (dir, path string, point func(target string)) {
	t.Helper()
	dir = t.TempDir()
	point = func(target string) {
		tmp := filepath.Join(dir, "bar.db.new")
		if err := os.Symlink(target, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "bar.db")); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "bar-own.db"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	point("bar-own.db")
	return dir, writeDatasources(t, dir, "foo", "foo.db", "bar", "bar.db"), point
}

// TestAddressTakenOverBeforeStartIsNotAnAlias: foo and bar are in sync; a
// process starts while bar's address (a symbolic link here, an IP on
// servers) reaches foo's database. The databases remember bar's own
// identity, so bar is not "the same database as foo, written once" but
// down: writes reach foo and record what bar misses. When the link points
// back to bar's own file, bar is opened again and caught up. An earlier
// version decided the alias once, at Open: it wrote every later row to
// foo only, and a second process found bar in sync and healthy while it
// lacked them.
func TestAddressTakenOverBeforeStartIsNotAnAlias(t *testing.T) {
	ctx := context.Background()
	dir, path, point := takeoverPair(t)

	first := testcluster.Open(t, path, discardLogs())
	if err := first.Migrate(ctx, &Gauge{}); err != nil {
		t.Fatal(err)
	}
	if err := first.Save(ctx, &Gauge{ID: 1, Reading: 1}); err != nil {
		t.Fatal(err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}

	point("foo.db") // bar's address taken over by foo's database
	c := testcluster.Open(t, path, discardLogs())
	if ns := statusOf(t, c, "bar"); ns.SameAs != "" || ns.State != tandem.StateDown || !strings.Contains(ns.Error, "reaches the database of foo") {
		t.Fatalf("bar while its address reaches foo's file: same as %q, state %s, error %q; want down, reaching foo's database", ns.SameAs, ns.State, ns.Error)
	}
	for id := int64(2); id <= 4; id++ {
		if err := c.Save(ctx, &Gauge{ID: id, Reading: id}); err != nil {
			t.Fatalf("save %d: %v", id, err)
		}
	}
	// Another process started now sees bar behind, not in sync.
	other := testcluster.Open(t, path, discardLogs())
	if ns := statusOf(t, other, "bar"); ns.State == tandem.StateInSync {
		t.Errorf("another process finds bar in sync while it lacks rows 2-4: %+v", ns)
	}
	if err := other.Close(); err != nil {
		t.Fatal(err)
	}

	point("bar-own.db") // the address points back
	foWait(t, c, "bar caught up on its own file", foInSync)
	for id := int64(5); id <= 7; id++ {
		if err := c.Save(ctx, &Gauge{ID: id, Reading: id}); err != nil {
			t.Fatalf("save %d: %v", id, err)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	foo, own := testcluster.Dump(t, filepath.Join(dir, "foo.db")), testcluster.Dump(t, filepath.Join(dir, "bar-own.db"))
	if foo != own {
		t.Errorf("foo.db and bar's own file differ:\n%s", firstDumpDiff(foo, own))
	}
	if n := testcluster.Count(t, filepath.Join(dir, "bar-own.db"), "gauge"); n != 7 {
		t.Errorf("bar's own file holds %d gauges, want 7", n)
	}
}

// TestAddressTakenOverWhileRunning: bar's address is taken over by foo's
// database while the process runs, then points back. bar is down meanwhile
// (writes reach foo once and record what bar misses), its connections,
// which kept reaching whatever they had opened, are closed, and it is
// opened again on its own file and caught up.
func TestAddressTakenOverWhileRunning(t *testing.T) {
	ctx := context.Background()
	dir, path, point := takeoverPair(t)
	c := testcluster.Open(t, path, discardLogs())
	if err := c.Migrate(ctx, &Gauge{}); err != nil {
		t.Fatal(err)
	}
	if err := c.Save(ctx, &Gauge{ID: 1, Reading: 1}); err != nil {
		t.Fatal(err)
	}
	point("foo.db")
	foWait(t, c, "bar down", func(st *tandem.Status) bool {
		return foNode(st, "bar").State == tandem.StateDown && strings.Contains(foNode(st, "bar").Error, "reaches the database of foo")
	})
	for id := int64(2); id <= 4; id++ {
		if err := c.Save(ctx, &Gauge{ID: id, Reading: id}); err != nil {
			t.Fatalf("save %d: %v", id, err)
		}
	}
	point("bar-own.db")
	foWait(t, c, "bar caught up on its own file", foInSync)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	foo, own := testcluster.Dump(t, filepath.Join(dir, "foo.db")), testcluster.Dump(t, filepath.Join(dir, "bar-own.db"))
	if foo != own {
		t.Errorf("foo.db and bar's own file differ:\n%s", firstDumpDiff(foo, own))
	}
	if n := testcluster.Count(t, filepath.Join(dir, "bar-own.db"), "gauge"); n != 4 {
		t.Errorf("bar's own file holds %d gauges, want 4", n)
	}
}
