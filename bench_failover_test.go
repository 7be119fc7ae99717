package tandem_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "github.com/ncruces/go-sqlite3/driver"

	"github.com/tandemdb/tandem"
	_ "github.com/tandemdb/tandem/arbiter/etcd"
	"github.com/tandemdb/tandem/internal/dbserver"
	"github.com/tandemdb/tandem/internal/testcluster"
)

// BenchmarkSaveRecord measures what the write record (the intent record
// every healthy write leaves on every database, cleared in batches once
// all have committed) costs a Save: the same benchmark as BenchmarkSave's
// mode=tandem, with the record (record=on) and without it (record=off,
// tandem.SetNoIntent), at 1 and 8 goroutines.
//
// Compare with: bash bench/save.sh record
// or: go test -run '^$' -bench 'BenchmarkSaveRecord$' -count 6 . | benchstat -col /record -
func BenchmarkSaveRecord(b *testing.B) {
	for _, goroutines := range []int{1, 8} {
		// off: no intent record; nocheck: the record, but no lookup of the
		// records naming the write's keys; on: both, as writes run.
		for _, record := range []string{"off", "nocheck", "on"} { // off first: benchstat's baseline
			b.Run(fmt.Sprintf("record=%s/goroutines=%d", record, goroutines), func(b *testing.B) {
				c, _ := testcluster.New(b)
				tandem.SetNoIntent(c, record == "off")
				tandem.SetNoDoubtCheck(c, record == "nocheck")
				ctx := context.Background()
				if err := c.Migrate(ctx, &benchItem{}); err != nil {
					b.Fatal(err)
				}
				runSaves(b, goroutines, func(ctx context.Context, it *benchItem) error { return c.Save(ctx, it) })
			})
		}
	}
}

// catchUpMissed is how many distinct rows BenchmarkCatchUp's datasource
// misses.
const catchUpMissed = 100_000

// catchItem is the row BenchmarkCatchUp copies: benchItem's columns, with
// the time kept as an integer (unix µs). Catch-up of a row with a
// time.Time column fails on SQLite: the driver returns a TIMESTAMP
// column's text as a time.Time, which the engine's Scan refuses ("cannot
// read a time.Time value"); a text column holding RFC 3339 text fails the
// same way. Switch to benchItem once that is fixed.
type catchItem struct {
	ID      int64   `tandem:"id,pk"`
	Title   string  `tandem:"title,size=64"`
	Price   float64 `tandem:"price"`
	Stock   int64   `tandem:"stock"`
	Updated int64   `tandem:"updated"`
}

// BenchmarkCatchUp measures CatchUp of a datasource that missed 100,000
// writes to distinct rows of a table of 100,000 and of 1,000,000 rows, in
// rows/s. Setup (building the table on both files, the missed writes) and
// the check that follows (both files hold identical rows, no missed-key
// record is left) are not timed. Each iteration builds its cluster anew,
// so run it with -benchtime 1x (bench/catchup.sh does).
func BenchmarkCatchUp(b *testing.B) {
	for _, size := range []struct {
		name string
		rows int
	}{{"100k", 100_000}, {"1M", 1_000_000}} {
		b.Run("rows="+size.name, func(b *testing.B) {
			ctx := context.Background()
			var timed, cpu time.Duration
			cpuOK := true
			b.StopTimer()
			for i := 0; i < b.N; i++ {
				c, dir := missedWrites(b, size.rows)
				cpu0, ok0 := processCPU()
				b.StartTimer()
				start := time.Now()
				err := c.CatchUp(ctx, "bar")
				elapsed := time.Since(start)
				b.StopTimer()
				cpu1, ok1 := processCPU()
				if err != nil {
					b.Fatal(err)
				}
				timed += elapsed
				cpu += cpu1 - cpu0
				cpuOK = cpuOK && ok0 && ok1
				if err := c.Close(); err != nil {
					b.Fatal(err)
				}
				checkCaughtUp(b, dir)
			}
			b.ReportMetric(float64(catchUpMissed*b.N)/timed.Seconds(), "rows/s")
			if cpuOK && cpu > 0 {
				// Per second of the process's CPU time: close to rows/s
				// when catch-up is CPU-bound rather than waiting for I/O.
				b.ReportMetric(float64(catchUpMissed*b.N)/cpu.Seconds(), "rows/cpu-s")
			}
		})
	}
}

// missedWrites builds a cluster of two SQLite files, foo and bar, whose
// catch_item table holds rows 1..rows identically on both, marks bar down
// and updates catchUpMissed distinct rows (spread over the table) through
// the cluster, so that bar misses them. It returns the cluster, opened
// without background work, and the files' directory.
func missedWrites(b *testing.B, rows int) (*tandem.Cluster, string) {
	b.Helper()
	ctx := context.Background()
	quiet := tandem.WithLogger(slog.New(slog.DiscardHandler))
	path := testcluster.Config(b)
	dir := filepath.Dir(path)

	c := testcluster.Open(b, path, tandem.WithoutBackground(), quiet)
	if err := c.Migrate(ctx, &catchItem{}); err != nil {
		b.Fatal(err)
	}
	if err := c.Close(); err != nil {
		b.Fatal(err)
	}
	// The same rows on both files, each in one statement.
	for _, name := range []string{"foo", "bar"} {
		db := openFile(b, filepath.Join(dir, name+".db"), false)
		_, err := db.Exec(`WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < ?)
			INSERT INTO catch_item (id, title, price, stock, updated)
			SELECT i, 'title ' || i, i / 4.0, i % 1000, 1767225600000000 FROM s`, rows)
		db.Close()
		if err != nil {
			b.Fatal(err)
		}
	}

	c = testcluster.Open(b, path, tandem.WithoutBackground(), quiet)
	tandem.MarkDown(c, "bar")
	// Distinct keys spread over the whole table, written in an order that
	// is neither the key's nor the records' (text) order.
	stride := rows / catchUpMissed
	ids := make([]int64, catchUpMissed)
	for k := range ids {
		ids[k] = int64(1 + ((k*7919)%catchUpMissed)*stride)
	}
	now := time.Now().UnixMicro()
	const perTx = 1000
	for start := 0; start < len(ids); start += perTx {
		err := c.Tx(ctx, func(tx *tandem.Tx) error {
			for _, id := range ids[start:min(start+perTx, len(ids))] {
				it := &catchItem{ID: id, Title: fmt.Sprintf("missed %d", id), Price: float64(id) / 8, Stock: -id, Updated: now}
				if err := tx.Save(ctx, it); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	foo := openFile(b, filepath.Join(dir, "foo.db"), true)
	defer foo.Close()
	if n := count(b, foo, `SELECT COUNT(*) FROM _tandem_missed WHERE node = 'bar'`); n != catchUpMissed {
		b.Fatalf("foo records %d keys missed by bar, want %d", n, catchUpMissed)
	}
	bar := openFile(b, filepath.Join(dir, "bar.db"), true)
	defer bar.Close()
	if n := count(b, bar, `SELECT COUNT(*) FROM catch_item WHERE title LIKE 'missed %'`); n != 0 {
		b.Fatalf("bar holds %d of the writes it should have missed", n)
	}
	return c, dir
}

// checkCaughtUp fails b unless foo.db and bar.db in dir hold identical
// rows of catch_item (compared by a hash of every value as SQLite quotes
// it, in key order), bar holds the writes it missed, and neither file
// holds a missed-key record or bar an outdated marker.
func checkCaughtUp(b *testing.B, dir string) {
	b.Helper()
	sums := map[string]string{}
	for _, name := range []string{"foo", "bar"} {
		db := openFile(b, filepath.Join(dir, name+".db"), true)
		if n := count(b, db, `SELECT COUNT(*) FROM _tandem_missed`); n != 0 {
			b.Errorf("%s still holds %d missed-key records after catch-up", name, n)
		}
		if n := count(b, db, `SELECT COUNT(*) FROM _tandem_meta WHERE k = 'outdated'`); n != 0 {
			b.Errorf("%s still carries an outdated marker after catch-up", name)
		}
		if n := count(b, db, `SELECT COUNT(*) FROM catch_item WHERE title LIKE 'missed %'`); n != catchUpMissed {
			b.Errorf("%s holds %d of the %d updated rows", name, n, catchUpMissed)
		}
		sums[name] = tableHash(b, db)
		db.Close()
	}
	if sums["foo"] != sums["bar"] {
		b.Errorf("after catch-up foo and bar differ: catch_item hashes %s and %s", sums["foo"], sums["bar"])
	}
	if b.Failed() {
		b.FailNow()
	}
}

// processCPU returns the CPU time (user and system) this process has used,
// from /proc/self/stat; false where there is no such file.
func processCPU() (time.Duration, bool) {
	data, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0, false
	}
	// The fields after the command name, which is in parentheses: state
	// is field 3, utime and stime fields 14 and 15, in clock ticks
	// (USER_HZ, 100 on Linux).
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 13 {
		return 0, false
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(utime+stime) * (time.Second / 100), true
}

func openFile(b *testing.B, file string, readOnly bool) *sql.DB {
	b.Helper()
	dsn := "file:" + file + "?_pragma=busy_timeout(5000)"
	if readOnly {
		dsn = "file:" + file + "?mode=ro"
	}
	db, err := sql.Open("sqlite3", dsn)
	if err != nil {
		b.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	return db
}

func count(b *testing.B, db *sql.DB, query string) int {
	b.Helper()
	var n int
	if err := db.QueryRow(query).Scan(&n); err != nil {
		b.Fatalf("%s: %v", query, err)
	}
	return n
}

// tableHash hashes every row of catch_item, each value as quote() renders
// it (so 1, 1.0 and '1' differ), in key order.
func tableHash(b *testing.B, db *sql.DB) string {
	b.Helper()
	rows, err := db.Query(`SELECT quote(id) || ',' || quote(title) || ',' || quote(price) || ',' || quote(stock) || ',' || quote(updated)
		FROM catch_item ORDER BY id`)
	if err != nil {
		b.Fatal(err)
	}
	defer rows.Close()
	h := sha256.New()
	var line []byte
	n := 0
	for rows.Next() {
		if err := rows.Scan(&line); err != nil {
			b.Fatal(err)
		}
		h.Write(line)
		h.Write([]byte{'\n'})
		n++
	}
	if err := rows.Err(); err != nil {
		b.Fatal(err)
	}
	return fmt.Sprintf("%d rows, sha256 %s", n, hex.EncodeToString(h.Sum(nil))[:16])
}

// BenchmarkSaveView measures what the one view costs a Save on the SQLite
// pair: the fence (each write reads every database's view generation) and
// the arbiter, which a write does not consult (only a change of the view
// does). Modes: view=nofence (the fence skipped, tandem.SetNoFence: the
// baseline), view=none, view=witness, view=etcd (a 3-member etcd cluster
// on loopback ports), at 1 and 8 goroutines.
//
// Compare with: bash bench/save.sh view
func BenchmarkSaveView(b *testing.B) {
	etcd := dbserver.StartEtcd(b, 3)
	for _, goroutines := range []int{1, 8} {
		for _, mode := range []string{"nofence", "none", "witness", "etcd"} { // nofence first: benchstat's baseline
			b.Run(fmt.Sprintf("view=%s/goroutines=%d", mode, goroutines), func(b *testing.B) {
				path := testcluster.Config(b)
				cfg := testcluster.LoadConfig(b, path)
				switch mode {
				case "nofence", "none":
					cfg.Arbiter = tandem.ArbiterConfig{Kind: "none"}
				case "witness":
					cfg.Arbiter = tandem.ArbiterConfig{Kind: "witness"}
				case "etcd":
					key := fmt.Sprintf("/tandem/bench/%s", filepath.Base(filepath.Dir(path)))
					cfg.Arbiter = tandem.ArbiterConfig{Kind: "etcd", Fields: map[string]any{"endpoints": anySlice(etcd.Endpoints()), "key": key}}
				}
				ctx := context.Background()
				c, err := tandem.Open(ctx, cfg, faultQuietLogs())
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				tandem.SetNoFence(c, mode == "nofence")
				if err := c.Migrate(ctx, &benchItem{}); err != nil {
					b.Fatal(err)
				}
				runSaves(b, goroutines, func(ctx context.Context, it *benchItem) error { return c.Save(ctx, it) })
			})
		}
	}
}

func anySlice(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}
