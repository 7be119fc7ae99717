package tandem

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
