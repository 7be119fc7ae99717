package tandem_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/tandemdb/tandem"
	"github.com/tandemdb/tandem/internal/testcluster"
)

type Book struct {
	ID        int64     `tandem:"id,pk,auto"`
	Title     string    `tandem:"title,size=100,index"`
	Price     *float64  `tandem:"price"`
	Stock     int       `tandem:"stock,default=3"`
	CreatedAt time.Time `tandem:"created_at,default=now"`
}

func TestSmoke(t *testing.T) {
	ctx := context.Background()
	c, path := testcluster.New(t)
	if err := c.Migrate(ctx, &Book{}); err != nil {
		t.Fatal(err)
	}
	b := &Book{Title: "Go"}
	if err := c.Save(ctx, b); err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", b)
	got, err := tandem.Get[Book](ctx, c, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", got)
	st, err := c.Status(ctx)
	t.Logf("%+v %v", st, err)
	c.Close()
	dir := filepath.Dir(path)
	a, bb := testcluster.Dump(t, filepath.Join(dir, "foo.db")), testcluster.Dump(t, filepath.Join(dir, "bar.db"))
	t.Log(a)
	if a != bb {
		t.Fatalf("differ:\n%s\n%s", a, bb)
	}
}
