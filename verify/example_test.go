package verify_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/tandemdb/tandem"
	_ "github.com/tandemdb/tandem/engine/sqlite" // the engine the config names
	"github.com/tandemdb/tandem/verify"
)

type note struct {
	ID   int64  `tandem:"id,pk,auto"`
	Body string `tandem:"body,size=200"`
}

// Prove the databases identical, reading each directly.
func ExampleCompare() {
	dir, err := os.MkdirTemp("", "tandem-example")
	if err != nil {
		log.Fatal(err)
	}
	cfg, err := tandem.ParseConfig([]byte("datasources:\n  - {name: foo, driver: sqlite, dsn: foo.db}\n  - {name: bar, driver: sqlite, dsn: bar.db}\n"), dir)
	if err != nil {
		log.Fatal(err)
	}
	c, err := tandem.Open(context.Background(), cfg)
	if err != nil {
		log.Fatal(err)
	}
	if err := c.Migrate(context.Background(), &note{}); err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	if err := c.Save(ctx, &note{Body: "kept on both"}); err != nil {
		log.Fatal(err)
	}
	c.Close()
	rep, err := verify.Compare(ctx, cfg, verify.Options{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("identical:", rep.Identical)
	for _, t := range rep.Tables {
		fmt.Println(t.Table, t.Rows["foo"], t.Rows["bar"])
	}
	// Output:
	// identical: true
	// note 1 1
}
