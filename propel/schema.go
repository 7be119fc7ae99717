// Package propel brings a PHP Propel project over to tandem: it reads a
// Propel schema.xml and generates Go models for it (Generate), and turns
// Propel's runtime configuration into a tandem config (ImportConfig).
package propel

import (
	"fmt"
	"strconv"
	"strings"
)

// Schema is a Propel schema.xml: one database and its tables.
type Schema struct {
	Database    string // the database element's name
	Package     string // its package attribute, if any
	Description string
	Tables      []*Table
	// Warnings are constructs read and deliberately left out (vendor
	// parameters, validators): generation goes on without them.
	Warnings []string

	file string // the file it came from, for messages
}

// Table is a table element.
type Table struct {
	Name, PhpName, Description string
	Columns                    []*Column
	ForeignKeys                []*ForeignKey
	Indexes                    []*Index // index and unique elements, in order
	// Timestampable is set by the timestampable behavior.
	Timestampable *Timestampable
	Line          int
}

// Column is a column element.
type Column struct {
	Name, PhpName, Description string
	Type                       string // upper case, as Propel spells it: VARCHAR, INTEGER…
	Size, Scale                int    // 0 when not given
	PrimaryKey, AutoIncrement  bool
	Required                   bool
	// Default is defaultValue (or the older default); HasDefault says
	// whether one was given, since "" is a value.
	Default    string
	HasDefault bool
	// DefaultExpr is an SQL expression default; only CURRENT_TIMESTAMP
	// (and its synonyms) can be carried over.
	DefaultExpr string
	ValueSet    []string // ENUM values
	Line        int
}

// ForeignKey is a foreign-key element.
type ForeignKey struct {
	ForeignTable       string
	Name, PhpName      string
	OnDelete, OnUpdate string
	References         []Reference
	Line               int
}

// Reference is one local-to-foreign column pair of a foreign key.
type Reference struct{ Local, Foreign string }

// Index is an index or a unique element.
type Index struct {
	Name    string
	Unique  bool
	Columns []string
	Line    int
}

// Timestampable is the timestampable behavior's parameters.
type Timestampable struct {
	CreateColumn, UpdateColumn string // "" when disabled
}

// SchemaError is a problem in a schema file, at a line.
type SchemaError struct {
	File string
	Line int
	Msg  string
}

func (e *SchemaError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return e.File + ": " + e.Msg
}

// readTree parses a schema into elements (xml.go); a schema holds no text
// outside its attributes.
func readTree(data []byte, file string) (*element, error) {
	root, fault := readXML(data)
	if fault != nil {
		return nil, &SchemaError{file, fault.line, "malformed XML: " + fault.msg}
	}
	if root == nil {
		return nil, &SchemaError{file, 0, "no XML element: is this a Propel schema.xml?"}
	}
	var walk func(e *element) error
	walk = func(e *element) error {
		if e.textLine > 0 {
			return &SchemaError{file, e.textLine, fmt.Sprintf("unexpected text in <%s>", e.name)}
		}
		for _, c := range e.children {
			if err := walk(c); err != nil {
				return err
			}
		}
		return nil
	}
	return root, walk(root)
}

// ParseSchema reads a Propel schema.xml. file names it in errors. Every
// construct that would change what the database holds and that tandem
// cannot carry over is an error naming the element and its line; a few
// that only tune a database engine (vendor parameters) or PHP
// (validators) are left out with a warning.
func ParseSchema(data []byte, file string) (*Schema, error) {
	root, err := readTree(data, file)
	if err != nil {
		return nil, err
	}
	p := &parser{file: file}
	s, err := p.database(root)
	if err != nil {
		return nil, err
	}
	if err := p.check(s); err != nil {
		return nil, err
	}
	return s, nil
}

type parser struct {
	file     string
	warnings []string
}

func (p *parser) fail(e *element, format string, args ...any) error {
	return &SchemaError{p.file, e.line, fmt.Sprintf(format, args...)}
}

func (p *parser) warn(e *element, format string, args ...any) {
	p.warnings = append(p.warnings, fmt.Sprintf("%s:%d: %s", p.file, e.line, fmt.Sprintf(format, args...)))
}

// attrs checks e's attributes against the known ones (true: used, false:
// accepted and ignored, since it only matters to PHP) and returns the
// used ones' values.
func (p *parser) attrs(e *element, known map[string]bool) (map[string]string, error) {
	out := map[string]string{}
	for _, a := range e.attrs {
		if a.Name.Space != "" || a.Name.Local == "xmlns" {
			continue // namespace declarations, xsi:noNamespaceSchemaLocation
		}
		used, ok := known[a.Name.Local]
		if !ok {
			return nil, p.fail(e, "<%s>: attribute %s is not supported", e.name, a.Name.Local)
		}
		if used {
			out[a.Name.Local] = a.Value
		}
	}
	return out, nil
}

func (p *parser) boolAttr(e *element, a map[string]string, name string) (bool, error) {
	v, ok := a[name]
	if !ok {
		return false, nil
	}
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "true", "1", "yes":
		return true, nil
	case "false", "0", "no", "":
		return false, nil
	}
	return false, p.fail(e, "<%s>: %s=%q: want true or false", e.name, name, v)
}

func (p *parser) intAttr(e *element, a map[string]string, name string) (int, error) {
	v, ok := a[name]
	if !ok || strings.TrimSpace(v) == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 0 {
		return 0, p.fail(e, "<%s>: %s=%q: want a whole number", e.name, name, v)
	}
	return n, nil
}

func (p *parser) database(e *element) (*Schema, error) {
	if e.name != "database" {
		return nil, p.fail(e, "the root element is <%s>, want <database>", e.name)
	}
	a, err := p.attrs(e, map[string]bool{
		"name": true, "package": true, "description": true,
		"defaultIdMethod": false, "namespace": false, "baseClass": false, "basePeer": false,
		"defaultPhpNamingMethod": false, "heavyIndexing": false, "tablePrefix": false,
		"defaultStringFormat": false, "identifierQuoting": false, "schema": false,
		"defaultTranslateMethod": false, "activeRecord": false,
	})
	if err != nil {
		return nil, err
	}
	s := &Schema{Database: a["name"], Package: a["package"], Description: a["description"], file: p.file}
	for _, c := range e.children {
		switch c.name {
		case "table":
			t, err := p.table(c)
			if err != nil {
				return nil, err
			}
			s.Tables = append(s.Tables, t)
		case "vendor":
			p.warn(c, "<vendor> parameters are engine settings: left out")
		case "behavior":
			return nil, p.fail(c, "<behavior> on the database is not supported: put it on each table")
		case "external-schema":
			return nil, p.fail(c, "<external-schema> is not supported: merge that schema into this file")
		default:
			return nil, p.fail(c, "<%s> is not supported in <database>", c.name)
		}
	}
	if len(s.Tables) == 0 {
		return nil, p.fail(e, "<database> has no <table>")
	}
	s.Warnings = p.warnings
	return s, nil
}

func (p *parser) table(e *element) (*Table, error) {
	a, err := p.attrs(e, map[string]bool{
		"name": true, "phpName": true, "description": true,
		"idMethod": false, "package": false, "namespace": false, "baseClass": false, "basePeer": false,
		"phpNamingMethod": false, "heavyIndexing": false, "readOnly": false, "reloadOnInsert": false,
		"reloadOnUpdate": false, "allowPkInsert": false, "isCrossRef": false, "defaultStringFormat": false,
		"interface": false, "treeMode": false, "skipSql": true, "abstract": true, "schema": true,
		"identifierQuoting": false, "activeRecord": false,
	})
	if err != nil {
		return nil, err
	}
	t := &Table{Name: a["name"], PhpName: a["phpName"], Description: a["description"], Line: e.line}
	if t.Name == "" {
		return nil, p.fail(e, "<table> without a name")
	}
	for _, flag := range []string{"skipSql", "abstract"} {
		if on, err := p.boolAttr(e, a, flag); err != nil {
			return nil, err
		} else if on {
			return nil, p.fail(e, "table %s: %s=\"true\" is not supported", t.Name, flag)
		}
	}
	if a["schema"] != "" {
		return nil, p.fail(e, "table %s: schema=%q is not supported: tandem tables live in the datasource's own schema", t.Name, a["schema"])
	}
	for _, c := range e.children {
		switch c.name {
		case "column":
			col, err := p.column(c, t)
			if err != nil {
				return nil, err
			}
			t.Columns = append(t.Columns, col)
		case "foreign-key":
			fk, err := p.foreignKey(c, t)
			if err != nil {
				return nil, err
			}
			t.ForeignKeys = append(t.ForeignKeys, fk)
		case "index", "unique":
			x, err := p.index(c, t)
			if err != nil {
				return nil, err
			}
			t.Indexes = append(t.Indexes, x)
		case "behavior":
			if err := p.behavior(c, t); err != nil {
				return nil, err
			}
		case "vendor":
			p.warn(c, "table %s: <vendor> parameters are engine settings: left out", t.Name)
		case "validator":
			p.warn(c, "table %s: <validator> runs in PHP: left out (validate in Go before Save)", t.Name)
		case "id-method-parameter":
			p.warn(c, "table %s: <id-method-parameter> left out: the primary database assigns auto-increment ids", t.Name)
		default:
			return nil, p.fail(c, "table %s: <%s> is not supported", t.Name, c.name)
		}
	}
	if len(t.Columns) == 0 {
		return nil, p.fail(e, "table %s has no <column>", t.Name)
	}
	return t, nil
}

func (p *parser) column(e *element, t *Table) (*Column, error) {
	a, err := p.attrs(e, map[string]bool{
		"name": true, "phpName": true, "description": true, "type": true, "size": true, "scale": true,
		"primaryKey": true, "autoIncrement": true, "required": true, "default": true, "defaultValue": true,
		"defaultExpr": true, "valueSet": true, "sqlType": true, "inheritance": true,
		"phpType": false, "peerName": false, "tableMapName": false, "prefix": false, "accessorVisibility": false,
		"mutatorVisibility": false, "lazyLoad": false, "primaryString": false, "phpNamingMethod": false, "nodeKey": false,
		"nestedSetLeftKey": false, "nestedSetRightKey": false, "treeScopeKey": false, "singularName": false,
	})
	if err != nil {
		return nil, err
	}
	c := &Column{Name: a["name"], PhpName: a["phpName"], Description: a["description"], Line: e.line,
		Type: strings.ToUpper(strings.TrimSpace(a["type"]))}
	if c.Name == "" {
		return nil, p.fail(e, "table %s: <column> without a name", t.Name)
	}
	at := fmt.Sprintf("column %s.%s", t.Name, c.Name)
	if c.Type == "" {
		c.Type = "VARCHAR" // Propel's default
	}
	if a["sqlType"] != "" {
		return nil, p.fail(e, "%s: sqlType=%q is not supported: tandem decides each engine's SQL type from type", at, a["sqlType"])
	}
	if v, ok := a["inheritance"]; ok && v != "false" {
		return nil, p.fail(e, "%s: inheritance=%q is not supported", at, v)
	}
	if c.Size, err = p.intAttr(e, a, "size"); err != nil {
		return nil, err
	}
	if c.Scale, err = p.intAttr(e, a, "scale"); err != nil {
		return nil, err
	}
	if c.PrimaryKey, err = p.boolAttr(e, a, "primaryKey"); err != nil {
		return nil, err
	}
	if c.AutoIncrement, err = p.boolAttr(e, a, "autoIncrement"); err != nil {
		return nil, err
	}
	if c.Required, err = p.boolAttr(e, a, "required"); err != nil {
		return nil, err
	}
	if v, ok := a["defaultValue"]; ok {
		c.Default, c.HasDefault = v, true
	} else if v, ok := a["default"]; ok {
		c.Default, c.HasDefault = v, true
	}
	c.DefaultExpr = strings.TrimSpace(a["defaultExpr"])
	if c.HasDefault && c.DefaultExpr != "" {
		return nil, p.fail(e, "%s: both defaultValue and defaultExpr", at)
	}
	if vs, ok := a["valueSet"]; ok {
		for _, v := range strings.Split(vs, ",") {
			c.ValueSet = append(c.ValueSet, strings.TrimSpace(v))
		}
	}
	if _, err := goType(c); err != nil {
		return nil, p.fail(e, "%s: %v", at, err)
	}
	for _, ch := range e.children {
		switch ch.name {
		case "vendor":
			p.warn(ch, "%s: <vendor> parameters are engine settings: left out", at)
		case "inheritance":
			return nil, p.fail(ch, "%s: <inheritance> is not supported", at)
		default:
			return nil, p.fail(ch, "%s: <%s> is not supported", at, ch.name)
		}
	}
	return c, nil
}

func (p *parser) foreignKey(e *element, t *Table) (*ForeignKey, error) {
	a, err := p.attrs(e, map[string]bool{
		"foreignTable": true, "name": true, "phpName": true, "onDelete": true, "onUpdate": true,
		"refPhpName": false, "defaultJoin": false, "skipSql": false, "foreignSchema": true,
	})
	if err != nil {
		return nil, err
	}
	fk := &ForeignKey{ForeignTable: a["foreignTable"], Name: a["name"], PhpName: a["phpName"], Line: e.line,
		OnDelete: strings.ToUpper(a["onDelete"]), OnUpdate: strings.ToUpper(a["onUpdate"])}
	if fk.ForeignTable == "" {
		return nil, p.fail(e, "table %s: <foreign-key> without foreignTable", t.Name)
	}
	if a["foreignSchema"] != "" {
		return nil, p.fail(e, "table %s: foreign key to %s: foreignSchema is not supported", t.Name, fk.ForeignTable)
	}
	for _, action := range []string{fk.OnDelete, fk.OnUpdate} {
		switch strings.ReplaceAll(action, " ", "") {
		case "", "CASCADE", "SETNULL", "RESTRICT", "NONE", "NOACTION", "SETDEFAULT":
		default:
			return nil, p.fail(e, "table %s: foreign key to %s: %q is not an action (CASCADE, SETNULL, RESTRICT, NONE, SETDEFAULT)", t.Name, fk.ForeignTable, action)
		}
	}
	for _, c := range e.children {
		switch c.name {
		case "reference":
			ra, err := p.attrs(c, map[string]bool{"local": true, "foreign": true})
			if err != nil {
				return nil, err
			}
			if ra["local"] == "" || ra["foreign"] == "" {
				return nil, p.fail(c, "table %s: <reference> needs local and foreign", t.Name)
			}
			fk.References = append(fk.References, Reference{ra["local"], ra["foreign"]})
		case "vendor":
			p.warn(c, "table %s: <vendor> parameters are engine settings: left out", t.Name)
		default:
			return nil, p.fail(c, "table %s: <%s> is not supported in <foreign-key>", t.Name, c.name)
		}
	}
	if len(fk.References) == 0 {
		return nil, p.fail(e, "table %s: foreign key to %s has no <reference>", t.Name, fk.ForeignTable)
	}
	return fk, nil
}

func (p *parser) index(e *element, t *Table) (*Index, error) {
	a, err := p.attrs(e, map[string]bool{"name": true})
	if err != nil {
		return nil, err
	}
	x := &Index{Name: a["name"], Unique: e.name == "unique", Line: e.line}
	for _, c := range e.children {
		if c.name == "vendor" {
			p.warn(c, "table %s: <vendor> parameters are engine settings: left out", t.Name)
			continue
		}
		if c.name != e.name+"-column" {
			return nil, p.fail(c, "table %s: <%s> in <%s>: want <%s-column>", t.Name, c.name, e.name, e.name)
		}
		ca, err := p.attrs(c, map[string]bool{"name": true, "size": true})
		if err != nil {
			return nil, err
		}
		if ca["size"] != "" {
			return nil, p.fail(c, "table %s: <%s-column> size (an index on a prefix) is not supported", t.Name, e.name)
		}
		if ca["name"] == "" {
			return nil, p.fail(c, "table %s: <%s-column> without a name", t.Name, e.name)
		}
		x.Columns = append(x.Columns, ca["name"])
	}
	if len(x.Columns) == 0 {
		return nil, p.fail(e, "table %s: <%s> without a column", t.Name, e.name)
	}
	return x, nil
}

func (p *parser) behavior(e *element, t *Table) error {
	a, err := p.attrs(e, map[string]bool{"name": true, "id": false})
	if err != nil {
		return err
	}
	if a["name"] != "timestampable" {
		return p.fail(e, "table %s: behavior %q is not supported (only timestampable)", t.Name, a["name"])
	}
	ts := &Timestampable{CreateColumn: "created_at", UpdateColumn: "updated_at"}
	for _, c := range e.children {
		if c.name != "parameter" {
			return p.fail(c, "table %s: <%s> in <behavior>: want <parameter>", t.Name, c.name)
		}
		pa, err := p.attrs(c, map[string]bool{"name": true, "value": true})
		if err != nil {
			return err
		}
		switch pa["name"] {
		case "create_column":
			ts.CreateColumn = pa["value"]
		case "update_column":
			ts.UpdateColumn = pa["value"]
		case "disable_updated_at", "disable_created_at":
			on, err := p.boolAttr(c, pa, "value")
			if err != nil {
				return err
			}
			if on && pa["name"] == "disable_updated_at" {
				ts.UpdateColumn = ""
			} else if on {
				ts.CreateColumn = ""
			}
		default:
			return p.fail(c, "table %s: timestampable parameter %q is not supported (create_column, update_column, disable_updated_at, disable_created_at)", t.Name, pa["name"])
		}
	}
	if t.Timestampable != nil {
		return p.fail(e, "table %s: a second timestampable behavior", t.Name)
	}
	t.Timestampable = ts
	return nil
}

// check validates what needs the whole schema: names, keys, and that
// foreign keys, indexes and behaviors name columns that exist. The
// timestampable behavior adds its columns when the table lacks them, as
// Propel does.
func (p *parser) check(s *Schema) error {
	tables := map[string]*Table{}
	for _, t := range s.Tables {
		fail := func(line int, format string, args ...any) error {
			return &SchemaError{p.file, line, fmt.Sprintf(format, args...)}
		}
		if _, dup := tables[t.Name]; dup {
			return fail(t.Line, "table %s is defined twice", t.Name)
		}
		tables[t.Name] = t
		if ts := t.Timestampable; ts != nil {
			for _, name := range []string{ts.CreateColumn, ts.UpdateColumn} {
				if name == "" {
					continue
				}
				if c := t.column(name); c == nil {
					t.Columns = append(t.Columns, &Column{Name: name, Type: "TIMESTAMP", Line: t.Line})
				} else if c.Type != "TIMESTAMP" && c.Type != "BU_TIMESTAMP" && c.Type != "DATE" {
					return fail(c.Line, "table %s: timestampable column %s is %s, want TIMESTAMP", t.Name, name, c.Type)
				}
			}
		}
		cols := map[string]bool{}
		var pk, auto int
		for _, c := range t.Columns {
			if !identRE(c.Name) {
				return fail(c.Line, "column %s.%s: use letters, digits and '_' in names", t.Name, c.Name)
			}
			if cols[c.Name] {
				return fail(c.Line, "column %s.%s is defined twice", t.Name, c.Name)
			}
			cols[c.Name] = true
			if c.PrimaryKey {
				pk++
			}
			if c.AutoIncrement {
				auto++
				if !c.PrimaryKey || !isInteger(c.Type) {
					return fail(c.Line, "column %s.%s: autoIncrement needs an integer primary key column", t.Name, c.Name)
				}
			}
		}
		if pk == 0 {
			return fail(t.Line, "table %s has no primary key: tandem writes and copies rows by key", t.Name)
		}
		if auto > 0 && pk > 1 {
			return fail(t.Line, "table %s: autoIncrement in a composite primary key is not supported", t.Name)
		}
		if !identRE(t.Name) {
			return fail(t.Line, "table %s: use letters, digits and '_' in names", t.Name)
		}
		for _, x := range t.Indexes {
			for _, c := range x.Columns {
				if !cols[c] {
					return fail(x.Line, "table %s: index %s names column %s, which the table does not have", t.Name, x.Name, c)
				}
			}
		}
	}
	for _, t := range s.Tables {
		for _, fk := range t.ForeignKeys {
			ft := tables[fk.ForeignTable]
			if ft == nil {
				return &SchemaError{p.file, fk.Line, fmt.Sprintf("table %s: foreign key to table %s, which the schema does not define", t.Name, fk.ForeignTable)}
			}
			for _, r := range fk.References {
				lc, fc := t.column(r.Local), ft.column(r.Foreign)
				switch {
				case lc == nil:
					return &SchemaError{p.file, fk.Line, fmt.Sprintf("table %s: foreign key to %s: no local column %s", t.Name, ft.Name, r.Local)}
				case fc == nil:
					return &SchemaError{p.file, fk.Line, fmt.Sprintf("table %s: foreign key to %s: %s has no column %s", t.Name, ft.Name, ft.Name, r.Foreign)}
				}
			}
		}
	}
	return nil
}

func (t *Table) column(name string) *Column {
	for _, c := range t.Columns {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func identRE(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		if !(r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (i > 0 && r >= '0' && r <= '9')) {
			return false
		}
	}
	return true
}

func isInteger(t string) bool {
	switch t {
	case "TINYINT", "SMALLINT", "INTEGER", "BIGINT":
		return true
	}
	return false
}
