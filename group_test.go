package tandem_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/tandemdb/tandem"
	"github.com/tandemdb/tandem/internal/testcluster"
)

type Member struct {
	ID    int64  `tandem:"id,pk,auto"`
	Email string `tandem:"email,size=64,unique"`
	Note  string `tandem:"note,size=8"`
}

// Concurrent Saves on SQLite are committed in groups. A member that fails
// on the primary (a unique violation, a value that does not fit) fails
// alone; every other member of its group is committed everywhere.
func TestGroupCommitIsolatesFailingMembers(t *testing.T) {
	ctx := context.Background()
	c, path := testcluster.New(t)
	if err := c.Migrate(ctx, &Member{}); err != nil {
		t.Fatal(err)
	}
	const writers, each = 8, 60
	type result struct {
		email string
		err   error
	}
	results := make(chan result, writers*each)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				// Every third email is shared by all writers: one wins, the
				// others violate the unique index. Every seventh note is too long.
				email := fmt.Sprintf("w%d-%d@example.org", w, i)
				if i%3 == 0 {
					email = fmt.Sprintf("shared-%d@example.org", i)
				}
				note := "ok"
				if i%7 == 0 {
					note = "much too long"
				}
				m := &Member{Email: email, Note: note}
				results <- result{email, c.Save(ctx, m)}
			}
		}()
	}
	wg.Wait()
	close(results)

	acked := map[string]int{}
	var unique, tooLong int
	for r := range results {
		switch {
		case r.err == nil:
			acked[r.email]++
		case errors.Is(r.err, tandem.ErrInvalidValue):
			tooLong++
		case strings.Contains(r.err.Error(), "UNIQUE"):
			unique++
		default:
			t.Errorf("save %s: unexpected error %v", r.email, r.err)
		}
	}
	groups, members := tandem.GroupStats(c)
	t.Logf("%d saved, %d unique violations, %d too long; %d writes in %d groups", len(acked), unique, tooLong, members, groups)
	if groups >= members {
		t.Errorf("no group held more than one write (%d groups for %d writes): the test proves nothing", groups, members)
	}
	if unique == 0 || tooLong == 0 {
		t.Errorf("expected failing members: %d unique violations, %d too long", unique, tooLong)
	}
	for email, n := range acked {
		if n != 1 {
			t.Errorf("%s acknowledged %d times", email, n)
		}
	}
	c.Close()
	dumps := testcluster.DumpDir(t, filepath.Dir(path), "foo", "bar")
	if dumps[0] != dumps[1] {
		t.Fatalf("files differ:\nfoo:\n%s\nbar:\n%s", dumps[0], dumps[1])
	}
	for email := range acked {
		if !strings.Contains(dumps[0], "'"+email+"'") {
			t.Errorf("acknowledged %s is missing", email)
		}
	}
	if rows := strings.Count(dumps[0], "\n") - 1; rows != len(acked) {
		t.Errorf("%d rows on disk, %d acknowledged", rows, len(acked))
	}
}

type Grenade struct {
	ID   int64  `tandem:"id,pk"`
	Name string `tandem:"name,size=16"`
}

// BeforeSave panics for the name "pin".
func (g *Grenade) BeforeSave(context.Context) error {
	if g.Name == "pin" {
		panic("pulled")
	}
	return nil
}

// A hook that panics inside a group re-panics in its own caller; the other
// members of that group are not committed (ErrNotCommitted), other groups
// commit, and the cluster keeps working.
func TestGroupCommitPanicReachesItsCallerAndFreesTheQueue(t *testing.T) {
	ctx := context.Background()
	c, path := testcluster.New(t)
	if err := c.Migrate(ctx, &Grenade{}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	panics, notCommitted, saved := 0, 0, map[int64]bool{}
	pinSaved := 0
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g := &Grenade{ID: int64(i + 1), Name: "ok"}
			if i%10 == 3 {
				g.Name = "pin"
			}
			defer func() {
				if p := recover(); p != nil {
					mu.Lock()
					panics++
					mu.Unlock()
					if p != "pulled" || g.Name != "pin" {
						t.Errorf("save %d panicked with %v", g.ID, p)
					}
				}
			}()
			err := c.Save(ctx, g)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				saved[g.ID] = true
				if g.Name == "pin" {
					pinSaved++
				}
			case errors.Is(err, tandem.ErrNotCommitted):
				notCommitted++
			default:
				t.Errorf("save %d: %v", g.ID, err)
			}
		}()
	}
	wg.Wait()
	t.Logf("%d saved, %d not committed, %d panicked", len(saved), notCommitted, panics)
	// The first pin of each group panics; later pins of that group are
	// not reached. Groups form by timing, so between 1 and 4 panic.
	if panics < 1 || panics > 4 || pinSaved > 0 {
		t.Errorf("%d panics and %d saves of the 4 whose hook panics", panics, pinSaved)
	}
	if notCommitted == 0 && panics > 0 && len(saved) == 36 {
		t.Logf("every panic was alone in its group")
	}
	// The queue is free: a later save works.
	if err := c.Save(ctx, &Grenade{ID: 100, Name: "after"}); err != nil {
		t.Fatal(err)
	}
	saved[100] = true
	c.Close()
	dumps := testcluster.DumpDir(t, filepath.Dir(path), "foo", "bar")
	if dumps[0] != dumps[1] {
		t.Fatalf("files differ:\n%s\n%s", dumps[0], dumps[1])
	}
	if rows := strings.Count(dumps[0], "\n") - 1; rows != len(saved) {
		t.Errorf("%d rows on disk, %d saves acknowledged:\n%s", rows, len(saved), dumps[0])
	}
}

type Purse struct {
	ID      int64 `tandem:"id,pk"`
	Balance int64 `tandem:"balance"`
}

type Transfer struct {
	ID     int64 `tandem:"id,pk,auto"`
	From   int64 `tandem:"from_purse"`
	To     int64 `tandem:"to_purse"`
	Amount int64 `tandem:"amount"`
}

// Concurrent Cluster.Tx calls on SQLite are committed in groups. A member
// whose callback fails or panics after writing rows fails alone: its rows
// are undone on the primary and on the secondary (which had already
// received them), its auto id is reset, and every other member commits
// everywhere.
func TestGroupedTxIsolatesFailingAndPanickingMembers(t *testing.T) {
	ctx := context.Background()
	c, path := testcluster.New(t)
	if err := c.Migrate(ctx, &Purse{}, &Transfer{}); err != nil {
		t.Fatal(err)
	}
	const purses, writers, each = 5, 8, 40
	for i := range int64(purses) {
		if err := c.Save(ctx, &Purse{ID: i + 1, Balance: 1000}); err != nil {
			t.Fatal(err)
		}
	}
	errRefused := errors.New("refused after writing")
	var (
		mu       sync.Mutex
		want     = map[int64]int64{}
		acked    = map[int64]Transfer{}
		refused  int
		panicked int
		wg       sync.WaitGroup
	)
	for i := range int64(purses) {
		want[i+1] = 1000
	}
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				from := int64((w+i)%purses + 1)
				tr := &Transfer{From: from, To: from%purses + 1 + int64(i%(purses-1)), Amount: int64(i + 1)}
				if tr.To > purses {
					tr.To -= purses
				}
				fail, explode := i%5 == 2, i%13 == 7
				var err error
				func() {
					defer func() {
						if p := recover(); p != nil {
							if p != "boom" || !explode {
								t.Errorf("transfer %d/%d panicked with %v", w, i, p)
							}
							mu.Lock()
							panicked++
							mu.Unlock()
						}
					}()
					err = c.Tx(ctx, func(tx *tandem.Tx) error {
						from, err := tandem.Get[Purse](ctx, tx, tr.From)
						if err != nil {
							return err
						}
						to, err := tandem.Get[Purse](ctx, tx, tr.To)
						if err != nil {
							return err
						}
						from.Balance -= tr.Amount
						to.Balance += tr.Amount
						for _, v := range []any{from, to, tr} {
							if err := tx.Save(ctx, v); err != nil {
								return err
							}
						}
						if explode {
							panic("boom")
						}
						if fail {
							return errRefused
						}
						return nil
					})
				}()
				if explode {
					if tr.ID != 0 {
						t.Errorf("transfer %d/%d panicked but kept id %d", w, i, tr.ID)
					}
					continue
				}
				mu.Lock()
				switch {
				case fail && errors.Is(err, errRefused):
					refused++
					if tr.ID != 0 {
						t.Errorf("refused transfer %d/%d kept id %d", w, i, tr.ID)
					}
				case !fail && err == nil:
					acked[tr.ID] = *tr
					want[tr.From] -= tr.Amount
					want[tr.To] += tr.Amount
				default:
					t.Errorf("transfer %d/%d (fail %v): %v", w, i, fail, err)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	groups, members := tandem.GroupStats(c)
	t.Logf("%d committed, %d refused, %d panicked; %d writes in %d groups", len(acked), refused, panicked, members, groups)
	if groups >= members {
		t.Errorf("no group held more than one transaction (%d groups for %d): the test proves nothing", groups, members)
	}
	for id, p := range want {
		got, err := tandem.Get[Purse](ctx, c, id)
		if err != nil {
			t.Fatal(err)
		}
		if got.Balance != p {
			t.Errorf("purse %d holds %d, the committed transfers make %d", id, got.Balance, p)
		}
	}
	transfers, err := tandem.Find[Transfer](ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if len(transfers) != len(acked) {
		t.Errorf("%d transfers stored, %d committed", len(transfers), len(acked))
	}
	for _, tr := range transfers {
		if acked[tr.ID] != tr {
			t.Errorf("stored transfer %+v was not committed as such (%+v)", tr, acked[tr.ID])
		}
	}
	c.Close()
	dumps := testcluster.DumpDir(t, filepath.Dir(path), "foo", "bar")
	if dumps[0] != dumps[1] {
		t.Fatalf("files differ:\nfoo:\n%s\nbar:\n%s", dumps[0], dumps[1])
	}
}
