// Package crash lets a fault harness stop a writing process between the
// commits of one write, in an order it chooses: the state a process killed
// at that moment leaves in the databases. The soak arms it in its writer
// processes (a signal picks the order; between kills the process); tandem
// takes the plan at its next commit. Nothing outside tandem's own tests
// and soak imports it.
package crash

import "sync/atomic"

// Order is the order a write's commits are made in when a crash is armed.
type Order int

const (
	// PrimaryFirst commits the primary, then calls between, then commits
	// the secondaries one by one.
	PrimaryFirst Order = iota + 1
	// SecondariesFirst commits the secondaries one by one, calls between,
	// then commits the primary.
	SecondariesFirst
)

func (o Order) String() string {
	switch o {
	case PrimaryFirst:
		return "primary first"
	case SecondariesFirst:
		return "secondaries first"
	}
	return "none"
}

type plan struct {
	order   Order
	between func()
}

var armed atomic.Pointer[plan]

// Arm makes the next write that commits on more than one database commit
// in order and call between after the first database's commit (or, with
// SecondariesFirst, after every secondary's).
func Arm(order Order, between func()) { armed.Store(&plan{order, between}) }

// Take returns the armed plan and disarms it: (0, nil) when none is armed.
func Take() (Order, func()) {
	if armed.Load() == nil {
		return 0, nil
	}
	p := armed.Swap(nil)
	if p == nil {
		return 0, nil
	}
	return p.order, p.between
}
