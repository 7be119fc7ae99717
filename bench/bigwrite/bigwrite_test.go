// Package bigwrite measures one SQL statement that changes many rows
// through Cluster.Exec: INSERT ... SELECT of BIGWRITE_ROWS rows (default
// 20,000 in the test suite; bench/bigwrite.sh runs 1,000,000), on a SQLite
// pair and on a PostgreSQL pair. It reports the time, the peak of the Go
// heap (sampled every 5 ms) and the process's peak resident memory, and
// checks that both databases hold every row and verify finds them
// identical. The numbers are reported, not asserted.
package bigwrite

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandemdb/tandem"
	_ "github.com/tandemdb/tandem/engine/postgres"
	_ "github.com/tandemdb/tandem/engine/sqlite"
	"github.com/tandemdb/tandem/internal/dbserver"
	"github.com/tandemdb/tandem/verify"
)

func rowsFromEnv(t *testing.T) int {
	n := 20000
	if v := os.Getenv("BIGWRITE_ROWS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			t.Fatalf("BIGWRITE_ROWS=%q: want a positive number", v)
		}
	}
	return n
}

func TestBigStatement(t *testing.T) {
	n := rowsFromEnv(t)
	engines := []string{"sqlite", "postgres"}
	if v := os.Getenv("BIGWRITE_ENGINES"); v != "" {
		engines = strings.Split(v, ",")
	}
	var report strings.Builder
	for _, eng := range engines {
		t.Run(eng, func(t *testing.T) {
			var cfg *tandem.Config
			var stmt string
			switch eng {
			case "sqlite":
				dir := t.TempDir()
				cfg = pair("sqlite", filepath.Join(dir, "a.db"), filepath.Join(dir, "b.db"))
				stmt = fmt.Sprintf(`INSERT INTO big (id, v, r) WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < %d)
					SELECT i, hex(randomblob(16)), random() FROM s`, n)
			case "postgres":
				a, b := dbserver.Start(t, dbserver.Postgres), dbserver.Start(t, dbserver.Postgres)
				a.CreateDatabase(t, "big")
				b.CreateDatabase(t, "big")
				cfg = pair("postgres", a.DSN("big", ""), b.DSN("big", ""))
				stmt = fmt.Sprintf(`INSERT INTO big (id, v, r) SELECT i, md5(random()::text), (random() * 1e9)::bigint FROM generate_series(1, %d) i`, n)
			default:
				t.Fatalf("BIGWRITE_ENGINES: unknown engine %q (known: sqlite, postgres)", eng)
			}
			line := run(t, cfg, stmt, n)
			t.Log(line)
			fmt.Fprintf(&report, "%-8s %s\n", eng, line)
		})
	}
	if out := os.Getenv("BIGWRITE_OUT"); out != "" && report.Len() > 0 {
		if err := os.WriteFile(out, []byte(report.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func pair(driver, a, b string) *tandem.Config {
	return &tandem.Config{
		Timeout: 30 * time.Second, // a secondary applies a million rows within it
		Datasources: []tandem.Datasource{
			{Name: "foo", Driver: driver, DSN: a},
			{Name: "bar", Driver: driver, DSN: b},
		},
	}
}

func run(t *testing.T, cfg *tandem.Config, stmt string, n int) string {
	ctx := context.Background()
	c, err := tandem.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Exec(ctx, `CREATE TABLE big (id BIGINT PRIMARY KEY, v TEXT NOT NULL, r BIGINT)`); err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		var m runtime.MemStats
		var profiled uint64
		for {
			runtime.ReadMemStats(&m)
			if m.HeapAlloc > peak.Load() {
				peak.Store(m.HeapAlloc)
			}
			// BIGWRITE_PROFILE: a heap profile (live objects at the last
			// GC) each time the peak grew by 16 MB, the last one kept.
			if path := os.Getenv("BIGWRITE_PROFILE"); path != "" && m.HeapAlloc > profiled+16<<20 {
				profiled = m.HeapAlloc
				if f, err := os.Create(path); err == nil {
					pprof.WriteHeapProfile(f)
					f.Close()
				}
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	start := time.Now()
	res, err := c.Exec(ctx, stmt)
	took := time.Since(start)
	close(stop)
	<-sampled
	if err != nil {
		t.Fatal(err)
	}
	if got, err := res.RowsAffected(); err != nil || got != int64(n) {
		t.Fatalf("rows affected %d (%v), want %d", got, err, n)
	}
	var count int
	if err := c.QueryRow(ctx, `SELECT count(*) FROM big`).Scan(&count); err != nil || count != n {
		t.Fatalf("the primary holds %d rows (%v), want %d", count, err, n)
	}
	rep, err := verify.Compare(ctx, cfg, verify.Options{Tables: []string{"big"}})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Identical {
		t.Fatalf("verify: the databases differ: %+v", rep.Tables)
	}
	mb := func(b uint64) float64 { return float64(b) / (1 << 20) }
	return fmt.Sprintf("%9d rows  %8.1f s  peak Go heap %6.0f MB (%.0f MB before)  peak RSS %6.0f MB  verify: identical",
		n, took.Seconds(), mb(peak.Load()), mb(base.HeapAlloc), mb(peakRSS()))
}

// peakRSS reads the process's peak resident set (VmHWM) from Linux's
// /proc; 0 elsewhere.
func peakRSS() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}
