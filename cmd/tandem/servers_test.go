package main

// Server tests: the CLI against real PostgreSQL and MariaDB servers started
// by internal/dbserver, with DSNs that carry a password.

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/tandemdb/tandem"
	"github.com/tandemdb/tandem/internal/dbserver"
)

// srvDatasource is one datasource of a server test: tandem's driver name
// and the server holding its database.
type srvDatasource struct {
	driver string
	server *dbserver.Server
}

// database creates database name on the datasource's server and returns
// its DSN, its password and a plain handle on it, closed at test end.
func (d srvDatasource) database(t *testing.T, name string) (dsn, password string, db *sql.DB) {
	t.Helper()
	d.server.CreateDatabase(t, name)
	dsn = d.server.DSN(name, "")
	driver := "pgx"
	if d.driver == "mysql" {
		driver = "mysql"
		cfg, err := mysql.ParseDSN(dsn)
		if err != nil {
			t.Fatal(err)
		}
		password = cfg.Passwd
	} else {
		cfg, err := pgx.ParseConfig(dsn)
		if err != nil {
			t.Fatal(err)
		}
		password = cfg.Password
	}
	if len(password) < 8 {
		t.Fatalf("the %s server's password %q is too short to look for in output", d.driver, password)
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return dsn, password, db
}

// srvBook is the model the server tests write: an auto id and a column of
// each logical type.
type srvBook struct {
	ID      int64     `tandem:"id,pk,auto"`
	Title   string    `tandem:"title,size=100,unique"`
	Price   float64   `tandem:"price"`
	Cover   []byte    `tandem:"cover"`
	InStock bool      `tandem:"in_stock"`
	Added   time.Time `tandem:"added"`
	Note    *string   `tandem:"note"`
}

func (srvBook) TableName() string { return "srv_book" }

// TestServersCLI runs status, verify and repair on two PostgreSQL servers,
// and on a PostgreSQL and a MariaDB server. The servers are shared by the
// subtests, each of which works in databases of its own.
func TestServersCLI(t *testing.T) {
	// Debug logs: the more the commands say, the more a password could leak.
	t.Setenv("TANDEM_LOG_LEVEL", "debug")
	pg := [2]*dbserver.Server{dbserver.Start(t, dbserver.Postgres), dbserver.Start(t, dbserver.Postgres)}
	my := dbserver.Start(t, dbserver.MariaDB)
	t.Run("postgres", func(t *testing.T) {
		srvStatusVerifyRepair(t, srvDatasource{"postgres", pg[0]}, srvDatasource{"postgres", pg[1]})
	})
	t.Run("postgres+mysql", func(t *testing.T) {
		srvStatusVerifyRepair(t, srvDatasource{"postgres", pg[0]}, srvDatasource{"mysql", my})
	})
	t.Run("VerifyRefusesKeysOfAnotherCollation", func(t *testing.T) {
		srvVerifyRefusesAnotherCollation(t, srvDatasource{"postgres", pg[0]}, srvDatasource{"postgres", pg[1]})
	})
}

// srvVerifyRefusesAnotherCollation: verify compares ranges of keys, which
// only works where both sides order the keys alike. A text key of another
// collation than tandem's "C" on one side is a structure difference (exit
// 2), not a comparison that never ends.
func srvVerifyRefusesAnotherCollation(t *testing.T, foo, bar srvDatasource) {
	var dsns []string
	for _, side := range []struct {
		d    srvDatasource
		coll string
	}{{foo, "C"}, {bar, "und-x-icu"}} {
		dsn, _, db := side.d.database(t, "collation")
		dsns = append(dsns, dsn)
		var n int
		if err := db.QueryRow("SELECT count(*) FROM pg_collation WHERE collname = $1", side.coll).Scan(&n); err != nil || n == 0 {
			t.Skipf("no collation %s on the server (%v): PostgreSQL built without ICU", side.coll, err)
		}
		for _, q := range []string{
			`CREATE TABLE words (k TEXT COLLATE "` + side.coll + `" PRIMARY KEY, v BIGINT)`,
			`INSERT INTO words SELECT CASE WHEN g % 2 = 0 THEN 'a' ELSE 'B' END || g, g FROM generate_series(1, 2000) g`,
		} {
			if _, err := db.Exec(q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
	}
	path := writeConfig(t, t.TempDir(), fmt.Sprintf("datasources:\n  - name: foo\n    driver: postgres\n    dsn: %q\n  - name: bar\n    driver: postgres\n    dsn: %q\n", dsns[0], dsns[1]))
	code, stdout, stderr := runT(t, "verify", "--config", path)
	if want := `table words: column k: TEXT on foo, TEXT COLLATE "und-x-icu" on bar`; code != 2 || !strings.Contains(stderr, want) {
		t.Errorf("verify: exit %d, want 2 saying %q\nstdout:\n%s\nstderr:\n%s", code, want, stdout, stderr)
	}
}

func srvStatusVerifyRepair(t *testing.T, foo, bar srvDatasource) {
	ctx := context.Background()
	name := "cli_" + strings.ReplaceAll(t.Name()[strings.LastIndex(t.Name(), "/")+1:], "+", "_")
	fooDSN, fooPW, _ := foo.database(t, name)
	barDSN, barPW, barDB := bar.database(t, name)
	quote := func(s string) string { b, _ := json.Marshal(s); return string(b) } // JSON is YAML
	dir := t.TempDir()
	path := writeConfig(t, dir, fmt.Sprintf(`datasources:
  - name: foo
    driver: %s
    dsn: %s
  - name: bar
    driver: %s
    dsn: %s
`, foo.driver, quote(fooDSN), bar.driver, quote(barDSN)))

	// Every output of every command is checked for the passwords.
	var outputs []string
	cli := func(wantCode int, args ...string) (stdout, stderr string) {
		t.Helper()
		code, stdout, stderr := runT(t, args...)
		outputs = append(outputs, "tandem "+strings.Join(args, " ")+"\n"+stdout+stderr)
		if code != wantCode {
			t.Fatalf("tandem %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, wantCode, stdout, stderr)
		}
		return stdout, stderr
	}
	defer func() {
		for _, out := range outputs {
			for _, pw := range []string{fooPW, barPW} {
				if strings.Contains(out, pw) {
					t.Errorf("output holds a DSN's password:\n%s", out)
				}
			}
		}
	}()

	// Rows written through the library, as an application writes them.
	c := openLib(t, path)
	if err := c.Migrate(ctx, &srvBook{}); err != nil {
		t.Fatal(err)
	}
	added := time.Date(2026, 3, 14, 15, 9, 26, 535897000, time.UTC)
	note := "signed"
	const n = 25
	for i := range n {
		b := &srvBook{Title: fmt.Sprintf("Book %02d 😀", i), Price: float64(i) / 3, Cover: []byte{byte(i), 0, 0xff},
			InStock: i%2 == 0, Added: added.Add(time.Duration(i) * time.Hour)}
		if i%5 == 0 {
			b.Note = &note
		}
		if err := c.Save(ctx, b); err != nil {
			t.Fatalf("save book %d: %v", i, err)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	stdout, _ := cli(0, "status", "--config", path)
	for ds, driver := range map[string]string{"foo": foo.driver, "bar": bar.driver} {
		if r := row(t, stdout, ds); !strings.Contains(r, driver) || !strings.Contains(r, "in sync") {
			t.Errorf("status: %s's row %q: want driver %s, in sync", ds, r, driver)
		}
	}
	stdout, _ = cli(0, "status", "--config", path, "--json")
	var st tandem.Status
	if err := json.Unmarshal([]byte(stdout), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, stdout)
	}
	if !st.StructureMatch || len(st.Nodes) != 2 {
		t.Fatalf("status --json: %+v", st)
	}
	if f, b := node(t, st, "foo"), node(t, st, "bar"); f.Driver != foo.driver || b.Driver != bar.driver || !f.Primary || b.Primary {
		t.Errorf("status --json: foo %+v, bar %+v", f, b)
	}
	// Structures of one engine compare by fingerprint. (Across engines the
	// fingerprints differ though the structures match: not checked here.)
	if f, b := node(t, st, "foo"), node(t, st, "bar"); foo.driver == bar.driver && (!f.StructureMatches || !b.StructureMatches) {
		t.Errorf("status --json: structure_matches foo %v, bar %v; want true", f.StructureMatches, b.StructureMatches)
	}

	rows := fmt.Sprintf("srv_book: identical (%d rows on foo, %d on bar)", n, n)
	if stdout, _ := cli(0, "verify", "--config", path); !strings.Contains(stdout, rows) || !strings.Contains(stdout, "identical: 1 table") {
		t.Errorf("verify of identical databases:\n%s", stdout)
	}

	// One row changes on bar behind tandem's back.
	if _, err := barDB.ExecContext(ctx, "UPDATE srv_book SET price = 99.5 WHERE id = 7"); err != nil {
		t.Fatal(err)
	}
	stdout, _ = cli(1, "verify", "--config", path)
	for _, want := range []string{
		fmt.Sprintf("srv_book: 1 differing row (%d rows on foo, %d on bar)", n, n),
		"  changed  id=7  on bar: price\n",
		"not identical: 1 differing row",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("verify output lacks %q:\n%s", want, stdout)
		}
	}
	stdout, _ = cli(1, "verify", "--config", path, "--json")
	var rep verifyJSON
	dec := json.NewDecoder(strings.NewReader(stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rep); err != nil {
		t.Fatalf("verify --json: %v\n%s", err, stdout)
	}
	if rep.Identical || rep.Reference != "foo" || !slices.Equal(rep.Datasources, []string{"bar"}) || len(rep.Tables) != 1 {
		t.Fatalf("verify --json: %+v", rep)
	}
	book := rep.Tables[0]
	if book.Table != "srv_book" || book.Rows["foo"] != n || book.Rows["bar"] != n || len(book.Differences) != 1 {
		t.Fatalf("verify --json table: %+v", book)
	}
	if d := book.Differences[0]; d.Datasource != "bar" || d.Kind != "changed" || len(d.Key) != 1 || d.Key["id"] != 7.0 || !slices.Equal(d.Columns, []string{"price"}) {
		t.Errorf("verify --json difference: %+v, want bar changed {id: 7} [price]", d)
	}

	stdout, _ = cli(0, "repair", "--config", path, "--from", "foo", "--to", "bar")
	for _, want := range []string{"update bar.srv_book id=7 (price)\n", "repaired 1 row on bar from foo", "verify after the repair: foo and bar are identical"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("repair output lacks %q:\n%s", want, stdout)
		}
	}
	var price float64
	if err := barDB.QueryRowContext(ctx, "SELECT price FROM srv_book WHERE id = 7").Scan(&price); err != nil || price != 6.0/3 {
		t.Errorf("bar's row 7 after the repair: price %v, %v; want %v", price, err, 6.0/3)
	}
	if stdout, _ := cli(0, "verify", "--config", path); !strings.Contains(stdout, rows) {
		t.Errorf("verify after the repair:\n%s", stdout)
	}

	// Errors name what failed, never the password: bar's database gone
	// missing, bar's server unreachable, a wrong password (which holds the
	// right one).
	for _, broken := range []struct{ what, dsn string }{
		{"no such database", bar.server.DSN(name+"_missing", "")},
		{"closed port", bar.server.DSN(name, "127.0.0.1:1")},
		{"wrong password", strings.Replace(barDSN, ":"+barPW+"@", ":wrong"+barPW+"@", 1)},
	} {
		bad := writeConfig(t, t.TempDir(), fmt.Sprintf(`datasources:
  - name: foo
    driver: %s
    dsn: %s
  - name: bar
    driver: %s
    dsn: %s
`, foo.driver, quote(fooDSN), bar.driver, quote(broken.dsn)))
		for _, cmd := range [][]string{{"verify"}, {"repair", "--from", "foo", "--to", "bar"}} {
			_, stderr := cli(2, append(cmd, "--config", bad)...)
			if !strings.Contains(stderr, "bar") {
				t.Errorf("%s, tandem %s: the error does not name bar:\n%s", broken.what, cmd[0], stderr)
			}
		}
		code, stdout, stderr := runT(t, "status", "--config", bad)
		outputs = append(outputs, "tandem status ("+broken.what+")\n"+stdout+stderr)
		if code != 1 || !strings.Contains(row(t, stdout, "bar"), "down") {
			t.Errorf("%s: status exits %d, want 1 with bar down\n%s%s", broken.what, code, stdout, stderr)
		}
	}
}
