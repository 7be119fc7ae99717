package tandem

// Test-only access to internals, for package tandem_test.

// SetSerialCommit makes c commit the primary before the secondaries.
func SetSerialCommit(c *Cluster, serial bool) { c.serialCommit = serial }

// SetCommitHook makes c call hook between the primary's commit and the
// secondaries' (which then run one after the other).
func SetCommitHook(c *Cluster, hook func(txid string)) { c.commitHook = hook }
