package engine

import (
	"fmt"
	"slices"
	"sync"
)

// The registry of engines by driver name. Engines add themselves from their
// packages' init functions, as database/sql drivers do, so that a program
// links only the engines it imports; tandem reads the registry later, when
// it validates a config.
var (
	registryMu sync.RWMutex
	registry   = map[string]Engine{}
)

// Register makes e available under name, the driver name a config's
// datasources use. An engine package calls it from its init function:
//
//	func init() { engine.Register("sqlite", Engine{}) }
//
// It panics if e is nil, if name is not e.Name() (tandem reports a
// datasource's driver by its engine's Name), or if name is already
// registered.
func Register(name string, e Engine) {
	if e == nil {
		panic(fmt.Sprintf("engine: Register %q: engine is nil", name))
	}
	if e.Name() != name {
		panic(fmt.Sprintf("engine: Register %q: the engine's Name is %q", name, e.Name()))
	}
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := registry[name]; dup {
		panic(fmt.Sprintf("engine: Register called twice for %q", name))
	}
	registry[name] = e
}

// Lookup returns the engine registered under name, and whether there is one.
func Lookup(name string) (Engine, bool) {
	registryMu.RLock()
	defer registryMu.RUnlock()
	e, ok := registry[name]
	return e, ok
}

// Drivers returns the names of the registered engines, sorted.
func Drivers() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}
