package tandem_test

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	_ "github.com/ncruces/go-sqlite3/driver"

	"github.com/tandemdb/tandem"
	"github.com/tandemdb/tandem/internal/testcluster"
)

// benchItem is the row the Save benchmarks write: an integer key and four
// columns of text, real, integer and time.
type benchItem struct {
	ID      int64     `tandem:"id,pk"`
	Title   string    `tandem:"title,size=64"`
	Price   float64   `tandem:"price"`
	Stock   int64     `tandem:"stock"`
	Updated time.Time `tandem:"updated"`
}

const benchKeys = 10_000

// BenchmarkSave compares one Save (an upsert of a random key in a 10,000-row
// table, in its own transaction) written by tandem to two SQLite files with
// the same upsert written by plain database/sql to one file, with the same
// pragmas (WAL, synchronous=FULL), at 1 and 8 goroutines.
//
// Compare with: go test -run '^$' -bench BenchmarkSave -count 6 . | benchstat -col /mode -
func BenchmarkSave(b *testing.B) {
	for _, goroutines := range []int{1, 8} {
		b.Run(fmt.Sprintf("mode=single/goroutines=%d", goroutines), func(b *testing.B) {
			db := openSingle(b)
			save := func(ctx context.Context, it *benchItem) error {
				tx, err := db.BeginTx(ctx, nil)
				if err != nil {
					return err
				}
				defer tx.Rollback()
				_, err = tx.ExecContext(ctx, `INSERT INTO bench_item (id, title, price, stock, updated) VALUES (?, ?, ?, ?, ?)
					ON CONFLICT (id) DO UPDATE SET title = excluded.title, price = excluded.price, stock = excluded.stock, updated = excluded.updated`,
					it.ID, it.Title, it.Price, it.Stock, it.Updated.UTC().Format("2006-01-02T15:04:05.000000Z"))
				if err != nil {
					return err
				}
				return tx.Commit()
			}
			runSaves(b, goroutines, save)
		})
		for _, mode := range []string{"tandem", "tandem-serial"} {
			b.Run(fmt.Sprintf("mode=%s/goroutines=%d", mode, goroutines), func(b *testing.B) {
				c, _ := testcluster.New(b)
				tandem.SetSerialCommit(c, mode == "tandem-serial")
				ctx := context.Background()
				if err := c.Migrate(ctx, &benchItem{}); err != nil {
					b.Fatal(err)
				}
				save := func(ctx context.Context, it *benchItem) error { return c.Save(ctx, it) }
				runSaves(b, goroutines, save)
			})
		}
	}
}

func openSingle(b *testing.B) *sql.DB {
	file := filepath.Join(b.TempDir(), "single.db")
	db, err := sql.Open("sqlite3", "file:"+file+"?_pragma=busy_timeout(5000)&_pragma=synchronous(full)&_pragma=foreign_keys(1)&_txlock=immediate")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	// One write connection, as tandem's SQLite engine uses.
	db.SetMaxOpenConns(1)
	for _, q := range []string{
		"PRAGMA journal_mode=WAL",
		`CREATE TABLE bench_item (id INTEGER NOT NULL, title VARCHAR(64) NOT NULL, price REAL NOT NULL, stock INTEGER NOT NULL, updated TIMESTAMP NOT NULL, PRIMARY KEY (id))`,
	} {
		if _, err := db.Exec(q); err != nil {
			b.Fatal(err)
		}
	}
	return db
}

func newItem(id int64, r *rand.Rand) *benchItem {
	n := id
	if r != nil {
		n = r.Int64N(1000)
	}
	return &benchItem{ID: id, Title: fmt.Sprintf("title %d", n), Price: float64(n) / 4, Stock: n, Updated: time.Now()}
}

func runSaves(b *testing.B, goroutines int, save func(context.Context, *benchItem) error) {
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	if goroutines == 1 {
		r := rand.New(rand.NewPCG(1, 2))
		for i := 0; i < b.N; i++ {
			if err := save(ctx, newItem(1+r.Int64N(benchKeys), r)); err != nil {
				b.Fatal(err)
			}
		}
	} else {
		b.SetParallelism((goroutines + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
		b.RunParallel(func(pb *testing.PB) {
			r := rand.New(rand.NewPCG(rand.Uint64(), 2))
			for pb.Next() {
				if err := save(ctx, newItem(1+r.Int64N(benchKeys), r)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "saves/s")
}
