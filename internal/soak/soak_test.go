package soak

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestSummaryLine(t *testing.T) {
	kinds := KindsFor("sqlite", "witness")
	s := &Summary{Engine: "sqlite", Arbiter: "witness", Avail: newAvailability(kinds)}
	s.add(&Result{Seed: 7, Lost: 3, Divergent: true, Unsettled: true})
	s.add(&Result{Seed: 8})
	s.add(&Result{Seed: 9, Invariant: true})
	s.add(&Result{Seed: 10, Broken: []string{"writer w1.1 exited on its own"}})
	s.add(&Result{Seed: 10, Lost: 2}) // -repeat: a seed run again
	want := "soak engine=sqlite arbiter=witness runs=5 passed=1 lost=5 divergent=1 invariant=1 unsettled=1 failed_seeds=7,9,10"
	if got := s.Line(); got != want {
		t.Errorf("summary\n got %s\nwant %s", got, want)
	}
}

func TestAvailabilityCountsWritesOverlappingEachFault(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	lockFoo := Fault{Kind: "lock", Target: "foo"}
	kill := Fault{Kind: "kill-writer", Target: "w2"}
	res := &Result{
		Faults: []Fault{lockFoo, kill, {Kind: "lock", Target: "bar"}}, // lock@bar skipped: no window
		windows: []window{
			{fault: lockFoo, from: at(100), to: at(600)},
			{fault: kill, from: at(500), to: at(900)},
		},
		ops: []opRecord{
			{kind: "insert", start: at(0), end: at(50)},                  // no fault
			{kind: "insert", start: at(50), end: at(150)},                // lock@foo
			{kind: "insert", start: at(200), end: at(700), err: "busy"},  // both
			{kind: "transfer", start: at(550), end: at(580)},             // both
			{kind: "transfer", start: at(700), end: at(1200)},            // kill
			{kind: "read", start: at(200), end: at(300), err: "timeout"}, // a read: not a write
			{kind: "insert", start: at(1000), end: at(1010), err: "x"},   // no fault
		},
	}
	a := newAvailability(KindsFor("sqlite", "witness"))
	a.add(res)
	for key, want := range map[string]availRow{
		"lock@foo":    {drawn: 1, injected: 1, writes: 3, refused: 1, slowest: 100 * time.Millisecond},
		"lock@bar":    {drawn: 1},
		"kill-writer": {drawn: 1, injected: 1, writes: 3, refused: 1, slowest: 500 * time.Millisecond},
		"none":        {writes: 2, refused: 1, slowest: 50 * time.Millisecond},
	} {
		if got := *a.rows[key]; got != want {
			t.Errorf("%s: %+v, want %+v", key, got, want)
		}
	}
	var out bytes.Buffer
	a.write(&out)
	if !strings.Contains(out.String(), "kill-writer") || strings.Contains(out.String(), "stop-writer") {
		t.Errorf("availability table lists kinds drawn, and only those:\n%s", out.String())
	}
}
