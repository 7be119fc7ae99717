package main

import (
	"database/sql"
	"fmt"
	"strings"
	"testing"

	"github.com/tandemdb/tandem/internal/dbserver"
)

func TestProbeCollationVerify(t *testing.T) {
	pg := dbserver.Start(t, dbserver.Postgres)
	var dsns []string
	for i, coll := range []string{"C", "und-x-icu"} {
		name := fmt.Sprintf("p%d", i)
		pg.CreateDatabase(t, name)
		dsn := pg.DSN(name, "")
		dsns = append(dsns, dsn)
		db, err := sql.Open("pgx", dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if _, err := db.Exec(`CREATE TABLE w (k TEXT COLLATE "` + coll + `" PRIMARY KEY, v BIGINT)`); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(`INSERT INTO w SELECT (CASE WHEN g % 2 = 0 THEN 'a' ELSE 'B' END) || g, g FROM generate_series(1, 5000) g`); err != nil {
			t.Fatal(err)
		}
		if i == 1 {
			db.Exec(`UPDATE w SET v = -1 WHERE k = 'a100'`)
		}
	}
	path := writeConfig(t, t.TempDir(), fmt.Sprintf("datasources:\n  - name: foo\n    driver: postgres\n    dsn: %q\n  - name: bar\n    driver: postgres\n    dsn: %q\n", dsns[0], dsns[1]))
	code, out, errOut := runT(t, "verify", "--config", path)
	lines := strings.Split(out, "\n")
	if len(lines) > 20 {
		lines = append(lines[:20], "...")
	}
	t.Logf("exit %d\n%s\n%s", code, strings.Join(lines, "\n"), errOut)
}
