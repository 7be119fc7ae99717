// Package value holds tandem's canonical values, the one form in which a
// row's values are compared, hashed, recorded and converted for every
// engine: int64, float64, string, []byte, bool, time.Time or nil.
//
// A model's fields become canonical values (FromField) and are checked
// against their columns (Fits) before anything is written; values read
// from a database become canonical through the engine's Scan, and return
// into fields through Assign. Keys are recorded as JSON text (EncodeKey,
// FromJSON). Equal, Compare and SQLOrder are the three ways to compare:
// the same stored value, the order of two values of one column (newest
// wins), and the order SQL gives values of any kinds (reports).
package value

import (
	"bytes"
	"cmp"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tandemdb/tandem/engine"
)

var timeType = reflect.TypeFor[time.Time]()

// FromField reads a field as int64, float64, string, []byte, bool,
// time.Time or nil.
func FromField(f reflect.Value) (any, error) {
	if f.Kind() == reflect.Pointer {
		if f.IsNil() {
			return nil, nil
		}
		f = f.Elem()
	}
	if f.Type() == timeType {
		return f.Interface().(time.Time), nil
	}
	switch f.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return f.Int(), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		u := f.Uint()
		if u > math.MaxInt64 {
			return nil, fmt.Errorf("%d is larger than the largest integer a column holds (%d)", u, int64(math.MaxInt64))
		}
		return int64(u), nil
	case reflect.Float32, reflect.Float64:
		return f.Float(), nil
	case reflect.String:
		return f.String(), nil
	case reflect.Bool:
		return f.Bool(), nil
	case reflect.Slice:
		if f.Type().Elem().Kind() != reflect.Uint8 {
			return nil, fmt.Errorf("a list (%s) is not one value", f.Type())
		}
		if f.IsNil() {
			return []byte{}, nil // a nil slice in a field is empty; only a nil *[]byte is NULL
		}
		return f.Bytes(), nil
	case reflect.Array:
		if f.Type().Elem().Kind() != reflect.Uint8 {
			return nil, fmt.Errorf("a list (%s) is not one value", f.Type())
		}
		b := make([]byte, f.Len())
		reflect.Copy(reflect.ValueOf(b), f)
		return b, nil
	}
	return nil, fmt.Errorf("unsupported kind %v", f.Kind())
}

// Fits checks x against the column, the same way for every engine.
func Fits(c *engine.Column, x any) error {
	if x == nil {
		if c.NotNull {
			return fmt.Errorf("is NOT NULL: nil given")
		}
		return nil
	}
	switch x := x.(type) {
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return fmt.Errorf("%v cannot be stored: only finite numbers fit a column on every engine", x)
		}
	case string:
		if !utf8.ValidString(x) {
			return fmt.Errorf("text is not valid UTF-8")
		}
		if strings.IndexByte(x, 0) >= 0 {
			return fmt.Errorf("text holds a NUL byte, which not every engine stores")
		}
		if c.Size > 0 {
			if n := utf8.RuneCountInString(x); n > c.Size {
				return fmt.Errorf("%d characters given, the column holds at most %d", n, c.Size)
			}
		}
	case []byte:
		if c.Size > 0 && len(x) > c.Size {
			return fmt.Errorf("%d bytes given, the column holds at most %d", len(x), c.Size)
		}
	case time.Time:
		if y := x.UTC().Year(); y < 1 || y > 9999 {
			return fmt.Errorf("year %d is outside 1..9999", y)
		}
	}
	return nil
}

// Assign stores a value read from a database (or a canonical value) in a field.
func Assign(f reflect.Value, x any) error {
	if f.Kind() == reflect.Pointer {
		if x == nil {
			f.SetZero()
			return nil
		}
		p := reflect.New(f.Type().Elem())
		if err := Assign(p.Elem(), x); err != nil {
			return err
		}
		f.Set(p)
		return nil
	}
	if x == nil {
		f.SetZero()
		return nil
	}
	if f.Type() == timeType {
		t, err := asTime(x)
		if err != nil {
			return err
		}
		f.Set(reflect.ValueOf(t))
		return nil
	}
	switch f.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := asInt(x)
		if err != nil {
			return err
		}
		if f.OverflowInt(n) {
			return fmt.Errorf("%d overflows %v", n, f.Type())
		}
		f.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, err := asInt(x)
		if err != nil {
			return err
		}
		if n < 0 || f.OverflowUint(uint64(n)) {
			return fmt.Errorf("%d overflows %v", n, f.Type())
		}
		f.SetUint(uint64(n))
	case reflect.Float32, reflect.Float64:
		switch v := x.(type) {
		case float64:
			f.SetFloat(v)
		case int64:
			f.SetFloat(float64(v))
		default:
			return fmt.Errorf("cannot read %T as %v", x, f.Type())
		}
	case reflect.String:
		switch v := x.(type) {
		case string:
			f.SetString(v)
		case []byte:
			f.SetString(string(v))
		default:
			return fmt.Errorf("cannot read %T as %v", x, f.Type())
		}
	case reflect.Bool:
		switch v := x.(type) {
		case bool:
			f.SetBool(v)
		case int64:
			f.SetBool(v != 0)
		default:
			return fmt.Errorf("cannot read %T as %v", x, f.Type())
		}
	case reflect.Slice:
		switch v := x.(type) {
		case []byte:
			f.SetBytes(append([]byte{}, v...))
		case string:
			f.SetBytes([]byte(v))
		default:
			return fmt.Errorf("cannot read %T as %v", x, f.Type())
		}
	default:
		return fmt.Errorf("cannot read %T as %v", x, f.Type())
	}
	return nil
}

func asInt(x any) (int64, error) {
	switch v := x.(type) {
	case int64:
		return v, nil
	case bool:
		if v {
			return 1, nil
		}
		return 0, nil
	case float64:
		if v == math.Trunc(v) && v >= math.MinInt64 && v < math.MaxInt64 {
			return int64(v), nil
		}
	}
	return 0, fmt.Errorf("cannot read %T %v as an integer", x, x)
}

var timeLayouts = []string{
	"2006-01-02T15:04:05.000000Z",
	time.RFC3339Nano,
	"2006-01-02 15:04:05.999999999-07:00",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04:05.999999999",
}

func asTime(x any) (time.Time, error) {
	switch v := x.(type) {
	case time.Time:
		return v.UTC(), nil
	case []byte:
		return asTime(string(v))
	case string:
		for _, l := range timeLayouts {
			if t, err := time.Parse(l, v); err == nil {
				return t.UTC(), nil
			}
		}
		return time.Time{}, fmt.Errorf("cannot read %q as a time", v)
	}
	return time.Time{}, fmt.Errorf("cannot read %T as a time", x)
}

// EncodeKey encodes a row's primary key (canonical values) as the text the
// intent record stores: a JSON array, e.g. [42] or ["uk",7].
func EncodeKey(vals []any) string {
	b, err := json.Marshal(vals)
	if err != nil {
		// Only a non-finite float fails, and fits refuses those before
		// anything is recorded; this is for error messages.
		return fmt.Sprint(vals)
	}
	return string(b)
}

// FromJSON converts a value EncodeKey encoded back to its canonical Go value.
func FromJSON(t engine.Type, v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	bad := fmt.Errorf("%v is not a %v", v, t)
	switch t {
	case engine.Integer:
		if n, ok := v.(json.Number); ok {
			return n.Int64()
		}
	case engine.Real:
		if n, ok := v.(json.Number); ok {
			return n.Float64()
		}
	case engine.Text:
		if s, ok := v.(string); ok {
			return s, nil
		}
	case engine.Blob:
		if s, ok := v.(string); ok {
			return base64.StdEncoding.DecodeString(s)
		}
	case engine.Bool:
		if b, ok := v.(bool); ok {
			return b, nil
		}
	case engine.Time:
		if s, ok := v.(string); ok {
			return time.Parse(time.RFC3339Nano, s)
		}
	}
	return nil, bad
}

// Compare orders two canonical values of one column: -1, 0 or 1; 0
// also when they cannot be ordered (NULL, different kinds).
func Compare(a, b any) int {
	switch a := a.(type) {
	case time.Time:
		if b, ok := b.(time.Time); ok {
			return a.Compare(b)
		}
	case int64:
		if b, ok := b.(int64); ok {
			return cmp.Compare(a, b)
		}
	case float64:
		if b, ok := b.(float64); ok {
			return cmp.Compare(a, b)
		}
	case string:
		if b, ok := b.(string); ok {
			return cmp.Compare(a, b)
		}
	}
	return 0
}

// Equal compares two values as the databases store them (or in
// canonical form): same type and value; -0.0 equals 0.0.
func Equal(a, b any) bool {
	switch x := a.(type) {
	case nil:
		return b == nil
	case []byte:
		y, ok := b.([]byte)
		return ok && bytes.Equal(x, y)
	case float64:
		y, ok := b.(float64)
		return ok && (x == y || (math.IsNaN(x) && math.IsNaN(y)))
	case time.Time:
		y, ok := b.(time.Time)
		return ok && x.Equal(y)
	}
	return a == b
}

// SQLOrder orders values of any kinds as SQL orders them: NULL first,
// then numbers, then text and times, then blobs.
func SQLOrder(a, b any) int {
	rank := func(v any) int {
		switch v.(type) {
		case nil:
			return 0
		case int64, float64, bool:
			return 1
		case string, time.Time:
			return 2
		}
		return 3
	}
	num := func(v any) float64 {
		switch x := v.(type) {
		case int64:
			return float64(x)
		case float64:
			return x
		case bool:
			if x {
				return 1
			}
		}
		return 0
	}
	ra, rb := rank(a), rank(b)
	if ra != rb {
		return ra - rb
	}
	switch ra {
	case 1:
		if x, ok := a.(int64); ok {
			if y, ok := b.(int64); ok {
				return cmp.Compare(x, y)
			}
		}
		return cmp.Compare(num(a), num(b))
	case 2:
		return strings.Compare(fmt.Sprint(JSON(a)), fmt.Sprint(JSON(b)))
	case 3:
		ab, _ := a.([]byte)
		bb, _ := b.([]byte)
		return bytes.Compare(ab, bb)
	}
	return 0
}

// Hash hashes a row of canonical values.
func Hash(row []any) uint64 {
	h := engine.NewRowHash()
	for _, v := range row {
		switch x := v.(type) {
		case nil:
			h.Null()
		case int64:
			h.Int(x)
		case float64:
			h.Real(x)
		case string:
			h.Text([]byte(x))
		case []byte:
			h.Blob(x)
		case bool:
			h.Bool(x)
		case time.Time:
			h.TimeMicros(x.UnixMicro())
		default:
			h.Text([]byte(fmt.Sprint(x)))
		}
	}
	return h.Sum()
}

// JSON makes v encodable: a non-finite float becomes its name.
func JSON(v any) any {
	if f, ok := v.(float64); ok && (math.IsNaN(f) || math.IsInf(f, 0)) {
		return fmt.Sprint(f)
	}
	if t, ok := v.(time.Time); ok {
		return t.UTC().Format(time.RFC3339Nano)
	}
	return v
}

// SQLLiteral renders a value the way SQL would spell it.
func SQLLiteral(v any) string {
	switch x := v.(type) {
	case nil:
		return "NULL"
	case string:
		return "'" + strings.ReplaceAll(x, "'", "''") + "'"
	case []byte:
		return fmt.Sprintf("X'%X'", x)
	case time.Time:
		return "'" + x.UTC().Format(time.RFC3339Nano) + "'"
	}
	return fmt.Sprint(v)
}
