package compat_test

import (
	"context"
	"testing"

	"github.com/jmoiron/sqlx"
)

type sqlxNote struct {
	ID   int64  `db:"id"`
	Body string `db:"body"`
	V    int64  `db:"v"`
}

// sqlx over tandem's driver: named inserts, Get and Select into structs,
// a transaction, then the fault run.
func TestSQLX(t *testing.T) {
	onBoth(t, func(t *testing.T, p *pair) {
		ctx := context.Background()
		bind := "sqlite3"
		ddl := `CREATE TABLE sqlx_notes (id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL, v INTEGER NOT NULL UNIQUE)`
		if p.engine == "postgres" {
			bind = "pgx"
			ddl = `CREATE TABLE sqlx_notes (id bigserial PRIMARY KEY, body text NOT NULL, v bigint NOT NULL UNIQUE)`
		}
		db := sqlx.NewDb(p.db, bind)
		db.MustExecContext(ctx, ddl)
		if _, err := db.NamedExecContext(ctx, `INSERT INTO sqlx_notes (body, v) VALUES (:body, :v)`,
			[]sqlxNote{{Body: "one", V: -1}, {Body: "two", V: -2}}); err != nil {
			t.Fatal(err)
		}
		var got sqlxNote
		if err := db.GetContext(ctx, &got, db.Rebind(`SELECT id, body, v FROM sqlx_notes WHERE v = ?`), -2); err != nil || got.Body != "two" {
			t.Fatalf("Get = %+v, %v", got, err)
		}
		tx := db.MustBeginTx(ctx, nil)
		tx.MustExecContext(ctx, tx.Rebind(`UPDATE sqlx_notes SET body = body || ? WHERE v < 0`), "!")
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		var all []sqlxNote
		if err := db.SelectContext(ctx, &all, `SELECT id, body, v FROM sqlx_notes ORDER BY id`); err != nil || len(all) != 2 || all[0].Body != "one!" {
			t.Fatalf("Select = %+v, %v", all, err)
		}
		p.identical(t)
		insert := db.Rebind(`INSERT INTO sqlx_notes (body, v) VALUES ('fault', ?)`)
		p.faultRun(t, "sqlx_notes", func(ctx context.Context, v int64) error {
			_, err := db.ExecContext(ctx, insert, v)
			return err
		})
	})
}
