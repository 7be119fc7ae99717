package soak

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tandemdb/tandem/internal/jepsen"
)

func TestWriterLogReadsBackEveryAcknowledgementOperationAndViolation(t *testing.T) {
	dir := t.TempDir()
	lg, err := openWriterLog(filepath.Join(dir, "w1.1.log"))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Unix(1000, 0)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				id := int64(g*50 + i + 1)
				if err := lg.Ack(jepsen.UniqueItem{ID: id, Val: fmt.Sprintf("w1.1-%d", id)}); err != nil {
					t.Error(err)
				}
				lg.Op(jepsen.Op{Kind: jepsen.OpInsert, Start: start, Took: time.Millisecond})
			}
		}()
	}
	wg.Wait()
	lg.Op(jepsen.Op{Kind: jepsen.OpTransfer, Start: start, Took: 2 * time.Second, Err: errors.New("no answer\nwithin the timeout")})
	lg.Op(jepsen.Op{Kind: jepsen.OpTransfer, Start: start, Took: time.Millisecond})
	lg.Op(jepsen.Op{Kind: jepsen.OpRead, Start: start, Took: time.Millisecond, Problem: "total 790, want 800"})
	if err := lg.Close(); err != nil {
		t.Fatal(err)
	}
	if err := lg.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	// Another incarnation, killed in the middle of a line, acknowledged
	// a value twice under two ids.
	other := "ack w2.1-1 7\nack w2.1-1 8\nop insert 1000000000000 5000000 ok\nack w2.1-2 9"
	if err := os.WriteFile(filepath.Join(dir, "w2.1.log"), []byte(other+"\nop transf"), 0o644); err != nil {
		t.Fatal(err)
	}

	h, err := readLogs(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(h.acked) != 402 || h.acked["w1.1-17"] != 17 || h.acked["w2.1-2"] != 9 {
		t.Errorf("%d acknowledgements (w1.1-17 under %d, w2.1-2 under %d), want 402, 17 and 9", len(h.acked), h.acked["w1.1-17"], h.acked["w2.1-2"])
	}
	if len(h.dupAcks) != 1 || h.dupAcks[0] != "w2.1-1 acknowledged with ids 7 and 8" {
		t.Errorf("values acknowledged twice: %q", h.dupAcks)
	}
	if len(h.ops) != 404 || h.transfers != 1 {
		t.Errorf("%d operations and %d transfers acknowledged, want 404 and 1", len(h.ops), h.transfers)
	}
	var failed []opRecord
	for _, o := range h.ops {
		if o.err != "" {
			failed = append(failed, o)
		}
	}
	if len(failed) != 1 || failed[0].err != "no answer | within the timeout" || failed[0].end.Sub(failed[0].start) != 2*time.Second {
		t.Errorf("failed operations %+v", failed)
	}
	if len(h.bad) != 1 || !contains(h.bad[0], "w1.1 at ", "total 790, want 800") {
		t.Errorf("violations %q", h.bad)
	}
}

func contains(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}
