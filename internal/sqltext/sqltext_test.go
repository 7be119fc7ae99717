package sqltext

import (
	"strings"
	"testing"
)

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		q     string
		kind  Kind
		words string
		err   string
	}{
		{`INSERT INTO t VALUES (1)`, Write, "INSERT INTO T", ""},
		{`  -- a comment; with a semicolon
		   /* and ; another */ update t set a = 1;`, Write, "UPDATE T SET", ""},
		{`SELECT ';' FROM t`, Write, "SELECT", ""},
		{`SELECT $$;$$, $tag$ ; $tag$`, Write, "SELECT", ""},
		{`(SELECT 1) UNION (SELECT 2)`, Write, "SELECT", ""},
		{`CREATE TABLE t (a int)`, DDL, "CREATE TABLE T", ""},
		{`CREATE TRIGGER tr AFTER INSERT ON t BEGIN INSERT INTO u VALUES (1); UPDATE u SET a = CASE WHEN a > 0 THEN 1 ELSE 2 END; END`, DDL, "CREATE TRIGGER TR", ""},
		{`CREATE FUNCTION f() RETURNS trigger AS $$ BEGIN RETURN NEW; END $$ LANGUAGE plpgsql`, DDL, "CREATE FUNCTION F", ""},
		{`begin`, Txn, "BEGIN", ""},
		{`SAVEPOINT a`, Txn, "SAVEPOINT", ""},
		{`SET search_path = x`, Session, "SET", ""},
		{`PRAGMA foreign_keys = OFF`, Session, "PRAGMA", ""},
		{`VACUUM`, Maintenance, "VACUUM", ""},
		{`INSERT INTO t VALUES (1); DELETE FROM t`, 0, "", "2 statements"},
		{`INSERT INTO t VALUES ('a;'); DELETE FROM t`, 0, "", "2 statements"},
		// A backslash escapes a quote in MySQL and E'' strings, not in
		// standard strings: read either way, the second statement shows.
		{`SELECT 'a\'; DELETE FROM t; --'`, 0, "", "statements"},
		{`   ;  `, 0, "", "empty statement"},
		{``, 0, "", "empty statement"},
		{`-- only a comment`, 0, "", "empty statement"},
	} {
		kind, words, err := Classify(tc.q)
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Classify(%q) = %v, %q, %v; want an error saying %q", tc.q, kind, words, err, tc.err)
			}
		case err != nil || kind != tc.kind || words != tc.words:
			t.Errorf("Classify(%q) = %v, %q, %v; want %v, %q", tc.q, kind, words, err, tc.kind, tc.words)
		}
	}
}

func TestWrites(t *testing.T) {
	for q, want := range map[string]bool{
		`SELECT * FROM t`:                                       false,
		`INSERT INTO t VALUES (1) RETURNING id`:                 true,
		`with d as (delete from t returning *) select * from d`: true,
		`WITH x AS (SELECT 1) SELECT * FROM x`:                  false,
		`DELETE FROM t RETURNING *`:                             true,
		`SELECT 'INSERT'`:                                       false,
		`CALL p()`:                                              true,
	} {
		if got := Writes(q); got != want {
			t.Errorf("Writes(%q) = %v, want %v", q, got, want)
		}
	}
}

func TestAlteredAndDroppedTable(t *testing.T) {
	for q, want := range map[string]string{
		`ALTER TABLE kv ADD COLUMN r double precision DEFAULT random()`:        "kv",
		`ALTER TABLE IF EXISTS ONLY "Kv" ALTER COLUMN a TYPE int USING a::int`: "Kv",
		`ALTER TABLE kv ADD COLUMN r int`:                                      "",
		`ALTER TABLE kv RENAME TO kw`:                                          "",
		`CREATE TABLE kv (a int DEFAULT 1)`:                                    "",
	} {
		if got := AlteredTable(q); got != want {
			t.Errorf("AlteredTable(%q) = %q, want %q", q, got, want)
		}
	}
	for q, want := range map[string]string{
		`DROP TABLE kv`:            "kv",
		`drop table if exists kv;`: "kv",
		"DROP TABLE `kv`":          "kv",
		`DROP TABLE a, b`:          "",
		`DROP INDEX kv`:            "",
	} {
		if got := DroppedTable(q); got != want {
			t.Errorf("DroppedTable(%q) = %q, want %q", q, got, want)
		}
	}
}

// FuzzClassify: any text is classified or refused without panicking, and
// text that holds a semicolon outside every quote and comment, followed by
// a keyword, is never one statement.
func FuzzClassify(f *testing.F) {
	for _, s := range []string{
		`INSERT INTO t VALUES (1)`, `SELECT ';'`, `SELECT $a$;$a$`, `/* ; */ SELECT 1`,
		`CREATE TRIGGER x BEGIN SELECT 1; END`, `SELECT 'a\'; DROP TABLE t`, `"a;b"`, "`x;y`", `$`, `$$`, `/*/*`, `--`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		kind, _, err := Classify(q)
		if err == nil && (kind < Write || kind > Outside) {
			t.Fatalf("Classify(%q) = kind %d", q, kind)
		}
		Writes(q)
		AlteredTable(q)
		DroppedTable(q)
		// Appending a second statement to a plain one is always seen.
		if err == nil && !strings.ContainsAny(q, "'\\\"`$-/") && !strings.Contains(strings.ToUpper(q), "CREATE") {
			if _, _, err := Classify(q + "; DELETE FROM t"); err == nil {
				t.Fatalf("Classify(%q + \"; DELETE FROM t\") found one statement", q)
			}
		}
	})
}

func TestCopy(t *testing.T) {
	for _, c := range []struct {
		q       string
		in, out bool
	}{
		{`COPY t FROM STDIN`, true, false},
		{`copy t (a, b) from stdin with (format csv, header)`, true, false},
		{`COPY pgbench_accounts FROM STDIN WITH (FREEZE ON)`, true, false},
		{`COPY t TO STDOUT`, false, true},
		{`COPY (SELECT a FROM t WHERE b = 'x') TO STDOUT WITH CSV`, false, true},
		{`COPY (SELECT * FROM stdin) TO STDOUT`, false, true},
		{`COPY t FROM '/etc/passwd'`, false, false},
		{`COPY t TO PROGRAM 'rm -rf /'`, false, false},
		{`COPY t FROM STDIN; DROP TABLE t`, false, false},
		{`SELECT 1 FROM stdin`, false, false},
		{`COPY`, false, false},
	} {
		in, out := Copy(c.q)
		if in != c.in || out != c.out {
			t.Errorf("Copy(%q) = %v, %v; want %v, %v", c.q, in, out, c.in, c.out)
		}
	}
}
