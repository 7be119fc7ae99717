package compat_test

import (
	"context"
	"testing"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
	"github.com/uptrace/bun/dialect/sqlitedialect"
	"github.com/uptrace/bun/schema"
)

type bunBook struct {
	bun.BaseModel `bun:"table:bun_books"`
	ID            int64  `bun:"id,pk,autoincrement"`
	Title         string `bun:"title,notnull"`
	Copies        int64  `bun:"copies,notnull"`
}

type bunSet struct {
	bun.BaseModel `bun:"table:bun_sets"`
	ID            int64 `bun:"id,pk,autoincrement"`
	V             int64 `bun:"v,notnull,unique"`
}

// bun over tandem's driver: create tables, inserts that return their
// ids, a bulk update, a transaction, then the fault run.
func TestBun(t *testing.T) {
	onBoth(t, func(t *testing.T, p *pair) {
		ctx := context.Background()
		var d schema.Dialect = sqlitedialect.New()
		if p.engine == "postgres" {
			d = pgdialect.New()
		}
		db := bun.NewDB(p.db, d)
		for _, m := range []any{(*bunBook)(nil), (*bunSet)(nil)} {
			if _, err := db.NewCreateTable().Model(m).Exec(ctx); err != nil {
				t.Fatal(err)
			}
		}
		books := []bunBook{{Title: "Dune", Copies: 2}, {Title: "Emma", Copies: 1}}
		if _, err := db.NewInsert().Model(&books).Exec(ctx); err != nil {
			t.Fatal(err)
		}
		if books[0].ID == 0 || books[1].ID == 0 {
			t.Fatalf("ids not set: %+v", books)
		}
		if _, err := db.NewUpdate().Model((*bunBook)(nil)).Set("copies = copies + 10").Where("copies < ?", 5).Exec(ctx); err != nil {
			t.Fatal(err)
		}
		err := db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			if _, err := tx.NewInsert().Model(&bunBook{Title: "Ulysses", Copies: 3}).Exec(ctx); err != nil {
				return err
			}
			_, err := tx.NewDelete().Model((*bunBook)(nil)).Where("title = ?", "Emma").Exec(ctx)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		var got []bunBook
		if err := db.NewSelect().Model(&got).Order("id").Scan(ctx); err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0].Copies != 12 || got[1].Title != "Ulysses" {
			t.Fatalf("books = %+v", got)
		}
		p.identical(t)
		p.faultRun(t, "bun_sets", func(ctx context.Context, v int64) error {
			_, err := db.NewInsert().Model(&bunSet{V: v}).Exec(ctx)
			return err
		})
	})
}
