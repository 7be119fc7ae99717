// Package jepsen runs Jepsen-style workloads against a tandem cluster while
// a test injects faults, and checks afterwards, by reading every database
// directly (bypassing tandem), that no acknowledged write was lost and that
// the workloads' invariants held.
//
// Three workloads:
//
//   - Set: goroutines insert rows with unique ids and remember which inserts
//     were acknowledged (Save returned nil) and which failed (the outcome
//     is unknown: the row may or may not exist). CheckSet: every
//     acknowledged id is on every database, with the value written, and no
//     id appears that was never attempted.
//   - Unique: as Set, but the primary assigns each row's id (an auto id)
//     and the value is unique; each acknowledgement can be handed to a hook
//     (a process that may be killed writes them to a file). CompareUnique:
//     every acknowledged value is on every database, once, under the id
//     acknowledged, and no id holds different rows on different databases.
//   - Bank: accounts start with equal balances; goroutines transfer amounts
//     between two accounts in a tandem transaction (both read inside it),
//     while readers read every balance through the cluster and note any read
//     whose total differs. CheckBank: no such read, and on every database
//     the accounts are all there, none is negative, and the total is
//     unchanged.
//
// A workload is started with Start and stopped with Stop, which waits for
// its goroutines and returns its history. The checkers take Nodes: a name
// for messages and functions that read a database directly. SQLNode reads
// any database/sql handle with plain SELECTs (SQLite, PostgreSQL,
// MySQL/MariaDB); SQLiteNode opens a SQLite file read-only.
package jepsen

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/ncruces/go-sqlite3/driver" // database/sql driver "sqlite3"

	"github.com/tandemdb/tandem"
)

// Table names of the workloads' models.
const (
	SetTable     = "jepsen_set"
	AccountTable = "jepsen_account"
)

// SetItem is the row the set workload inserts, each id once.
type SetItem struct {
	ID  int64  `tandem:"id,pk"`
	Val string `tandem:"val,size=64"`
}

// TableName implements tandem's table naming.
func (SetItem) TableName() string { return SetTable }

// Account is a bank account of the bank workload.
type Account struct {
	ID      int64 `tandem:"id,pk"`
	Balance int64 `tandem:"balance"`
}

// TableName implements tandem's table naming.
func (Account) TableName() string { return AccountTable }

// Set is the set workload's configuration. The zero value is usable.
type Set struct {
	// Workers is the number of inserting goroutines (default 4).
	Workers int
	// FirstID is the first id inserted (default 1); ids are handed out in
	// order from it, so workloads with disjoint ranges can run against
	// different clusters (the two halves of a partition).
	FirstID int64
	// Batch is the number of rows per write: 1 (default) inserts each row
	// with Cluster.Save, more inserts Batch rows in one Cluster.Tx.
	Batch int
	// Pause is how long each goroutine waits between writes (default 0).
	Pause time.Duration
	// Tag starts every value written (default "set"), e.g. the name of
	// the partition that wrote it.
	Tag string
}

// Setup creates the set workload's table.
func (s Set) Setup(ctx context.Context, c *tandem.Cluster) error {
	return c.Migrate(ctx, &SetItem{})
}

// SetRun is a running set workload.
type SetRun struct {
	stop  chan struct{}
	wg    sync.WaitGroup
	next  atomic.Int64
	acked atomic.Int64

	mu sync.Mutex
	h  SetHistory
}

// SetHistory is what a set workload did.
type SetHistory struct {
	// Acked maps each id whose write returned nil to the value written.
	Acked map[int64]string
	// Failed maps each id whose write returned an error to that error:
	// the row may or may not exist.
	Failed map[int64]error
	// Vals maps every attempted id to the value its write carried.
	Vals map[int64]string
	// MaxLatency is the longest time a write took to be acknowledged.
	MaxLatency time.Duration
}

// Start starts the workload's goroutines on c; they write until Stop.
// Each write uses ctx; when ctx ends the writes fail and the goroutines
// stop.
func (s Set) Start(ctx context.Context, c *tandem.Cluster) *SetRun {
	workers, batch, first, tag := s.Workers, s.Batch, s.FirstID, s.Tag
	if workers <= 0 {
		workers = 4
	}
	if batch <= 0 {
		batch = 1
	}
	if first == 0 {
		first = 1
	}
	if tag == "" {
		tag = "set"
	}
	r := &SetRun{stop: make(chan struct{}), h: SetHistory{
		Acked: map[int64]string{}, Failed: map[int64]error{}, Vals: map[int64]string{},
	}}
	r.next.Store(first)
	for range workers {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			for r.running(ctx) {
				items := make([]*SetItem, batch)
				r.mu.Lock()
				for i := range items {
					id := r.next.Add(1) - 1
					items[i] = &SetItem{ID: id, Val: fmt.Sprintf("%s-%d", tag, id)}
					r.h.Vals[id] = items[i].Val
				}
				r.mu.Unlock()
				var err error
				start := time.Now()
				if batch == 1 {
					err = c.Save(ctx, items[0])
				} else {
					err = c.Tx(ctx, func(tx *tandem.Tx) error {
						for _, it := range items {
							if err := tx.Save(ctx, it); err != nil {
								return err
							}
						}
						return nil
					})
				}
				took := time.Since(start)
				r.mu.Lock()
				if err == nil {
					r.h.MaxLatency = max(r.h.MaxLatency, took)
				}
				for _, it := range items {
					if err == nil {
						r.h.Acked[it.ID] = it.Val
					} else {
						r.h.Failed[it.ID] = err
					}
				}
				r.mu.Unlock()
				if err == nil {
					r.acked.Add(int64(len(items)))
				}
				if s.Pause > 0 {
					select {
					case <-time.After(s.Pause):
					case <-r.stop:
					}
				}
			}
		}()
	}
	return r
}

func (r *SetRun) running(ctx context.Context) bool { return running(ctx, r.stop) }

// running reports whether a workload goes on: neither stopped nor cancelled.
func running(ctx context.Context, stop <-chan struct{}) bool {
	select {
	case <-stop:
		return false
	case <-ctx.Done():
		return false
	default:
		return true
	}
}

// Acked returns how many ids have been acknowledged so far.
func (r *SetRun) Acked() int64 { return r.acked.Load() }

// Failures returns how many ids have failed so far.
func (r *SetRun) Failures() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.h.Failed)
}

// Stop stops the workload, waits for the writes in flight and returns the
// history. It may be called once.
func (r *SetRun) Stop() *SetHistory {
	close(r.stop)
	r.wg.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	h := r.h
	return &h
}

// MergeSets combines the histories of set workloads with disjoint id
// ranges (for example the two halves of a partition) into one.
func MergeSets(hs ...*SetHistory) *SetHistory {
	out := &SetHistory{Acked: map[int64]string{}, Failed: map[int64]error{}, Vals: map[int64]string{}}
	for _, h := range hs {
		for id, v := range h.Acked {
			out.Acked[id] = v
		}
		for id, err := range h.Failed {
			out.Failed[id] = err
		}
		for id, v := range h.Vals {
			out.Vals[id] = v
		}
		out.MaxLatency = max(out.MaxLatency, h.MaxLatency)
	}
	return out
}

// Bank is the bank workload's configuration. The zero value is usable.
type Bank struct {
	// Accounts is the number of accounts (default 5), ids 1..Accounts.
	Accounts int
	// Balance is each account's starting balance (default 100).
	Balance int64
	// Transferers and Readers are the numbers of goroutines (default 2
	// each).
	Transferers, Readers int
	// Pause is how long each goroutine waits between operations (default
	// 0).
	Pause time.Duration
	// ReadPause, when set, is how long each reader waits between reads
	// instead of Pause.
	ReadPause time.Duration
	// Backoff is how long a goroutine waits after a failed operation, as
	// an application's caller would, instead of retrying at once (default
	// 0).
	Backoff time.Duration
	// ReadInTx makes each read of every balance a Cluster.Tx that reads
	// them with tandem.Find (which locks what it reads) instead of a plain
	// Find on the cluster.
	ReadInTx bool
	// Observe, when set, is called after every transfer and every read,
	// from the goroutine that made it.
	Observe func(Op)
}

func (b Bank) withDefaults() Bank {
	if b.Accounts <= 0 {
		b.Accounts = 5
	}
	if b.Balance <= 0 {
		b.Balance = 100
	}
	if b.Transferers <= 0 {
		b.Transferers = 2
	}
	if b.Readers <= 0 {
		b.Readers = 2
	}
	return b
}

// Total is the sum of all balances, which transfers never change.
func (b Bank) Total() int64 {
	b = b.withDefaults()
	return int64(b.Accounts) * b.Balance
}

// Setup creates the accounts table and the accounts, in one transaction.
func (b Bank) Setup(ctx context.Context, c *tandem.Cluster) error {
	b = b.withDefaults()
	if err := c.Migrate(ctx, &Account{}); err != nil {
		return err
	}
	return c.Tx(ctx, func(tx *tandem.Tx) error {
		for id := 1; id <= b.Accounts; id++ {
			if err := tx.Save(ctx, &Account{ID: int64(id), Balance: b.Balance}); err != nil {
				return err
			}
		}
		return nil
	})
}

// BankRun is a running bank workload.
type BankRun struct {
	b    Bank
	stop chan struct{}
	wg   sync.WaitGroup

	transfers atomic.Int64

	mu sync.Mutex
	h  BankHistory
}

// BankHistory is what a bank workload did.
type BankHistory struct {
	// Accounts and Total are the configuration the checks hold the
	// databases to.
	Accounts int
	Total    int64
	// Transfers counts acknowledged transfers (Tx returned nil).
	Transfers int64
	// MaxLatency is the longest time a transfer took to be acknowledged.
	MaxLatency time.Duration
	// Failed holds the errors of transfers that were not acknowledged
	// (the outcome is unknown; the total must hold either way).
	Failed []error
	// Reads counts reads of every balance through the cluster.
	Reads int64
	// ReadErrors holds the errors of reads that failed.
	ReadErrors []error
	// BadReads describes each read whose accounts or total were wrong.
	BadReads []string
}

// Start starts the workload's goroutines on c, which must have been set up
// with Setup; they run until Stop.
func (b Bank) Start(ctx context.Context, c *tandem.Cluster) *BankRun {
	b = b.withDefaults()
	r := &BankRun{b: b, stop: make(chan struct{}), h: BankHistory{Accounts: b.Accounts, Total: b.Total()}}
	for i := range b.Transferers {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), uint64(time.Now().UnixNano())))
			for r.running(ctx) {
				from := rng.Int64N(int64(b.Accounts)) + 1
				to := rng.Int64N(int64(b.Accounts)-1) + 1
				if to >= from {
					to++
				}
				amount := rng.Int64N(b.Balance/4+1) + 1
				start := time.Now()
				moved, err := transfer(ctx, c, from, to, amount)
				took := time.Since(start)
				if b.Observe != nil {
					detail := fmt.Sprintf("%d>%d:%d", from, to, amount)
					if !moved {
						detail += ":none" // from had less than amount
					}
					b.Observe(Op{Kind: OpTransfer, Start: start, Took: took, Err: err, Detail: detail})
				}
				if err != nil {
					r.wait(b.Backoff)
				}
				r.mu.Lock()
				if err != nil {
					r.h.Failed = append(r.h.Failed, fmt.Errorf("transfer %d from %d to %d: %w", amount, from, to, err))
				} else {
					r.h.MaxLatency = max(r.h.MaxLatency, took)
					r.transfers.Add(1)
				}
				r.mu.Unlock()
				r.pause()
			}
		}()
	}
	for range b.Readers {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			for r.running(ctx) {
				start := time.Now()
				accts, err := readAccounts(ctx, c, b.ReadInTx)
				took := time.Since(start)
				bad := ""
				if err == nil {
					bad = r.judge(accts)
				}
				r.mu.Lock()
				r.h.Reads++
				if err != nil {
					r.h.ReadErrors = append(r.h.ReadErrors, err)
				} else if bad != "" {
					r.h.BadReads = append(r.h.BadReads, fmt.Sprintf("read %d through the cluster at %s: %s",
						r.h.Reads, time.Now().Format("15:04:05.000"), bad))
				}
				r.mu.Unlock()
				if b.Observe != nil {
					b.Observe(Op{Kind: OpRead, Start: start, Took: took, Err: err, Problem: bad})
				}
				if err != nil {
					r.wait(b.Backoff)
				}
				r.readPause()
			}
		}()
	}
	return r
}

// readAccounts reads every account through the cluster, in id order:
// inside a transaction (which locks them) when inTx.
func readAccounts(ctx context.Context, c *tandem.Cluster, inTx bool) ([]Account, error) {
	if !inTx {
		return tandem.Find[Account](ctx, c, tandem.OrderBy("id"))
	}
	var accts []Account
	err := c.Tx(ctx, func(tx *tandem.Tx) error {
		var err error
		accts, err = tandem.Find[Account](ctx, tx, tandem.OrderBy("id"))
		return err
	})
	return accts, err
}

// transfer moves amount from one account to another in one transaction,
// reading both inside it; it moves nothing when from has less than amount,
// and reports whether it moved.
// It reads (and so locks, on engines that lock rows) the lower id first,
// as a careful application does: transfers locking in random order only
// wait for the server's deadlock detection (a second on PostgreSQL).
func transfer(ctx context.Context, c *tandem.Cluster, from, to, amount int64) (moved bool, err error) {
	err = c.Tx(ctx, func(tx *tandem.Tx) error {
		moved = false // fn may run more than once
		first, err := tandem.Get[Account](ctx, tx, min(from, to))
		if err != nil {
			return err
		}
		second, err := tandem.Get[Account](ctx, tx, max(from, to))
		if err != nil {
			return err
		}
		a, b := first, second
		if from > to {
			a, b = second, first
		}
		if a.Balance < amount {
			return nil
		}
		moved = true
		a.Balance -= amount
		b.Balance += amount
		if err := tx.Save(ctx, a); err != nil {
			return err
		}
		return tx.Save(ctx, b)
	})
	return moved && err == nil, err
}

// judge describes what is wrong with one read of every account, or "".
func (r *BankRun) judge(accts []Account) string {
	bal := make(map[int64]int64, len(accts))
	for _, a := range accts {
		bal[a.ID] = a.Balance
	}
	return bankProblem(bal, r.b.Accounts, r.b.Total())
}

// bankProblem describes what is wrong with balances, or "".
func bankProblem(bal map[int64]int64, accounts int, total int64) string {
	var probs []string
	var sum int64
	for id := int64(1); id <= int64(accounts); id++ {
		b, ok := bal[id]
		if !ok {
			probs = append(probs, fmt.Sprintf("account %d missing", id))
		}
		if b < 0 {
			probs = append(probs, fmt.Sprintf("account %d negative (%d)", id, b))
		}
		sum += b
	}
	for id := range bal {
		if id < 1 || id > int64(accounts) {
			probs = append(probs, fmt.Sprintf("unknown account %d", id))
			sum += bal[id]
		}
	}
	if sum != total {
		probs = append(probs, fmt.Sprintf("total %d, want %d", sum, total))
	}
	if len(probs) == 0 {
		return ""
	}
	return strings.Join(probs, "; ") + "; balances " + formatBalances(bal)
}

func formatBalances(bal map[int64]int64) string {
	ids := make([]int64, 0, len(bal))
	for id := range bal {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = fmt.Sprintf("%d:%d", id, bal[id])
	}
	return "{" + strings.Join(parts, " ") + "}"
}

func (r *BankRun) running(ctx context.Context) bool { return running(ctx, r.stop) }

func (r *BankRun) pause() { r.wait(r.b.Pause) }

func (r *BankRun) readPause() {
	if r.b.ReadPause > 0 {
		r.wait(r.b.ReadPause)
	} else {
		r.pause()
	}
}

func (r *BankRun) wait(d time.Duration) {
	if d > 0 {
		select {
		case <-time.After(d):
		case <-r.stop:
		}
	}
}

// Transfers returns how many transfers have been acknowledged so far.
func (r *BankRun) Transfers() int64 { return r.transfers.Load() }

// Stop stops the workload, waits for the operations in flight and returns
// the history. It may be called once.
func (r *BankRun) Stop() *BankHistory {
	close(r.stop)
	r.wg.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	h := r.h
	h.Transfers = r.transfers.Load()
	return &h
}

// Node is one database as the checkers read it, bypassing tandem.
type Node struct {
	// Name identifies the database in messages, e.g. "foo (/tmp/x/foo.db)".
	Name string
	// Set reads every row of SetTable: id to val.
	Set func(ctx context.Context) (map[int64]string, error)
	// Balances reads every row of AccountTable: id to balance.
	Balances func(ctx context.Context) (map[int64]int64, error)
	// Unique reads every row of UniqueTable: id to val.
	Unique func(ctx context.Context) (map[int64]string, error)
}

// idVals returns a reader of table's id and val columns, through db.
func idVals(db *sql.DB, table string) func(ctx context.Context) (map[int64]string, error) {
	return func(ctx context.Context) (map[int64]string, error) {
		out := map[int64]string{}
		err := scan(ctx, db, "SELECT id, val FROM "+table, func(rows *sql.Rows) error {
			var id int64
			var v string
			err := rows.Scan(&id, &v)
			out[id] = v
			return err
		})
		return out, err
	}
}

// SQLNode reads db, a handle to one database (of any engine), with plain
// SELECTs. name identifies it in messages.
func SQLNode(name string, db *sql.DB) Node {
	return Node{
		Name:   name,
		Set:    idVals(db, SetTable),
		Unique: idVals(db, UniqueTable),
		Balances: func(ctx context.Context) (map[int64]int64, error) {
			out := map[int64]int64{}
			err := scan(ctx, db, "SELECT id, balance FROM "+AccountTable, func(rows *sql.Rows) error {
				var id, b int64
				err := rows.Scan(&id, &b)
				out[id] = b
				return err
			})
			return out, err
		},
	}
}

func scan(ctx context.Context, db *sql.DB, q string, row func(*sql.Rows) error) error {
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := row(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// SQLiteNode opens the SQLite file read-only, bypassing tandem, as the node
// called name; it is closed at the end of the test.
func SQLiteNode(t testing.TB, name, file string) Node {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+file+"?mode=ro")
	if err != nil {
		t.Fatalf("open %s read-only: %v", file, err)
	}
	t.Cleanup(func() { db.Close() })
	return SQLNode(fmt.Sprintf("%s (%s)", name, file), db)
}

// CheckSet checks every node against the set workload's history h: every
// acknowledged id is present with the value written, and every id present
// was attempted, with the value attempted. Each problem is reported with
// t.Errorf, naming the node and the ids.
func CheckSet(t testing.TB, h *SetHistory, nodes ...Node) {
	t.Helper()
	ctx := context.Background()
	if len(h.Acked) == 0 {
		t.Errorf("set: no insert was acknowledged (%d failed): the workload did not run, so nothing was checked", len(h.Failed))
	}
	for _, n := range nodes {
		got, err := n.Set(ctx)
		if err != nil {
			t.Errorf("set: %s: read %s: %v", n.Name, SetTable, err)
			continue
		}
		var missing, wrong, unknown, strange []int64
		for id, v := range h.Acked {
			switch g, ok := got[id]; {
			case !ok:
				missing = append(missing, id)
			case g != v:
				wrong = append(wrong, id)
			}
		}
		present := 0
		for id, v := range got {
			want, attempted := h.Vals[id]
			switch {
			case !attempted:
				unknown = append(unknown, id)
			case v != want:
				strange = append(strange, id)
			}
			if _, failed := h.Failed[id]; failed {
				present++
			}
		}
		if len(missing) > 0 {
			t.Errorf("set: %s: %d of %d acknowledged ids missing: %s", n.Name, len(missing), len(h.Acked), ids(missing))
		}
		if len(wrong) > 0 {
			t.Errorf("set: %s: %d acknowledged ids hold a value other than the one written: %s", n.Name, len(wrong), ids(wrong))
		}
		if len(unknown) > 0 {
			t.Errorf("set: %s: %d ids were never attempted: %s", n.Name, len(unknown), ids(unknown))
		}
		if len(strange) > 0 {
			t.Errorf("set: %s: %d ids hold a value never written: %s", n.Name, len(strange), ids(strange))
		}
		t.Logf("set: %s: %d rows; %d acknowledged ids, %d failed ids (%d of them present); slowest acknowledged write %v",
			n.Name, len(got), len(h.Acked), len(h.Failed), present, h.MaxLatency.Round(time.Millisecond))
	}
}

// CheckBank checks the bank workload's history h (no read through the
// cluster saw a wrong total or a missing account, and the workload did
// transfer and read) and, on every node, that every account is there, none
// is negative and the total is unchanged. Each problem is reported with
// t.Errorf, naming the node.
func CheckBank(t testing.TB, h *BankHistory, nodes ...Node) {
	t.Helper()
	ctx := context.Background()
	if h.Transfers == 0 {
		t.Errorf("bank: no transfer was acknowledged (%d failed): nothing was checked", len(h.Failed))
	}
	if h.Reads-int64(len(h.ReadErrors)) == 0 {
		t.Errorf("bank: no read through the cluster succeeded (%d failed)", len(h.ReadErrors))
	}
	for i, bad := range h.BadReads {
		if i == 10 {
			t.Errorf("bank: ... and %d more wrong reads", len(h.BadReads)-i)
			break
		}
		t.Errorf("bank: %s", bad)
	}
	for _, p := range BankProblems(ctx, h.Accounts, h.Total, nodes...) {
		t.Errorf("bank: %s", p)
	}
	t.Logf("bank: %d transfers acknowledged, %d failed (slowest acknowledged %v); %d reads, %d failed, %d wrong",
		h.Transfers, len(h.Failed), h.MaxLatency.Round(time.Millisecond), h.Reads, len(h.ReadErrors), len(h.BadReads))
}

// BankProblems reads the accounts of every node and describes, one line
// per node, each whose accounts 1..accounts are not all there, are
// negative, or do not add up to total; nil when none.
func BankProblems(ctx context.Context, accounts int, total int64, nodes ...Node) []string {
	var out []string
	for _, n := range nodes {
		bal, err := n.Balances(ctx)
		if err != nil {
			out = append(out, fmt.Sprintf("%s: read %s: %v", n.Name, AccountTable, err))
			continue
		}
		if p := bankProblem(bal, accounts, total); p != "" {
			out = append(out, fmt.Sprintf("%s: %s", n.Name, p))
		}
	}
	return out
}

// ids renders a list of ids for a message: sorted, at most 20.
func ids(list []int64) string {
	slices.Sort(list)
	if len(list) > 20 {
		return fmt.Sprint(list[:20]) + fmt.Sprintf(" and %d more", len(list)-20)
	}
	return fmt.Sprint(list)
}
