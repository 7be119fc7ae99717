package tandem

import (
	"fmt"
	"strings"
	"sync"
	"time"
)

// Event is something an operator wants to see: a datasource lost or back,
// a catch-up, a conflict, a change of primary.
//
// Events are what this process saw, kept in memory: another process
// writing to the same databases sees its own. They are also logged through
// log/slog, as before; the databases remain the record of what is missing
// (Status).
type Event struct {
	At      time.Time `json:"at"`
	Kind    string    `json:"kind"` // one of the EventX constants
	Node    string    `json:"node,omitempty"`
	Message string    `json:"message"` // one line for people; never a DSN or password
}

// Event kinds.
const (
	// EventDown: a write or a health check failed on the datasource, or it
	// did not answer within Config.Timeout; writes go on without it. Sent
	// once per outage, when it goes down.
	EventDown = "down"
	// EventUp: a health check found the datasource reachable again (it
	// takes writes once it has caught up).
	EventUp = "up"
	// EventCatchUpStarted: catch-up found keys the datasource missed (or
	// holds for the others after a split brain) and is copying them. Not
	// sent when a catch-up finds nothing to copy, nor again until the
	// datasource misses nothing (or goes down).
	EventCatchUpStarted = "catch-up started"
	// EventCatchUpFinished: the catch-up that sent EventCatchUpStarted is
	// over: the datasource misses nothing (the message says how many keys
	// were copied and how long it took, however many health checks that
	// spanned), or it went down meanwhile (sent before its EventDown).
	EventCatchUpFinished = "catch-up finished"
	// EventConflict: a key both sides of a split brain changed (Node is
	// the datasource that is not the primary), or conflicts resolved by
	// the policy or by an operator.
	EventConflict = "conflict"
	// EventPrimary: the primary changed (Node is the new one; "" when no
	// datasource can take writes).
	EventPrimary = "primary changed"
	// EventPromoted: an operator promoted an outdated datasource (tandem
	// promote --force).
	EventPromoted = "promoted"
	// EventCopyRefused: catch-up of the datasource cannot copy some keys:
	// a database refuses the row for a constraint (a unique value that a
	// row outside what it copies holds there). Status's CopyRefused counts
	// them; catch-up tries them again every round.
	EventCopyRefused = "copy refused"
)

// maxEvents is how many events a Cluster keeps.
const maxEvents = 200

// subscriberBuffer is how many events a subscriber may fall behind before
// it misses some.
const subscriberBuffer = 64

// eventLog is a Cluster's recent events and its subscribers. The zero
// value is ready to use.
type eventLog struct {
	mu     sync.Mutex
	ring   []Event // at most maxEvents; once full, next is the oldest
	next   int
	subs   map[*eventSub]struct{}
	closed bool
	runs   map[*Node]*catchUpRun // catch-ups under way, by datasource
}

type eventSub struct {
	ch   chan Event
	once sync.Once
}

// Events returns the most recent events, oldest first (at most the last
// 200 are kept).
func (c *Cluster) Events() []Event {
	l := &c.events
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]Event, 0, len(l.ring))
	out = append(out, l.ring[l.next:]...)
	return append(out, l.ring[:l.next]...)
}

// Subscribe returns a channel that receives every new event and a function
// that stops it (and closes the channel; calling it again does nothing). A
// slow reader misses events rather than blocking tandem: the channel holds
// 64 events, and an event that finds it full is not sent to it (Events
// still has it). Close closes every subscriber's channel; after Close,
// Subscribe returns a closed channel.
func (c *Cluster) Subscribe() (<-chan Event, func()) {
	l := &c.events
	s := &eventSub{ch: make(chan Event, subscriberBuffer)}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		close(s.ch)
		return s.ch, func() {}
	}
	if l.subs == nil {
		l.subs = map[*eventSub]struct{}{}
	}
	l.subs[s] = struct{}{}
	return s.ch, func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		delete(l.subs, s)
		s.once.Do(func() { close(s.ch) })
	}
}

// event records an event and sends it to the subscribers. The message is
// fmt.Sprintf(format, args...) on one line; it must not hold a DSN (pass
// error texts through the engine's Redact).
func (c *Cluster) event(kind, node, format string, args ...any) {
	e := Event{Kind: kind, Node: node, Message: strings.ReplaceAll(fmt.Sprintf(format, args...), "\n", "; ")}
	l := &c.events
	l.mu.Lock()
	defer l.mu.Unlock()
	e.At = time.Now() // under the lock: the ring is in time order
	if len(l.ring) < maxEvents {
		l.ring = append(l.ring, e)
	} else {
		l.ring[l.next] = e
		l.next = (l.next + 1) % maxEvents
	}
	for s := range l.subs {
		select {
		case s.ch <- e:
		default: // a slow reader misses it
		}
	}
}

// closeEvents closes every subscriber's channel (Close).
func (c *Cluster) closeEvents() {
	l := &c.events
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	for s := range l.subs {
		s.once.Do(func() { close(s.ch) })
	}
	l.subs = nil
}

// primaryEvent sends EventPrimary if v's primary is not old's.
func (c *Cluster) primaryEvent(old, v *view) {
	switch {
	case old.primary == v.primary:
	case v.primary == nil:
		c.event(EventPrimary, "", "no datasource can take writes (the primary was %s): %v", old.primary.name, v.err)
	case old.primary == nil:
		c.event(EventPrimary, v.primary.name, "%s is the primary: writes resume", v.primary.name)
	default:
		c.event(EventPrimary, v.primary.name, "%s is the primary (was %s)", v.primary.name, old.primary.name)
	}
}

// catchUpRun is a catch-up of one datasource that found keys to copy:
// from the first batch that found some until the datasource misses
// nothing, over as many calls of CatchUp as that takes (a conflict that
// waits for an operator, new missed writes, a failed batch retried at the
// next check).
type catchUpRun struct {
	start time.Time
	keys  int // copied so far
}

// catchUpBegins notes that a catch-up batch of x found keys to copy: the
// first sends EventCatchUpStarted.
func (c *Cluster) catchUpBegins(x *Node) {
	l := &c.events
	l.mu.Lock()
	_, running := l.runs[x]
	if !running {
		if l.runs == nil {
			l.runs = map[*Node]*catchUpRun{}
		}
		l.runs[x] = &catchUpRun{start: time.Now()}
	}
	l.mu.Unlock()
	if !running {
		c.event(EventCatchUpStarted, x.name, "catch-up of %s started: copying the current rows of the keys it missed", x.name)
	}
}

// catchUpProgress notes that a catch-up batch of x committed n keys (err:
// the batch failed, and committed nothing).
func (c *Cluster) catchUpProgress(x *Node, n int, err error) {
	if n == 0 || err != nil {
		return
	}
	l := &c.events
	l.mu.Lock()
	if r := l.runs[x]; r != nil {
		r.keys += n
	}
	l.mu.Unlock()
}

// catchUpEnd ends the catch-up of x, if one copied keys, once it misses
// nothing (complete), with EventCatchUpFinished.
func (c *Cluster) catchUpEnd(x *Node, complete bool) {
	l := &c.events
	l.mu.Lock()
	r := l.runs[x]
	if complete {
		delete(l.runs, x)
	}
	l.mu.Unlock()
	if r != nil && complete {
		c.event(EventCatchUpFinished, x.name, "%s caught up: %d keys copied in %v", x.name, r.keys, time.Since(r.start).Round(time.Millisecond))
	}
}

// downEvent sends EventDown for n, which has just gone down, and ends a
// catch-up of it that was under way.
func (c *Cluster) downEvent(n *Node, err error) {
	l := &c.events
	l.mu.Lock()
	r := l.runs[n]
	delete(l.runs, n)
	l.mu.Unlock()
	if r != nil {
		c.event(EventCatchUpFinished, n.name, "catch-up of %s interrupted after %d keys in %v: it is down", n.name, r.keys, time.Since(r.start).Round(time.Millisecond))
	}
	c.event(EventDown, n.name, "%s down: writes go on without it: %s", n.name, n.eng.Redact(err.Error()))
}

// resolvedEvent sends EventConflict for n conflicts an operator resolved
// by keeping keep's rows (tandem resolve).
func (c *Cluster) resolvedEvent(keep *Node, n int) {
	switch {
	case n == 1:
		c.event(EventConflict, keep.name, "a conflict resolved by an operator: kept %s's row", keep.name)
	case n > 1:
		c.event(EventConflict, keep.name, "%d conflicts resolved by an operator: kept %s's rows", n, keep.name)
	}
}

// promotedEvent sends EventPromoted for the datasource called name, whose
// outdated marker was mark ("" if it had none).
func (c *Cluster) promotedEvent(name, mark string) {
	if mark == "" {
		c.event(EventPromoted, name, "%s promoted by an operator (it was not outdated)", name)
		return
	}
	c.event(EventPromoted, name, "%s promoted by an operator: it may take writes although it missed some (it was outdated: %s)", name, mark)
}
