package tandem_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/tandemdb/tandem"
	_ "github.com/tandemdb/tandem/engine/sqlite" // the engine the config names
)

// exNote is the model of the examples: a table "ex_note" with an id the
// primary assigns.
type exNote struct {
	ID   int64  `tandem:"id,pk,auto"`
	Body string `tandem:"body,size=200"`
}

// exampleCluster opens two SQLite files in a new directory, with Note's
// table; the caller removes the directory.
func exampleCluster() (*tandem.Cluster, *tandem.Config, string) {
	return openExample(&exNote{})
}

// openExample opens two SQLite files in a new directory, with the models'
// tables.
func openExample(models ...any) (*tandem.Cluster, *tandem.Config, string) {
	dir, err := os.MkdirTemp("", "tandem-example")
	if err != nil {
		log.Fatal(err)
	}
	cfg, err := tandem.ParseConfig([]byte(`
datasources:
  - name: foo
    driver: sqlite
    dsn: foo.db
  - name: bar
    driver: sqlite
    dsn: bar.db
`), dir)
	if err != nil {
		log.Fatal(err)
	}
	c, err := tandem.Open(context.Background(), cfg)
	if err != nil {
		log.Fatal(err)
	}
	if err := c.Migrate(context.Background(), models...); err != nil {
		log.Fatal(err)
	}
	return c, cfg, dir
}

// Open a cluster of two SQLite files from a config, and write to both.
func ExampleOpen() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "tandem-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	config := []byte("datasources:\n  - {name: foo, driver: sqlite, dsn: foo.db}\n  - {name: bar, driver: sqlite, dsn: bar.db}\n")
	if err := os.WriteFile(filepath.Join(dir, "tandem.yaml"), config, 0o644); err != nil {
		log.Fatal(err)
	}
	cfg, err := tandem.LoadConfig(filepath.Join(dir, "tandem.yaml"))
	if err != nil {
		log.Fatal(err)
	}
	c, err := tandem.Open(ctx, cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if err := c.Migrate(ctx, &exNote{}); err != nil {
		log.Fatal(err)
	}
	st, err := c.Status(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("primary:", st.Primary)
	// Output: primary: foo
}

// Save a row on every database: the primary decides the id.
func ExampleCluster_Save() {
	c, _, dir := exampleCluster()
	defer os.RemoveAll(dir)
	defer c.Close()
	ctx := context.Background()
	n := &exNote{Body: "hello"}
	if err := c.Save(ctx, n); err != nil {
		log.Fatal(err)
	}
	fmt.Println("id:", n.ID)
	n.Body = "hello, world"
	if err := c.Save(ctx, n); err != nil { // the same key: replaces the row
		log.Fatal(err)
	}
	got, err := tandem.Get[exNote](ctx, c, n.ID)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(got.Body)
	err = c.Insert(ctx, &exNote{ID: n.ID, Body: "again"})
	fmt.Println("insert of a taken key:", errors.Is(err, tandem.ErrDuplicateKey))
	// Output:
	// id: 1
	// hello, world
	// insert of a taken key: true
}

// Several writes as one: every database gets all of them or none.
func ExampleCluster_Tx() {
	c, _, dir := exampleCluster()
	defer os.RemoveAll(dir)
	defer c.Close()
	ctx := context.Background()
	err := c.Tx(ctx, func(tx *tandem.Tx) error {
		for _, body := range []string{"one", "two", "three"} {
			if err := tx.Save(ctx, &exNote{Body: body}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	// A function that fails writes nothing anywhere.
	failed := c.Tx(ctx, func(tx *tandem.Tx) error {
		if err := tx.Save(ctx, &exNote{Body: "four"}); err != nil {
			return err
		}
		return errors.New("changed my mind")
	})
	n, err := tandem.Count[exNote](ctx, c)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(n, "notes;", failed)
	// Output: 3 notes; changed my mind
}

// Find rows with conditions, order and limits.
func ExampleFind() {
	c, _, dir := exampleCluster()
	defer os.RemoveAll(dir)
	defer c.Close()
	ctx := context.Background()
	for _, body := range []string{"apple", "banana", "cherry", "date"} {
		if err := c.Save(ctx, &exNote{Body: body}); err != nil {
			log.Fatal(err)
		}
	}
	notes, err := tandem.Find[exNote](ctx, c,
		tandem.Where("body > ?", "b"),
		tandem.Where("id IN (?)", []int64{2, 3, 4}),
		tandem.OrderBy("body DESC"),
		tandem.Limit(2))
	if err != nil {
		log.Fatal(err)
	}
	for _, n := range notes {
		fmt.Println(n.ID, n.Body)
	}
	// Output:
	// 4 date
	// 3 cherry
}
