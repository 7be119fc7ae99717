package propel

import (
	"errors"
	"flag"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/tandemdb/tandem"
)

// updateImport rewrites the golden files of testdata/config:
//
//	go test ./propel -run TestImport -update
var updateImport = flag.Bool("update", false, "rewrite the golden files of testdata/config")

const configTestdata = "testdata/config"

// importCases are the fixtures of testdata/config; each one's output is
// compared with NAME.tandem.yaml and its warnings with NAME.warnings.
var importCases = []struct {
	name, file string
	opts       ImportOptions
	loads      bool // an all-SQLite result: it must load with tandem.LoadConfig
}{
	{name: "mysql-slaves", file: "mysql-slaves.xml"},
	{name: "mysql-slaves-cms", file: "mysql-slaves.xml", opts: ImportOptions{Datasource: "bookstore-cms"}},
	{name: "pgsql-dsn-credentials", file: "pgsql-dsn-credentials.xml"},
	{name: "sqlite-slave", file: "sqlite-slave.xml", loads: true},
	{name: "single-default-id", file: "single-default-id.xml"},
	{name: "two-connections", file: "two-connections.yaml"},
	{name: "two-connections-logs", file: "two-connections.yaml", opts: ImportOptions{Datasource: "logs"}},
	{name: "slaves", file: "slaves.yaml"},
	{name: "sqlite-yaml", file: "sqlite.yaml", loads: true},
	{name: "json", file: "propel.json"},
}

func TestImportGolden(t *testing.T) {
	for _, tc := range importCases {
		t.Run(tc.name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(configTestdata, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			got, err := ImportConfig(data, tc.file, tc.opts)
			if err != nil {
				t.Fatalf("ImportConfig: %v", err)
			}
			warnings := strings.Join(got.Warnings, "\n") + "\n"
			yamlPath := filepath.Join(configTestdata, tc.name+".tandem.yaml")
			warnPath := filepath.Join(configTestdata, tc.name+".warnings")
			if *updateImport {
				if err := os.WriteFile(yamlPath, []byte(got.YAML), 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(warnPath, []byte(warnings), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			wantYAML, err := os.ReadFile(yamlPath)
			if err != nil {
				t.Fatalf("%v (run go test ./propel -run TestImport -update)", err)
			}
			if got.YAML != string(wantYAML) {
				t.Errorf("YAML differs from %s:\n--- got\n%s--- want\n%s", yamlPath, got.YAML, wantYAML)
			}
			wantWarn, err := os.ReadFile(warnPath)
			if err != nil {
				t.Fatal(err)
			}
			if warnings != string(wantWarn) {
				t.Errorf("warnings differ from %s:\n--- got\n%s--- want\n%s", warnPath, warnings, wantWarn)
			}
			checkImported(t, got)

			again, err := ImportConfig(data, tc.file, tc.opts)
			if err != nil || again.YAML != got.YAML || strings.Join(again.Warnings, "\n") != strings.Join(got.Warnings, "\n") {
				t.Errorf("a second import differs: deterministic output expected")
			}
			if tc.loads {
				loadImported(t, got.YAML)
			}
		})
	}
}

// importedConfig is the shape of a converted config.
type importedConfig struct {
	Primary     string `yaml:"primary"`
	Datasources []struct {
		Name   string `yaml:"name"`
		Driver string `yaml:"driver"`
		DSN    string `yaml:"dsn"`
	} `yaml:"datasources"`
}

var importNameRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]{0,62}$`)

// checkImported checks what every successful import must be: YAML with a
// primary that is the first of one or more uniquely, validly named
// datasources of a known driver; the mysql DSNs parse as
// go-sql-driver/mysql would.
func checkImported(t *testing.T, got *Imported) importedConfig {
	t.Helper()
	var cfg importedConfig
	dec := yaml.NewDecoder(strings.NewReader(got.YAML))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		t.Fatalf("output is not a tandem config: %v\n%s", err, got.YAML)
	}
	if len(cfg.Datasources) == 0 {
		t.Fatalf("no datasource in\n%s", got.YAML)
	}
	if cfg.Primary != cfg.Datasources[0].Name {
		t.Errorf("primary %q, want the first datasource %q", cfg.Primary, cfg.Datasources[0].Name)
	}
	seen := map[string]bool{}
	for _, ds := range cfg.Datasources {
		if !importNameRE.MatchString(ds.Name) {
			t.Errorf("invalid tandem name %q", ds.Name)
		}
		if seen[ds.Name] {
			t.Errorf("name %q twice", ds.Name)
		}
		seen[ds.Name] = true
		if ds.DSN == "" {
			t.Errorf("%s: empty dsn", ds.Name)
		}
		switch ds.Driver {
		case "mysql":
			if _, err := splitMySQLDSN(ds.DSN); err != nil {
				t.Errorf("%s: mysql DSN does not parse: %v", ds.Name, err)
			}
		case "postgres":
			if _, err := url.Parse(ds.DSN); err != nil {
				t.Errorf("%s: postgres DSN does not parse: %v", ds.Name, err)
			}
		case "sqlite":
		default:
			t.Errorf("%s: driver %q", ds.Name, ds.Driver)
		}
	}
	if len(cfg.Datasources) == 1 {
		found := false
		for _, w := range got.Warnings {
			found = found || strings.Contains(w, "at least two")
		}
		if !found {
			t.Errorf("a single datasource and no warning saying tandem needs two: %q", got.Warnings)
		}
	}
	return cfg
}

// loadImported writes the config into a fresh directory with the
// directories its relative SQLite paths name, and loads it as tandem does.
func loadImported(t *testing.T, text string) {
	t.Helper()
	dir := t.TempDir()
	var cfg importedConfig
	if err := yaml.Unmarshal([]byte(text), &cfg); err != nil {
		t.Fatal(err)
	}
	for _, ds := range cfg.Datasources {
		if !filepath.IsAbs(ds.DSN) {
			if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(ds.DSN)), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	path := filepath.Join(dir, "tandem.yaml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	loaded, err := tandem.LoadConfig(path)
	if err != nil {
		t.Fatalf("tandem.LoadConfig: %v\n%s", err, text)
	}
	if loaded.Primary != cfg.Primary || len(loaded.Datasources) != len(cfg.Datasources) {
		t.Errorf("loaded primary %q and %d datasources, want %q and %d", loaded.Primary, len(loaded.Datasources), cfg.Primary, len(cfg.Datasources))
	}
}

// splitMySQLDSN parses [user[:password]@][net[(addr)]]/dbname[?params] the
// way go-sql-driver/mysql's ParseDSN does (last '/', last '@' before it,
// first ':' in the user part, first '(' after the '@').
func splitMySQLDSN(dsn string) (mysqlParts, error) {
	var p mysqlParts
	i := strings.LastIndexByte(dsn, '/')
	if i < 0 {
		return p, errors.New("missing the slash separating the database name")
	}
	left := dsn[:i]
	j := strings.LastIndexByte(left, '@')
	if j >= 0 {
		userinfo := left[:j]
		if k := strings.IndexByte(userinfo, ':'); k >= 0 {
			p.user, p.password = userinfo[:k], userinfo[k+1:]
		} else {
			p.user = userinfo
		}
	}
	netAddr := left[j+1:]
	if k := strings.IndexByte(netAddr, '('); k >= 0 {
		if !strings.HasSuffix(netAddr, ")") {
			return p, errors.New("network address not terminated")
		}
		p.net, p.addr = netAddr[:k], netAddr[k+1:len(netAddr)-1]
	} else {
		p.net = netAddr
	}
	db := dsn[i+1:]
	if q := strings.IndexByte(db, '?'); q >= 0 {
		db, p.params = db[:q], db[q+1:]
	}
	var err error
	if p.db, err = url.PathUnescape(db); err != nil {
		return p, err
	}
	return p, nil
}

type mysqlParts struct{ user, password, net, addr, db, params string }

// testConverter converts connections outside of a file.
func importTestConverter(adapter string) *confConverter {
	ds := &confDS{id: "db", adapter: adapter}
	return &confConverter{src: &confSource{file: "test.xml", kind: "datasource"}, ds: ds}
}

func TestImportMySQLDSNRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		user, password, rest string
		want                 mysqlParts
	}{
		{"root", "secret", "host=h;dbname=d", mysqlParts{"root", "secret", "tcp", "h:3306", "d", ""}},
		{"a@b", "p@ss:w/o?r(d)", "host=h;port=3310;dbname=d", mysqlParts{"a@b", "p@ss:w/o?r(d)", "tcp", "h:3310", "d", ""}},
		{"u/x", "", "host=::1;dbname=d/with?odd;;chars", mysqlParts{"u/x", "", "tcp", "[::1]:3306", "d/with?odd;chars", ""}},
		{"", "only-pw", "host=h;dbname=d;charset=utf8mb4", mysqlParts{"", "only-pw", "tcp", "h:3306", "d", ""}}, // tandem always uses utf8mb4
		{"", "", "unix_socket=/run/my sql(1)/m.sock;dbname=", mysqlParts{"", "", "unix", "/run/my sql(1)/m.sock", "", ""}},
		{"", "", " host=h ; dbname=d; user=dsnuser;password=a;;b ", mysqlParts{"dsnuser", "a;b ", "tcp", "h:3306", "d", ""}},
		{"elem", "elempw", "host=h;dbname=d;user=dsnuser;password=dsnpw", mysqlParts{"elem", "elempw", "tcp", "h:3306", "d", ""}},
		{"ü", "pä ss\t", "host=h;dbname=ö", mysqlParts{"ü", "pä ss\t", "tcp", "h:3306", "ö", ""}},
	} {
		c := importTestConverter("mysql")
		conn := confConn{path: "connection", user: tc.user, password: tc.password, hasUser: tc.user != "", hasPassword: tc.password != ""}
		var tg confTarget
		if err := c.mysql(tc.rest, conn, "connection/dsn", &tg); err != nil {
			t.Errorf("%q: %v", tc.rest, err)
			continue
		}
		got, err := splitMySQLDSN(tg.dsn)
		if err != nil || got != tc.want {
			t.Errorf("%q: DSN %q parses as %+v (%v), want %+v", tc.rest, tg.dsn, got, err, tc.want)
		}
	}
	for _, tc := range []struct{ user, rest, want string }{
		{"a:b", "host=h;dbname=d", "user name contains ':'"},
		{"u", "host=a@b;dbname=d", "contains '@'"},
		{"u", "host=h;port=0;dbname=d", "port is not a number"},
		{"u", "host=h;port=x;dbname=d", "port is not a number"},
		{"u", "host=h;dbname=d;charset=utf8'", "not a character set name"},
		{"u", "host=;dbname=d", "host is empty"},
	} {
		c := importTestConverter("mysql")
		var tg confTarget
		err := c.mysql(tc.rest, confConn{user: tc.user, hasUser: true}, "dsn", &tg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want an error containing %q", tc.rest, err, tc.want)
		}
	}
}

func TestImportPgSQLDSNRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		user, password, rest                 string
		wantUser, wantPW, wantHost, wantPath string
		wantQuery                            string
	}{
		{"el", "elpw", "host=h;dbname=d", "el", "elpw", "h:5432", "/d", ""},
		{"el", "elpw", "host=h dbname=d user=dsn password=dsnpw", "dsn", "dsnpw", "h:5432", "/d", ""},
		{"", "", `host = h  port=6543 dbname='my db' password='it\'s @/:?#' sslmode=disable`, "", `it's @/:?#`, "h:6543", "/my db", "sslmode=disable"},
		{"u", "", "host=/var/run/postgresql;dbname=d", "u", "", "", "/d", "host=%2Fvar%2Frun%2Fpostgresql&port=5432"},
		{"u", "p", "hostaddr=10.1.2.3;dbname=d", "u", "p", "10.1.2.3:5432", "/d", ""},
		{"u", "p", "host=::1;dbname=d", "u", "p", "[::1]:5432", "/d", ""},
	} {
		c := importTestConverter("pgsql")
		conn := confConn{path: "connection", user: tc.user, password: tc.password, hasUser: tc.user != "", hasPassword: tc.password != ""}
		var tg confTarget
		if err := c.pgsql(tc.rest, conn, "connection/dsn", &tg); err != nil {
			t.Errorf("%q: %v", tc.rest, err)
			continue
		}
		u, err := url.Parse(tg.dsn)
		if err != nil {
			t.Errorf("%q: %q: %v", tc.rest, tg.dsn, err)
			continue
		}
		pw, _ := u.User.Password()
		if u.Scheme != "postgres" || u.User.Username() != tc.wantUser || pw != tc.wantPW || u.Host != tc.wantHost || u.Path != tc.wantPath || u.RawQuery != tc.wantQuery {
			t.Errorf("%q: DSN %q: got user %q password %q host %q path %q query %q", tc.rest, tg.dsn, u.User.Username(), pw, u.Host, u.Path, u.RawQuery)
		}
	}
	for _, tc := range []struct{ rest, want string }{
		{"host=h dbname='unterminated", "closing quote"},
		{"host=h Zq9secret", "without '='"},
		{"host=a,b dbname=d", "several hosts"},
		{"host=h port=99999", "port is not a number"},
	} {
		c := importTestConverter("pgsql")
		var tg confTarget
		err := c.pgsql(tc.rest, confConn{}, "dsn", &tg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want an error containing %q", tc.rest, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "Zq9secret") {
			t.Errorf("%q: error %q repeats a value", tc.rest, err)
		}
	}
}

func TestImportPDOParams(t *testing.T) {
	got := confPDOParams(" host=h ;port=1;;2; junk;dbname=d;;;x=")
	want := []confPDOParam{{"host", "h "}, {"port", "1;2"}, {"dbname", "d;"}, {"x", ""}}
	if len(got) != len(want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Errorf("param %d: got %q, want %q", i, got[i], want[i])
		}
	}
}

func TestImportNames(t *testing.T) {
	for _, tc := range []struct {
		id     string
		slaves int
		want   string
	}{
		{"bookstore", 2, "bookstore"},
		{"main db", 0, "main_db"},
		{"1st", 0, "ds_1st"},
		{"", 0, "ds_"},
		{"ünï", 0, "ds__n_"},
		{strings.Repeat("a", 70), 0, strings.Repeat("a", 63)},
		{strings.Repeat("a", 70), 12, strings.Repeat("a", 63-len("-slave12"))},
	} {
		got := confName(tc.id, tc.slaves)
		if got != tc.want {
			t.Errorf("confName(%q, %d) = %q, want %q", tc.id, tc.slaves, got, tc.want)
		}
		if !importNameRE.MatchString(got) {
			t.Errorf("confName(%q) = %q: not a tandem name", tc.id, got)
		}
	}
}

// TestImportDriverTable: confDriverAvailable (tandem.Drivers) agrees with
// the drivers tandem.ParseConfig accepts, so that when mysql or postgres
// arrive the header comment and warning about them go.
func TestImportDriverTable(t *testing.T) {
	dir := t.TempDir()
	for _, driver := range []string{"sqlite", "mysql", "postgres"} {
		text := "datasources:\n  - {name: a, driver: " + driver + ", dsn: a.db}\n  - {name: b, driver: " + driver + ", dsn: b.db}\n"
		_, err := tandem.ParseConfig([]byte(text), dir)
		unknown := err != nil && strings.Contains(err.Error(), "unknown driver")
		if unknown == confDriverAvailable(driver) {
			t.Errorf("driver %q: confDriverAvailable says %v, tandem.ParseConfig says %v", driver, confDriverAvailable(driver), err)
		}
	}
}

// importSecret is the password of every malformed input: no error may repeat it.
const importSecret = "Zq9secret"

func TestImportErrors(t *testing.T) {
	xmlDS := func(adapter, conn string) string {
		return `<config><propel><datasources default="db"><datasource id="db"><adapter>` + adapter + `</adapter>
<connection>` + conn + `</connection></datasource></datasources></propel></config>`
	}
	mysqlConn := `<dsn>mysql:host=h;dbname=d</dsn><user>u</user><password>` + importSecret + `</password>`
	for _, tc := range []struct {
		name, file, data string
		opts             ImportOptions
		want             []string // substrings of the error
	}{
		{"bad XML", "runtime-conf.xml", "<config><propel>\n<datasources>\n</propel></config>", ImportOptions{},
			[]string{"runtime-conf.xml:3:", "malformed XML", "<datasources> closed by </propel>"}},
		{"bare < in a password", "runtime-conf.xml", xmlDS("mysql", `<dsn>mysql:host=h</dsn><password>ab<`+importSecret+`</password>`), ImportOptions{},
			[]string{"runtime-conf.xml:2:", "malformed XML"}},
		{"bare & in a password", "runtime-conf.xml", xmlDS("mysql", `<dsn>mysql:host=h</dsn><password>ab&`+importSecret+`;</password>`), ImportOptions{},
			[]string{"runtime-conf.xml:2:", "invalid character entity", "&amp;"}},
		{"unsupported encoding", "runtime-conf.xml", `<?xml version="1.0" encoding="EBCDIC"?><config/>`, ImportOptions{},
			[]string{"EBCDIC", "UTF-8"}},
		{"empty XML", "runtime-conf.xml", "", ImportOptions{}, []string{"no XML element"}},
		{"no datasources", "runtime-conf.xml", "<config>\n<propel>\n<log/></propel></config>", ImportOptions{},
			[]string{"runtime-conf.xml:2: propel: no <datasources> element"}},
		{"Propel 2 XML", "propel.xml", "<config><propel>\n<database><connections/></database></propel></config>", ImportOptions{},
			[]string{"propel.xml:2:", "Propel 2 propel.xml"}},
		{"missing dsn", "runtime-conf.xml", xmlDS("mysql", "\n<user>u</user><password>"+importSecret+"</password>"), ImportOptions{},
			[]string{"runtime-conf.xml:2: datasources/datasource[db]/connection/dsn: missing"}},
		{"empty dsn", "runtime-conf.xml", xmlDS("mysql", "\n<dsn> </dsn>"), ImportOptions{},
			[]string{"runtime-conf.xml:3: datasources/datasource[db]/connection/dsn: missing"}},
		{"missing connection", "runtime-conf.xml", `<config><propel><datasources><datasource id="db"><adapter>mysql</adapter></datasource></datasources></propel></config>`, ImportOptions{},
			[]string{"datasources/datasource[db]: no <connection> element"}},
		{"missing id", "runtime-conf.xml", "<config><propel><datasources>\n<datasource><adapter>mysql</adapter></datasource></datasources></propel></config>", ImportOptions{},
			[]string{"runtime-conf.xml:2: datasources/datasource: missing id attribute"}},
		{"id twice", "runtime-conf.xml", "<config><propel><datasources>\n<datasource id=\"a\"/>\n<datasource id=\"a\"/></datasources></propel></config>", ImportOptions{},
			[]string{"runtime-conf.xml:3: datasources/datasource[a]: defined twice (first on line 2)"}},
		{"unknown adapter", "runtime-conf.xml", xmlDS("oracle", `<dsn>oci:dbname=//h/XE</dsn><password>`+importSecret+`</password>`), ImportOptions{},
			[]string{"runtime-conf.xml:1: datasources/datasource[db]/adapter:", `datasource "db" uses adapter "oracle"`, "mysql, pgsql and sqlite"}},
		{"missing adapter", "runtime-conf.xml", `<config><propel><datasources><datasource id="db"><connection><dsn>mysql:host=h</dsn></connection></datasource></datasources></propel></config>`, ImportOptions{},
			[]string{"datasources/datasource[db]/adapter: missing"}},
		{"adapter/dsn mismatch", "runtime-conf.xml", xmlDS("sqlite", "\n"+mysqlConn), ImportOptions{},
			[]string{"runtime-conf.xml:3: datasources/datasource[db]/connection/dsn:", `the adapter is "sqlite" but the DSN is for driver "mysql"`}},
		{"unknown DSN prefix", "runtime-conf.xml", xmlDS("mysql", "<dsn>"+importSecret+":x</dsn>"), ImportOptions{},
			[]string{"the DSN is for an unknown driver"}},
		{"DSN without prefix", "runtime-conf.xml", xmlDS("mysql", "<dsn>"+importSecret+"</dsn>"), ImportOptions{},
			[]string{"no driver prefix"}},
		{"slave mismatch", "runtime-conf.xml", `<config><propel><datasources><datasource id="db"><adapter>pgsql</adapter>
<connection><dsn>pgsql:host=h</dsn></connection><slaves><connection>
<dsn>mysql:host=h2</dsn><password>` + importSecret + `</password></connection></slaves></datasource></datasources></propel></config>`, ImportOptions{},
			[]string{"runtime-conf.xml:3: datasources/datasource[db]/slaves/connection[1]/dsn:", `"pgsql"`, `driver "mysql"`}},
		{"sqlite memory", "runtime-conf.xml", xmlDS("sqlite", "<dsn>sqlite::memory:</dsn>"), ImportOptions{},
			[]string{"connection/dsn: an in-memory database (sqlite::memory:) cannot be mirrored"}},
		{"sqlite temporary", "runtime-conf.xml", xmlDS("sqlite", "<dsn>sqlite:</dsn>"), ImportOptions{},
			[]string{"temporary database"}},
		{"sqlite2", "runtime-conf.xml", xmlDS("sqlite", "<dsn>sqlite2:/x.db</dsn>"), ImportOptions{},
			[]string{"SQLite 2"}},
		{"sqlite question mark", "runtime-conf.xml", xmlDS("sqlite", "<dsn>sqlite:/x?.db</dsn>"), ImportOptions{},
			[]string{"contains '?'"}},
		{"unknown datasource", "runtime-conf.xml", `<config><propel><datasources><datasource id="a"/><datasource id="b c"/></datasources></propel></config>`, ImportOptions{Datasource: "nope"},
			[]string{`runtime-conf.xml: no datasource "nope" (have: "a", "b c")`}},
		{"several without default", "runtime-conf.xml", `<config><propel><datasources><datasource id="a"/><datasource id="b"/></datasources></propel></config>`, ImportOptions{},
			[]string{"2 datasources and no default one", "--datasource", `"a", "b"`}},
		{"default not defined", "runtime-conf.xml", "<config><propel>\n<datasources default=\"c\"><datasource id=\"a\"/></datasources></propel></config>", ImportOptions{},
			[]string{`runtime-conf.xml:2: datasources[default]: the default datasource "c" is not defined (have: "a")`}},
		{"no datasource", "runtime-conf.xml", `<config><propel><datasources/></propel></config>`, ImportOptions{},
			[]string{"no datasource defined"}},
		{"PHP config", "propel.php", "<?php return [];", ImportOptions{}, []string{"propel.php: a PHP configuration cannot be read"}},

		{"bad YAML", "propel.yaml", "propel:\n  database:\n    connections: [\n  password: " + importSecret + "\n", ImportOptions{},
			[]string{"propel.yaml:", "YAML syntax"}},
		{"YAML unknown anchor", "propel.yaml", "propel:\n  database:\n    connections:\n      db:\n        password: *" + importSecret + "\n", ImportOptions{},
			[]string{"propel.yaml:", "YAML syntax", "unknown anchor"}},
		{"YAML tag", "propel.yaml", "propel:\n  database:\n    connections:\n      db:\n        adapter: mysql\n        dsn: mysql:host=h\n        password: !" + importSecret + "\n", ImportOptions{},
			[]string{"propel.yaml:7: propel.database.connections.db.password:", "quote it"}},
		{"empty YAML", "propel.yaml", "", ImportOptions{}, []string{"propel.yaml: empty"}},
		{"YAML not a mapping", "propel.yaml", "- a\n- b\n", ImportOptions{}, []string{"propel.yaml:1: want a mapping with a propel key"}},
		{"YAML no propel", "propel.yaml", "database: {}\n", ImportOptions{}, []string{"propel.yaml:1: propel: missing"}},
		{"YAML no connections", "propel.yaml", "propel:\n  database:\n    adapters: {}\n", ImportOptions{}, []string{"propel.yaml:3: propel.database.connections: missing"}},
		{"YAML missing dsn", "propel.yaml", "propel:\n  database:\n    connections:\n      db:\n        adapter: mysql\n        password: " + importSecret + "\n", ImportOptions{},
			[]string{"propel.yaml:5: propel.database.connections.db.dsn: missing"}},
		{"YAML dsn not a string", "propel.yaml", "propel:\n  database:\n    connections:\n      db:\n        adapter: mysql\n        dsn: [a]\n", ImportOptions{},
			[]string{"propel.yaml:6: propel.database.connections.db.dsn: want a string"}},
		{"YAML unknown adapter", "propel.yaml", "propel:\n  database:\n    connections:\n      db:\n        adapter: sqlsrv\n        dsn: sqlsrv:Server=h\n        password: " + importSecret + "\n", ImportOptions{},
			[]string{"propel.yaml:5: propel.database.connections.db.adapter:", `connection "db" uses adapter "sqlsrv"`}},
		{"YAML mismatch", "propel.yaml", "propel:\n  database:\n    connections:\n      db:\n        adapter: mysql\n        dsn: pgsql:host=h;password=" + importSecret + "\n", ImportOptions{},
			[]string{"propel.yaml:6: propel.database.connections.db.dsn:", `the adapter is "mysql" but the DSN is for driver "pgsql"`}},
		{"YAML slave missing dsn", "propel.yaml", "propel:\n  database:\n    connections:\n      db:\n        adapter: mysql\n        dsn: mysql:host=h\n        slaves:\n          - user: u\n            password: " + importSecret + "\n", ImportOptions{},
			[]string{"propel.yaml:8: propel.database.connections.db.slaves[0].dsn: missing"}},
		{"YAML slaves not a list", "propel.yaml", "propel:\n  database:\n    connections:\n      db:\n        adapter: mysql\n        dsn: mysql:host=h\n        slaves: x\n", ImportOptions{},
			[]string{"propel.yaml:7: propel.database.connections.db.slaves: want a list"}},
		{"YAML unknown connection", "propel.yaml", "propel:\n  database:\n    connections:\n      a: {adapter: mysql, dsn: 'mysql:host=h'}\n      b: {adapter: mysql, dsn: 'mysql:host=h'}\n", ImportOptions{Datasource: "c"},
			[]string{`propel.yaml: no connection "c" (have: "a", "b")`}},
		{"YAML several without default", "propel.yaml", "propel:\n  database:\n    connections:\n      a: {adapter: mysql, dsn: 'mysql:host=h'}\n      b: {adapter: mysql, dsn: 'mysql:host=h'}\n", ImportOptions{},
			[]string{"propel.yaml: 2 connections and no default one", `"a", "b"`}},
		{"YAML default not defined", "propel.yaml", "propel:\n  database:\n    connections:\n      a: {adapter: mysql, dsn: 'mysql:host=h'}\n  runtime:\n    defaultConnection: z\n", ImportOptions{},
			[]string{`propel.yaml:6: propel.runtime.defaultConnection: the default connection "z" is not defined (have: "a")`}},
		{"YAML sqlite memory", "propel.yaml", "propel:\n  database:\n    connections:\n      a: {adapter: sqlite, dsn: 'sqlite::memory:'}\n", ImportOptions{},
			[]string{"propel.yaml:4: propel.database.connections.a.dsn: an in-memory database"}},
		{"YAML connection twice", "propel.yaml", "propel:\n  database:\n    connections:\n      a: {adapter: sqlite, dsn: 'sqlite:a.db'}\n      a: {adapter: sqlite, dsn: 'sqlite:b.db'}\n", ImportOptions{},
			[]string{"propel.yaml:5: propel.database.connections.a: defined twice (first on line 4)"}},
		{"YAML user with colon", "propel.yaml", "propel:\n  database:\n    connections:\n      a: {adapter: mysql, dsn: 'mysql:host=h', user: 'x:y', password: " + importSecret + "}\n", ImportOptions{},
			[]string{"user name contains ':'"}},
		{"YAML pgsql bad conninfo", "propel.yaml", "propel:\n  database:\n    connections:\n      a: {adapter: pgsql, dsn: \"pgsql:host=h password='" + importSecret + "\"}\n", ImportOptions{},
			[]string{"propel.yaml:4: propel.database.connections.a.dsn: a quoted value without its closing quote"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ImportConfig([]byte(tc.data), tc.file, tc.opts)
			if err == nil {
				t.Fatalf("no error; output:\n%s", got.YAML)
			}
			var ie *ImportError
			if !errors.As(err, &ie) {
				t.Errorf("error %T, want *ImportError", err)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, tc.file+":") {
				t.Errorf("error %q does not start with the file name", msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
			if strings.Contains(msg, importSecret) || strings.Contains(msg, importSecret[2:]) {
				t.Errorf("error %q holds the password", msg)
			}
		})
	}
}

// TestImportNoPasswordInWarnings checks that warnings, unlike the YAML,
// never hold a password.
func TestImportNoPasswordInWarnings(t *testing.T) {
	for _, tc := range importCases {
		data, err := os.ReadFile(filepath.Join(configTestdata, tc.file))
		if err != nil {
			t.Fatal(err)
		}
		got, err := ImportConfig(data, tc.file, tc.opts)
		if err != nil {
			t.Fatal(err)
		}
		for _, pw := range []string{"M@ster:p/ss?", "r3ad", "p@ss w:rd", "s3cret", "fr0m-dsn", "c@t:al/og", "j$on"} {
			for _, w := range got.Warnings {
				if strings.Contains(w, pw) {
					t.Errorf("%s: warning %q holds password %q", tc.name, w, pw)
				}
			}
		}
	}
}

func TestImportKindByContent(t *testing.T) {
	xmlText := `<config><propel><datasources><datasource id="a"><adapter>sqlite</adapter><connection><dsn>sqlite:a.db</dsn></connection></datasource></datasources></propel></config>`
	yamlText := "propel: {database: {connections: {a: {adapter: sqlite, dsn: 'sqlite:a.db'}}}}\n"
	for _, tc := range []struct{ name, data string }{
		{"runtime-conf", "\n  " + xmlText},
		{"runtime-conf.xml.dist", xmlText},
		{"propel.conf", yamlText},
		{"propel.yaml.dist", yamlText},
		{"bom.xml", "\xef\xbb\xbf" + xmlText},
	} {
		got, err := ImportConfig([]byte(tc.data), tc.name, ImportOptions{})
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if !strings.Contains(got.YAML, "dsn: a.db") {
			t.Errorf("%s: got\n%s", tc.name, got.YAML)
		}
	}
}

// FuzzImportConfig feeds both parsers arbitrary input: ImportConfig must
// not panic, must fail with an *ImportError naming the file, or produce a
// well-formed tandem config; an all-SQLite one of two or more datasources
// must be one tandem.ParseConfig only refuses for a DSN (a missing
// directory).
func FuzzImportConfig(f *testing.F) {
	names := []string{"runtime-conf.xml", "propel.yaml", "propel.conf", "propel.json"}
	entries, err := os.ReadDir(configTestdata)
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range entries {
		ext := filepath.Ext(e.Name())
		if ext != ".xml" && ext != ".yaml" && ext != ".json" || strings.HasSuffix(e.Name(), ".tandem.yaml") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(configTestdata, e.Name()))
		if err != nil {
			f.Fatal(err)
		}
		kind := uint8(1)
		if ext == ".xml" {
			kind = 0
		}
		f.Add(data, kind, "")
		f.Add(data, uint8(2), "bookstore")
	}
	f.Fuzz(func(t *testing.T, data []byte, kind uint8, datasource string) {
		name := names[int(kind)%len(names)]
		got, err := ImportConfig(data, name, ImportOptions{Datasource: datasource})
		if err != nil {
			var ie *ImportError
			if !errors.As(err, &ie) {
				t.Fatalf("error %T %v, want *ImportError", err, err)
			}
			if !strings.HasPrefix(err.Error(), name+":") {
				t.Fatalf("error %q does not start with the file name", err)
			}
			return
		}
		cfg := checkImported(t, got)
		if len(cfg.Datasources) < 2 {
			return
		}
		for _, ds := range cfg.Datasources {
			if ds.Driver != "sqlite" {
				return
			}
		}
		if _, err := tandem.ParseConfig([]byte(got.YAML), t.TempDir()); err != nil {
			var ce *tandem.ConfigError
			if !errors.As(err, &ce) || !strings.HasSuffix(ce.Field, ".dsn") {
				t.Fatalf("tandem.ParseConfig: %v\n%s", err, got.YAML)
			}
		}
	})
}

func TestImportYAMLString(t *testing.T) {
	for _, s := range []string{"", "plain", "true", "null", "123", "a: b", "a #b", "*x", "!x", "'q'", `"q"`,
		"line1\nline2", "\x00\t", "ü ß", "p@ss:w/o?r(d)", strings.Repeat("long ", 40)} {
		out := confYAMLString(s)
		if strings.Contains(out, "\n") {
			t.Errorf("%q: written on several lines: %q", s, out)
		}
		var back struct{ V string }
		if err := yaml.Unmarshal([]byte("v: "+out+"\n"), &back); err != nil || back.V != s {
			t.Errorf("%q: written %q, read back %q (%v)", s, out, back.V, err)
		}
	}
}

// TestImportYAMLMergeBomb checks that anchors merging anchors, each many
// times over, are read in bounded time.
func TestImportYAMLMergeBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString("a0: &a0 {k: v}\n")
	for i := 1; i <= 9; i++ {
		b.WriteString("a" + strconv.Itoa(i) + ": &a" + strconv.Itoa(i) + " {<<: [")
		for j := 0; j < 12; j++ {
			if j > 0 {
				b.WriteString(", ")
			}
			b.WriteString("*a" + strconv.Itoa(i-1))
		}
		b.WriteString("]}\n")
	}
	b.WriteString("propel:\n  database:\n    connections:\n      db: {<<: *a9, adapter: sqlite, dsn: 'sqlite:x.db'}\n")
	start := time.Now()
	got, err := ImportConfig([]byte(b.String()), "propel.yaml", ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
	if !strings.Contains(got.YAML, "dsn: x.db") {
		t.Errorf("got\n%s", got.YAML)
	}
}

// TestImportedDSNsAreTakenByTheirDrivers: every DSN an imported config
// holds is one tandem's driver for it accepts (a config with one
// datasource is refused for that alone, which is not what this checks).
func TestImportedDSNsAreTakenByTheirDrivers(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "config", "*.tandem.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden configs: %v", err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		_, err = tandem.ParseConfig(data, t.TempDir())
		var ce *tandem.ConfigError
		if errors.As(err, &ce) && strings.HasSuffix(ce.Field, ".dsn") && !strings.Contains(ce.Msg, "directory") {
			t.Errorf("%s: %v", f, err)
		}
	}
}
