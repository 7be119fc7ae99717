package records_test

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/tandemdb/tandem/engine"
	"github.com/tandemdb/tandem/engine/sqlite"
	"github.com/tandemdb/tandem/internal/records"
)

// open returns a Store and a connection to a new SQLite file holding the
// bookkeeping tables.
func open(t *testing.T) (records.Store, *engine.Conn) {
	t.Helper()
	ctx := context.Background()
	e := sqlite.Engine{}
	dsn, err := e.ResolveDSN(filepath.Join(t.TempDir(), "r.db"), ".")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := e.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	s := records.For(e)
	if err := s.HasTables(ctx, conn.Read); err == nil {
		t.Fatal("HasTables on an empty database: no error")
	}
	if err := s.Create(ctx, conn.Write); err != nil {
		t.Fatal(err)
	}
	if err := s.HasTables(ctx, conn.Read); err != nil {
		t.Fatal(err)
	}
	return s, conn
}

func TestMeta(t *testing.T) {
	ctx := context.Background()
	s, db := open(t)
	if v, err := s.Meta(ctx, db.Read, records.NodeID); v != "" || err != nil {
		t.Fatalf("absent key: %q, %v", v, err)
	}
	if err := s.SetMeta(ctx, db.Write, records.NodeID, "abc"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetMeta(ctx, db.Write, records.NodeID, "def"); err != nil {
		t.Fatal(err)
	}
	if v, _ := s.Meta(ctx, db.Read, records.NodeID); v != "def" {
		t.Fatalf("after two sets: %q", v)
	}
	if err := s.DeleteMeta(ctx, db.Write, records.NodeID); err != nil {
		t.Fatal(err)
	}
}

// An intent record holds each key once, in the order the write touched
// them; it turns into missed-key records, which are read in key order,
// page by page.
func TestIntentAndMissedKeys(t *testing.T) {
	ctx := context.Background()
	s, db := open(t)
	in := records.NewIntent(time.Now())
	var want []records.Key
	for i := range 250 {
		k := records.Key{Table: "t", PK: "[" + string(rune('a'+i%26)) + string(rune('a'+i/26)) + "]"}
		if seq := in.Add(k); seq != i {
			t.Fatalf("seq of key %d: %d", i, seq)
		}
		want = append(want, k)
	}
	if seq, fresh := in.Next(want[3]); seq != 3 || fresh {
		t.Fatalf("Next of a key held: %d, %v", seq, fresh)
	}
	if err := s.RecordIntent(ctx, db.Write, in, func(seq int) bool { return false }); err != nil {
		t.Fatal(err)
	}
	got, err := s.IntentKeys(ctx, db.Read, in.TxID)
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("IntentKeys: %d keys, %v", len(got), err)
	}
	if held, _ := s.HoldsIntent(ctx, db.Read, in.TxID); !held {
		t.Fatal("HoldsIntent: false")
	}
	if n, _ := s.CountIntents(ctx, db.Read, in.At+1); n != 250 {
		t.Fatalf("CountIntents: %d", n)
	}
	if err := s.RecordMissed(ctx, db.Write, in, []string{"bar", "baz"}); err != nil {
		t.Fatal(err)
	}
	if err := s.ClearIntents(ctx, db.Write, []string{in.TxID}); err != nil {
		t.Fatal(err)
	}
	if held, _ := s.HoldsIntent(ctx, db.Read, in.TxID); held {
		t.Fatal("HoldsIntent after ClearIntents: true")
	}
	sorted := slices.Clone(want)
	slices.SortFunc(sorted, func(a, b records.Key) int {
		return cmp.Or(cmp.Compare(a.Table, b.Table), cmp.Compare(a.PK, b.PK))
	})
	var pages []records.Key
	var after records.Key
	for {
		page, err := s.MissedKeys(ctx, db.Read, []string{"bar"}, after, 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		pages = append(pages, page...)
		after = page[len(page)-1]
	}
	if !slices.Equal(pages, sorted) {
		t.Fatalf("MissedKeys in pages: %d keys, want %d in key order", len(pages), len(sorted))
	}
	counts := map[string]int64{}
	if err := s.CountMissedByNode(ctx, db.Read, counts); err != nil || counts["bar"] != 250 || counts["baz"] != 250 {
		t.Fatalf("CountMissedByNode: %v, %v", counts, err)
	}
	if err := s.DeleteMissed(ctx, db.Write, []string{"bar"}, want[0]); err != nil {
		t.Fatal(err)
	}
	if has, _ := s.HasMissed(ctx, db.Read, []string{"bar"}, want[0]); has {
		t.Fatal("HasMissed after DeleteMissed: true")
	}
	if has, _ := s.HasMissed(ctx, db.Read, []string{"baz"}, want[0]); !has {
		t.Fatal("HasMissed for baz: false")
	}
	if n, _ := s.CountMissed(ctx, db.Read, "bar"); n != 249 {
		t.Fatalf("CountMissed: %d", n)
	}
	if any, _ := s.HasAnyMissed(ctx, db.Read, []string{"qux"}); any {
		t.Fatal("HasAnyMissed for a node with none: true")
	}
}

func TestConflictsRoundTrip(t *testing.T) {
	ctx := context.Background()
	s, db := open(t)
	found := time.UnixMilli(time.Now().UnixMilli()).UTC()
	r := records.Conflict{Table: "t", Key: "[1]", NodeA: "foo", RowA: json.RawMessage(`{"v":1}`), NodeB: "bar", RowB: json.RawMessage("null"), FoundAt: found}
	if err := s.RecordConflict(ctx, db.Write, &r); err != nil {
		t.Fatal(err)
	}
	counts := map[string]int64{}
	if err := s.CountConflictsByNode(ctx, db.Read, counts); err != nil || counts["foo"] != 1 || counts["bar"] != 1 {
		t.Fatalf("CountConflictsByNode: %v, %v", counts, err)
	}
	list, err := s.ReadConflicts(ctx, db.Read, false)
	if err != nil || len(list) != 1 || string(list[0].RowA) != `{"v":1}` || string(list[0].RowB) != "null" || !list[0].FoundAt.Equal(found) {
		t.Fatalf("ReadConflicts: %+v, %v", list, err)
	}
	resolved := found.Add(time.Second)
	r.Resolution, r.ResolvedAt = "took foo", &resolved
	if err := s.RecordConflict(ctx, db.Write, &r); err != nil {
		t.Fatal(err)
	}
	if open, _ := s.ReadConflicts(ctx, db.Read, false); len(open) != 0 {
		t.Fatalf("unresolved after resolving: %+v", open)
	}
	if all, _ := s.ReadConflicts(ctx, db.Read, true); len(all) != 1 || all[0].ResolvedAt == nil {
		t.Fatalf("all: %+v", all)
	}
}

// IntentsNaming finds the other records that name a key a record names,
// and none that name only other keys.
func TestIntentsNaming(t *testing.T) {
	ctx := context.Background()
	s, db := open(t)
	none := func(int) bool { return false }
	rec := func(txid string, keys ...records.Key) *records.Intent {
		in := records.IntentOf(txid, 1, keys)
		if err := s.RecordIntent(ctx, db.Write, in, none); err != nil {
			t.Fatal(err)
		}
		return in
	}
	var many []records.Key
	for i := range 1000 {
		many = append(many, records.Key{Table: "t", PK: fmt.Sprintf("[%d]", i)})
	}
	rec("a", many...)
	rec("b", records.Key{Table: "t", PK: "[999]"})
	rec("c", records.Key{Table: "u", PK: "[999]"}, records.Key{Table: "t", PK: "[1000]"})
	rec("d", records.Key{Table: "t", PK: "[5]"}, records.Key{Table: "t", PK: "[6]"})
	for _, tc := range []struct {
		txid string
		want []string
	}{{"a", []string{"b", "d"}}, {"b", []string{"a"}}, {"c", nil}, {"d", []string{"a"}}, {"nosuch", nil}} {
		got, err := s.IntentsNaming(ctx, db.Read, tc.txid)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("IntentsNaming(%s) = %v (%v), want %v", tc.txid, got, err, tc.want)
		}
	}
}
