package verify

// Test-only access to internals, for package verify_test.

// CompareInGo makes Compare hash and compare rows in Go, in canonical
// values, as it does when the engines differ.
func CompareInGo(o *Options) { o.inGo = true }

// RepairInGo makes Repair compare and copy rows in canonical values, as it
// does when the engines differ.
func RepairInGo(o *RepairOptions) { o.inGo = true }
