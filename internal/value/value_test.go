package value

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/tandemdb/tandem/engine"
)

// Fits is the check every value passes before anything is written.
func TestFitsColumn(t *testing.T) {
	text := &engine.Column{Name: "t", Type: engine.Text, NotNull: true}
	text3 := &engine.Column{Name: "t", Type: engine.Text, NotNull: true, Size: 3}
	nullable := &engine.Column{Name: "t", Type: engine.Text}
	blob3 := &engine.Column{Name: "b", Type: engine.Blob, NotNull: true, Size: 3}
	real := &engine.Column{Name: "r", Type: engine.Real, NotNull: true}
	tm := &engine.Column{Name: "at", Type: engine.Time, NotNull: true}
	minus5 := time.FixedZone("-05", -5*3600)
	for _, tc := range []struct {
		name string
		col  *engine.Column
		v    any
		msg  string // "" when it fits
	}{
		{"ThreeMultiByteCharsFitSize3", text3, "żół", ""},
		{"ThreeEmojiFitSize3", text3, "😀😀😀", ""},
		{"FourCharsExceedSize3", text3, "abcd", "4 characters given, the column holds at most 3"},
		{"EmptyStringFits", text3, "", ""},
		{"UnboundedText", text, strings.Repeat("x", 100000), ""},
		{"InvalidUTF8", text, "a\xffb", "not valid UTF-8"},
		{"NULByte", text, "a\x00b", "NUL"},
		{"NaN", real, math.NaN(), "only finite numbers"},
		{"PlusInf", real, math.Inf(1), "only finite numbers"},
		{"MinusInf", real, math.Inf(-1), "only finite numbers"},
		{"MaxFloat", real, math.MaxFloat64, ""},
		{"NilOnNotNull", text, nil, "is NOT NULL"},
		{"NilOnNullable", nullable, nil, ""},
		{"BytesWithinSize", blob3, []byte{0, 1, 2}, ""},
		{"BytesOverSize", blob3, []byte{0, 1, 2, 3}, "4 bytes given, the column holds at most 3"},
		{"Year1", tm, time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), ""},
		{"Year9999", tm, time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC), ""},
		{"Year10000", tm, time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), "year 10000"},
		{"Year0", tm, time.Date(0, 12, 31, 0, 0, 0, 0, time.UTC), "year 0"},
		{"Year10000InUTCThough9999Locally", tm, time.Date(9999, 12, 31, 22, 0, 0, 0, minus5), "year 10000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Fits(tc.col, tc.v)
			switch {
			case tc.msg == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.msg != "" && err == nil:
				t.Errorf("accepted, want an error containing %q", tc.msg)
			case tc.msg != "" && !strings.Contains(err.Error(), tc.msg):
				t.Errorf("error %q does not contain %q", err, tc.msg)
			}
		})
	}
}

// The three comparisons: Equal (the same stored value), Compare (the order
// of two values of one column) and SQLOrder (the order of any two values).
func TestComparisons(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		a, b         any
		equal        bool
		compare, sql int
	}{
		{int64(1), int64(2), false, -1, -1},
		{int64(2), int64(1), false, 1, 1},
		{int64(1), int64(1), true, 0, 0},
		{1.5, 0.5, false, 1, 1},
		{0.0, math.Copysign(0, -1), true, 0, 0},
		{"a", "b", false, -1, -1},
		{t0, t0.Add(time.Second), false, -1, -1},
		{t0, t0.In(time.FixedZone("x", 3600)), true, 0, 0},
		{[]byte{1}, []byte{1}, true, 0, 0},
		{[]byte{1}, []byte{2}, false, 0, -1}, // Compare does not order blobs
		{nil, int64(1), false, 0, -1},        // NULL first
		{int64(1), "1", false, 0, -1},        // numbers before text
		{"z", []byte{0}, false, 0, -1},       // text before blobs
		{int64(2), 1.5, false, 0, 1},         // numbers of two kinds by value
		{nil, nil, true, 0, 0},
	} {
		if got := Equal(tc.a, tc.b); got != tc.equal {
			t.Errorf("Equal(%#v, %#v) = %v", tc.a, tc.b, got)
		}
		if got := Compare(tc.a, tc.b); got != tc.compare {
			t.Errorf("Compare(%#v, %#v) = %d, want %d", tc.a, tc.b, got, tc.compare)
		}
		if got := SQLOrder(tc.a, tc.b); got != tc.sql {
			t.Errorf("SQLOrder(%#v, %#v) = %d, want %d", tc.a, tc.b, got, tc.sql)
		}
	}
}

// EncodeKey's text decodes back through FromJSON to the same values.
func TestKeyRoundTrip(t *testing.T) {
	key := []any{int64(-7), "ü'x", []byte{0, 255}, true, time.Date(2026, 12, 7, 1, 2, 3, 456789000, time.UTC), 2.5, nil}
	types := []engine.Type{engine.Integer, engine.Text, engine.Blob, engine.Bool, engine.Time, engine.Real, engine.Text}
	dec := json.NewDecoder(strings.NewReader(EncodeKey(key)))
	dec.UseNumber()
	var raw []any
	if err := dec.Decode(&raw); err != nil {
		t.Fatal(err)
	}
	for i, r := range raw {
		got, err := FromJSON(types[i], r)
		if err != nil {
			t.Fatalf("value %d: %v", i, err)
		}
		if !Equal(got, key[i]) {
			t.Errorf("value %d: %#v, want %#v", i, got, key[i])
		}
	}
}
