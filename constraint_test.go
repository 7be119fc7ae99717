package tandem_test

// A write that breaks a unique, foreign key or NOT NULL constraint fails
// alike on every engine: errors.Is with ErrDuplicateKey, ErrForeignKey or
// ErrNotNull, a *ConstraintError naming what the engine names, the
// engine's own error still reachable, and nothing written.

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/ncruces/go-sqlite3"

	"github.com/tandemdb/tandem"
	"github.com/tandemdb/tandem/internal/testcluster"
)

type ceParent struct {
	ID   int64  `tandem:"id,pk"`
	Name string `tandem:"name,size=40,unique"`
}

func TestConstraintErrorsArePortable(t *testing.T) {
	c, path := testcluster.New(t)
	constraintErrors(t, c, "sqlite", func() {
		if d := testcluster.Diffs(testcluster.Verify(t, path, "ce_parent", "ce_child")); len(d) > 0 {
			t.Fatalf("verify: %q", d)
		}
	})
	// The engine's error is still there.
	err := c.Save(context.Background(), &ceParent{ID: 9, Name: "a"})
	var se *sqlite3.Error
	if !errors.As(err, &se) || se.ExtendedCode() != sqlite3.CONSTRAINT_UNIQUE {
		t.Errorf("errors.As(*sqlite3.Error) of a duplicate: %v", err)
	}
}

// constraintErrors runs the three kinds through Save, Insert, Update,
// Delete and Exec on c, whose primary's engine is driver, then Insert and
// Update that succeed; identical fails unless every database holds the
// same rows.
func constraintErrors(t *testing.T, c *tandem.Cluster, driver string, identical func()) {
	ctx := context.Background()
	if err := c.Migrate(ctx, &ceParent{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, `CREATE TABLE ce_child (id BIGINT PRIMARY KEY, parent BIGINT NOT NULL, FOREIGN KEY (parent) REFERENCES ce_parent (id))`); err != nil {
		t.Fatal(err)
	}
	if err := c.Save(ctx, &ceParent{ID: 1, Name: "a"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, `INSERT INTO ce_child (id, parent) VALUES (1, 1)`); err != nil {
		t.Fatal(err)
	}
	names := func(what string, err error, kind error, table string, cols ...string) {
		t.Helper()
		if !errors.Is(err, kind) {
			t.Errorf("%s: %v, want errors.Is %v", what, err, kind)
			return
		}
		var ce *tandem.ConstraintError
		if !errors.As(err, &ce) {
			t.Errorf("%s: %v is no *ConstraintError", what, err)
			return
		}
		// What each engine's error names (MySQL's duplicate entry names
		// the index only, its foreign key error no table for NOT NULL).
		if table != "" && ce.Table != table {
			t.Errorf("%s: table %q, want %q (%v)", what, ce.Table, table, err)
		}
		if cols != nil && !slices.Equal(ce.Columns, cols) {
			t.Errorf("%s: columns %q, want %q (%v)", what, ce.Columns, cols, err)
		}
	}
	mysql := driver == "mysql"
	err := c.Save(ctx, &ceParent{ID: 2, Name: "a"})
	if mysql {
		names("Save of a taken unique value", err, tandem.ErrDuplicateKey, "ce_parent")
	} else {
		names("Save of a taken unique value", err, tandem.ErrDuplicateKey, "ce_parent", "name")
	}
	_, err = c.Exec(ctx, `INSERT INTO ce_parent (id, name) VALUES (1, 'b')`)
	if mysql {
		names("INSERT of a taken key", err, tandem.ErrDuplicateKey, "")
	} else {
		names("INSERT of a taken key", err, tandem.ErrDuplicateKey, "ce_parent", "id")
	}
	_, err = c.Exec(ctx, `INSERT INTO ce_child (id, parent) VALUES (2, 99)`)
	if driver == "sqlite" {
		names("INSERT referencing no row", err, tandem.ErrForeignKey, "") // SQLite names nothing
	} else {
		names("INSERT referencing no row", err, tandem.ErrForeignKey, "ce_child", "parent")
	}
	_, err = c.Exec(ctx, `INSERT INTO ce_child (id) VALUES (3)`)
	names("INSERT without a NOT NULL column", err, tandem.ErrNotNull, "", "parent")
	err = c.Delete(ctx, &ceParent{ID: 1})
	names("Delete of a referenced row", err, tandem.ErrForeignKey, "")
	// Insert refuses a taken key; Update a missing one, or a taken value.
	err = c.Insert(ctx, &ceParent{ID: 1, Name: "z"})
	if mysql {
		names("Insert of a taken key", err, tandem.ErrDuplicateKey, "")
	} else {
		names("Insert of a taken key", err, tandem.ErrDuplicateKey, "ce_parent", "id")
	}
	if err := c.Update(ctx, &ceParent{ID: 42, Name: "q"}); !errors.Is(err, tandem.ErrNotFound) {
		t.Errorf("Update of a missing row: %v, want ErrNotFound", err)
	}
	if err := c.Insert(ctx, &ceParent{ID: 3, Name: "c"}); err != nil {
		t.Fatalf("Insert of a new key: %v", err)
	}
	err = c.Update(ctx, &ceParent{ID: 3, Name: "a"})
	if mysql {
		names("Update to a taken unique value", err, tandem.ErrDuplicateKey, "")
	} else {
		names("Update to a taken unique value", err, tandem.ErrDuplicateKey, "ce_parent", "name")
	}
	for i := 0; i < 2; i++ { // the second writes the same values: still found
		if err := c.Update(ctx, &ceParent{ID: 3, Name: "c2"}); err != nil {
			t.Fatalf("Update %d of a row that is there: %v", i+1, err)
		}
	}
	got, err := tandem.Get[ceParent](ctx, c, int64(3))
	if err != nil || got.Name != "c2" {
		t.Errorf("after Update: %+v, %v", got, err)
	}
	var n int
	if err := c.QueryRow(ctx, `SELECT count(*) FROM ce_parent`).Scan(&n); err != nil || n != 2 {
		t.Errorf("ce_parent holds %d rows (%v), want 2", n, err)
	}
	identical()
	if err := c.QueryRow(ctx, `SELECT count(*) FROM ce_child`).Scan(&n); err != nil || n != 1 {
		t.Errorf("ce_child holds %d rows (%v), want 1: a refused write wrote something", n, err)
	}
}
