package engine_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/tandemdb/tandem/engine"
)

// fakeEngine answers Name only; registering needs nothing more.
type fakeEngine struct {
	engine.Engine
	name string
}

func (f fakeEngine) Name() string { return f.name }

func TestRegisterThenLookupAndDrivers(t *testing.T) {
	engine.Register("test-registry-b", fakeEngine{name: "test-registry-b"})
	engine.Register("test-registry-a", fakeEngine{name: "test-registry-a"})

	e, ok := engine.Lookup("test-registry-a")
	if !ok || e.Name() != "test-registry-a" {
		t.Fatalf("Lookup(test-registry-a) = %v, %v; want the registered engine", e, ok)
	}
	if e, ok := engine.Lookup("test-registry-none"); ok {
		t.Fatalf("Lookup(test-registry-none) = %v, true; want nothing", e)
	}
	names := engine.Drivers()
	if !slices.IsSorted(names) {
		t.Errorf("Drivers() = %v, not sorted", names)
	}
	for _, n := range []string{"test-registry-a", "test-registry-b"} {
		if !slices.Contains(names, n) {
			t.Errorf("Drivers() = %v, without %s", names, n)
		}
	}
}

func TestRegisterPanicsOnProgrammingErrors(t *testing.T) {
	engine.Register("test-registry-dup", fakeEngine{name: "test-registry-dup"})
	for _, tc := range []struct {
		name string
		reg  func()
		want string
	}{
		{"nil engine", func() { engine.Register("test-registry-nil", nil) }, "engine is nil"},
		{"name is not the engine's Name", func() { engine.Register("test-registry-x", fakeEngine{name: "test-registry-y"}) }, `the engine's Name is "test-registry-y"`},
		{"registered twice", func() { engine.Register("test-registry-dup", fakeEngine{name: "test-registry-dup"}) }, "twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				r := recover()
				if r == nil || !strings.Contains(fmt.Sprint(r), tc.want) {
					t.Errorf("Register panicked with %v; want a panic containing %q", r, tc.want)
				}
			}()
			tc.reg()
		})
	}
	for _, n := range []string{"test-registry-nil", "test-registry-x"} {
		if _, ok := engine.Lookup(n); ok {
			t.Errorf("Lookup(%s) found an engine a refused Register left behind", n)
		}
	}
}
