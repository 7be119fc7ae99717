package records

import (
	"fmt"
	"testing"
)

// A keyList holds each key once, in order, and finds every key, also
// when two keys share a hash (forced here: a real collision of 64-bit
// hashes cannot be made on purpose).
func TestKeyList(t *testing.T) {
	var l keyList
	var keys []Key
	for i := range 3000 {
		k := Key{Table: fmt.Sprintf("t%d", i%3), PK: fmt.Sprintf("[%d]", i/3)}
		keys = append(keys, k)
		if got := l.add(k); got != i {
			t.Fatalf("add %v = %d, want %d", k, got, i)
		}
	}
	// A collision: key c hashes like key 5.
	c := Key{Table: "t9", PK: "[collides]"}
	l.first[l.hash(c)] = 5
	if l.find(c) != -1 {
		t.Fatal("find of a key not held, whose hash another key has, found it")
	}
	if got := l.add(c); got != 3000 {
		t.Fatalf("add of a colliding key = %d", got)
	}
	keys = append(keys, c)
	for i, k := range keys {
		if got := l.find(k); got != i {
			t.Fatalf("find %v = %d, want %d", k, got, i)
		}
		if got := l.at(i); got != k {
			t.Fatalf("at %d = %v, want %v", i, got, k)
		}
	}
	if l.find(Key{Table: "t0", PK: "[1000]"}) != -1 || l.find(Key{Table: "t1", PK: "[0]x"}) != -1 {
		t.Fatal("find of a key not held found one")
	}
	if l.len() != 3001 || len(l.tables) != 4 {
		t.Fatalf("len %d, tables %v", l.len(), l.tables)
	}
}
