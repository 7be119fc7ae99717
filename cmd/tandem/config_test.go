package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// propelXML is a runtime-conf.xml with a SQLite master and one slave.
const propelXML = `<?xml version="1.0"?>
<config>
  <propel>
    <datasources default="shop">
      <datasource id="shop">
        <adapter>sqlite</adapter>
        <connection><dsn>sqlite:shop.db</dsn></connection>
        <slaves>
          <connection><dsn>sqlite:shop-replica.db</dsn></connection>
        </slaves>
      </datasource>
      <datasource id="other">
        <adapter>mysql</adapter>
        <connection>
          <dsn>mysql:host=db.example.com;dbname=other</dsn>
          <user>app</user>
          <password>Zq9secret</password>
        </connection>
      </datasource>
    </datasources>
  </propel>
</config>
`

func writePropel(t *testing.T, dir, name, text string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestConfigImportStdout(t *testing.T) {
	dir := t.TempDir()
	src := writePropel(t, dir, "runtime-conf.xml", propelXML)
	code, stdout, stderr := runT(t, "config", "import", src)
	if code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	for _, want := range []string{"primary: shop\n", "  - name: shop\n    driver: sqlite\n    dsn: shop.db\n", "  - name: shop-slave1\n", "# tandem config imported from"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
	// The other datasource is named in a warning.
	if !strings.Contains(stderr, "tandem config import: warning: ") || !strings.Contains(stderr, `"other"`) {
		t.Errorf("stderr lacks the warning about the other datasource:\n%s", stderr)
	}
	for _, line := range strings.Split(strings.TrimSpace(stderr), "\n") {
		if !strings.HasPrefix(line, "tandem config import: warning: ") {
			t.Errorf("stderr line %q is not a warning", line)
		}
	}
	// What it printed is a config tandem loads, next to the databases.
	cfg := writeConfig(t, dir, stdout)
	if code, _, stderr := runT(t, "status", "--config", cfg); code == 2 {
		t.Errorf("tandem status on the imported config: exit 2\n%s", stderr)
	}
}

func TestConfigImportOut(t *testing.T) {
	dir := t.TempDir()
	// Flags after FILE, and --datasource picking the other datasource.
	src := writePropel(t, dir, "propel.yaml", `propel:
  database:
    connections:
      a: {adapter: sqlite, dsn: "sqlite:a.db", slaves: [{dsn: "sqlite:b.db"}]}
      b: {adapter: pgsql, dsn: "pgsql:host=h;dbname=b", user: u, password: Zq9secret}
  runtime:
    defaultConnection: b
`)
	out := filepath.Join(dir, "tandem.yaml")
	code, stdout, stderr := runT(t, "config", "import", src, "--out", out, "--datasource", "a")
	if code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	if stdout != "" {
		t.Errorf("stdout with --out: %q", stdout)
	}
	text, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(text), "primary: a\n") {
		t.Errorf("%s:\n%s", out, text)
	}
	if st, err := os.Stat(out); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("%s: mode %v (%v), want 0600: it may hold passwords", out, st.Mode().Perm(), err)
	}
	if strings.Contains(stderr, "Zq9secret") {
		t.Errorf("stderr holds a password:\n%s", stderr)
	}

	// An existing file is never overwritten.
	if err := os.WriteFile(out, []byte("keep\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = runT(t, "config", "import", "--datasource", "a", "--out", out, src)
	if code != 2 || !strings.Contains(stderr, "tandem config import: "+out+" already exists") {
		t.Errorf("exit %d, stderr:\n%s", code, stderr)
	}
	if text, _ := os.ReadFile(out); string(text) != "keep\n" {
		t.Errorf("%s was overwritten: %q", out, text)
	}
}

func TestConfigImportErrors(t *testing.T) {
	dir := t.TempDir()
	src := writePropel(t, dir, "runtime-conf.xml", propelXML)
	bad := writePropel(t, dir, "bad.xml", "<config><propel>\n<datasources default=\"x\"><datasource id=\"x\"><adapter>oracle</adapter>\n<connection><dsn>oci:dbname=XE</dsn><password>Zq9secret</password></connection></datasource></datasources></propel></config>")
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stderr []string // substrings
		stdout string   // a substring, "" for empty stdout
	}{
		{"no subcommand", []string{"config"}, 2, []string{"usage: tandem config", "import"}, ""},
		{"unknown subcommand", []string{"config", "export"}, 2, []string{`tandem config: unknown subcommand "export"`, "usage: tandem config"}, ""},
		{"config help", []string{"config", "-h"}, 0, nil, "usage: tandem config"},
		{"import help", []string{"config", "import", "-h"}, 0, []string{"usage: tandem config import", "-datasource", "-out"}, ""},
		{"no file", []string{"config", "import"}, 2, []string{"tandem config import: want one FILE"}, ""},
		{"two files", []string{"config", "import", src, src}, 2, []string{"tandem config import: want one FILE"}, ""},
		{"unknown flag", []string{"config", "import", "--force", src}, 2, []string{"flag provided but not defined: -force"}, ""},
		{"missing file", []string{"config", "import", filepath.Join(dir, "nope.xml")}, 2, []string{"tandem config import: cannot read ", "nope.xml"}, ""},
		{"unknown datasource", []string{"config", "import", src, "--datasource", "nope"}, 2, []string{`tandem config import: ` + src + `: no datasource "nope" (have: "shop", "other")`}, ""},
		{"unknown adapter", []string{"config", "import", bad}, 2, []string{"tandem config import: " + bad + ":2: datasources/datasource[x]/adapter:", `adapter "oracle"`}, ""},
		{"out in a missing directory", []string{"config", "import", src, "--out", filepath.Join(dir, "no", "t.yaml")}, 2, []string{"tandem config import: cannot create "}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runT(t, tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d\nstderr:\n%s", code, tc.code, stderr)
			}
			for _, want := range tc.stderr {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr lacks %q:\n%s", want, stderr)
				}
			}
			if tc.stdout == "" && stdout != "" {
				t.Errorf("stdout: %q", stdout)
			}
			if !strings.Contains(stdout, tc.stdout) {
				t.Errorf("stdout lacks %q:\n%s", tc.stdout, stdout)
			}
			if strings.Contains(stderr+stdout, "Zq9secret") {
				t.Errorf("output holds a password:\n%s%s", stdout, stderr)
			}
		})
	}
}
