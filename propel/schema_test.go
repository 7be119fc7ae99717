package propel_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tandemdb/tandem"
	"github.com/tandemdb/tandem/internal/testcluster"
	"github.com/tandemdb/tandem/propel"
	"github.com/tandemdb/tandem/propel/bookstore"
	"github.com/tandemdb/tandem/propel/internal/alltypes"
	"github.com/tandemdb/tandem/verify"
)

var updateGen = flag.Bool("update-gen", false, "rewrite the committed generated packages")

// generated maps each committed generated package to its schema.
var generated = []struct{ schema, dir, pkg string }{
	{"testdata/bookstore-schema.xml", "bookstore", "bookstore"},
	{"testdata/alltypes-schema.xml", "internal/alltypes", "alltypes"},
}

func generate(t *testing.T, schema, pkg string) (map[string][]byte, *propel.Schema) {
	t.Helper()
	data, err := os.ReadFile(schema)
	if err != nil {
		t.Fatal(err)
	}
	s, err := propel.ParseSchema(data, schema)
	if err != nil {
		t.Fatal(err)
	}
	files, err := propel.Generate(s, propel.GenOptions{Package: pkg, Source: schema})
	if err != nil {
		t.Fatal(err)
	}
	return files, s
}

// TestGeneratedPackagesAreCommittedAndStable regenerates the committed
// packages (which the build compiles, so the generated code compiles) and
// compares them byte for byte; generating twice gives the same bytes.
// Rewrite them with: go test ./propel -run TestGenerated -update-gen
func TestGeneratedPackagesAreCommittedAndStable(t *testing.T) {
	for _, g := range generated {
		t.Run(g.pkg, func(t *testing.T) {
			files, _ := generate(t, g.schema, g.pkg)
			again, _ := generate(t, g.schema, g.pkg)
			var names []string
			for name, src := range files {
				names = append(names, name)
				if !bytes.Equal(src, again[name]) {
					t.Errorf("%s differs between two runs", name)
				}
				if _, err := parser.ParseFile(token.NewFileSet(), name, src, parser.AllErrors); err != nil {
					t.Errorf("%s: %v", name, err)
				}
				path := filepath.Join(g.dir, name)
				if *updateGen {
					if err := os.MkdirAll(g.dir, 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(path, src, 0o644); err != nil {
						t.Fatal(err)
					}
					continue
				}
				committed, err := os.ReadFile(path)
				if err != nil {
					t.Errorf("%v (run go test ./propel -run TestGenerated -update-gen)", err)
				} else if !bytes.Equal(committed, src) {
					t.Errorf("%s is not what tandem gen writes now (run go test ./propel -run TestGenerated -update-gen)", path)
				}
			}
			entries, err := os.ReadDir(g.dir)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				if !slices.Contains(names, e.Name()) && !strings.HasSuffix(e.Name(), "_test.go") {
					t.Errorf("%s holds %s, which tandem gen does not write", g.dir, e.Name())
				}
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// TestBookstoreRoundTrip saves and finds rows through the generated
// bookstore models on a mirrored pair of SQLite files, then verifies the
// two files identical.
func TestBookstoreRoundTrip(t *testing.T) {
	ctx := context.Background()
	c, cfg := testcluster.New(t)
	if err := c.Migrate(ctx, bookstore.Models()...); err != nil {
		t.Fatal(err)
	}
	pub := &bookstore.Publisher{}
	if err := c.Save(ctx, pub); err != nil {
		t.Fatal(err)
	}
	if pub.ID == 0 || pub.Name != "Penguin" {
		t.Errorf("publisher: id %d, name %q; want an id and the default Penguin", pub.ID, pub.Name)
	}
	herbert := &bookstore.Author{FirstName: "Frank", LastName: "Herbert", Age: ptr[int32](65)}
	austen := &bookstore.Author{FirstName: "Jane", LastName: "Austen", Email: ptr("jane@example.org")}
	for _, a := range []*bookstore.Author{herbert, austen} {
		if err := c.Save(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	// The unique (first_name, last_name) index holds.
	if err := c.Save(ctx, &bookstore.Author{FirstName: "Jane", LastName: "Austen"}); err == nil {
		t.Errorf("a second Jane Austen was saved despite the unique index")
	}
	books := []*bookstore.Book{
		{Title: "Dune", ISBN: "978-0441013593", Price: ptr(9.99), AuthorID: &herbert.ID, PublisherID: &pub.ID},
		{Title: "Emma", ISBN: "978-0141439587", Price: ptr(5.5), AuthorID: &austen.ID},
		{Title: "Persuasion", ISBN: "978-0141439686", AuthorID: &austen.ID},
	}
	err := c.Tx(ctx, func(tx *tandem.Tx) error {
		for _, b := range books {
			if err := tx.Save(ctx, b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if books[0].CreatedAt.IsZero() || books[0].UpdatedAt.IsZero() {
		t.Errorf("timestampable: created %v, updated %v", books[0].CreatedAt, books[0].UpdatedAt)
	}
	created := books[0].CreatedAt
	books[0].Price = ptr(10.5)
	if err := c.Save(ctx, books[0]); err != nil {
		t.Fatal(err)
	}
	if !books[0].CreatedAt.Equal(created) || books[0].UpdatedAt.Before(created) {
		t.Errorf("after an update: created %v (was %v), updated %v", books[0].CreatedAt, created, books[0].UpdatedAt)
	}
	review := &bookstore.Review{ReviewedBy: "Ann", BookID: books[0].ID, Rating: ptr("4.5")}
	if err := c.Save(ctx, review); err != nil {
		t.Fatal(err)
	}
	if review.Recommended == nil || !*review.Recommended || review.ReviewDate.IsZero() {
		t.Errorf("review defaults: recommended %v, date %v", review.Recommended, review.ReviewDate)
	}

	// Typed queries.
	byAusten, err := bookstore.NewBookQuery().FilterByAuthorID(&austen.ID).OrderByTitleDesc().Find(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if len(byAusten) != 2 || byAusten[0].Title != "Persuasion" || byAusten[1].Title != "Emma" {
		t.Errorf("Austen's books, title descending: %+v", byAusten)
	}
	noPrice, err := bookstore.NewBookQuery().FilterByPrice(nil).Count(ctx, c)
	if err != nil || noPrice != 1 {
		t.Errorf("books without a price: %d, %v; want 1", noPrice, err)
	}
	cheapest, err := bookstore.NewBookQuery().Where("price IS NOT NULL").OrderByPrice().FindOne(ctx, c)
	if err != nil || cheapest.Title != "Emma" {
		t.Errorf("cheapest: %+v, %v", cheapest, err)
	}
	second, err := bookstore.NewBookQuery().OrderByID().Offset(1).Limit(1).Find(ctx, c)
	if err != nil || len(second) != 1 || second[0].Title != "Emma" {
		t.Errorf("second book: %+v, %v", second, err)
	}
	if _, err := bookstore.NewBookQuery().FilterByTitle("Ulysses").FindOne(ctx, c); !errors.Is(err, tandem.ErrNotFound) {
		t.Errorf("FindOne of nothing: %v, want ErrNotFound", err)
	}
	dune, err := bookstore.NewBookQuery().FindPK(ctx, c, books[0].ID)
	if err != nil || dune.ISBN != "978-0441013593" || *dune.Price != 10.5 {
		t.Errorf("FindPK: %+v, %v", dune, err)
	}
	// Foreign keys.
	if a, err := dune.GetAuthor(ctx, c); err != nil || a.LastName != "Herbert" {
		t.Errorf("GetAuthor: %+v, %v", a, err)
	}
	if p, err := byAusten[1].GetPublisher(ctx, c); err != nil || p != nil {
		t.Errorf("GetPublisher of a NULL reference: %+v, %v; want nil, nil", p, err)
	}
	if b, err := review.GetBook(ctx, c); err != nil || b.Title != "Dune" {
		t.Errorf("GetBook: %+v, %v", b, err)
	}
	// Deletes mirror too.
	if err := c.Delete(ctx, books[2]); err != nil {
		t.Fatal(err)
	}
	if n, err := bookstore.NewBookQuery().Count(ctx, c); err != nil || n != 2 {
		t.Errorf("books after a delete: %d, %v", n, err)
	}

	conf, err := tandem.LoadConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := verify.Compare(ctx, conf, verify.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Identical || len(rep.Tables) != 4 {
		t.Errorf("verify: identical %v over %d tables: %+v", rep.Identical, len(rep.Tables), rep.Tables)
	}
}

// TestMalformedSchemasFailWithTheirLine: each broken schema fails with a
// message naming the element (or attribute) and its line.
func TestMalformedSchemasFailWithTheirLine(t *testing.T) {
	table := func(body string) string {
		return "<database name=\"db\">\n<table name=\"book\">\n<column name=\"id\" type=\"INTEGER\" primaryKey=\"true\"/>\n" + body + "</table>\n</database>\n"
	}
	for _, tc := range []struct {
		name, xml string
		line      int
		want      string
	}{
		{"not XML", "<database name=\"db\">\n<table name=\"book\">\n</database>", 3, "malformed XML"},
		{"empty", "", 0, "no XML element"},
		{"another root", "<config/>", 1, "the root element is <config>, want <database>"},
		{"no tables", "<database name=\"db\"/>", 1, "<database> has no <table>"},
		{"unknown type", table("<column name=\"x\" type=\"MONEY\"/>\n"), 4, `column book.x: unknown type "MONEY"`},
		{"PHP object type", table("<column name=\"x\" type=\"OBJECT\"/>\n"), 4, "type OBJECT holds serialised PHP values"},
		{"foreign key to a missing table", table("<column name=\"a\" type=\"INTEGER\"/>\n<foreign-key foreignTable=\"author\">\n<reference local=\"a\" foreign=\"id\"/>\n</foreign-key>\n"), 5,
			"table book: foreign key to table author, which the schema does not define"},
		{"foreign key from a missing column", "<database name=\"db\">\n<table name=\"a\"><column name=\"id\" type=\"INTEGER\" primaryKey=\"true\"/></table>\n<table name=\"b\">\n<column name=\"id\" type=\"INTEGER\" primaryKey=\"true\"/>\n<foreign-key foreignTable=\"a\"><reference local=\"a_id\" foreign=\"id\"/></foreign-key>\n</table>\n</database>", 5,
			"table b: foreign key to a: no local column a_id"},
		{"foreign key to a missing column", "<database name=\"db\">\n<table name=\"a\"><column name=\"id\" type=\"INTEGER\" primaryKey=\"true\"/></table>\n<table name=\"b\">\n<column name=\"id\" type=\"INTEGER\" primaryKey=\"true\"/>\n<foreign-key foreignTable=\"a\"><reference local=\"id\" foreign=\"code\"/></foreign-key>\n</table>\n</database>", 5,
			"table b: foreign key to a: a has no column code"},
		{"unknown element", table("<trigger name=\"x\"/>\n"), 4, "table book: <trigger> is not supported"},
		{"unknown attribute", table("<column name=\"x\" type=\"INTEGER\" colour=\"red\"/>\n"), 4, "<column>: attribute colour is not supported"},
		{"unsupported behavior", table("<behavior name=\"soft_delete\"/>\n"), 4, `behavior "soft_delete" is not supported`},
		{"no primary key", "<database name=\"db\">\n<table name=\"log\">\n<column name=\"msg\" type=\"VARCHAR\"/>\n</table>\n</database>", 2, "table log has no primary key"},
		{"bad boolean", table("<column name=\"x\" type=\"INTEGER\" required=\"maybe\"/>\n"), 4, `required="maybe": want true or false`},
		{"bad size", table("<column name=\"x\" type=\"VARCHAR\" size=\"big\"/>\n"), 4, `size="big": want a whole number`},
		{"default of the wrong type", table("<column name=\"x\" type=\"INTEGER\" defaultValue=\"ten\"/>\n"), 4, `defaultValue "ten": not a int32`},
		{"default expression", table("<column name=\"x\" type=\"INTEGER\" defaultExpr=\"nextval('s')\"/>\n"), 4, "defaultExpr \"nextval('s')\" is not supported"},
		{"duplicate column", table("<column name=\"id\" type=\"INTEGER\"/>\n"), 4, "column book.id is defined twice"},
		{"duplicate table", "<database name=\"db\">\n<table name=\"t\"><column name=\"id\" type=\"INTEGER\" primaryKey=\"true\"/></table>\n<table name=\"t\"><column name=\"id\" type=\"INTEGER\" primaryKey=\"true\"/></table>\n</database>", 3, "table t is defined twice"},
		{"index on a missing column", table("<index name=\"i\"><index-column name=\"nope\"/></index>\n"), 4, "index i names column nope"},
		{"auto increment on text", "<database name=\"db\">\n<table name=\"t\">\n<column name=\"id\" type=\"VARCHAR\" primaryKey=\"true\" autoIncrement=\"true\"/>\n</table>\n</database>", 3, "autoIncrement needs an integer primary key"},
		{"enum without values", table("<column name=\"x\" type=\"ENUM\"/>\n"), 4, "ENUM without a valueSet"},
		{"sqlType", table("<column name=\"x\" type=\"VARCHAR\" sqlType=\"citext\"/>\n"), 4, `sqlType="citext" is not supported`},
		{"text in an element", table("hello\n"), 4, "unexpected text in <table>"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := propel.ParseSchema([]byte(tc.xml), "schema.xml")
			if err == nil {
				_, err = propel.Generate(s, propel.GenOptions{Package: "p"})
			}
			var se *propel.SchemaError
			if !errors.As(err, &se) {
				t.Fatalf("got %v, want a *SchemaError", err)
			}
			if se.Line != tc.line || se.File != "schema.xml" || !strings.Contains(se.Msg, tc.want) {
				t.Errorf("got %q (line %d), want line %d and %q", err, se.Line, tc.line, tc.want)
			}
			if tc.line > 0 && !strings.HasPrefix(err.Error(), fmt.Sprintf("schema.xml:%d: ", tc.line)) {
				t.Errorf("message %q does not start with the file and line", err)
			}
		})
	}
}

// FuzzParseSchema: any input parses or fails with a *SchemaError, never
// panics; what parses generates code that parses as Go, or a clear error.
func FuzzParseSchema(f *testing.F) {
	for _, g := range generated {
		data, err := os.ReadFile(g.schema)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`<database name="d"><table name="t"><column name="id" type="INTEGER" primaryKey="true"/></table></database>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := propel.ParseSchema(data, "fuzz.xml")
		if err != nil {
			var se *propel.SchemaError
			if !errors.As(err, &se) {
				t.Fatalf("not a *SchemaError: %v", err)
			}
			return
		}
		files, err := propel.Generate(s, propel.GenOptions{Package: "p"})
		if err != nil {
			if strings.Contains(err.Error(), "a bug in tandem gen") {
				t.Fatal(err)
			}
			return
		}
		for name, src := range files {
			if _, err := parser.ParseFile(token.NewFileSet(), name, src, 0); err != nil {
				t.Fatalf("%s does not parse: %v\n%s", name, err, src)
			}
		}
	})
}

// TestAllTypesRoundTrip saves a row of every generated type and reads it
// back, through a mirrored pair; composite keys work through FindPK.
func TestAllTypesRoundTrip(t *testing.T) {
	ctx := context.Background()
	c, cfg := testcluster.New(t)
	if err := c.Migrate(ctx, alltypes.Models()...); err != nil {
		t.Fatal(err)
	}
	born := time.Date(1999, 12, 31, 0, 0, 0, 0, time.UTC)
	row := &alltypes.AllTypes{
		Flag: true, MaybeFlag: ptr(false), OnByDefault: ptr(false), Tiny: -128, Small: ptr[int16](-32768),
		Whole: 2147483647, Big: ptr[int64](-9223372036854775808), Ratio: 0.25, RealValue: ptr(1e300),
		Amount: "1234567890.12", NumericValue: ptr("-0.000001"), Code: "xyz", Label: ptr("ünïcødé"),
		Body: ptr(strings.Repeat("long ", 1000)), Doc: ptr(`{"a": [1, 2]}`), Colour: ptr("blue"),
		BornOn: &born, AtTime: ptr("23:59:59.999999"), Hash: ptr([]byte{0, 1, 2}), Data: []byte{},
		HomePage: ptr("https://example.org"),
	}
	if err := c.Save(ctx, row); err != nil {
		t.Fatal(err)
	}
	got, err := alltypes.NewAllTypesQuery().FindPK(ctx, c, row.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.MadeAt.IsZero() || got.SeenAt.IsZero() {
		t.Errorf("made_at %v, seen_at %v: want both set", got.MadeAt, got.SeenAt)
	}
	row.MadeAt, row.SeenAt = got.MadeAt, got.SeenAt
	if fmt.Sprintf("%+v", deref(got)) != fmt.Sprintf("%+v", deref(row)) {
		t.Errorf("read back:\n%+v\nwant\n%+v", deref(got), deref(row))
	}
	defaults := &alltypes.AllTypes{Flag: true, Whole: 1, Amount: "0", Code: "", Data: []byte("x")}
	if err := c.Save(ctx, defaults); err != nil {
		t.Fatal(err)
	}
	if defaults.Tiny != -5 || defaults.Ratio != 0.5 || defaults.Code != "abc" || *defaults.Colour != "green" || !*defaults.OnByDefault {
		t.Errorf("defaults: %+v", deref(defaults))
	}
	for _, p := range []*alltypes.Person{{Name: "a"}, {Name: "b"}} {
		if err := c.Save(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	link := &alltypes.Link{FromID: 1, ToID: 2, Kind: "knows", Weight: ptr(0.5)}
	if err := c.Save(ctx, link); err != nil {
		t.Fatal(err)
	}
	back, err := alltypes.NewLinkQuery().FindPK(ctx, c, 1, 2, "knows")
	if err != nil || *back.Weight != 0.5 {
		t.Fatalf("FindPK on a composite key: %+v, %v", back, err)
	}
	if to, err := back.GetTarget(ctx, c); err != nil || to.Name != "b" {
		t.Errorf("GetTarget: %+v, %v", to, err)
	}
	if from, err := back.GetFrom(ctx, c); err != nil || from.Name != "a" {
		t.Errorf("GetFrom: %+v, %v", from, err)
	}
	conf, err := tandem.LoadConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := verify.Compare(ctx, conf, verify.Options{}); err != nil || !rep.Identical {
		t.Errorf("verify: %+v, %v", rep, err)
	}
}

// deref renders the pointers of a row as their values, for comparison.
func deref(row *alltypes.AllTypes) map[string]string {
	out := map[string]string{}
	v := reflect.ValueOf(row).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		if f.Kind() == reflect.Pointer && !f.IsNil() {
			f = f.Elem()
		}
		if tm, ok := f.Interface().(time.Time); ok {
			out[v.Type().Field(i).Name] = tm.UTC().Format(time.RFC3339Nano)
			continue
		}
		out[v.Type().Field(i).Name] = fmt.Sprintf("%#v", f.Interface())
	}
	return out
}
