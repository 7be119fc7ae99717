package propel

import (
	"bytes"
	"fmt"
	"go/format"
	"go/token"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"unicode"
)

// goBase is the Go type a Propel column type maps to, and what its
// tandem tag and doc comment add.
type goBase struct {
	typ    string // int32, string, []byte, time.Time…
	size   int    // the tag's size=N (0: none)
	note   string // a sentence for the field's doc comment
	isBool bool
}

// goType maps a Propel column type to Go (and through tandem's logical
// types, to every engine's SQL type). Types that cannot be held
// faithfully are errors.
func goType(c *Column) (goBase, error) {
	switch c.Type {
	case "BOOLEAN", "BOOL":
		return goBase{typ: "bool", isBool: true}, nil
	case "TINYINT":
		return goBase{typ: "int8"}, nil
	case "SMALLINT":
		return goBase{typ: "int16"}, nil
	case "INTEGER", "INT":
		return goBase{typ: "int32"}, nil
	case "BIGINT":
		return goBase{typ: "int64"}, nil
	case "FLOAT", "REAL", "DOUBLE":
		return goBase{typ: "float64"}, nil
	case "DECIMAL", "NUMERIC":
		note := "An exact decimal"
		if c.Size > 0 {
			note += fmt.Sprintf(" (%d digits, %d after the point)", c.Size, c.Scale)
		}
		return goBase{typ: "string", note: note + ", kept as text so that no engine rounds it."}, nil
	case "CHAR", "VARCHAR":
		return goBase{typ: "string", size: c.Size}, nil
	case "LONGVARCHAR", "CLOB", "JSON":
		return goBase{typ: "string"}, nil
	case "ENUM":
		if len(c.ValueSet) == 0 {
			return goBase{}, fmt.Errorf("ENUM without a valueSet")
		}
		longest := 0
		for _, v := range c.ValueSet {
			longest = max(longest, len([]rune(v)))
		}
		return goBase{typ: "string", size: longest, note: "One of " + quoteList(c.ValueSet) + " (Propel ENUM)."}, nil
	case "DATE", "TIMESTAMP", "BU_DATE", "BU_TIMESTAMP", "DATETIME":
		return goBase{typ: "time.Time"}, nil
	case "TIME":
		return goBase{typ: "string", size: 15, note: "A time of day, HH:MM:SS[.ffffff], as text (Propel TIME)."}, nil
	case "BINARY", "VARBINARY":
		return goBase{typ: "[]byte", size: c.Size}, nil
	case "LONGVARBINARY", "BLOB":
		return goBase{typ: "[]byte"}, nil
	case "OBJECT", "PHP_ARRAY", "ARRAY", "SET", "GEOMETRY":
		return goBase{}, fmt.Errorf("type %s holds serialised PHP values or engine-specific data: not supported", c.Type)
	}
	return goBase{}, fmt.Errorf("unknown type %q", c.Type)
}

func quoteList(vs []string) string {
	q := make([]string, len(vs))
	for i, v := range vs {
		q[i] = strconv.Quote(v)
	}
	return strings.Join(q, ", ")
}

// GenOptions say how Generate writes Go code.
type GenOptions struct {
	// Package is the Go package name. Empty: the schema's package
	// attribute (its last segment), else the database name.
	Package string
	// Source names the schema file in the generated header.
	Source string
}

// Generate returns the Go files for s, by file name: one per table
// (TABLE.go) and doc.go. The code is gofmt-formatted and the same input
// always gives the same output.
func Generate(s *Schema, opts GenOptions) (map[string][]byte, error) {
	pkg := opts.Package
	if pkg == "" {
		pkg = s.Package
		if i := strings.LastIndexAny(pkg, "./\\"); i >= 0 {
			pkg = pkg[i+1:]
		}
	}
	if pkg == "" {
		pkg = s.Database
	}
	pkg = strings.ToLower(pkg)
	if !token.IsIdentifier(pkg) || token.IsKeyword(pkg) {
		return nil, fmt.Errorf("package name %q is not a Go identifier: give one with --package", pkg)
	}
	g := &generator{s: s, pkg: pkg, source: filepath.Base(opts.Source), types: map[string]*Table{}}
	if err := g.names(); err != nil {
		return nil, err
	}
	files := map[string][]byte{}
	doc, err := g.doc()
	if err != nil {
		return nil, err
	}
	files["doc.go"] = doc
	for _, t := range s.Tables {
		src, err := g.table(t)
		if err != nil {
			return nil, err
		}
		files[t.Name+".go"] = src
	}
	return files, nil
}

type generator struct {
	s      *Schema
	pkg    string
	source string
	types  map[string]*Table // Go type name of each table
	fields map[*Column]string
}

// names decides every Go name and refuses clashes.
func (g *generator) names() error {
	g.fields = map[*Column]string{}
	global := map[string]string{"Models": "the Models function"}
	for _, t := range g.s.Tables {
		name := goName(t.PhpName, t.Name)
		g.types[name] = t
		for _, id := range []string{name, name + "Column", name + "Query", "New" + name + "Query"} {
			if other, clash := global[id]; clash {
				return &SchemaError{g.s.file, t.Line, fmt.Sprintf("table %s: its Go name %s clashes with %s", t.Name, id, other)}
			}
			global[id] = "table " + t.Name
		}
		seen := map[string]string{}
		for _, c := range t.Columns {
			f := goName(c.PhpName, c.Name)
			if other, clash := seen[f]; clash {
				return &SchemaError{g.s.file, c.Line, fmt.Sprintf("column %s.%s: its Go name %s clashes with column %s", t.Name, c.Name, f, other)}
			}
			if f == "TableName" || f == "BeforeSave" {
				return &SchemaError{g.s.file, c.Line, fmt.Sprintf("column %s.%s: its Go name %s clashes with a generated method: give it a phpName", t.Name, c.Name, f)}
			}
			seen[f] = c.Name
			g.fields[c] = f
			cid := name + "Column" + f
			if other, clash := global[cid]; clash {
				return &SchemaError{g.s.file, c.Line, fmt.Sprintf("column %s.%s: its constant %s clashes with %s", t.Name, c.Name, cid, other)}
			}
			global[cid] = "column " + t.Name + "." + c.Name
		}
	}
	// The getters of foreign keys are methods beside the fields.
	for _, t := range g.s.Tables {
		methods := map[string]bool{}
		for _, c := range t.Columns {
			methods[g.fields[c]] = true
		}
		for _, fk := range t.ForeignKeys {
			m := g.fkGetter(t, fk)
			if methods[m] {
				return &SchemaError{g.s.file, fk.Line, fmt.Sprintf("table %s: foreign key to %s: its method %s clashes with a column or another key: give the foreign-key a phpName", t.Name, fk.ForeignTable, m)}
			}
			methods[m] = true
		}
	}
	return nil
}

func (g *generator) typeName(table string) string {
	for name, t := range g.types {
		if t.Name == table {
			return name
		}
	}
	return ""
}

// goName is a Propel phpName, or an exported CamelCase name made from a
// snake_case SQL name with Go's initialisms (id → ID).
func goName(phpName, sqlName string) string {
	if phpName != "" {
		r := []rune(phpName)
		r[0] = unicode.ToUpper(r[0])
		return string(r)
	}
	var b strings.Builder
	for _, part := range strings.FieldsFunc(sqlName, func(r rune) bool { return r == '_' || r == '-' || r == ' ' }) {
		if up := strings.ToUpper(part); initialisms[up] {
			b.WriteString(up)
			continue
		}
		r := []rune(strings.ToLower(part))
		r[0] = unicode.ToUpper(r[0])
		b.WriteString(string(r))
	}
	name := b.String()
	if name == "" || !unicode.IsLetter([]rune(name)[0]) {
		name = "X" + name
	}
	return name
}

var initialisms = map[string]bool{
	"ID": true, "URL": true, "URI": true, "HTTP": true, "API": true, "JSON": true, "XML": true, "SQL": true,
	"UUID": true, "IP": true, "HTML": true, "ISBN": true, "UTC": true, "CSS": true, "EAN": true,
}

// field is one struct field to write.
type field struct {
	col      *Column
	name     string
	typ      string // with the pointer for nullable columns
	base     string // without it
	tag      string
	doc      []string
	nullable bool
}

func (g *generator) fieldsOf(t *Table) ([]field, []string, error) {
	var out []field
	var warnings []string
	pkCount := 0
	for _, c := range t.Columns {
		if c.PrimaryKey {
			pkCount++
		}
	}
	// Index options per column, in the order tandem builds the index
	// (field order); a different order in the schema is a warning.
	idx := map[string][]string{}
	for _, x := range t.Indexes {
		kind := "index"
		if x.Unique {
			kind = "unique"
		}
		name := x.Name
		if name == "" {
			name = strings.Join(x.Columns, "_") // as Propel names it, but for the table prefix
		}
		name = strings.TrimPrefix(name, t.Name+"_") // tandem prefixes the table's name
		if !identRE(name) {
			return nil, nil, &SchemaError{g.s.file, x.Line, fmt.Sprintf("table %s: index name %q: use letters, digits and '_'", t.Name, x.Name)}
		}
		for _, c := range x.Columns {
			idx[c] = append(idx[c], kind+"="+name)
		}
		if len(x.Columns) > 1 {
			var order []string
			for _, c := range t.Columns {
				if slices.Contains(x.Columns, c.Name) {
					order = append(order, c.Name)
				}
			}
			if !slices.Equal(order, x.Columns) {
				warnings = append(warnings, fmt.Sprintf("table %s: index %s lists (%s); tandem builds it in column order (%s)",
					t.Name, x.Name, strings.Join(x.Columns, ", "), strings.Join(order, ", ")))
			}
		}
	}
	// Foreign key columns get an index, as Propel's MySQL platform adds.
	for i, fk := range t.ForeignKeys {
		covered := false
		for _, x := range t.Indexes {
			if len(x.Columns) >= len(fk.References) && x.Columns[0] == fk.References[0].Local {
				covered = true
			}
		}
		if c := t.column(fk.References[0].Local); covered || (c.PrimaryKey && pkCount == len(fk.References)) {
			continue
		}
		for _, r := range fk.References {
			idx[r.Local] = append(idx[r.Local], fmt.Sprintf("index=fk_%d", i+1))
		}
	}
	for _, c := range t.Columns {
		b, err := goType(c)
		if err != nil {
			return nil, nil, &SchemaError{g.s.file, c.Line, fmt.Sprintf("column %s.%s: %v", t.Name, c.Name, err)}
		}
		f := field{col: c, name: g.fields[c], base: b.typ}
		f.nullable = !c.Required && !c.PrimaryKey
		opts := []string{c.Name}
		if c.PrimaryKey {
			opts = append(opts, "pk")
		}
		if c.AutoIncrement {
			opts = append(opts, "auto")
		}
		if b.size > 0 {
			opts = append(opts, fmt.Sprintf("size=%d", b.size))
		}
		opts = append(opts, idx[c.Name]...)
		ts := t.Timestampable
		isCreated := ts != nil && ts.CreateColumn == c.Name
		isUpdated := ts != nil && ts.UpdateColumn == c.Name
		var def string // tandem's default= option takes the rest of the tag: last
		switch {
		case c.DefaultExpr != "":
			switch strings.ToUpper(strings.TrimSuffix(c.DefaultExpr, "()")) {
			case "CURRENT_TIMESTAMP", "NOW", "LOCALTIMESTAMP":
				if b.typ != "time.Time" {
					return nil, nil, &SchemaError{g.s.file, c.Line, fmt.Sprintf("column %s.%s: defaultExpr %s on a %s column", t.Name, c.Name, c.DefaultExpr, c.Type)}
				}
				def = "default=now"
			default:
				return nil, nil, &SchemaError{g.s.file, c.Line, fmt.Sprintf("column %s.%s: defaultExpr %q is not supported: tandem decides every value once, in Go (only CURRENT_TIMESTAMP)", t.Name, c.Name, c.DefaultExpr)}
			}
		case c.HasDefault:
			d, err := defaultTag(c, b)
			if err != nil {
				return nil, nil, &SchemaError{g.s.file, c.Line, fmt.Sprintf("column %s.%s: defaultValue %q: %v", t.Name, c.Name, c.Default, err)}
			}
			if b.isBool {
				f.nullable = true // tandem: false could never be saved over a default
			}
			def = "default=" + d
		}
		if isCreated || isUpdated {
			f.nullable = false // BeforeSave sets it
		}
		f.typ = b.typ
		if f.nullable {
			f.typ = "*" + b.typ
		}
		if f.nullable && c.Required {
			opts = append(opts, "notnull")
		}
		if def != "" {
			opts = append(opts, def)
		}
		f.tag = strings.Join(opts, ",")
		if c.Description != "" {
			f.doc = append(f.doc, sentence(c.Description))
		}
		if b.note != "" {
			f.doc = append(f.doc, b.note)
		}
		if c.HasDefault && !f.nullable && b.typ != "time.Time" {
			f.doc = append(f.doc, fmt.Sprintf("Defaults to %s when left zero.", strconv.Quote(c.Default)))
		}
		if isCreated {
			f.doc = append(f.doc, "Set when the row is first saved (Propel timestampable).")
		}
		if isUpdated {
			f.doc = append(f.doc, "Set on every save (Propel timestampable).")
		}
		for _, fk := range t.ForeignKeys {
			for _, r := range fk.References {
				if r.Local == c.Name {
					s := fmt.Sprintf("References %s.%s", fk.ForeignTable, r.Foreign)
					var actions []string
					if fk.OnDelete != "" {
						actions = append(actions, "on delete "+strings.ToLower(fk.OnDelete))
					}
					if fk.OnUpdate != "" {
						actions = append(actions, "on update "+strings.ToLower(fk.OnUpdate))
					}
					if len(actions) > 0 {
						s += " (Propel: " + strings.Join(actions, ", ") + ")"
					}
					f.doc = append(f.doc, s+"; tandem does not enforce foreign keys.")
				}
			}
		}
		out = append(out, f)
	}
	return out, warnings, nil
}

// defaultTag checks a defaultValue against the column's type and spells
// it the way tandem's default= option takes it.
func defaultTag(c *Column, b goBase) (string, error) {
	v := c.Default
	switch b.typ {
	case "bool":
		switch strings.ToLower(v) {
		case "true", "1":
			return "true", nil
		case "false", "0":
			return "false", nil
		}
		return "", fmt.Errorf("want true or false")
	case "int8", "int16", "int32", "int64":
		bits := map[string]int{"int8": 8, "int16": 16, "int32": 32, "int64": 64}[b.typ]
		if _, err := strconv.ParseInt(v, 10, bits); err != nil {
			return "", fmt.Errorf("not a %s", b.typ)
		}
		return v, nil
	case "float64":
		if _, err := strconv.ParseFloat(v, 64); err != nil {
			return "", fmt.Errorf("not a number")
		}
		return v, nil
	case "string":
		if c.Type == "ENUM" && !slices.Contains(c.ValueSet, v) {
			return "", fmt.Errorf("not one of the valueSet")
		}
		if strings.ContainsAny(v, "`\n") {
			return "", fmt.Errorf("a default with a backquote or a line break cannot go in a struct tag")
		}
		return v, nil
	case "time.Time":
		return "", fmt.Errorf("a fixed time default is not supported (use defaultExpr=\"CURRENT_TIMESTAMP\" for the current time)")
	}
	return "", fmt.Errorf("a %s column takes no default", c.Type)
}

func sentence(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if s == "" {
		return s
	}
	r := []rune(s)
	r[0] = unicode.ToUpper(r[0])
	s = string(r)
	if !strings.HasSuffix(s, ".") && !strings.HasSuffix(s, "?") && !strings.HasSuffix(s, "!") {
		s += "."
	}
	return s
}

func (g *generator) header(b *bytes.Buffer) {
	fmt.Fprintf(b, "// Code generated by tandem gen from %s; DO NOT EDIT.\n\n", g.source)
}

func (g *generator) doc() ([]byte, error) {
	var b bytes.Buffer
	g.header(&b)
	desc := sentence(g.s.Description)
	if desc == "" {
		desc = fmt.Sprintf("Package %s holds the models of the Propel database %s.", g.pkg, g.s.Database)
	}
	fmt.Fprintf(&b, "// %s\n//\n// Open a tandem.Cluster and create the tables with\n//\n//\tcluster.Migrate(ctx, %s.Models()...)\npackage %s\n\n", desc, g.pkg, g.pkg)
	b.WriteString("// Models returns a pointer to a zero value of each model, for tandem's Migrate.\nfunc Models() []any {\n\treturn []any{\n")
	for _, t := range g.s.Tables {
		fmt.Fprintf(&b, "\t\t&%s{},\n", goName(t.PhpName, t.Name))
	}
	b.WriteString("\t}\n}\n")
	return gofmt(b.Bytes(), "doc.go")
}

func gofmt(src []byte, name string) ([]byte, error) {
	out, err := format.Source(src)
	if err != nil {
		return nil, fmt.Errorf("generated %s does not parse (a bug in tandem gen): %v", name, err)
	}
	return out, nil
}

func (g *generator) fkGetter(t *Table, fk *ForeignKey) string {
	if fk.PhpName != "" {
		return "Get" + goName(fk.PhpName, "")
	}
	target := g.typeName(fk.ForeignTable)
	n := 0
	for _, other := range t.ForeignKeys {
		if other.ForeignTable == fk.ForeignTable {
			n++
		}
	}
	if n == 1 {
		return "Get" + target
	}
	// Several keys to one table: name each by its column (author_id →
	// GetAuthor, reviewer_id → GetReviewer).
	local := fk.References[0].Local
	return "Get" + strings.TrimSuffix(goName("", local), "ID")
}

func (g *generator) table(t *Table) ([]byte, error) {
	fields, _, err := g.fieldsOf(t)
	if err != nil {
		return nil, err
	}
	name := goName(t.PhpName, t.Name)
	var b bytes.Buffer
	g.header(&b)
	fmt.Fprintf(&b, "package %s\n\n", g.pkg)
	std := []string{`"context"`}
	needTime := t.Timestampable != nil
	for _, f := range fields {
		if f.base == "time.Time" {
			needTime = true
		}
	}
	if needTime {
		std = append(std, `"time"`)
	}
	fmt.Fprintf(&b, "import (\n\t%s\n\n\t\"github.com/tandemdb/tandem\"\n)\n\n", strings.Join(std, "\n\t"))

	// The model.
	desc := sentence(t.Description)
	if desc != "" {
		desc = "\n//\n// " + desc
	}
	fmt.Fprintf(&b, "// %s is a row of table %s.%s\ntype %s struct {\n", name, t.Name, desc, name)
	for _, f := range fields {
		for _, d := range f.doc {
			fmt.Fprintf(&b, "\t// %s\n", d)
		}
		fmt.Fprintf(&b, "\t%s %s `tandem:%s`\n", f.name, f.typ, strconv.Quote(f.tag))
	}
	b.WriteString("}\n\n")
	fmt.Fprintf(&b, "// TableName names %s's table for tandem.\nfunc (*%s) TableName() string { return %q }\n\n", name, name, t.Name)

	// Timestampable.
	if ts := t.Timestampable; ts != nil && (ts.CreateColumn != "" || ts.UpdateColumn != "") {
		fmt.Fprintf(&b, "// BeforeSave sets the timestampable columns, as Propel's behavior does.\nfunc (x *%s) BeforeSave(context.Context) error {\n\tnow := time.Now().UTC().Truncate(time.Microsecond)\n", name)
		for _, f := range fields {
			switch f.col.Name {
			case ts.CreateColumn:
				fmt.Fprintf(&b, "\tif x.%s.IsZero() {\n\t\tx.%s = now\n\t}\n", f.name, f.name)
			case ts.UpdateColumn:
				fmt.Fprintf(&b, "\tx.%s = now\n", f.name)
			}
		}
		b.WriteString("\treturn nil\n}\n\n")
	}

	// Column names.
	fmt.Fprintf(&b, "// %sColumn names a column of table %s.\ntype %sColumn string\n\n// The columns of table %s.\nconst (\n", name, t.Name, name, t.Name)
	for _, f := range fields {
		fmt.Fprintf(&b, "\t%sColumn%s %sColumn = %q\n", name, f.name, name, f.col.Name)
	}
	b.WriteString(")\n\n")

	// Foreign keys.
	for _, fk := range t.ForeignKeys {
		target := g.typeName(fk.ForeignTable)
		ft := g.types[target]
		getter := g.fkGetter(t, fk)
		// The foreign table's key, in key order, from the local columns.
		var args []string
		var nilChecks []string
		ok := true
		for _, c := range ft.Columns {
			if !c.PrimaryKey {
				continue
			}
			var local *field
			for _, r := range fk.References {
				if r.Foreign == c.Name {
					for i := range fields {
						if fields[i].col.Name == r.Local {
							local = &fields[i]
						}
					}
				}
			}
			if local == nil {
				ok = false // the key references other columns than the primary key
				break
			}
			v := "x." + local.name
			if local.nullable {
				nilChecks = append(nilChecks, v+" == nil")
				v = "*" + v
			}
			fb, _ := goType(c)
			if fb.typ != local.base {
				v = fb.typ + "(" + v + ")"
			}
			args = append(args, v)
		}
		if !ok {
			continue
		}
		nilNote := ""
		if len(nilChecks) > 0 {
			nilNote = "; nil when the reference is NULL"
		}
		fmt.Fprintf(&b, "// %s reads the %s row that this %s refers to, through r (a\n// tandem.Cluster or Tx)%s. It returns tandem.ErrNotFound when\n// the row is missing: tandem does not enforce foreign keys.\n", getter, ft.Name, t.Name, nilNote)
		fmt.Fprintf(&b, "func (x *%s) %s(ctx context.Context, r tandem.Reader) (*%s, error) {\n", name, getter, target)
		if len(nilChecks) > 0 {
			fmt.Fprintf(&b, "\tif %s {\n\t\treturn nil, nil\n\t}\n", strings.Join(nilChecks, " || "))
		}
		fmt.Fprintf(&b, "\treturn tandem.Get[%s](ctx, r, %s)\n}\n\n", target, strings.Join(args, ", "))
	}

	// The query.
	q := name + "Query"
	fmt.Fprintf(&b, `// %[1]s finds rows of table %[2]s, in the spirit of Propel's query
// classes: filters and orders chain, and Find, FindOne or Count run it.
//
//	rows, err := New%[1]s().OrderBy%[3]sDesc().Limit(10).Find(ctx, cluster)
type %[1]s struct{ opts []tandem.QueryOption }

// New%[1]s starts a query of table %[2]s.
func New%[1]s() *%[1]s { return &%[1]s{} }

func (q *%[1]s) add(o tandem.QueryOption) *%[1]s {
	q.opts = append(q.opts, o)
	return q
}

`, q, t.Name, fields[0].name)
	for _, f := range fields {
		param := f.typ
		doc := fmt.Sprintf("%s = v", f.col.Name)
		if f.nullable {
			doc += " (v nil: IS NULL)"
		}
		col := name + "Column" + f.name
		fmt.Fprintf(&b, "// FilterBy%s keeps rows with %s.\nfunc (q *%s) FilterBy%s(v %s) *%s { return q.add(tandem.Eq(string(%s), v)) }\n\n", f.name, doc, q, f.name, param, q, col)
		fmt.Fprintf(&b, "// OrderBy%s orders by %s, ascending.\nfunc (q *%s) OrderBy%s() *%s { return q.add(tandem.OrderBy(string(%s))) }\n\n", f.name, f.col.Name, q, f.name, q, col)
		fmt.Fprintf(&b, "// OrderBy%sDesc orders by %s, descending.\nfunc (q *%s) OrderBy%sDesc() *%s { return q.add(tandem.OrderBy(string(%s) + \" DESC\")) }\n\n", f.name, f.col.Name, q, f.name, q, col)
	}
	var pkParams, pkArgs []string
	for _, f := range fields {
		if f.col.PrimaryKey {
			v := lowerCamel(f.name)
			if token.IsKeyword(v) || v == "ctx" || v == "r" || v == "q" {
				v += "Key"
			}
			pkParams = append(pkParams, v+" "+f.typ)
			pkArgs = append(pkArgs, v)
		}
	}
	fmt.Fprintf(&b, `// Where adds a condition in SQL, with ? for each argument.
func (q *%[1]s) Where(cond string, args ...any) *%[1]s { return q.add(tandem.Where(cond, args...)) }

// Limit returns at most n rows.
func (q *%[1]s) Limit(n int) *%[1]s { return q.add(tandem.Limit(n)) }

// Offset skips the first n rows.
func (q *%[1]s) Offset(n int) *%[1]s { return q.add(tandem.Offset(n)) }

// Find returns the rows, read through r (a tandem.Cluster or Tx).
func (q *%[1]s) Find(ctx context.Context, r tandem.Reader) ([]%[2]s, error) {
	return tandem.Find[%[2]s](ctx, r, q.opts...)
}

// FindOne returns the first row; tandem.ErrNotFound when there is none.
func (q *%[1]s) FindOne(ctx context.Context, r tandem.Reader) (*%[2]s, error) {
	rows, err := tandem.Find[%[2]s](ctx, r, append(q.opts[:len(q.opts):len(q.opts)], tandem.Limit(1))...)
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, tandem.ErrNotFound
	}
	return &rows[0], nil
}

// Count returns how many rows match (Limit and Offset aside).
func (q *%[1]s) Count(ctx context.Context, r tandem.Reader) (int64, error) {
	return tandem.Count[%[2]s](ctx, r, q.opts...)
}

// FindPK returns the row with the given primary key; tandem.ErrNotFound
// when there is none.
func (q *%[1]s) FindPK(ctx context.Context, r tandem.Reader, %[3]s) (*%[2]s, error) {
	return tandem.Get[%[2]s](ctx, r, %[4]s)
}
`, q, name, strings.Join(pkParams, ", "), strings.Join(pkArgs, ", "))
	return gofmt(b.Bytes(), t.Name+".go")
}

// GenerateWarnings lists what Generate adapts or leaves out for s: the
// parser's warnings and indexes whose column order changes.
func GenerateWarnings(s *Schema) []string {
	out := slices.Clone(s.Warnings)
	g := &generator{s: s, types: map[string]*Table{}}
	if g.names() != nil {
		return out
	}
	for _, t := range s.Tables {
		if _, w, err := g.fieldsOf(t); err == nil {
			out = append(out, w...)
		}
	}
	return out
}

// lowerCamel turns an exported name into a parameter name: ID → id,
// ISBN → isbn, PublisherID → publisherID, URLPath → urlPath.
func lowerCamel(s string) string {
	r := []rune(s)
	n := 0
	for n < len(r) && unicode.IsUpper(r[n]) {
		n++
	}
	switch {
	case n == len(r) || n <= 1:
		n = max(n, 1)
	default:
		n-- // the last capital starts the next word
	}
	for i := 0; i < n; i++ {
		r[i] = unicode.ToLower(r[i])
	}
	return string(r)
}
