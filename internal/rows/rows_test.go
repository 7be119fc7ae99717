package rows

import (
	"bytes"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/tandemdb/tandem/engine"
	"github.com/tandemdb/tandem/internal/value"
)

// fuzzKeyTable has a key of every logical type a key column can have.
func fuzzKeyTable() *Def {
	td := &Def{T: engine.Table{Name: "t", Columns: []engine.Column{
		{Name: "i", Type: engine.Integer},
		{Name: "s", Type: engine.Text},
		{Name: "b", Type: engine.Blob},
		{Name: "ok", Type: engine.Bool},
		{Name: "at", Type: engine.Time},
		{Name: "r", Type: engine.Real},
	}}}
	for i := range td.T.Columns {
		td.PK = append(td.PK, i)
	}
	return td
}

// FuzzDecodeKey checks that every key value.EncodeKey records decodes back to the
// same values, and that no recorded text, however damaged, panics.
func FuzzDecodeKey(f *testing.F) {
	f.Add(int64(1), "a", []byte{0, 1}, true, int64(1700000000123456000), 1.5, `[1,"a"]`)
	f.Add(int64(-9223372036854775808), "", []byte{}, false, int64(0), -0.0, `[`)
	f.Fuzz(func(t *testing.T, i int64, s string, b []byte, ok bool, nanos int64, r float64, junk string) {
		td := fuzzKeyTable()
		td.DecodeKey(junk) // must not panic
		if !utf8.ValidString(s) || r != r || r > 1e308 || r < -1e308 {
			return // value.Fits refuses these before anything is recorded
		}
		at := time.Unix(0, nanos).UTC().Truncate(time.Microsecond)
		if at.Year() < 1 || at.Year() > 9999 {
			return
		}
		key := []any{i, s, b, ok, at, r}
		got, err := td.DecodeKey(value.EncodeKey(key))
		if err != nil {
			t.Fatalf("decodeKey(%s): %v", value.EncodeKey(key), err)
		}
		if got[0] != i || got[1] != s || !bytes.Equal(got[2].([]byte), b) || got[3] != ok ||
			!got[4].(time.Time).Equal(at) || got[5] != r {
			t.Fatalf("decodeKey(value.EncodeKey(%v)) = %v", key, got)
		}
	})
}
