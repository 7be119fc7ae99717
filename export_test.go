package tandem

import (
	"context"
	"errors"
	"time"
)

// Test-only access to internals, for package tandem_test.

// SetSerialCommit makes c commit the primary before the secondaries.
func SetSerialCommit(c *Cluster, serial bool) { c.serialCommit = serial }

// SetCommitHook makes c call hook between the primary's commit and the
// secondaries' (which then run one after the other).
func SetCommitHook(c *Cluster, hook func(txid string)) { c.commitHook = hook }

// GroupStats returns how many group commits c made and how many writes
// they held.
func GroupStats(c *Cluster) (groups, members int64) {
	return c.group.groups.Load(), c.group.members.Load()
}

// SetSweepAfter sets the age at which c's health loop repairs intent records.
func SetSweepAfter(c *Cluster, d time.Duration) { c.sweepAfter = d }

// SetNoIntent makes c write no intent records, and so no missed-key
// records either: benchmarks of healthy clusters measure their cost.
func SetNoIntent(c *Cluster, off bool) { c.noIntent = off }

// SetNoDoubtCheck stops writes looking up the intent records that name
// their keys (benchmarks: what the lookup costs).
func SetNoDoubtCheck(c *Cluster, off bool) { c.noDoubtCheck = off }

// SetBeforeCommit makes c call hook just before each write's commits are
// sent (nil: no hook).
func SetBeforeCommit(c *Cluster, hook func()) { c.beforeCommit = hook }

// SetNoFence makes c's writes skip the fence (the read of each database's
// view generation): benchmarks measure its cost.
func SetNoFence(c *Cluster, off bool) { c.noFence = off }

// MarkDown marks the datasource called name down, as a failed write would
// once a read on a connection of its own failed too, and leaves it out of
// the view.
func MarkDown(c *Cluster, name string) {
	n := c.node(name).database()
	err := errors.New("marked down by a test")
	n.markDown(err)
	if err := c.exclude(context.Background(), n, err); err != nil {
		panic(err)
	}
}
