package demo

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	_ "github.com/ncruces/go-sqlite3/driver" // database/sql driver "sqlite3", to lock a file

	"github.com/tandemdb/tandem"
)

// DefaultConfig is the embedded default: two SQLite files, foo and bar.
const DefaultConfig = `# tandem demo: two SQLite files kept identical.
primary: foo
datasources:
  - name: foo
    driver: sqlite
    dsn: foo.db
  - name: bar
    driver: sqlite
    dsn: bar.db
`

// Setup creates dir and its tandem.yaml (the embedded default) if absent,
// and returns the config's path.
func Setup(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(dir, "tandem.yaml")
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		if err := os.WriteFile(path, []byte(DefaultConfig), 0o644); err != nil {
			return "", err
		}
	}
	return path, nil
}

// Run is the console demo: it writes a bookstore through tandem to every
// datasource of the config (with concurrent writers racing on the same
// rows), then reads every datasource back, shows that they hold the same
// rows, and prints the cluster's status.
//
// With lose, the SQLite file of one datasource, it then shows that
// datasource lost: another connection holds the file's lock while sales go
// on, and once it is released the datasource catches up.
func Run(ctx context.Context, w io.Writer, configPath string, log *slog.Logger, lose string) error {
	cfg, err := tandem.LoadConfig(configPath)
	if err != nil {
		return err
	}
	c, err := tandem.Open(ctx, cfg, tandem.WithLogger(log))
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Migrate(ctx, Models()...); err != nil {
		return err
	}
	fmt.Fprintf(w, "tandem demo: %s\n", configPath)
	for _, n := range c.Nodes() {
		fmt.Fprintf(w, "  datasource %-4s %s, node id %s\n", n.Name(), n.Driver(), n.ID())
	}

	// One transaction: a publisher, an author and three books, on every
	// database or on none. Ids are assigned by the primary and written
	// explicitly everywhere.
	var books []*Book
	err = c.Tx(ctx, func(tx *tandem.Tx) error {
		pub, err := findOrCreatePublisher(ctx, tx, "O'Reilly")
		if err != nil {
			return err
		}
		au := &Author{FirstName: "Alan", LastName: "Donovan"}
		if err := tx.Save(ctx, au); err != nil {
			return err
		}
		for i, title := range []string{"The Go Programming Language", "Concurrency in Go", "Designing Data-Intensive Applications"} {
			b := &Book{Title: title, ISBN: fmt.Sprintf("978-%d-%s", i, randomSuffix()), Price: 39.5 + float64(i), AuthorID: au.ID, PublisherID: pub.ID}
			if err := tx.Save(ctx, b); err != nil {
				return err
			}
			books = append(books, b)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("add books: %w", err)
	}
	fmt.Fprintf(w, "\nsaved 3 books in one transaction: ids %d, %d, %d (assigned once, by the primary)\n", books[0].ID, books[1].ID, books[2].ID)

	// Eight goroutines race to sell copies of the same book. Each sale reads
	// and writes the row in one transaction; the primary's lock orders them,
	// and every database applies them in that order.
	target := books[0]
	const sellers, sales = 8, 25
	var sold atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, sellers)
	for range sellers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range sales {
				err := c.Tx(ctx, func(tx *tandem.Tx) error {
					b, err := tandem.Get[Book](ctx, tx, target.ID)
					if err != nil {
						return err
					}
					b.Stock += 10
					return tx.Save(ctx, b)
				})
				if err != nil {
					errs <- err
					return
				}
				sold.Add(1)
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return fmt.Errorf("restock: %w", err)
	}
	fmt.Fprintf(w, "%d goroutines restocked book %d %d times concurrently\n", sellers, target.ID, sold.Load())

	if err := c.Delete(ctx, books[2]); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	fmt.Fprintf(w, "deleted book %d\n\n", books[2].ID)

	if lose != "" {
		if err := loseAndReturn(ctx, w, c, lose, target); err != nil {
			return err
		}
	}

	// Read every datasource on its own and compare.
	identical, err := compare(ctx, w, c)
	if err != nil {
		return err
	}
	st, err := c.Status(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintln(w)
	if err := st.WriteTable(w); err != nil {
		return err
	}
	if !identical {
		return fmt.Errorf("datasources differ")
	}
	return nil
}

// loseAndReturn makes the database in file stop answering (another
// connection holds its write lock, as a stuck process or backup would)
// while sales go on, then releases it and waits until it has caught up.
func loseAndReturn(ctx context.Context, w io.Writer, c *tandem.Cluster, file string, book *Book) error {
	db, err := sql.Open("sqlite3", "file:"+file+"?_txlock=exclusive")
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	lock, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("lock %s: %w", file, err)
	}
	fmt.Fprintf(w, "another connection locks %s: that datasource stops answering\n", filepath.Base(file))
	const sales = 20
	for range sales {
		err := c.Tx(ctx, func(tx *tandem.Tx) error {
			b, err := tandem.Get[Book](ctx, tx, book.ID)
			if err != nil {
				return err
			}
			b.Stock++
			return tx.Save(ctx, b)
		})
		if err != nil {
			lock.Rollback()
			return fmt.Errorf("sale while %s is locked: %w", file, err)
		}
	}
	st, err := c.Status(ctx)
	if err != nil {
		lock.Rollback()
		return err
	}
	fmt.Fprintf(w, "%d sales of book %d went on without it (it misses that one key: catch-up copies a key once, however often it changed):\n", sales, book.ID)
	st.WriteTable(w)
	if err := lock.Rollback(); err != nil {
		return err
	}
	fmt.Fprintf(w, "the lock is released: it catches up\n")
	for {
		st, err := c.Status(ctx)
		if err != nil {
			return err
		}
		if st.Healthy() {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for catch-up: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	fmt.Fprintln(w)
	return nil
}

func findOrCreatePublisher(ctx context.Context, tx *tandem.Tx, name string) (*Publisher, error) {
	found, err := tandem.Find[Publisher](ctx, tx, tandem.Eq("name", name))
	if err != nil || len(found) > 0 {
		if err != nil {
			return nil, err
		}
		return &found[0], nil
	}
	p := &Publisher{Name: name}
	return p, tx.Save(ctx, p)
}

// compare reads every table from every datasource and reports whether all
// hold the same rows as the first.
func compare(ctx context.Context, w io.Writer, c *tandem.Cluster) (bool, error) {
	type snapshot struct {
		authors    []Author
		publishers []Publisher
		books      []Book
	}
	var snaps []snapshot
	for _, n := range c.Nodes() {
		var s snapshot
		var err error
		if s.authors, err = tandem.Find[Author](ctx, n); err != nil {
			return false, err
		}
		if s.publishers, err = tandem.Find[Publisher](ctx, n); err != nil {
			return false, err
		}
		if s.books, err = tandem.Find[Book](ctx, n); err != nil {
			return false, err
		}
		snaps = append(snaps, s)
		fmt.Fprintf(w, "%-4s holds %d authors, %d publishers, %d books\n", n.Name(), len(s.authors), len(s.publishers), len(s.books))
	}
	identical := true
	for i := 1; i < len(snaps); i++ {
		if !reflect.DeepEqual(snaps[0], snaps[i]) {
			identical = false
		}
	}
	if identical {
		fmt.Fprintln(w, "every row is identical on every datasource")
	} else {
		fmt.Fprintln(w, "DATASOURCES DIFFER")
	}
	return identical, nil
}

func randomSuffix() string { return rand.Text()[:8] }
