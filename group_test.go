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
