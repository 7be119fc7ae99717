package tandem

// A transaction whole or absent on every database, whatever order its
// commits landed in before a crash and whatever other writers did before
// the repair (issue 16, defects 3 and 4), driven by hand on two SQLite
// files: the states a crash leaves are written into the files directly.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tandemdb/tandem/internal/value"
)

// wholePair is healthPair with accounts 1-3 of 100 each (sweep_items: k
// the account, v its balance), and handles on both files.
func wholePair(t *testing.T, ctx context.Context) (c *Cluster, foo, bar *sql.DB) {
	t.Helper()
	c, _, dir := healthPair(t, ctx)
	for k := int64(1); k <= 3; k++ {
		if err := c.Save(ctx, &sweepItem{K: k, V: 100}); err != nil {
			t.Fatal(err)
		}
	}
	foo, bar = healthFile(t, dir, "foo.db"), healthFile(t, dir, "bar.db")
	for wholeCount(t, foo, "_tandem_pending")+wholeCount(t, bar, "_tandem_pending") > 0 { // the clearer's
		if ctx.Err() != nil {
			t.Fatal("the saves' intent records were not cleared")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return c, foo, bar
}

func wholeCount(t *testing.T, db *sql.DB, table string) int {
	t.Helper()
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM " + table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func wholeExec(t *testing.T, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// wholeBalances renders a file's balances: "1=95 2=100 3=105 total=300".
func wholeBalances(t *testing.T, db *sql.DB) string {
	t.Helper()
	rows, err := db.Query("SELECT k, v FROM sweep_items ORDER BY k")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var b strings.Builder
	var total int64
	for rows.Next() {
		var k, v int64
		if err := rows.Scan(&k, &v); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%d=%d ", k, v)
		total += v
	}
	fmt.Fprintf(&b, "total=%d", total)
	return b.String()
}

// wholeHalfCommitted writes W, "move 10 from account 1 to account 2",
// into bar alone, with W's intent record an hour old: the state a crash
// between the commits leaves when bar's commit landed and foo's did not.
func wholeHalfCommitted(t *testing.T, bar *sql.DB) {
	t.Helper()
	old := time.Now().Add(-time.Hour).UnixMilli()
	wholeExec(t, bar, "UPDATE sweep_items SET v = 90 WHERE k = 1")
	wholeExec(t, bar, "UPDATE sweep_items SET v = 110 WHERE k = 2")
	for seq, k := range []int64{1, 2} {
		wholeExec(t, bar, "INSERT INTO _tandem_pending (txid, seq, tbl, pk, at) VALUES ('w', ?, 'sweep_items', ?, ?)", seq, value.EncodeKey([]any{k}), old)
	}
}

// wholeMove moves amount from account a to account b in one Tx, reading
// both, and fails the test if it fails.
func wholeMove(t *testing.T, ctx context.Context, c *Cluster, a, b, amount int64) {
	t.Helper()
	if err := wholeTransfer(ctx, c, a, b, amount); err != nil {
		t.Fatal(err)
	}
}

// wholeTransfer moves amount from account a to account b in one Tx.
func wholeTransfer(ctx context.Context, c *Cluster, a, b, amount int64) error {
	return c.Tx(ctx, func(tx *Tx) error {
		from, err := Get[sweepItem](ctx, tx, a)
		if err != nil {
			return err
		}
		to, err := Get[sweepItem](ctx, tx, b)
		if err != nil {
			return err
		}
		from.V -= amount
		to.V += amount
		if err := tx.Save(ctx, from); err != nil {
			return err
		}
		return tx.Save(ctx, to)
	})
}

// wholePromoteAndSweep makes the datasource called primary the primary,
// runs a sweep of every write in doubt, and checks that both files then
// hold the balances want and no intent record.
func wholePromoteAndSweep(t *testing.T, ctx context.Context, c *Cluster, primary string, foo, bar *sql.DB, want string) {
	t.Helper()
	if err := c.Promote(ctx, primary, false); err != nil {
		t.Fatal(err)
	}
	c.sweepAfter = 0
	if err := c.sweep(ctx); err != nil {
		t.Fatal(err)
	}
	for name, db := range map[string]*sql.DB{"foo": foo, "bar": bar} {
		if got := wholeBalances(t, db); got != want {
			t.Errorf("%s after %s's promotion and a sweep: %s, want %s", name, primary, got, want)
		}
		if n := wholeCount(t, db, "_tandem_pending"); n != 0 {
			t.Errorf("%s holds %d intent records after the sweep", name, n)
		}
	}
}

// TestSweepLeavesNoTransactionHalfApplied: W committed on bar only, then
// another transaction moved 5 from account 1 to account 3 through foo (and
// wrote its rows to bar too), then the sweep ran. W was never acknowledged:
// it must end absent everywhere. An earlier version copied bar's current
// rows of W's keys: account 1 as the later write left it, account 2 as W
// left it, a total of 310 on both files, and verify said identical.
func TestSweepLeavesNoTransactionHalfApplied(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, foo, bar := wholePair(t, ctx)
	wholeHalfCommitted(t, bar)
	wholeMove(t, ctx, c, 1, 3, 5)
	c.sweepAfter = 0
	if err := c.sweep(ctx); err != nil {
		t.Fatal(err)
	}
	want := "1=95 2=100 3=105 total=300"
	for name, db := range map[string]*sql.DB{"foo": foo, "bar": bar} {
		if got := wholeBalances(t, db); got != want {
			t.Errorf("%s after the sweep: %s, want %s (W absent)", name, got, want)
		}
		if n := wholeCount(t, db, "_tandem_pending"); n != 0 {
			t.Errorf("%s holds %d intent records after the sweep", name, n)
		}
	}
}

// TestRejoiningDatabaseDropsAWriteThePrimaryLacks: bar was left out; a
// hung bar then carried out W's commit (a zombie), while foo moved 5 from
// account 1 to account 3 (recorded as missed by bar). Catch-up copies
// accounts 1 and 3; before bar rejoins, W's rows must be foo's too, else
// once bar is the primary (it is promoted here) a sweep completes W from
// bar: account 2 as W left it, account 1 as the later write left it, 310.
func TestRejoiningDatabaseDropsAWriteThePrimaryLacks(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, foo, bar := wholePair(t, ctx)
	if err := c.exclude(ctx, c.node("bar"), fmt.Errorf("left out by the test")); err != nil {
		t.Fatal(err)
	}
	wholeHalfCommitted(t, bar)
	wholeMove(t, ctx, c, 1, 3, 5)
	c.refresh(ctx, false)
	if err := c.catchUpAll(ctx); err != nil {
		t.Fatal(err)
	}
	if v := c.view.Load(); !v.writes(c.node("bar")) {
		t.Fatalf("view %s: bar did not rejoin after catch-up", v)
	}
	want := "1=95 2=100 3=105 total=300"
	if got := wholeBalances(t, bar); got != want || wholeCount(t, bar, "_tandem_pending") != 0 {
		t.Errorf("bar as it rejoins: %s with %d intent records; want %s and none", got, wholeCount(t, bar, "_tandem_pending"), want)
	}
	wholePromoteAndSweep(t, ctx, c, "bar", foo, bar, want)
}

// wholeCommittedOnBarOnly makes W, "move 10 from account 1 to account 2",
// commit on bar while foo's commit fails (a test-only switch), as the
// write's ErrOutcomeUnknown says.
func wholeCommittedOnBarOnly(t *testing.T, ctx context.Context, c *Cluster) {
	t.Helper()
	fail := true
	c.failPrimaryCommit = func() error {
		if fail {
			fail = false
			return fmt.Errorf("commit refused by the test")
		}
		return nil
	}
	if err := wholeTransfer(ctx, c, 1, 2, 10); !errors.Is(err, ErrOutcomeUnknown) {
		t.Fatalf("W with the primary's commit failed: %v, want ErrOutcomeUnknown", err)
	}
}

// TestPrimaryCommitFailedWhereASecondaryCommittedEndsWhole: W ("move 10
// from account 1 to account 2") commits on bar while foo's commit fails;
// foo stays the primary (it answers reads). Then 5 moves from account 1
// to account 3 through foo, and the health loop's repairs run. W was not
// acknowledged (ErrOutcomeUnknown): it must end whole or absent, the same
// everywhere. An earlier version recorded on bar that foo missed W's
// keys; catch-up then copied bar's rows of them to foo, W's account 2
// with the later write's account 1 (a total of 310), or, where foo had
// changed a key too, listed a conflict (the fault soak's MariaDB seed
// 7027: accounts 4 and 7, bar left out for good).
func TestPrimaryCommitFailedWhereASecondaryCommittedEndsWhole(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, foo, bar := wholePair(t, ctx)
	wholeCommittedOnBarOnly(t, ctx, c)
	if got := wholeBalances(t, bar); got != "1=90 2=110 3=100 total=300" {
		t.Fatalf("bar after W: %s, want W committed there", got)
	}
	c.refresh(ctx, false)
	wholeMove(t, ctx, c, 1, 3, 5)
	c.sweepAfter = 0
	for range 3 { // the health loop's repairs, a few rounds
		c.refresh(ctx, false)
		if err := c.catchUpAll(ctx); err != nil {
			t.Fatal(err)
		}
		if err := c.sweep(ctx); err != nil {
			t.Fatal(err)
		}
	}
	want := "1=95 2=100 3=105 total=300"
	for name, db := range map[string]*sql.DB{"foo": foo, "bar": bar} {
		if got := wholeBalances(t, db); got != want {
			t.Errorf("%s after the repairs: %s, want %s (W absent: the primary lacks it)", name, got, want)
		}
		for _, table := range []string{"_tandem_pending", "_tandem_missed", "_tandem_conflicts"} {
			if n := wholeCount(t, db, table); n != 0 {
				t.Errorf("%s: %d rows left in %s", name, n, table)
			}
		}
	}
}

// TestRejoiningDatabaseGetsAWriteTheInterimPrimaryHolds: W ("move 10 from
// account 1 to account 2") commits on bar while foo's commit fails; foo is
// then lost and bar takes over, holding W in doubt. A transfer through bar
// builds on W (5 from account 1 to account 3). foo returns and catches up
// the keys recorded as missed (1 and 3), but nobody recorded that it
// missed W. Before it rejoins, it must get bar's rows of W's keys: else,
// once foo is the primary again, the sweep undoes W on bar where the later
// transfer did not overwrite it, and 10 is lost (290 on both files).
func TestRejoiningDatabaseGetsAWriteTheInterimPrimaryHolds(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, foo, bar := wholePair(t, ctx)
	wholeCommittedOnBarOnly(t, ctx, c)
	// foo is lost: bar takes over.
	if err := c.Promote(ctx, "bar", false); err != nil {
		t.Fatal(err)
	}
	if err := c.exclude(ctx, c.node("foo"), fmt.Errorf("lost, as the test says")); err != nil {
		t.Fatal(err)
	}
	wholeMove(t, ctx, c, 1, 3, 5)
	if got := wholeBalances(t, bar); got != "1=85 2=110 3=105 total=300" {
		t.Fatalf("bar, the primary, after W and the transfer: %s", got)
	}
	// foo returns, catches up and rejoins; then it is the primary again.
	c.refresh(ctx, false)
	if err := c.catchUpAll(ctx); err != nil {
		t.Fatal(err)
	}
	if v := c.view.Load(); !v.writes(c.node("foo")) {
		t.Fatalf("view %s: foo did not rejoin after catch-up", v)
	}
	want := "1=85 2=110 3=105 total=300"
	if got := wholeBalances(t, foo); got != want {
		t.Errorf("foo as it rejoins: %s, want %s (W, which bar held, included)", got, want)
	}
	wholePromoteAndSweep(t, ctx, c, "foo", foo, bar, want)
}

// TestTakingOverSettlesAWriteInDoubt: bar is the primary and foo takes the
// writes too. W ("move 10 from account 1 to account 2") committed on bar
// and its process died before foo's commit; a transfer through bar then
// moved 5 from account 1 to account 3, writing bar's rows of accounts 1
// and 3 (W's debit included) to foo. (The files are written into that
// state here: through tandem, the transfer would itself end W's doubt
// first, see TestAWriteOfKeysInDoubtEndsTheDoubt.) foo
// then becomes the primary again (an operator's promote here; the health
// loop's failback runs the same check). It must first get bar's rows of
// W's keys: an earlier version switched at once, foo served accounts 1=85
// 2=100 3=105 (290) and the sweep then copied foo's rows of W over bar's
// (the fault soak's seed 5127: a bank total off right after a failback).
func TestTakingOverSettlesAWriteInDoubt(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, foo, bar := wholePair(t, ctx)
	if err := c.Promote(ctx, "bar", false); err != nil {
		t.Fatal(err)
	}
	if v := c.view.Load(); v.primary != c.node("bar") || !v.writes(c.node("foo")) {
		t.Fatalf("view %s: want bar the primary, foo written", v)
	}
	wholeHalfCommitted(t, bar) // W: 1=90 2=110, its record on bar
	wholeExec(t, bar, "UPDATE sweep_items SET v = 85 WHERE k = 1")
	wholeExec(t, bar, "UPDATE sweep_items SET v = 105 WHERE k = 3")
	wholeExec(t, foo, "UPDATE sweep_items SET v = 85 WHERE k = 1")
	wholeExec(t, foo, "UPDATE sweep_items SET v = 105 WHERE k = 3")
	want := "1=85 2=110 3=105 total=300"
	if err := c.Promote(ctx, "foo", false); err != nil {
		t.Fatal(err)
	}
	if got := wholeBalances(t, foo); got != want {
		t.Errorf("foo as it takes over: %s, want %s (bar's rows of W)", got, want)
	}
	c.sweepAfter = 0
	if err := c.sweep(ctx); err != nil {
		t.Fatal(err)
	}
	for name, db := range map[string]*sql.DB{"foo": foo, "bar": bar} {
		if got := wholeBalances(t, db); got != want {
			t.Errorf("%s after the sweep: %s, want %s", name, got, want)
		}
		if n := wholeCount(t, db, "_tandem_pending"); n != 0 {
			t.Errorf("%s holds %d intent records after the sweep", name, n)
		}
	}
}

// wholeInDoubtOn writes W, "move 10 from account 1 to account 2", into db
// alone with a fresh intent record (too young for the sweep): the state a
// writer killed between its commits leaves.
func wholeInDoubtOn(t *testing.T, db *sql.DB) {
	t.Helper()
	now := time.Now().UnixMilli()
	wholeExec(t, db, "UPDATE sweep_items SET v = v - 10 WHERE k = 1")
	wholeExec(t, db, "UPDATE sweep_items SET v = v + 10 WHERE k = 2")
	for seq, k := range []int64{1, 2} {
		wholeExec(t, db, "INSERT INTO _tandem_pending (txid, seq, tbl, pk, at) VALUES ('w', ?, 'sweep_items', ?, ?)", seq, value.EncodeKey([]any{k}), now)
	}
}

// TestAWriteOfKeysInDoubtEndsTheDoubt: W committed on one database only
// (its writer killed between the commits, in either order), then, before
// the sweep, a transfer through foo moves 5 from account 1 to account 3,
// and then foo is lost and bar takes over. bar must hold W whole (foo, the
// primary, had it) or not at all (foo lacked it), never in part: the
// transfer finds W's record on one database only, rolls back, has W's
// doubt ended (foo's rows of W's keys everywhere) and runs again. An
// earlier version carried only the transfer's rows: bar took over with
// 290 (W's debit without its credit) or 310 (its credit without its
// debit), the fault soak's seed 8009.
func TestAWriteOfKeysInDoubtEndsTheDoubt(t *testing.T) {
	for _, tc := range []struct {
		order, on, want string
	}{
		{"primary first", "foo", "1=85 2=110 3=105 total=300"},
		{"secondaries first", "bar", "1=95 2=100 3=105 total=300"},
	} {
		t.Run(strings.ReplaceAll(tc.order, " ", "-"), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			c, foo, bar := wholePair(t, ctx)
			wholeInDoubtOn(t, map[string]*sql.DB{"foo": foo, "bar": bar}[tc.on])
			wholeMove(t, ctx, c, 1, 3, 5)
			for name, db := range map[string]*sql.DB{"foo": foo, "bar": bar} {
				if got := wholeBalances(t, db); got != tc.want {
					t.Errorf("%s after the transfer: %s, want %s", name, got, tc.want)
				}
				// The transfer's own records go with the clearer; W's must
				// be gone with the transfer's commit.
				for wholeCount(t, db, "_tandem_pending") > 0 && ctx.Err() == nil {
					time.Sleep(10 * time.Millisecond)
				}
				if n := wholeCount(t, db, "_tandem_pending"); n != 0 {
					t.Errorf("%s holds %d intent records after the transfer", name, n)
				}
			}
			c.node("foo").markDown(errors.New("lost, as the test says"))
			if err := c.Promote(ctx, "bar", false); err != nil {
				t.Fatal(err)
			}
			if got := wholeBalances(t, bar); got != tc.want {
				t.Errorf("bar as it takes over from the lost foo: %s, want %s", got, tc.want)
			}
		})
	}
}
