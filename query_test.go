package tandem_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tandemdb/tandem"
	"github.com/tandemdb/tandem/internal/testcluster"
)

// Tests of values going through a real two-file cluster: what is refused
// (and then written nowhere), what comes back from Get, Find and Count,
// and how defaults are decided once and written identically everywhere.

// qtCluster opens a two-file cluster with the models' tables and returns
// it with the directory holding foo.db and bar.db.
func qtCluster(t testing.TB, models ...any) (*tandem.Cluster, string) {
	t.Helper()
	c, path := testcluster.New(t)
	if err := c.Migrate(context.Background(), models...); err != nil {
		t.Fatal(err)
	}
	return c, filepath.Dir(path)
}

// qtSameRows fails unless foo.db and bar.db hold identical rows, and
// returns the dump.
func qtSameRows(t *testing.T, dir string) string {
	t.Helper()
	d := testcluster.DumpDir(t, dir, "foo", "bar")
	if d[0] != d[1] {
		t.Fatalf("foo and bar differ:\nfoo:\n%s\nbar:\n%s", d[0], d[1])
	}
	return d[0]
}

// qtRowCounts returns the number of rows of table (and of pending intent
// records) on foo and on bar.
func qtRowCounts(t *testing.T, dir, table string) [4]int {
	t.Helper()
	foo, bar := filepath.Join(dir, "foo.db"), filepath.Join(dir, "bar.db")
	return [4]int{
		testcluster.Count(t, foo, table), testcluster.Count(t, bar, table),
		testcluster.Count(t, foo, "_tandem_pending"), testcluster.Count(t, bar, "_tandem_pending"),
	}
}

func qtPtr[T any](v T) *T { return &v }

// ---- 4. Values that do not fit ----------------------------------------

type vItem struct {
	ID    int64  `tandem:"id,pk"`
	Name  string `tandem:"name,size=3"`
	Note  string
	Score float64
	Ref   *string `tandem:"ref,notnull"`
	Big   uint64
	At    time.Time
	Data  []byte `tandem:"data,size=4"`
}

func validVItem() vItem {
	return vItem{ID: 7, Name: "abc", Note: "n", Score: 1, Ref: qtPtr("r"), Big: 1,
		At: time.Date(2024, 1, 2, 3, 4, 5, 6000, time.UTC), Data: []byte{1}}
}

func TestValueThatDoesNotFitIsRefusedAndWritesNothing(t *testing.T) {
	ctx := context.Background()
	c, dir := qtCluster(t, &vItem{})
	for _, tc := range []struct {
		name   string
		change func(*vItem)
		column string
		msg    string
	}{
		{"StringLongerThanSize", func(v *vItem) { v.Name = "abcd" }, "name", "4 characters given, the column holds at most 3"},
		{"MultiByteStringLongerThanSize", func(v *vItem) { v.Name = "żółw" }, "name", "4 characters given"},
		{"InvalidUTF8", func(v *vItem) { v.Note = "caf\xe9" }, "note", "not valid UTF-8"},
		{"NULByte", func(v *vItem) { v.Note = "a\x00b" }, "note", "NUL byte"},
		{"NaN", func(v *vItem) { v.Score = math.NaN() }, "score", "NaN cannot be stored"},
		{"PlusInf", func(v *vItem) { v.Score = math.Inf(1) }, "score", "+Inf cannot be stored"},
		{"MinusInf", func(v *vItem) { v.Score = math.Inf(-1) }, "score", "-Inf cannot be stored"},
		{"NilPointerOnNotNull", func(v *vItem) { v.Ref = nil }, "ref", "is NOT NULL"},
		{"Uint64AboveMaxInt64", func(v *vItem) { v.Big = math.MaxInt64 + 1 }, "big", "9223372036854775808 is larger than"},
		{"TimeYear10000", func(v *vItem) { v.At = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }, "at", "year 10000 is outside 1..9999"},
		{"BytesLongerThanSize", func(v *vItem) { v.Data = []byte("12345") }, "data", "5 bytes given, the column holds at most 4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := validVItem()
			tc.change(&v)
			orig := v
			err := c.Save(ctx, &v)
			if !errors.Is(err, tandem.ErrInvalidValue) {
				t.Fatalf("Save: err = %v, want ErrInvalidValue", err)
			}
			var ve *tandem.ValueError
			if !errors.As(err, &ve) {
				t.Fatalf("Save: %v (%T) is not a *ValueError", err, err)
			}
			if ve.Table != "v_item" || ve.Column != tc.column {
				t.Errorf("ValueError names %s.%s, want v_item.%s", ve.Table, ve.Column, tc.column)
			}
			if !strings.Contains(ve.Msg, tc.msg) || !strings.HasSuffix(ve.Msg, "(row id=7)") {
				t.Errorf("Msg = %q, want it to contain %q and end with (row id=7)", ve.Msg, tc.msg)
			}
			if !strings.HasPrefix(err.Error(), "v_item."+tc.column+": ") {
				t.Errorf("Error() = %q, want it to start with v_item.%s", err, tc.column)
			}
			if !reflect.DeepEqual(v, orig) && !(tc.name == "NaN") {
				t.Errorf("a refused Save changed the struct: %+v -> %+v", orig, v)
			}
			if n := qtRowCounts(t, dir, "v_item"); n != [4]int{} {
				t.Errorf("rows on foo, bar; pending on foo, bar = %v, want none", n)
			}
		})
	}
}

func TestValueMultiByteStringFitsSizeCountedInCharacters(t *testing.T) {
	ctx := context.Background()
	c, dir := qtCluster(t, &vItem{})
	v := validVItem()
	v.Name = "żół" // 3 characters, 6 bytes
	v.Data = []byte("1234")
	if err := c.Save(ctx, &v); err != nil {
		t.Fatal(err)
	}
	got, err := tandem.Get[vItem](ctx, c, int64(7))
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "żół" || string(got.Data) != "1234" {
		t.Errorf("read back %q %q", got.Name, got.Data)
	}
	qtSameRows(t, dir)
}

type vAuto struct {
	ID   int64  `tandem:"id,pk,auto"`
	Name string `tandem:"name,size=2"`
}

// A row whose key the primary has not assigned yet has no key to name.
func TestValueErrorOmitsRowKeyNotYetAssigned(t *testing.T) {
	c, dir := qtCluster(t, &vAuto{})
	err := c.Save(context.Background(), &vAuto{Name: "abc"})
	var ve *tandem.ValueError
	if !errors.As(err, &ve) {
		t.Fatalf("err = %v, want a *ValueError", err)
	}
	if ve.Table != "v_auto" || ve.Column != "name" || strings.Contains(ve.Msg, "(row") {
		t.Errorf("got %s.%s %q, want v_auto.name without a row", ve.Table, ve.Column, ve.Msg)
	}
	if n := qtRowCounts(t, dir, "v_auto"); n != [4]int{} {
		t.Errorf("rows/pending = %v, want none", n)
	}
}

func TestValueErrorInThirdSaveOfTxWritesNothingAnywhere(t *testing.T) {
	ctx := context.Background()
	c, dir := qtCluster(t, &vItem{}, &vAuto{})
	err := c.Tx(ctx, func(tx *tandem.Tx) error {
		first := validVItem()
		if err := tx.Save(ctx, &first); err != nil {
			return err
		}
		if err := tx.Save(ctx, &vAuto{Name: "ok"}); err != nil {
			return err
		}
		third := validVItem()
		third.ID = 8
		third.Name = "four"
		return tx.Save(ctx, &third)
	})
	var ve *tandem.ValueError
	if !errors.As(err, &ve) || ve.Column != "name" || !strings.Contains(ve.Msg, "(row id=8)") {
		t.Fatalf("Tx: err = %v, want the third save's ValueError", err)
	}
	for _, table := range []string{"v_item", "v_auto"} {
		if n := qtRowCounts(t, dir, table); n != [4]int{} {
			t.Errorf("%s: rows on foo, bar; pending on foo, bar = %v, want none", table, n)
		}
	}
	// The cluster still works afterwards.
	v := validVItem()
	if err := c.Save(ctx, &v); err != nil {
		t.Fatal(err)
	}
	qtSameRows(t, dir)
}

type vPair struct {
	A int64  `tandem:"a,pk"`
	B uint64 `tandem:"b,pk"`
	X string
}

// A key value that cannot be stored is a ValueError on Delete too, whatever
// its position in a composite key.
func TestValueErrorOnDeleteWithUnstorableSecondKeyColumn(t *testing.T) {
	ctx := context.Background()
	c, dir := qtCluster(t, &vPair{})
	if err := c.Save(ctx, &vPair{A: 1, B: 2, X: "x"}); err != nil {
		t.Fatal(err)
	}
	var err error
	func() {
		defer func() {
			if r := recover(); r != nil {
				t.Errorf("Delete panicked: %v", r)
			}
		}()
		err = c.Delete(ctx, &vPair{A: 1, B: math.MaxUint64})
	}()
	if !errors.Is(err, tandem.ErrInvalidValue) {
		t.Errorf("Delete: err = %v, want ErrInvalidValue", err)
	}
	if n := qtRowCounts(t, dir, "v_pair"); n[0] != 1 || n[1] != 1 {
		t.Errorf("rows on foo, bar = %v, want the row kept on both", n[:2])
	}
}

// ---- 5. Round trips -----------------------------------------------------

type rtAll struct {
	ID  int64 `tandem:"id,pk"`
	I8  int8
	I16 int16
	I32 int32
	I64 int64
	I   int
	U8  uint8
	U16 uint16
	U32 uint32
	U64 uint64
	F32 float32
	F64 float64
	S   string
	B   []byte
	OK  bool
	At  time.Time
	PI  *int64
	PS  *string
	PF  *float64
	PB  *bool
	PT  *time.Time
	PBy *[]byte
}

func TestRoundTripEveryFieldType(t *testing.T) {
	ctx := context.Background()
	c, dir := qtCluster(t, &rtAll{})
	plus0530 := time.FixedZone("+05:30", 5*3600+1800)
	minus8 := time.FixedZone("PST", -8*3600)
	for i, tc := range []struct {
		name string
		in   rtAll
		want *rtAll // the struct after Save and what Get returns; nil: in unchanged
	}{
		{name: "Zero", in: rtAll{B: []byte{}}},
		{name: "Maxima", in: rtAll{I8: math.MaxInt8, I16: math.MaxInt16, I32: math.MaxInt32, I64: math.MaxInt64, I: math.MaxInt,
			U8: math.MaxUint8, U16: math.MaxUint16, U32: math.MaxUint32, U64: math.MaxInt64,
			F32: math.MaxFloat32, F64: math.MaxFloat64, B: []byte{0xff}, OK: true}},
		{name: "Minima", in: rtAll{I8: math.MinInt8, I16: math.MinInt16, I32: math.MinInt32, I64: math.MinInt64, I: math.MinInt,
			F32: -math.SmallestNonzeroFloat32, F64: math.SmallestNonzeroFloat64, B: []byte{0}}},
		{name: "Fractions", in: rtAll{F32: 0.1, F64: 0.1, B: []byte{}}},
		{name: "UnicodeString", in: rtAll{S: "żółw 😀 中文 'quoted' \"double\" \n\t\\", B: []byte{}}},
		{name: "LongString", in: rtAll{S: strings.Repeat("tandem ", 150000), B: []byte{}}},
		{name: "BinaryBytes", in: rtAll{B: []byte{0, 1, 2, 0xfe, 0xff, 0}}},
		{name: "NonNilPointers", in: rtAll{B: []byte{}, PI: qtPtr(int64(-5)), PS: qtPtr(""), PF: qtPtr(0.0), PB: qtPtr(false),
			PT: qtPtr(time.Date(2001, 2, 3, 4, 5, 6, 7000, time.UTC)), PBy: qtPtr([]byte{9})}},
		{name: "PointerToEmptyBytes", in: rtAll{B: []byte{}, PBy: qtPtr([]byte{})}},
		{
			name: "TimeInOtherZoneWithNanoseconds",
			in:   rtAll{B: []byte{}, At: time.Date(2024, 2, 29, 23, 59, 59, 123456789, plus0530), PT: qtPtr(time.Date(1999, 12, 31, 16, 0, 0, 999, minus8))},
			want: &rtAll{B: []byte{}, At: time.Date(2024, 2, 29, 18, 29, 59, 123456000, time.UTC), PT: qtPtr(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC))},
		},
		{
			name: "TimeEdges",
			in:   rtAll{B: []byte{}, At: time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC), PT: qtPtr(time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC))},
			want: &rtAll{B: []byte{}, At: time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC), PT: qtPtr(time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC))},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := int64(i + 1)
			v := tc.in
			v.ID = id
			want := tc.in
			if tc.want != nil {
				want = *tc.want
			}
			want.ID = id
			if err := c.Save(ctx, &v); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(v, want) {
				t.Errorf("after Save the struct is\n %+v\nwant\n %+v", v, want)
			}
			got, err := tandem.Get[rtAll](ctx, c, id)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*got, want) {
				t.Errorf("Get returned\n %+v\nwant\n %+v", *got, want)
			}
			if !reflect.DeepEqual(*got, v) {
				t.Errorf("Get differs from the saved struct")
			}
			if tc.want != nil && (got.At != v.At || got.At.Location() != time.UTC) {
				t.Errorf("times: saved %v (%v), read %v (%v)", v.At, v.At.Location(), got.At, got.At.Location())
			}
			// Find by the round-tripped values finds the row.
			list, err := tandem.Find[rtAll](ctx, c, tandem.Eq("at", v.At), tandem.Eq("s", v.S), tandem.Eq("i64", v.I64), tandem.Eq("f32", v.F32), tandem.Eq("ok", v.OK), tandem.Eq("u64", v.U64))
			if err != nil || !slices.ContainsFunc(list, func(r rtAll) bool { return reflect.DeepEqual(r, want) }) {
				t.Errorf("Find by the row's values: %d rows without the row, %v", len(list), err)
			}
		})
	}
	n, err := tandem.Count[rtAll](ctx, c)
	if err != nil || n != 11 {
		t.Errorf("Count = %d, %v; want 11", n, err)
	}
	qtSameRows(t, dir)
}

// A nil pointer is NULL and comes back nil; a nil []byte in a non-pointer
// field is the field's zero value and must be storable like "" is for a
// string.
func TestRoundTripNilAndEmptyBytes(t *testing.T) {
	ctx := context.Background()
	c, dir := qtCluster(t, &rtAll{})
	v := rtAll{ID: 1, B: []byte{}}
	if err := c.Save(ctx, &v); err != nil {
		t.Fatal(err)
	}
	got, err := tandem.Get[rtAll](ctx, c, int64(1))
	if err != nil {
		t.Fatal(err)
	}
	if got.B == nil || len(got.B) != 0 || got.PBy != nil || got.PI != nil || got.PT != nil {
		t.Errorf("empty bytes / nil pointers read back as B=%#v PBy=%v PI=%v PT=%v", got.B, got.PBy, got.PI, got.PT)
	}
	nullRows, err := tandem.Count[rtAll](ctx, c, tandem.Eq("p_by", nil), tandem.Where("b IS NOT NULL"))
	if err != nil || nullRows != 1 {
		t.Errorf("Count(p_by IS NULL, b IS NOT NULL) = %d, %v", nullRows, err)
	}

	zero := rtAll{ID: 2} // B is nil
	if err := c.Save(ctx, &zero); err != nil {
		t.Errorf("Save of a nil []byte field: %v", err)
	}
	qtSameRows(t, dir)
}

type rtPair struct {
	Country string `tandem:"country,pk"`
	Num     int    `tandem:"num,pk"`
	Name    string
}

func TestRoundTripCompositeKey(t *testing.T) {
	ctx := context.Background()
	c, dir := qtCluster(t, &rtPair{})
	for _, v := range []rtPair{{"uk", 7, "a"}, {"uk", 8, "b"}, {"fr", 7, "c"}} {
		if err := c.Save(ctx, &v); err != nil {
			t.Fatal(err)
		}
	}
	// Saving the same key again replaces the row.
	if err := c.Save(ctx, &rtPair{"uk", 8, "b2"}); err != nil {
		t.Fatal(err)
	}
	got, err := tandem.Get[rtPair](ctx, c, "uk", 8)
	if err != nil || *got != (rtPair{"uk", 8, "b2"}) {
		t.Errorf("Get(uk, 8) = %+v, %v", got, err)
	}
	if _, err := tandem.Get[rtPair](ctx, c, "de", 7); !errors.Is(err, tandem.ErrNotFound) {
		t.Errorf("Get(de, 7): err = %v, want ErrNotFound", err)
	}
	for _, key := range [][]any{{"uk"}, {"uk", 8, 1}, {}} {
		_, err := tandem.Get[rtPair](ctx, c, key...)
		if err == nil || errors.Is(err, tandem.ErrNotFound) || !strings.Contains(err.Error(), "the key has 2 (country, num)") {
			t.Errorf("Get%v: err = %v, want a wrong key count error", key, err)
		}
	}
	list, err := tandem.Find[rtPair](ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	want := []rtPair{{"fr", 7, "c"}, {"uk", 7, "a"}, {"uk", 8, "b2"}}
	if !reflect.DeepEqual(list, want) {
		t.Errorf("Find (key order) = %+v, want %+v", list, want)
	}
	if err := c.Delete(ctx, &rtPair{Country: "uk", Num: 7}); err != nil {
		t.Fatal(err)
	}
	if n, _ := tandem.Count[rtPair](ctx, c); n != 2 {
		t.Errorf("Count after delete = %d, want 2", n)
	}
	qtSameRows(t, dir)
}

type qItem struct {
	ID    int64  `tandem:"id,pk,auto"`
	Title string `tandem:"title,size=50,index"`
	Price *float64
	Qty   int
}

func qtItems(t testing.TB) (*tandem.Cluster, string) {
	t.Helper()
	c, dir := qtCluster(t, &qItem{})
	for _, v := range []qItem{
		{Title: "go", Price: qtPtr(20.0), Qty: 5},
		{Title: "sql", Price: nil, Qty: 1},
		{Title: "yaml", Price: qtPtr(5.5), Qty: 5},
		{Title: "sqlite", Price: nil, Qty: 3},
		{Title: "it's ?", Price: qtPtr(1.0), Qty: 0},
	} {
		if err := c.Save(context.Background(), &v); err != nil {
			t.Fatal(err)
		}
	}
	return c, dir
}

func qtIDs(list []qItem) []int64 {
	ids := []int64{}
	for _, v := range list {
		ids = append(ids, v.ID)
	}
	return ids
}

func TestQueryFindAndCount(t *testing.T) {
	ctx := context.Background()
	c, dir := qtItems(t)
	for _, tc := range []struct {
		name string
		opts []tandem.QueryOption
		ids  []int64 // Find's result in order; Count must be len(ids)
	}{
		{"AllInKeyOrder", nil, []int64{1, 2, 3, 4, 5}},
		{"Where", []tandem.QueryOption{tandem.Where("qty >= ?", 3)}, []int64{1, 3, 4}},
		{"WhereTwoArgs", []tandem.QueryOption{tandem.Where("qty > ? AND title LIKE ?", 0, "s%")}, []int64{2, 4}},
		{"WheresAreANDed", []tandem.QueryOption{tandem.Where("qty = ?", 5), tandem.Where("price < ?", 10)}, []int64{3}},
		{"QuestionMarkInQuotedLiteral", []tandem.QueryOption{tandem.Where("title = 'it''s ?'")}, []int64{5}},
		{"Eq", []tandem.QueryOption{tandem.Eq("title", "sql")}, []int64{2}},
		{"EqNilIsNull", []tandem.QueryOption{tandem.Eq("price", nil)}, []int64{2, 4}},
		{"EqPointer", []tandem.QueryOption{tandem.Eq("price", qtPtr(5.5))}, []int64{3}},
		{"WhereAndEq", []tandem.QueryOption{tandem.Where("qty < ?", 5), tandem.Eq("price", nil)}, []int64{2, 4}},
		{"WhereInSlice", []tandem.QueryOption{tandem.Where("id IN (?)", []int64{3, 4})}, []int64{3, 4}},
		{"WhereInSliceOfStrings", []tandem.QueryOption{tandem.Where("title IN (?) AND qty > ?", []string{"go", "sql", "none"}, 1)}, []int64{1}},
		{"WhereInArrayThenEq", []tandem.QueryOption{tandem.Where("qty IN (?)", [2]int{5, 3}), tandem.Eq("price", nil)}, []int64{4}},
		{"WhereInTwoLists", []tandem.QueryOption{tandem.Where("id IN (?) OR id IN (?)", []int{1}, []uint8{0x35})}, []int64{1}},
		{"WhereNotInSlice", []tandem.QueryOption{tandem.Where("id NOT IN (?)", []int{1, 2, 3})}, []int64{4, 5}},
		{"NoMatch", []tandem.QueryOption{tandem.Eq("title", "none")}, []int64{}},
		{"OrderByDescThenAsc", []tandem.QueryOption{tandem.OrderBy("qty DESC", "title")}, []int64{1, 3, 4, 2, 5}},
		{"OrderByLowerCaseDirection", []tandem.QueryOption{tandem.OrderBy("title asc")}, []int64{1, 5, 2, 4, 3}},
		{"OrderByTwoCalls", []tandem.QueryOption{tandem.OrderBy("qty"), tandem.OrderBy("id desc")}, []int64{5, 2, 4, 3, 1}},
		{"LimitOffset", []tandem.QueryOption{tandem.OrderBy("title"), tandem.Limit(2), tandem.Offset(1)}, []int64{5, 2}},
		{"OffsetOnly", []tandem.QueryOption{tandem.Offset(3)}, []int64{4, 5}},
		{"LimitZero", []tandem.QueryOption{tandem.Limit(0)}, []int64{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			list, err := tandem.Find[qItem](ctx, c, tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			if got := qtIDs(list); !reflect.DeepEqual(got, tc.ids) {
				t.Errorf("Find ids = %v, want %v", got, tc.ids)
			}
			if strings.HasPrefix(tc.name, "Limit") || strings.HasPrefix(tc.name, "Offset") {
				return // Count counts every matching row
			}
			n, err := tandem.Count[qItem](ctx, c, tc.opts...)
			if err != nil || n != int64(len(tc.ids)) {
				t.Errorf("Count = %d, %v; want %d", n, err, len(tc.ids))
			}
		})
	}
	qtSameRows(t, dir)
}

func TestQueryFindReturnsFullRows(t *testing.T) {
	c, _ := qtItems(t)
	list, err := tandem.Find[qItem](context.Background(), c, tandem.Eq("title", "yaml"))
	if err != nil || len(list) != 1 {
		t.Fatalf("Find: %v, %v", list, err)
	}
	if want := (qItem{ID: 3, Title: "yaml", Price: list[0].Price, Qty: 5}); list[0] != want || *list[0].Price != 5.5 {
		t.Errorf("Find = %+v", list[0])
	}
}

// Eq documents "column IS NULL for a nil value": a typed nil pointer, the
// value a nullable field holds, is a nil value too.
func TestQueryEqTypedNilPointerIsNull(t *testing.T) {
	c, _ := qtItems(t)
	var none *float64
	list, err := tandem.Find[qItem](context.Background(), c, tandem.Eq("price", none))
	if err != nil {
		t.Fatal(err)
	}
	if got := qtIDs(list); !reflect.DeepEqual(got, []int64{2, 4}) {
		t.Errorf("Find(Eq(price, (*float64)(nil))) ids = %v, want [2 4]", got)
	}
}

func TestQueryRejectsBadOptions(t *testing.T) {
	ctx := context.Background()
	c, _ := qtItems(t)
	for _, tc := range []struct {
		name  string
		opts  []tandem.QueryOption
		msg   string
		count bool // Count rejects it too (Count ignores ordering)
	}{
		{"OrderByUnknownColumn", []tandem.QueryOption{tandem.OrderBy("nope")}, `order by "nope": no such column (have: id, title, price, qty)`, false},
		{"OrderByInjection", []tandem.QueryOption{tandem.OrderBy("title; DROP TABLE q_item")}, "no such column", false},
		{"OrderByBadDirection", []tandem.QueryOption{tandem.OrderBy("qty SIDEWAYS")}, "want ASC or DESC", false},
		{"OrderByTwoDirections", []tandem.QueryOption{tandem.OrderBy("qty DESC ASC")}, "want ASC or DESC", false},
		{"FewerArgsThanPlaceholders", []tandem.QueryOption{tandem.Where("qty > ? AND qty < ?", 1)}, "2 placeholders and 1 arguments", true},
		{"MoreArgsThanPlaceholders", []tandem.QueryOption{tandem.Where("qty > ?", 1, 2)}, "1 placeholders and 2 arguments", true},
		{"CountAcrossWheres", []tandem.QueryOption{tandem.Where("qty > ?"), tandem.Where("qty < ?", 1)}, "2 placeholders and 1 arguments", true},
		{"Semicolon", []tandem.QueryOption{tandem.Where("qty > 1; DELETE FROM q_item")}, "';' is not allowed", true},
		{"UnterminatedQuote", []tandem.QueryOption{tandem.Where("title = 'x")}, "unterminated quote", true},
		{"EqUnknownColumn", []tandem.QueryOption{tandem.Eq("nope", 1)}, `no column "nope"`, true},
		{"UnsupportedArgument", []tandem.QueryOption{tandem.Where("qty = ?", map[string]int{})}, "unsupported", true},
		{"EmptyList", []tandem.QueryOption{tandem.Where("id IN (?)", []int64{})}, "argument 1 is an empty list", true},
		{"ListOfLists", []tandem.QueryOption{tandem.Where("id IN (?)", [][]int{{1}})}, "a list ([]int) is not one value", true},
		{"ListInEq", []tandem.QueryOption{tandem.Eq("id", []int{1, 2})}, "a list ([]int) is not one value", true},
		{"PointerToList", []tandem.QueryOption{tandem.Where("id = ?", &[]int{1})}, "a list ([]int) is not one value", true},
		{"ArgumentTooLarge", []tandem.QueryOption{tandem.Eq("qty", uint64(math.MaxUint64))}, "larger than", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			list, err := tandem.Find[qItem](ctx, c, tc.opts...)
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("Find: %d rows, err = %v; want an error containing %q", len(list), err, tc.msg)
			}
			if tc.count {
				if _, err := tandem.Count[qItem](ctx, c, tc.opts...); err == nil || !strings.Contains(err.Error(), tc.msg) {
					t.Errorf("Count: err = %v; want an error containing %q", err, tc.msg)
				}
			}
		})
	}
	if n, err := tandem.Count[qItem](ctx, c); err != nil || n != 5 {
		t.Errorf("the table changed: Count = %d, %v", n, err)
	}
}

func TestQueryGetMissingKeyIsErrNotFound(t *testing.T) {
	ctx := context.Background()
	c, _ := qtItems(t)
	got, err := tandem.Get[qItem](ctx, c, int64(99))
	if got != nil || !errors.Is(err, tandem.ErrNotFound) {
		t.Errorf("Get(99) = %v, %v; want ErrNotFound", got, err)
	}
	if err != nil && !strings.Contains(err.Error(), "q_item [99]") {
		t.Errorf("message %q does not name the table and key", err)
	}
	if _, err := tandem.Get[qItem](ctx, c); err == nil || errors.Is(err, tandem.ErrNotFound) {
		t.Errorf("Get with no key: err = %v, want a key count error", err)
	}
	if _, err := tandem.Get[qItem](ctx, c, 1, 2); err == nil || errors.Is(err, tandem.ErrNotFound) {
		t.Errorf("Get with two keys: err = %v, want a key count error", err)
	}
	// Keys of any integer type find the row.
	for _, k := range []any{1, int8(1), uint16(1), int64(1)} {
		if v, err := tandem.Get[qItem](ctx, c, k); err != nil || v.Title != "go" {
			t.Errorf("Get(%T 1) = %v, %v", k, v, err)
		}
	}
}

// Get with a key value no row can have returns an error, never panics.
func TestQueryGetWithNonFiniteKeyIsAnError(t *testing.T) {
	c, _ := qtItems(t)
	for _, k := range []any{math.Inf(1), math.Inf(-1), math.NaN()} {
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("Get(%v) panicked: %v", k, r)
				}
			}()
			if _, err := tandem.Get[qItem](context.Background(), c, k); err == nil {
				t.Errorf("Get(%v): no error", k)
			}
		}()
	}
}

func TestQueryReadsInsideTxSeeTheTxWrites(t *testing.T) {
	ctx := context.Background()
	c, _ := qtItems(t)
	err := c.Tx(ctx, func(tx *tandem.Tx) error {
		if err := tx.Save(ctx, &qItem{Title: "new", Qty: 9}); err != nil {
			return err
		}
		n, err := tandem.Count[qItem](ctx, tx, tandem.Eq("qty", 9))
		if err != nil || n != 1 {
			t.Errorf("Count in tx = %d, %v; want 1", n, err)
		}
		v, err := tandem.Get[qItem](ctx, tx, int64(6))
		if err != nil || v.Title != "new" {
			t.Errorf("Get in tx = %v, %v", v, err)
		}
		return errors.New("roll back")
	})
	if err == nil || err.Error() != "roll back" {
		t.Fatalf("Tx: %v", err)
	}
	if n, _ := tandem.Count[qItem](ctx, c); n != 5 {
		t.Errorf("Count after rollback = %d, want 5", n)
	}
}

// ---- 6. Defaults --------------------------------------------------------

type dItem struct {
	ID      int64     `tandem:"id,pk,auto"`
	Count   int       `tandem:"count,default=42"`
	Ratio   float64   `tandem:"ratio,default=2.5"`
	Label   string    `tandem:"label,default=it's a, \"b\""`
	Flag    *bool     `tandem:"flag,default=true"`
	Created time.Time `tandem:"created,default=now"`
	Opt     *int64    `tandem:"opt,default=9"`
}

func TestDefaultFillsZeroFieldsIdenticallyOnBothFiles(t *testing.T) {
	ctx := context.Background()
	c, dir := qtCluster(t, &dItem{})
	before := time.Now().UTC().Truncate(time.Microsecond)
	v := dItem{}
	if err := c.Save(ctx, &v); err != nil {
		t.Fatal(err)
	}
	after := time.Now().UTC()
	if v.ID != 1 || v.Count != 42 || v.Ratio != 2.5 || v.Label != `it's a, "b"` || v.Flag == nil || !*v.Flag || v.Opt == nil || *v.Opt != 9 {
		t.Errorf("after Save: %+v", v)
	}
	if v.Created.Before(before) || v.Created.After(after) || v.Created.Location() != time.UTC || v.Created.Nanosecond()%1000 != 0 {
		t.Errorf("Created = %v, want the save's time in UTC microseconds within [%v, %v]", v.Created, before, after)
	}
	got, err := tandem.Get[dItem](ctx, c, v.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(*got, v) {
		t.Errorf("Get = %+v, want the saved struct %+v", *got, v)
	}

	// Set fields keep their values.
	set := dItem{Count: 5, Ratio: -1, Label: "x", Flag: qtPtr(false), Created: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), Opt: qtPtr(int64(1))}
	if err := c.Save(ctx, &set); err != nil {
		t.Fatal(err)
	}
	if set.Count != 5 || set.Ratio != -1 || set.Label != "x" || !set.Created.Equal(time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)) || *set.Opt != 1 || *set.Flag {
		t.Errorf("set fields changed: %+v", set)
	}

	dump := qtSameRows(t, dir)
	for _, want := range []string{`1,42,2.5,'it''s a, "b"',1,'` + v.Created.Format("2006-01-02T15:04:05.000000Z") + `',9`} {
		if !strings.Contains(dump, want) {
			t.Errorf("dump lacks the row %s:\n%s", want, dump)
		}
	}
}

// Every save of one transaction takes the same "now": the time is decided
// once, in Go, not by each database.
func TestDefaultNowIsOneTimePerTransaction(t *testing.T) {
	ctx := context.Background()
	c, dir := qtCluster(t, &dItem{})
	a, b := dItem{}, dItem{}
	err := c.Tx(ctx, func(tx *tandem.Tx) error {
		if err := tx.Save(ctx, &a); err != nil {
			return err
		}
		time.Sleep(2 * time.Millisecond)
		return tx.Save(ctx, &b)
	})
	if err != nil {
		t.Fatal(err)
	}
	if a.Created != b.Created || a.Created.IsZero() {
		t.Errorf("Created differ within a transaction: %v, %v", a.Created, b.Created)
	}
	qtSameRows(t, dir)
}

// ---- Index names are per database, not per table -------------------------

type ixShelf struct {
	ID   int64
	Code string `tandem:"code,unique=by_code"`
}

type ixCrate struct {
	ID   int64
	Code string `tandem:"code,unique=by_code"`
}

// Two models may both name an index by_code. Index names are global to a
// SQLite (and PostgreSQL) database, so either the model names must be
// made distinct or Migrate must refuse; what must not happen is that the
// second table silently gets no unique index.
func TestModelUniqueIndexNamedAlikeInTwoModelsIsEnforcedOrRefused(t *testing.T) {
	ctx := context.Background()
	c, path := testcluster.New(t)
	if err := c.Migrate(ctx, &ixShelf{}, &ixCrate{}); err != nil {
		return // refused: acceptable
	}
	if err := c.Save(ctx, &ixCrate{ID: 1, Code: "x"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Save(ctx, &ixCrate{ID: 2, Code: "x"}); err == nil {
		t.Errorf("two ix_crate rows with code x saved: the unique index was silently not created")
	}
	qtSameRows(t, filepath.Dir(path))
}

// Note is a model with a text column that may hold time-like text.
type Note struct {
	ID   int64  `tandem:"id,pk"`
	Text string `tandem:"text,size=64"`
}

// Text that looks like a time is text: it reads back as the string saved.
func TestTextThatLooksLikeATimeReadsBackAsText(t *testing.T) {
	c, _ := testcluster.New(t)
	ctx := context.Background()
	if err := c.Migrate(ctx, &Note{}); err != nil {
		t.Fatal(err)
	}
	for i, text := range []string{"2026-01-01T00:00:00Z", "2026-01-01T00:00:00.123456789+02:00"} {
		if err := c.Save(ctx, &Note{ID: int64(i), Text: text}); err != nil {
			t.Fatal(err)
		}
		got, err := tandem.Get[Note](ctx, c, int64(i))
		if err != nil || got.Text != text {
			t.Errorf("Get note %d: %+v, %v; want text %q", i, got, err, text)
		}
	}
}

// FuzzWhere: Find and Count with conditions and arguments of any kind
// (drawn from the input) return rows or an error, and never panic. The
// seeds cover lists, bytes, pointers, nested lists, maps and channels.
func FuzzWhere(f *testing.F) {
	c, _ := qtItems(f)
	for _, seed := range []struct {
		cond  string
		kinds []byte
	}{
		{"id IN (?)", []byte{3}},
		{"id IN (?) AND qty > ?", []byte{3, 0}},
		{"title = ?", []byte{1}},
		{"id = ?", []byte{4}},
		{"id IN (?)", []byte{5}},
		{"qty = ?", []byte{6, 7}},
		{"? IS NULL", []byte{8}},
		{"id IN (?) OR title IN (?)", []byte{9, 10}},
		{"title = '?' OR id = ?", []byte{11}},
	} {
		f.Add(seed.cond, seed.kinds)
	}
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, cond string, kinds []byte) {
		var args []any
		for i, k := range kinds {
			args = append(args, fuzzArg(k, i))
		}
		list, err := tandem.Find[qItem](ctx, c, tandem.Where(cond, args...))
		if err == nil && len(list) > 5 {
			t.Fatalf("Find returned %d rows of 5", len(list))
		}
		_, _ = tandem.Count[qItem](ctx, c, tandem.Where(cond, args...))
	})
}

// fuzzArg is an argument of the kind k picks.
func fuzzArg(k byte, i int) any {
	switch k % 16 {
	case 0:
		return nil
	case 1:
		return fmt.Sprint("go", i)
	case 2:
		return []byte{byte(i)}
	case 3:
		return []int64{int64(i), 3, 4}
	case 4:
		return [2]uint16{1, uint16(i)}
	case 5:
		return []int{}
	case 6:
		return map[string]int{"a": i}
	case 7:
		return make(chan int)
	case 8:
		return &[]string{"x"}
	case 9:
		return [][]int{{i}}
	case 10:
		return []any{1, "x", nil, []byte("b")}
	case 11:
		return math.NaN()
	case 12:
		return struct{ A int }{i}
	case 13:
		return func() {}
	case 14:
		return [3]byte{1, 2, byte(i)}
	default:
		return qtPtr(float64(i))
	}
}
