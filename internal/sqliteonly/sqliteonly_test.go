package sqliteonly_test

import (
	"context"
	"errors"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/tandemdb/tandem"
	_ "github.com/tandemdb/tandem/engine/sqlite" // the only engine this program links
)

func TestDriversAreTheLinkedEngines(t *testing.T) {
	if got, want := tandem.Drivers(), []string{"sqlite"}; !slices.Equal(got, want) {
		t.Errorf("tandem.Drivers() = %v, want %v", got, want)
	}
}

// TestConfigNamingAnEngineNotLinkedSaysWhatToImport: a driver tandem ships
// but the program does not import is not "unknown"; the error names the
// import that fixes it. Other names are unknown, listing what is linked.
func TestConfigNamingAnEngineNotLinkedSaysWhatToImport(t *testing.T) {
	for _, tc := range []struct {
		name, driver string
		line         int // the driver's line; the datasource's when it has none
		msg          string
	}{
		{"postgres not linked", "postgres", 3, `driver "postgres" is not linked into this program: import _ "github.com/tandemdb/tandem/engine/postgres"`},
		{"mysql not linked", "mysql", 3, `driver "mysql" is not linked into this program: import _ "github.com/tandemdb/tandem/engine/mysql"`},
		{"unknown", "oracle", 3, `unknown driver "oracle" (known: sqlite)`},
		{"missing", "", 2, `missing (known: sqlite)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := "datasources:\n  - name: foo\n    driver: " + tc.driver + "\n    dsn: foo\n  - name: bar\n    driver: sqlite\n    dsn: bar.db\n"
			if tc.driver == "" {
				text = "datasources:\n  - name: foo\n    dsn: foo\n  - name: bar\n    driver: sqlite\n    dsn: bar.db\n"
			}
			_, err := tandem.ParseConfig([]byte(text), t.TempDir())
			var ce *tandem.ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("ParseConfig: %v, want a *tandem.ConfigError", err)
			}
			if ce.Field != "datasources[0].driver" || ce.Line != tc.line || ce.Msg != tc.msg {
				t.Errorf("ParseConfig: line %d, field %q, msg %q;\nwant line %d, field %q, msg %q",
					ce.Line, ce.Field, ce.Msg, tc.line, "datasources[0].driver", tc.msg)
			}
		})
	}
}

func TestTwoSQLiteFilesOpenSaveAndGet(t *testing.T) {
	type Note struct {
		ID   int64  `tandem:"id,pk,auto"`
		Text string `tandem:"text,size=100"`
	}
	ctx := context.Background()
	cfg, err := tandem.ParseConfig([]byte("datasources:\n  - {name: a, driver: sqlite, dsn: a.db}\n  - {name: b, driver: sqlite, dsn: b.db}\n"), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c, err := tandem.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Migrate(ctx, &Note{}); err != nil {
		t.Fatal(err)
	}
	n := &Note{Text: "hello"}
	if err := c.Save(ctx, n); err != nil {
		t.Fatal(err)
	}
	got, err := tandem.Get[Note](ctx, c, n.ID)
	if err != nil || got.Text != "hello" {
		t.Fatalf("Get: %+v, %v; want the note saved", got, err)
	}
}

// TestRootPackageLinksNoEngine: an application importing tandem links the
// engines it imports and no others; the root package pulls in no database
// driver of its own.
func TestRootPackageLinksNoEngine(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command in PATH:", err)
	}
	out, err := exec.Command(gobin, "list", "-deps", "github.com/tandemdb/tandem").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, driver := range []string{
			"github.com/jackc/pgx",
			"github.com/go-sql-driver/mysql",
			"github.com/ncruces/go-sqlite3",
			"github.com/tandemdb/tandem/engine/",
			"github.com/prometheus/", // only package prom links client_golang
		} {
			if strings.HasPrefix(dep, driver) {
				t.Errorf("the root package depends on %s", dep)
			}
		}
	}
}
