package tandem

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Two-phase commit (Config.Commit "two-phase"): the write is prepared on
// every secondary before the primary commits, and the primary's commit,
// which carries the write's intent record, is the decision. A secondary
// therefore never holds a write its primary did not commit, where the
// default, concurrent commit can leave one ahead until the sweeper repairs
// it. The price: a round trip more per secondary, and, if the process dies
// between the phases, prepared transactions that hold their rows' locks
// until a health check decides them.

// gidPrefix starts the id of every transaction tandem prepares.
const gidPrefix = "tandem_"

// commitTwoPhase commits as commit does, in two phases (Config.Commit
// "two-phase"): it prepares every secondary of ok, commits the primary (the
// decision), then commits the prepared secondaries. A secondary that fails
// to prepare is left out, as one that fails to commit is. If the process
// dies between the phases, the next health check of any process decides
// each prepared transaction by the primary's intent record (see
// resolvePrepared).
func (c *Cluster) commitTwoPhase(tx *Tx, ok []*secondary, txid string) (perr error, committed, lost []*Node, lostErrs []error) {
	gid := gidPrefix + txid
	prepared := c.onSecondaries(ok, func(s *secondary) error {
		err := s.n.caps.TwoPhaser.Prepare(s.tx.ctx, s.tx, gid)
		s.tx.Rollback() // the session left the transaction; this releases the connection
		return err
	})("prepare", &lost, &lostErrs)
	if len(lost) > 0 {
		// A secondary failed to prepare: nothing commits; the write runs
		// again once it is left out.
		c.eachNode(prepared, func(ctx context.Context, n *Node) error {
			return n.caps.TwoPhaser.RollbackPrepared(ctx, n.conn().Write, gid)
		})
		tx.tx.Rollback()
		return &secondaryFailure{n: lost[0], err: lostErrs[0]}, nil, nil, nil
	}
	if perr = tx.tx.Commit(); perr != nil {
		// Not committed anywhere (or, if the answer was lost, on the
		// primary only, with its intent record for the sweeper).
		c.eachNode(prepared, func(ctx context.Context, n *Node) error {
			return n.caps.TwoPhaser.RollbackPrepared(ctx, n.conn().Write, gid)
		})
		return perr, nil, nil, nil
	}
	if c.commitHook != nil {
		c.commitHook(txid)
	}
	errs := c.eachNode(prepared, func(ctx context.Context, n *Node) error {
		return n.caps.TwoPhaser.CommitPrepared(ctx, n.conn().Write, gid)
	})
	for i, n := range prepared {
		if errs[i] != nil {
			err := fmt.Errorf("commit prepared on %s: %w", n.name, errs[i])
			n.markDown(err)
			lost = append(lost, n)
			lostErrs = append(lostErrs, err)
		} else {
			committed = append(committed, n)
		}
	}
	return nil, committed, lost, lostErrs
}

// eachNode runs f on every node concurrently, each under a context that
// ends after Config.Timeout, and returns their errors.
func (c *Cluster) eachNode(nodes []*Node, f func(context.Context, *Node) error) []error {
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
			defer cancel()
			errs[i] = f(ctx, n)
		}()
	}
	wg.Wait()
	return errs
}

// resolveLoop runs resolvePrepared every check interval until the cluster
// closes, then closes done.
func (c *Cluster) resolveLoop(done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(max(c.interval, c.timeout/2))
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		ctx, cancel := c.roundContext()
		c.resolvePrepared(ctx)
		cancel()
	}
}

// resolvePrepared decides the transactions tandem prepared that are older
// than any write in flight (a process died between the phases, or a commit
// of a prepared transaction failed): committed where some other database
// holds the write's intent record (its primary committed it), rolled back
// otherwise (see intentHeldElsewhere). A rolled-back write the primary did commit is already recorded
// as missed by this database (the primary's intent record became
// missed-key records), so catch-up copies it.
func (c *Cluster) resolvePrepared(ctx context.Context) {
	if !c.twoPhase {
		return
	}
	for _, n := range c.ranked() {
		tp := n.caps.TwoPhaser
		if tp == nil || !n.reachable() {
			continue
		}
		qctx, cancel := context.WithTimeout(ctx, c.timeout)
		gids, err := tp.Prepared(qctx, n.conn().Read, gidPrefix, preparedAge*c.timeout)
		cancel()
		if err != nil {
			n.noteError(fmt.Errorf("list prepared transactions: %w", err))
			continue
		}
		for _, gid := range gids {
			txid := strings.TrimPrefix(gid, gidPrefix)
			commit, err := c.intentHeldElsewhere(ctx, n, txid)
			if err != nil {
				n.noteError(fmt.Errorf("resolve prepared transaction %s: %w", gid, err))
				continue
			}
			rctx, cancel := context.WithTimeout(ctx, c.timeout)
			if commit {
				err = tp.CommitPrepared(rctx, n.conn().Write, gid)
			} else {
				err = tp.RollbackPrepared(rctx, n.conn().Write, gid)
			}
			cancel()
			if err != nil {
				n.noteError(fmt.Errorf("resolve prepared transaction %s: %w", gid, err))
				continue
			}
			c.log.Info("resolved a prepared transaction", "node", n.name, "txid", txid, "committed", commit)
		}
	}
}

// preparedAge is how many timeouts old a prepared transaction must be
// before resolvePrepared decides it: no write in flight takes that long.
const preparedAge = 8

// intentHeldElsewhere reports whether a reachable database other than n
// holds the intent record of txid. An unreachable one counts as not: a
// prepared transaction holds its rows' locks, and rolling it back is what
// the concurrent commit does when a secondary's commit fails; if that
// database did commit the write, its intent record has the sweeper copy it
// once it is back.
func (c *Cluster) intentHeldElsewhere(ctx context.Context, n *Node, txid string) (held bool, err error) {
	for _, o := range c.nodes {
		if o == n || o.sameAs != nil || !o.reachable() {
			continue
		}
		qctx, cancel := context.WithTimeout(ctx, c.timeout)
		has, err := o.records.HoldsIntent(qctx, o.conn().Read, txid)
		cancel()
		if err != nil {
			return false, err
		}
		if has {
			return true, nil
		}
	}
	return false, nil
}
