package tandem_test

// Any SQL through tandem on a MariaDB pair: the statement kinds of
// sql_test.go in MySQL's dialect (AUTO_INCREMENT, ON DUPLICATE KEY
// UPDATE, REPLACE, an application trigger, a cascade), what MySQL's
// triggers cannot see refused, a write around tandem refused, and a SQL
// workload through a secondary killed mid-stream.

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/tandemdb/tandem"
	"github.com/tandemdb/tandem/internal/dbserver"
)

func TestSQLOnMariaDB(t *testing.T) {
	my := [2]*dbserver.Server{dbserver.Start(t, dbserver.MariaDB), dbserver.Start(t, dbserver.MariaDB)}
	p := srvPair{"mariadb", srvBackend{"mysql", my[0]}, srvBackend{"mysql", my[1]}, ""}
	t.Run("StatementsDecideEveryValueOnce", func(t *testing.T) { mySQLStatements(t, p) })
	t.Run("AutoIncrementFollowsAFailover", func(t *testing.T) {
		sqlSequences(t, p, `CREATE TABLE seq_items (id BIGINT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(20))`)
	})
	t.Run("SecondaryKilledMidStream", func(t *testing.T) {
		sqlSecondaryKilled(t, p,
			`CREATE TABLE sql_set (id BIGINT AUTO_INCREMENT PRIMARY KEY, v BIGINT NOT NULL UNIQUE, at DATETIME(6) DEFAULT CURRENT_TIMESTAMP(6))`,
			`INSERT INTO sql_set (v) VALUES (?)`)
	})
}

func mySQLStatements(t *testing.T, p srvPair) {
	ctx := context.Background()
	s := srvOpen(t, p, false)
	c := s.c
	for _, ddl := range []string{
		`CREATE TABLE items (id BIGINT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(100) NOT NULL,
			created DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), r DOUBLE DEFAULT (RAND()),
			uuid CHAR(36) DEFAULT (UUID()))`,
		`CREATE TABLE kv (k VARCHAR(64) PRIMARY KEY, v VARCHAR(200), n INT DEFAULT 0)`,
		`CREATE TABLE archive (k VARCHAR(64) PRIMARY KEY, v VARCHAR(200), at DATETIME(6) DEFAULT CURRENT_TIMESTAMP(6))`,
		`CREATE TABLE parent (id INT PRIMARY KEY, name VARCHAR(20))`,
		`CREATE TABLE child (id INT PRIMARY KEY, parent INT NOT NULL, r DOUBLE DEFAULT (RAND()),
			FOREIGN KEY (parent) REFERENCES parent(id) ON DELETE CASCADE)`,
		`CREATE TABLE audit (id BIGINT AUTO_INCREMENT PRIMARY KEY, item BIGINT, what VARCHAR(200), r DOUBLE)`,
		`CREATE TRIGGER items_audit AFTER INSERT ON items FOR EACH ROW
			INSERT INTO audit (item, what, r) VALUES (NEW.id, CONCAT('insert ', NEW.name), RAND())`,
		`CREATE TABLE nokey (a INT, b VARCHAR(10))`,
	} {
		if _, err := c.Exec(ctx, ddl); err != nil {
			t.Fatalf("%s: %v", ddl, err)
		}
	}
	tables := []string{"items", "kv", "archive", "parent", "child", "audit"}
	same := func(t *testing.T) {
		t.Helper()
		foUntil(t, "no intent record left", func() bool {
			return srvCount(t, s.fooDB, "_tandem_pending") == 0 && srvCount(t, s.barDB, "_tandem_pending") == 0
		})
		if !verifyTables(t, s, tables...) {
			t.Fatal("verify: the databases differ")
		}
	}
	for _, tc := range []struct {
		name  string
		stmts []string
	}{
		{"defaults: CURRENT_TIMESTAMP(6), RAND(), UUID(), AUTO_INCREMENT", []string{
			`INSERT INTO items (name) VALUES ('a'), ('b'), ('c')`,
		}},
		{"INSERT ... SELECT of many rows", []string{
			`INSERT INTO kv (k, v, n) SELECT CONCAT('k', seq), MD5(RAND()), FLOOR(RAND() * 1000) FROM seq_1_to_2000`,
		}},
		{"UPDATE of a primary key", []string{`UPDATE kv SET k = CONCAT('moved-', k) WHERE k IN ('k1', 'k2', 'k3')`}},
		{"UPDATE of many rows with RAND()", []string{`UPDATE kv SET n = FLOOR(RAND() * 1000) WHERE k LIKE 'k1%'`}},
		{"INSERT ... ON DUPLICATE KEY UPDATE", []string{
			`INSERT INTO kv (k, v) VALUES ('k10', 'new'), ('fresh', 'new') ON DUPLICATE KEY UPDATE v = CONCAT(VALUES(v), MD5(RAND()))`,
		}},
		{"REPLACE", []string{`REPLACE INTO kv (k, v) VALUES ('k11', MD5(RAND())), ('replaced', 'x')`}},
		{"INSERT ... SELECT then DELETE (an archive)", []string{
			`INSERT INTO archive (k, v) SELECT k, v FROM kv WHERE k LIKE 'k2%'`,
			`DELETE FROM kv WHERE k LIKE 'k2%'`,
		}},
		{"the application's trigger writes another table", []string{`INSERT INTO items (name) VALUES ('audited')`}},
		{"ON DELETE CASCADE", []string{
			`INSERT INTO parent VALUES (1, 'one'), (2, 'two')`,
			`INSERT INTO child (id, parent) VALUES (10, 1), (11, 1), (12, 2)`,
			`DELETE FROM parent WHERE id = 1`,
		}},
		{"a column added with a volatile default", []string{`ALTER TABLE kv ADD COLUMN r2 DOUBLE DEFAULT (RAND())`}},
		{"DELETE without WHERE", []string{`DELETE FROM archive`, `DELETE FROM child`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, q := range tc.stmts {
				if _, err := c.Exec(ctx, q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			same(t)
		})
	}
	var n int
	for _, check := range []struct {
		q    string
		want int
	}{
		{`SELECT count(*) FROM kv`, 2000 + 2 - 111},
		{`SELECT count(*) FROM audit a JOIN items i ON i.id = a.item`, 4},
		{`SELECT count(*) FROM archive`, 0},
		{`SELECT count(*) FROM child`, 0},
		{`SELECT count(*) FROM parent`, 1},
	} {
		if err := c.QueryRow(ctx, check.q).Scan(&n); err != nil || n != check.want {
			t.Errorf("%s = %d (%v), want %d", check.q, n, err, check.want)
		}
	}

	// SQL and model-free statements in one transaction.
	err := c.Tx(ctx, func(tx *tandem.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO items (name) VALUES ('in a tx')`); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE kv SET v = 'tx' WHERE k = 'fresh'`)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	same(t)

	// Refused, nothing written.
	refused := func(what, q string, want string, tx bool) {
		t.Helper()
		var err error
		if tx {
			err = c.Tx(ctx, func(tx *tandem.Tx) error { _, err := tx.Exec(ctx, q); return err })
		} else {
			_, err = c.Exec(ctx, q)
		}
		if !errors.Is(err, tandem.ErrRefused) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s = %v, want refused saying %q", what, err, want)
		}
	}
	refused("TRUNCATE", `TRUNCATE TABLE kv`, "use DELETE FROM", false)
	refused("a change of structure inside a Tx", `ALTER TABLE kv ADD COLUMN z INT`, "commits the transaction", true)
	// The trigger refuses it (the engine's error, not ErrRefused).
	if _, err := c.Exec(ctx, `INSERT INTO nokey VALUES (1, 'x')`); err == nil || !strings.Contains(err.Error(), "nokey has no primary key") {
		t.Errorf("a write to a table without a key = %v, want refused", err)
	}
	if err := c.QueryRow(ctx, `SELECT count(*) FROM kv`).Scan(&n); err != nil || n != 2000+2-111 {
		t.Errorf("after the refusals kv holds %d rows (%v)", n, err)
	}

	// A write around tandem is refused by the trigger; an operator's
	// emergency fix says so first.
	if _, err := s.barDB.Exec(`INSERT INTO kv (k, v) VALUES ('around', 'x')`); err == nil || !strings.Contains(err.Error(), "bypasses tandem") {
		t.Errorf("a write on bar directly = %v, want refused", err)
	}
	conn, err := s.barDB.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `SET @tandem_capture = 'bypass'`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, `UPDATE kv SET v = 'fixed by hand' WHERE k = 'fresh'`); err != nil {
		t.Errorf("an emergency fix with @tandem_capture = 'bypass': %v", err)
	}
	// No capture row outlives a write.
	for _, db := range []struct {
		name string
		n    int
	}{{"foo", srvCount(t, s.fooDB, "_tandem_c_kv")}, {"bar", srvCount(t, s.barDB, "_tandem_c_kv")}} {
		if db.n != 0 {
			t.Errorf("%s: _tandem_c_kv holds %d rows after the writes", db.name, db.n)
		}
	}
}
