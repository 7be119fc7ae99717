package engine

import (
	"encoding/binary"
	"math"
	"math/bits"
)

// RowHash hashes the values of one row, in column order, each with its
// type, so that a row's hash changes when any value or type changes: the
// integer 1, the real 1.0, the text '1' and NULL all hash differently, and
// ("ab", "c") differs from ("a", "bc"). Engines whose Checksum runs in Go
// (SQLite) and verify's own comparison of rows across engines use it; the
// order-independent checksum of a range of rows is the wrapping sum of
// the rows' Sums.
//
// It is not a cryptographic hash: it finds accidental differences, and
// two different rows collide with a chance of about 2^-64.
type RowHash struct{ h uint64 }

// Type tags mixed into a RowHash before each value.
const (
	hashNull = iota + 1
	hashInt
	hashReal
	hashText
	hashBlob
	hashBool
	hashTime
)

const (
	hashSeed  = 0xcbf29ce484222325 // FNV-1a's offset basis
	hashPrime = 0x100000001b3      // FNV-1a's 64-bit prime
)

// NewRowHash starts the hash of a row.
func NewRowHash() RowHash { return RowHash{hashSeed} }

// word mixes one 64-bit word. Each step (xor, multiplication by an odd
// number, rotation) is a bijection, so inputs that differ in one word
// never collide before the final mix.
func (r *RowHash) word(w uint64) {
	r.h = bits.RotateLeft64((r.h^w)*hashPrime, 29)
}

// Null adds a NULL.
func (r *RowHash) Null() { r.word(hashNull) }

// Int adds an integer.
func (r *RowHash) Int(v int64) {
	r.word(hashInt)
	r.word(uint64(v))
}

// Real adds a float. -0.0 hashes as 0.0, since the two compare equal in
// SQL and engines do not all keep the sign of zero.
func (r *RowHash) Real(v float64) {
	if v == 0 {
		v = 0
	}
	r.word(hashReal)
	r.word(math.Float64bits(v))
}

// Text adds a string's bytes.
func (r *RowHash) Text(b []byte) { r.bytes(hashText, b) }

// Blob adds bytes.
func (r *RowHash) Blob(b []byte) { r.bytes(hashBlob, b) }

// Bool adds a boolean.
func (r *RowHash) Bool(v bool) {
	r.word(hashBool)
	if v {
		r.word(1)
	} else {
		r.word(0)
	}
}

// TimeMicros adds a time, as microseconds since the Unix epoch in UTC.
func (r *RowHash) TimeMicros(us int64) {
	r.word(hashTime)
	r.word(uint64(us))
}

func (r *RowHash) bytes(tag uint64, b []byte) {
	r.word(tag)
	r.word(uint64(len(b)))
	for len(b) >= 8 {
		r.word(binary.LittleEndian.Uint64(b))
		b = b[8:]
	}
	if len(b) > 0 {
		var tail [8]byte
		copy(tail[:], b)
		r.word(binary.LittleEndian.Uint64(tail[:]))
	}
}

// Sum finishes the row's hash (splitmix64's finaliser, so that every bit
// of the input moves every bit of the sum).
func (r *RowHash) Sum() uint64 {
	x := r.h
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
