package tandem

import (
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/tandemdb/tandem/engine"
)

// Internal tests of how Go struct types become tables (newModel, parseTag,
// snake), of the value checks every engine shares (fits) and of the
// placeholder rewriting of Where conditions (rebind).

func tagModel[T any](t *testing.T) *model {
	t.Helper()
	m, err := newModel(reflect.TypeFor[T]())
	if err != nil {
		t.Fatalf("newModel(%v): %v", reflect.TypeFor[T](), err)
	}
	return m
}

func TestModelSnakeCasesGoNames(t *testing.T) {
	for in, want := range map[string]string{
		"ID":         "id",
		"Title":      "title",
		"BookID":     "book_id",
		"ISBN":       "isbn",
		"CreatedAt":  "created_at",
		"HTTPServer": "http_server",
		"JSONData":   "json_data",
		"userName":   "user_name",
		"A":          "a",
		"already_ok": "already_ok",
		"ÄrgerNis":   "ärger_nis",
		"":           "",
	} {
		if got := snake(in); got != want {
			t.Errorf("snake(%q) = %q, want %q", in, got, want)
		}
	}
}

type modelNamed struct {
	ID         int64
	BookTitle  string
	ISBN       string `tandem:"isbn_code"`
	HTTPServer string `tandem:",size=20"`
	Rating     float64
	Cover      []byte
	Published  bool
	At         time.Time
	Note       *string
	Skipped    string `tandem:"-"`
	hidden     string
}

func TestModelMapsFieldsToColumnsByNameAndType(t *testing.T) {
	m := tagModel[modelNamed](t)
	want := engine.Table{
		Name: "model_named",
		Columns: []engine.Column{
			{Name: "id", Type: engine.Integer, NotNull: true, Auto: true},
			{Name: "book_title", Type: engine.Text, NotNull: true},
			{Name: "isbn_code", Type: engine.Text, NotNull: true},
			{Name: "http_server", Type: engine.Text, NotNull: true, Size: 20},
			{Name: "rating", Type: engine.Real, NotNull: true},
			{Name: "cover", Type: engine.Blob, NotNull: true},
			{Name: "published", Type: engine.Bool, NotNull: true},
			{Name: "at", Type: engine.Time, NotNull: true},
			{Name: "note", Type: engine.Text},
		},
		PK: []string{"id"},
	}
	if !reflect.DeepEqual(m.table, want) {
		t.Errorf("table:\n got %+v\nwant %+v", m.table, want)
	}
	if m.auto != 0 || !reflect.DeepEqual(m.nonAuto, []int{1, 2, 3, 4, 5, 6, 7, 8}) {
		t.Errorf("auto = %d, nonAuto = %v", m.auto, m.nonAuto)
	}
}

type modelIntKinds struct {
	ID  uint32
	I   int
	I8  int8
	U64 uint64
	F32 float32
}

type modelStringID struct {
	ID   string
	Name string
}

type modelCodeKey struct {
	ID   int64
	Code string `tandem:"code,pk"`
}

type modelComposite struct {
	Country string `tandem:"country,pk"`
	Name    string
	Number  int `tandem:"number,pk"`
}

type modelExplicitAuto struct {
	Key  int64 `tandem:"key,pk,auto"`
	Name string
}

type modelStringPK struct {
	Slug string `tandem:"slug,pk"`
}

func TestModelPrimaryKey(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    func(*testing.T) *model
		pk   []string
		auto string // "" for none
	}{
		{"IntegerIDIsAutoKeyByConvention", tagModel[modelIntKinds], []string{"id"}, "id"},
		{"StringIDIsKeyByConventionButNotAuto", tagModel[modelStringID], []string{"id"}, ""},
		{"ExplicitPKOverridesIDConvention", tagModel[modelCodeKey], []string{"code"}, ""},
		{"CompositeKeyInFieldOrder", tagModel[modelComposite], []string{"country", "number"}, ""},
		{"ExplicitAutoKey", tagModel[modelExplicitAuto], []string{"key"}, "key"},
		{"StringPK", tagModel[modelStringPK], []string{"slug"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := tc.m(t)
			if !reflect.DeepEqual(m.table.PK, tc.pk) {
				t.Errorf("PK = %v, want %v", m.table.PK, tc.pk)
			}
			var auto []string
			for _, c := range m.table.Columns {
				if c.Auto {
					auto = append(auto, c.Name)
				}
			}
			switch {
			case tc.auto == "" && (len(auto) > 0 || m.auto != -1):
				t.Errorf("auto columns %v (m.auto=%d), want none", auto, m.auto)
			case tc.auto != "" && (len(auto) != 1 || auto[0] != tc.auto || m.table.Columns[m.auto].Name != tc.auto):
				t.Errorf("auto columns %v, want %s", auto, tc.auto)
			}
		})
	}
}

type modelNullable struct {
	ID       int64
	Plain    string
	Optional *string
	Required *string `tandem:",notnull"`
	NotNull  int     `tandem:",notnull"`
}

func TestModelPointersAreNullableUnlessNotNull(t *testing.T) {
	m := tagModel[modelNullable](t)
	want := map[string]bool{"id": true, "plain": true, "optional": false, "required": true, "not_null": true}
	for _, c := range m.table.Columns {
		if c.NotNull != want[c.Name] {
			t.Errorf("column %s: NotNull = %v, want %v", c.Name, c.NotNull, want[c.Name])
		}
	}
}

type modelIndexed struct {
	ID      int64
	Email   string `tandem:"email,unique"`
	City    string `tandem:"city,index"`
	First   string `tandem:"first,unique=by_name"`
	Last    string `tandem:"last,unique=by_name"`
	Country string `tandem:"country,index=by_place"`
	Zip     string `tandem:"zip,index=by_place,index"`
}

func TestModelIndexesSingleAndGroupedByName(t *testing.T) {
	m := tagModel[modelIndexed](t)
	want := []engine.Index{
		{Name: "model_indexed_email_key", Unique: true, Columns: []string{"email"}},
		{Name: "model_indexed_city_idx", Columns: []string{"city"}},
		{Name: "model_indexed_by_name", Unique: true, Columns: []string{"first", "last"}},
		{Name: "model_indexed_by_place", Columns: []string{"country", "zip"}},
		{Name: "model_indexed_zip_idx", Columns: []string{"zip"}},
	}
	if !reflect.DeepEqual(m.table.Indexes, want) {
		t.Errorf("indexes:\n got %+v\nwant %+v", m.table.Indexes, want)
	}
}

type modelDefaults struct {
	ID      int64
	Count   int       `tandem:"count,default=42"`
	Neg     int8      `tandem:"neg,default=-7"`
	Ratio   float64   `tandem:"ratio,default=1.5"`
	Label   string    `tandem:"label,size=40,default=it's a, b"`
	Flag    *bool     `tandem:"flag,default=true"`
	Off     *bool     `tandem:"off,default=false"`
	Created time.Time `tandem:"created,default=now"`
	Opt     *int      `tandem:"opt,default=5"`
	Word    string    `tandem:"word,default=now"`
}

func TestModelDefaultValues(t *testing.T) {
	m := tagModel[modelDefaults](t)
	for _, tc := range []struct {
		col     string
		literal string
		value   any
		now     bool
	}{
		{"id", "", nil, false},
		{"count", "42", int64(42), false},
		{"neg", "-7", int64(-7), false},
		{"ratio", "1.5", 1.5, false},
		{"label", "'it''s a, b'", "it's a, b", false},
		{"flag", "1", true, false},
		{"off", "0", false, false},
		{"created", "", nil, true},
		{"opt", "5", int64(5), false},
		{"word", "'now'", "now", false}, // now means the current time on time columns only
	} {
		i := tagColumnIndex(t, m, tc.col)
		c := m.table.Columns[i]
		if c.Default != tc.literal || !reflect.DeepEqual(m.def[i], tc.value) || m.defNow[i] != tc.now {
			t.Errorf("column %s: Default=%q def=%#v defNow=%v, want %q %#v %v", tc.col, c.Default, m.def[i], m.defNow[i], tc.literal, tc.value, tc.now)
		}
	}
}

func tagColumnIndex(t *testing.T, m *model, name string) int {
	t.Helper()
	for i, c := range m.table.Columns {
		if c.Name == name {
			return i
		}
	}
	t.Fatalf("no column %s in %v", name, m.columnNames())
	return -1
}

type ModelBase struct {
	ID      int64
	Created time.Time
}

type modelEmbedding struct {
	ModelBase
	Title   string
	Extra   ModelBase `tandem:"-"`
	Updated time.Time
}

func TestModelFlattensEmbeddedStructs(t *testing.T) {
	m := tagModel[modelEmbedding](t)
	if got, want := m.columnNames(), "id, created, title, updated"; got != want {
		t.Fatalf("columns %s, want %s", got, want)
	}
	if !reflect.DeepEqual(m.fields, [][]int{{0, 0}, {0, 1}, {1}, {3}}) {
		t.Errorf("field paths %v", m.fields)
	}
	if !reflect.DeepEqual(m.table.PK, []string{"id"}) || m.auto != 0 {
		t.Errorf("PK %v auto %d: want the embedded ID as auto key", m.table.PK, m.auto)
	}
}

type modelRenamed struct {
	ID int64
}

func (modelRenamed) TableName() string { return "renamed_things" }

type modelRenamedPtr struct {
	ID int64
}

func (*modelRenamedPtr) TableName() string { return "ptr_things" }

func TestModelTableNameMethod(t *testing.T) {
	if got := tagModel[modelRenamed](t).table.Name; got != "renamed_things" {
		t.Errorf("value receiver: table %q", got)
	}
	if got := tagModel[modelRenamedPtr](t).table.Name; got != "ptr_things" {
		t.Errorf("pointer receiver: table %q", got)
	}
}

// Types newModel must refuse, each with a part of the message.
type (
	badNoPK struct {
		Name string
	}
	badNoColumns struct {
		hidden int
	}
	badAutoOnString struct {
		Code string `tandem:"code,pk,auto"`
	}
	badAutoOnComposite struct {
		A int64 `tandem:"a,pk,auto"`
		B int64 `tandem:"b,pk"`
	}
	badAutoNotKey struct {
		ID  int64
		Seq int64 `tandem:"seq,auto"`
	}
	badUnknownOption struct {
		ID   int64
		Name string `tandem:"name,primary"`
	}
	badSizeZero struct {
		ID   int64
		Name string `tandem:"name,size=0"`
	}
	badSizeNegative struct {
		ID   int64
		Name string `tandem:"name,size=-3"`
	}
	badSizeNotNumber struct {
		ID   int64
		Name string `tandem:"name,size=ten"`
	}
	badSizeOnInt struct {
		ID int64 `tandem:"id,size=3"`
	}
	badDefaultOnBlob struct {
		ID   int64
		Data []byte `tandem:"data,default=x"`
	}
	badDefaultOnTime struct {
		ID int64
		At time.Time `tandem:"at,default=2020-01-01"`
	}
	badDefaultNotInt struct {
		ID int64
		N  int `tandem:"n,default=many"`
	}
	badDefaultNaN struct {
		ID int64
		F  float64 `tandem:"f,default=NaN"`
	}
	badDefaultNoValue struct {
		ID int64
		N  int `tandem:"n,default"`
	}
	badDefaultBool struct {
		ID int64
		B  bool `tandem:"b,default=yes"`
	}
	badPointerPK struct {
		ID *int64
	}
	badDuplicateColumn struct {
		ID   int64
		Name string
		Alt  string `tandem:"name"`
	}
	badDuplicateSnake struct {
		ID     int64
		UserID int64
		UserId int64 // snake-cases like UserID
	}
	badMap struct {
		ID int64
		M  map[string]string
	}
	badStruct struct {
		ID int64
		S  struct{ X int }
	}
	badIntSlice struct {
		ID int64
		L  []int
	}
	badDoublePointer struct {
		ID int64
		P  **int
	}
	badEmbeddedPointer struct {
		*ModelBase
		Name string
	}
	badColumnName struct {
		ID   int64
		Name string `tandem:"the-name"`
	}
	badUniqueAndIndex struct {
		ID int64
		A  string `tandem:"a,unique=ab"`
		B  string `tandem:"b,index=ab"`
	}
)

func TestModelRejectsInvalidTypes(t *testing.T) {
	for _, tc := range []struct {
		typ reflect.Type
		msg string
	}{
		{reflect.TypeFor[int](), "not a struct"},
		{reflect.TypeFor[badNoPK](), "no primary key"},
		{reflect.TypeFor[badNoColumns](), "no columns"},
		{reflect.TypeFor[badAutoOnString](), "auto needs the single integer primary key"},
		{reflect.TypeFor[badAutoOnComposite](), "auto needs the single integer primary key"},
		{reflect.TypeFor[badAutoNotKey](), "auto needs the single integer primary key"},
		{reflect.TypeFor[badUnknownOption](), `unknown tag option "primary"`},
		{reflect.TypeFor[badSizeZero](), "size="},
		{reflect.TypeFor[badSizeNegative](), "size="},
		{reflect.TypeFor[badSizeNotNumber](), "size="},
		{reflect.TypeFor[badSizeOnInt](), "size="},
		{reflect.TypeFor[badDefaultOnBlob](), "take a default"},
		{reflect.TypeFor[badDefaultOnTime](), "take a default"},
		{reflect.TypeFor[badDefaultNotInt](), `default="many"`},
		{reflect.TypeFor[badDefaultNaN](), "not a finite number"},
		{reflect.TypeFor[badDefaultNoValue](), "default needs a value"},
		{reflect.TypeFor[badDefaultBool](), `default="yes"`},
		{reflect.TypeFor[badPointerPK](), "cannot be a pointer"},
		{reflect.TypeFor[badDuplicateColumn](), `column "name" defined twice`},
		{reflect.TypeFor[badDuplicateSnake](), `column "user_id" defined twice`},
		{reflect.TypeFor[badMap](), "unsupported type"},
		{reflect.TypeFor[badStruct](), "unsupported type"},
		{reflect.TypeFor[badIntSlice](), "unsupported type"},
		{reflect.TypeFor[badDoublePointer](), "unsupported type"},
		{reflect.TypeFor[badEmbeddedPointer](), "unsupported type"},
		{reflect.TypeFor[badColumnName](), "use letters, digits and '_'"},
		{reflect.TypeFor[badUniqueAndIndex](), "both unique and not"},
	} {
		t.Run(tc.typ.String(), func(t *testing.T) {
			m, err := newModel(tc.typ)
			if err == nil {
				t.Fatalf("accepted: %+v", m.table)
			}
			if !errors.Is(err, ErrInvalidModel) {
				t.Errorf("errors.Is(%v, ErrInvalidModel) = false", err)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not contain %q", err, tc.msg)
			}
		})
	}
}

type (
	badDefaultOverflowsInt8 struct {
		ID int64
		N  int8 `tandem:"n,default=300"`
	}
	badDefaultNegativeUint struct {
		ID int64
		N  uint16 `tandem:"n,default=-1"`
	}
	badDefaultOverflowsFloat32 struct {
		ID int64
		F  float32 `tandem:"f,default=1e300"`
	}
)

// A default the field cannot hold must be refused when the model is
// parsed. Otherwise Save stores the default on the databases' side of the
// check but fails (or silently changes it) writing it back into the struct.
func TestModelRejectsDefaultThatDoesNotFitTheField(t *testing.T) {
	for _, typ := range []reflect.Type{
		reflect.TypeFor[badDefaultOverflowsInt8](),
		reflect.TypeFor[badDefaultNegativeUint](),
		reflect.TypeFor[badDefaultOverflowsFloat32](),
		reflect.TypeFor[badDefaultOnPlainBool](),
	} {
		t.Run(typ.String(), func(t *testing.T) {
			_, err := newModel(typ)
			if !errors.Is(err, ErrInvalidModel) {
				t.Errorf("newModel accepted a default the field cannot hold (err = %v)", err)
			}
		})
	}
}

// A zero field takes its default, so a plain bool with a default could never
// be saved false: it must be a *bool.
type badDefaultOnPlainBool struct {
	ID   int64
	Flag bool `tandem:"flag,default=true"`
}

type badCaseClash struct {
	ID    int64
	Name  string `tandem:"name"`
	Upper string `tandem:"NAME"`
}

// SQLite (and MySQL) column names are case-insensitive: two columns that
// differ only in case cannot both exist, so the model must say so instead
// of Migrate failing with the engine's "duplicate column name".
func TestModelRejectsColumnsDifferingOnlyInCase(t *testing.T) {
	_, err := newModel(reflect.TypeFor[badCaseClash]())
	if !errors.Is(err, ErrInvalidModel) {
		t.Errorf("newModel accepted columns name and NAME (err = %v)", err)
	}
}

type badEmptyIndexName struct {
	ID int64
	A  string `tandem:"a,unique="`
}

func TestModelRejectsEmptyIndexName(t *testing.T) {
	m, err := newModel(reflect.TypeFor[badEmptyIndexName]())
	if !errors.Is(err, ErrInvalidModel) {
		t.Errorf("newModel accepted unique= with no name: indexes %+v", m.table.Indexes)
	}
}

func TestTagParsing(t *testing.T) {
	for _, tc := range []struct {
		tag  string
		name string
		opts []string
		err  bool
	}{
		{"", "", nil, false},
		{"title", "title", nil, false},
		{",pk", "", []string{"pk"}, false},
		{"id,pk,auto", "id", []string{"pk", "auto"}, false},
		{" id , pk , size=3 ", "id", []string{"pk", "size=3"}, false},
		{"id,,pk,", "id", []string{"pk"}, false},
		{"t,default=a,b,c", "t", []string{"default=a,b,c"}, false},
		{"t,size=9,default=it's, ok", "t", []string{"size=9", "default=it's, ok"}, false},
		{"t,default=", "t", []string{"default="}, false},
		{"t,default", "t", []string{"default"}, false},
		{"t,unique=by_x,index", "t", []string{"unique=by_x", "index"}, false},
		{"naïve_2", "naïve_2", nil, false},
		{"bad-name", "", nil, true},
		{"two words", "", nil, true},
		{`q"uote`, "", nil, true},
		{"-", "", nil, true},
		{"\xff", "", nil, true},
	} {
		name, opts, err := parseTag(tc.tag)
		if (err != nil) != tc.err || name != tc.name || !reflect.DeepEqual(opts, tc.opts) {
			t.Errorf("parseTag(%q) = %q, %q, %v; want %q, %q, error %v", tc.tag, name, opts, err, tc.name, tc.opts, tc.err)
		}
	}
}

// A default holds commas when it comes last, whatever spaces surround the
// commas before it (spaces are allowed around every other option).
func TestTagDefaultWithCommasAfterASpace(t *testing.T) {
	name, opts, err := parseTag("t, default=a,b")
	want := []string{"default=a,b"}
	if err != nil || name != "t" || !reflect.DeepEqual(opts, want) {
		t.Errorf("parseTag(%q) = %q, %q, %v; want %q, %q", "t, default=a,b", name, opts, err, "t", want)
	}
}

func FuzzParseTag(f *testing.F) {
	for _, s := range []string{
		"", "id", "id,pk,auto", ",pk", " a , b ", "t,default=a,b", "t,size=3,default=x, y",
		"t,unique=u,index=i", "bad-name", "naïve", "\xff,pk", "t,default", "t,size=-1",
		"t,default=1e400", "t,notnull,index,unique", ",,,", "-",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tag string) {
		name, opts, err := parseTag(tag)
		if err != nil {
			if name != "" || opts != nil {
				t.Fatalf("parseTag(%q) = %q, %q with error %v", tag, name, opts, err)
			}
			return
		}
		for _, r := range name {
			if r != '_' && !unicode.IsLetter(r) && !unicode.IsDigit(r) {
				t.Fatalf("parseTag(%q): name %q holds %q", tag, name, r)
			}
		}
		for i, o := range opts {
			if o == "" {
				t.Fatalf("parseTag(%q): empty option", tag)
			}
			if strings.HasPrefix(o, "default=") {
				if i != len(opts)-1 {
					t.Fatalf("parseTag(%q): default %q is not the last option", tag, o)
				}
				continue
			}
			if strings.Contains(o, ",") || o != strings.TrimSpace(o) {
				t.Fatalf("parseTag(%q): option %q holds a comma or spaces", tag, o)
			}
		}

		// The same tag on a struct field: the model either refuses it with
		// ErrInvalidModel or yields columns with usable names.
		st := reflect.StructOf([]reflect.StructField{
			{Name: "ID", Type: reflect.TypeFor[int64]()},
			{Name: "Val", Type: reflect.TypeFor[string](), Tag: reflect.StructTag("tandem:" + strconv.Quote(tag))},
			{Name: "Num", Type: reflect.TypeFor[*float64](), Tag: reflect.StructTag("tandem:" + strconv.Quote(tag))},
		})
		if st.Field(1).Tag.Get("tandem") != tag {
			return
		}
		m := &model{typ: st, auto: -1}
		m.table.Name = "fuzzed"
		if err := m.addFields(st, nil, map[string]*engine.Index{}, new([]string), new([]int)); err != nil {
			if !errors.Is(err, ErrInvalidModel) {
				t.Fatalf("tag %q: error %v is not ErrInvalidModel", tag, err)
			}
			return
		}
		seen := map[string]bool{}
		for _, c := range m.table.Columns {
			if c.Name == "" || seen[c.Name] {
				t.Fatalf("tag %q: column names %s", tag, m.columnNames())
			}
			seen[c.Name] = true
			if c.Size < 0 {
				t.Fatalf("tag %q: size %d", tag, c.Size)
			}
		}
		for _, x := range m.table.Indexes {
			if x.Name == "" || len(x.Columns) == 0 {
				t.Fatalf("tag %q: index %+v", tag, x)
			}
		}
	})
}

// rebindDollarEngine numbers placeholders, as PostgreSQL does, so the tests can
// see the numbering rebind produces.
type rebindDollarEngine struct{ engine.Engine }

func (rebindDollarEngine) Placeholder(n int) string { return "$" + strconv.Itoa(n) }

func TestQueryRebindNumbersPlaceholdersOutsideQuotes(t *testing.T) {
	for _, tc := range []struct {
		cond  string
		after int
		want  string
		n     int
		err   string
	}{
		{"a = ?", 0, "a = $1", 1, ""},
		{"a = ? AND b < ?", 2, "a = $3 AND b < $4", 2, ""},
		{"a = '?'", 0, "a = '?'", 0, ""},
		{`"we?ird" = ?`, 0, `"we?ird" = $1`, 1, ""},
		{"`x?` = ?", 0, "`x?` = $1", 1, ""},
		{"a = 'it''s ?' AND b = ?", 0, "a = 'it''s ?' AND b = $1", 1, ""},
		{"a = ';'", 0, "a = ';'", 0, ""},
		{"price > 0", 5, "price > 0", 0, ""},
		{"a = 1; DROP TABLE t", 0, "", 0, "';' is not allowed"},
		{"a = ?;", 0, "", 0, "';' is not allowed"},
		{"a = 'open", 0, "", 0, "unterminated quote"},
		{`a = "open`, 0, "", 0, "unterminated quote"},
	} {
		got, n, err := rebind(tc.cond, rebindDollarEngine{}, tc.after)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("rebind(%q) error = %v, want %q", tc.cond, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want || n != tc.n {
			t.Errorf("rebind(%q, %d) = %q, %d, %v; want %q, %d", tc.cond, tc.after, got, n, err, tc.want, tc.n)
		}
	}
}
