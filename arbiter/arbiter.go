// Package arbiter defines where a tandem cluster's view lives: the one
// record that says which datasource is the primary and which datasources
// writes skip, changed only by compare-and-swap, with a generation number
// that every change increments.
//
// Every process of an application reads the view from its arbiter and acts
// only under a view it has read, so two processes never write under two
// different primaries: a process that timed out on a database cannot decide
// alone that it is down; it asks the arbiter to change the view, and loses
// the race if another process changed it first. The databases store the
// highest generation they have taken part in and refuse writes made under an
// older one (fencing), so a process that missed a change learns it before
// anything it writes can commit.
//
// Implementations register themselves by kind, as database/sql drivers do:
// package arbiter/witness (a file next to the config, for processes on one
// machine) and package arbiter/etcd (an etcd cluster, across machines).
package arbiter

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
)

// View is the record an arbiter holds.
type View struct {
	// Generation counts the changes; the first view stored is 1.
	Generation int64 `json:"generation"`
	// Primary names the datasource whose locks order writes.
	Primary string `json:"primary"`
	// Excluded names the datasources writes skip: down, or catching up.
	// Each write records the keys they miss.
	Excluded []string `json:"excluded,omitempty"`
	// Ranking is the config's datasources in rank order (the configured
	// primary first). A process whose config ranks them otherwise, or names
	// others, is refused.
	Ranking []string `json:"ranking"`
}

// Excludes reports whether v excludes the datasource called name.
func (v View) Excludes(name string) bool { return slices.Contains(v.Excluded, name) }

// String renders v for logs and status: "gen 3: primary foo, excluding bar".
func (v View) String() string {
	s := fmt.Sprintf("gen %d: primary %s", v.Generation, v.Primary)
	if len(v.Excluded) > 0 {
		s += ", excluding " + strings.Join(v.Excluded, ", ")
	}
	return s
}

// Equal reports whether v and w are the same view.
func (v View) Equal(w View) bool {
	return v.Generation == w.Generation && v.Primary == w.Primary &&
		slices.Equal(v.Excluded, w.Excluded) && slices.Equal(v.Ranking, w.Ranking)
}

// Arbiter holds a cluster's view. It is safe for concurrent use.
type Arbiter interface {
	// Load returns the stored view; ok is false when none is stored yet.
	Load(ctx context.Context) (v View, ok bool, err error)
	// Swap stores next if the stored view's generation is prev (0: none is
	// stored), and returns whether it did, with the view stored after the
	// call (next, or the one that won). next.Generation must be greater
	// than prev.
	Swap(ctx context.Context, prev int64, next View) (cur View, swapped bool, err error)
	// Describe says where the view lives, for status ("witness
	// /srv/app/tandem.witness", "etcd 127.0.0.1:2379 key /tandem/view").
	Describe() string
	Close() error
}

// ErrUnavailable wraps an arbiter's failure to answer: the view cannot be
// read or changed now (the witness file cannot be locked, etcd has no
// quorum). Writes go on under the view a process holds; no view changes.
var ErrUnavailable = errors.New("arbiter unavailable")

// Options configure an arbiter: the mapping under the config's arbiter
// field, whose kind field picks the implementation. Dir is the config
// file's directory, for relative paths.
type Options struct {
	Kind   string
	Fields map[string]any // the other fields, as YAML decoded them
	Dir    string
}

// Opener opens an arbiter of one kind. It validates opts and returns an
// error naming the field that is wrong; it must not block on the network
// (a member that does not answer is the arbiter's ErrUnavailable later).
type Opener func(opts Options) (Arbiter, error)

var (
	mu      sync.RWMutex
	openers = map[string]Opener{}
)

// Register makes an arbiter kind available. It panics if kind is empty,
// open is nil, or kind is registered twice.
func Register(kind string, open Opener) {
	mu.Lock()
	defer mu.Unlock()
	if kind == "" || open == nil {
		panic("arbiter: Register with an empty kind or a nil Opener")
	}
	if _, dup := openers[kind]; dup {
		panic("arbiter: Register called twice for kind " + kind)
	}
	openers[kind] = open
}

// Lookup returns the Opener of kind.
func Lookup(kind string) (Opener, bool) {
	mu.RLock()
	defer mu.RUnlock()
	o, ok := openers[kind]
	return o, ok
}

// Kinds lists the registered kinds, sorted.
func Kinds() []string {
	mu.RLock()
	defer mu.RUnlock()
	kinds := make([]string, 0, len(openers))
	for k := range openers {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	return kinds
}
