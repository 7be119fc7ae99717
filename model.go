package tandem

import (
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/tandemdb/tandem/engine"
	"github.com/tandemdb/tandem/internal/value"
)

// model is a Go struct type mapped to a table; see the package doc for the tags.
type model struct {
	typ     reflect.Type
	table   engine.Table
	fields  [][]int // field index path of each column
	def     []any   // default of each column, in canonical form; nil: none
	defNow  []bool  // default is the current time
	pk      []int   // column indexes of the primary key
	auto    int     // column index of the auto column; -1: none
	all     []int   // every column index
	nonAuto []int   // every column index but auto's
	hasHook struct{ beforeSave, afterSave, beforeDelete, afterDelete bool }
}

var timeType = reflect.TypeFor[time.Time]()

// tabler lets a model name its table.
type tabler interface{ TableName() string }

func newModel(t reflect.Type) (*model, error) {
	if t.Kind() != reflect.Struct {
		return nil, fmt.Errorf("%w: %v is not a struct", ErrInvalidModel, t)
	}
	m := &model{typ: t, auto: -1}
	m.table.Name = snake(t.Name())
	if tn, ok := reflect.New(t).Interface().(tabler); ok {
		m.table.Name = tn.TableName()
	}
	if m.table.Name == "" {
		return nil, fmt.Errorf("%w: %v has no table name", ErrInvalidModel, t)
	}
	indexes := map[string]*engine.Index{}
	var indexOrder []string
	var autoWanted []int
	if err := m.addFields(t, nil, indexes, &indexOrder, &autoWanted); err != nil {
		return nil, err
	}
	if len(m.table.Columns) == 0 {
		return nil, fmt.Errorf("%w: %v has no columns", ErrInvalidModel, t)
	}
	if len(m.pk) == 0 {
		// Convention: a field named ID is the key.
		for i, f := range m.fields {
			if sf := t.FieldByIndex(f); sf.Name == "ID" {
				m.pk = []int{i}
				if isIntKind(sf.Type.Kind()) {
					autoWanted = append(autoWanted, i)
				}
			}
		}
	}
	if len(m.pk) == 0 {
		return nil, fmt.Errorf("%w: %v has no primary key: tag a field `tandem:\",pk\"`", ErrInvalidModel, t)
	}
	for _, i := range autoWanted {
		c := &m.table.Columns[i]
		if len(m.pk) != 1 || m.pk[0] != i || c.Type != engine.Integer {
			return nil, fmt.Errorf("%w: %v.%s: auto needs the single integer primary key", ErrInvalidModel, t, c.Name)
		}
		c.Auto = true
		m.auto = i
	}
	for _, i := range m.pk {
		m.table.PK = append(m.table.PK, m.table.Columns[i].Name)
		if m.fieldType(i).Kind() == reflect.Pointer {
			return nil, fmt.Errorf("%w: %v.%s: a primary key column cannot be a pointer", ErrInvalidModel, t, m.table.Columns[i].Name)
		}
	}
	for i := range m.table.Columns {
		m.all = append(m.all, i)
		if i != m.auto {
			m.nonAuto = append(m.nonAuto, i)
		}
	}
	for _, name := range indexOrder {
		m.table.Indexes = append(m.table.Indexes, *indexes[name])
	}
	p := reflect.New(t).Interface()
	_, m.hasHook.beforeSave = p.(BeforeSaver)
	_, m.hasHook.afterSave = p.(AfterSaver)
	_, m.hasHook.beforeDelete = p.(BeforeDeleter)
	_, m.hasHook.afterDelete = p.(AfterDeleter)
	return m, nil
}

func (m *model) addFields(t reflect.Type, path []int, indexes map[string]*engine.Index, order *[]string, auto *[]int) error {
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		tag, tagged := sf.Tag.Lookup("tandem")
		if tag == "-" || !sf.IsExported() {
			continue
		}
		idx := append(append([]int(nil), path...), i)
		if sf.Anonymous && !tagged && sf.Type.Kind() == reflect.Struct && sf.Type != timeType {
			if err := m.addFields(sf.Type, idx, indexes, order, auto); err != nil {
				return err
			}
			continue
		}
		name, opts, err := parseTag(tag)
		if err != nil {
			return fmt.Errorf("%w: %v.%s: %v", ErrInvalidModel, m.typ, sf.Name, err)
		}
		if name == "" {
			name = snake(sf.Name)
		}
		for _, c := range m.table.Columns {
			if strings.EqualFold(c.Name, name) {
				return fmt.Errorf("%w: %v.%s: column %q defined twice", ErrInvalidModel, m.typ, sf.Name, name)
			}
		}
		base := sf.Type
		nullable := base.Kind() == reflect.Pointer
		if nullable {
			base = base.Elem()
		}
		typ, ok := logicalType(base)
		if !ok {
			return fmt.Errorf("%w: %v.%s: unsupported type %v", ErrInvalidModel, m.typ, sf.Name, sf.Type)
		}
		col := engine.Column{Name: name, Type: typ, NotNull: !nullable}
		ci := len(m.table.Columns)
		var def any
		var defNow bool
		for _, o := range opts {
			key, val, hasVal := strings.Cut(o, "=")
			switch key {
			case "pk":
				m.pk = append(m.pk, ci)
			case "auto":
				*auto = append(*auto, ci)
			case "notnull":
				col.NotNull = true
			case "unique", "index":
				// Index names are global to a database on most engines:
				// prefix them with the table's.
				iname := m.table.Name + "_" + val
				if !hasVal {
					iname = m.table.Name + "_" + name + map[string]string{"unique": "_key", "index": "_idx"}[key]
				} else if val == "" || strings.ContainsAny(val, " \t\"'`") {
					return fmt.Errorf("%w: %v.%s: %s=%q: want a name (letters, digits, '_')", ErrInvalidModel, m.typ, sf.Name, key, val)
				}
				x, seen := indexes[iname]
				if !seen {
					x = &engine.Index{Name: iname, Unique: key == "unique"}
					indexes[iname] = x
					*order = append(*order, iname)
				} else if x.Unique != (key == "unique") {
					return fmt.Errorf("%w: %v.%s: index %q is both unique and not", ErrInvalidModel, m.typ, sf.Name, iname)
				}
				x.Columns = append(x.Columns, name)
			case "size":
				n, err := strconv.Atoi(val)
				if err != nil || n <= 0 || (typ != engine.Text && typ != engine.Blob) {
					return fmt.Errorf("%w: %v.%s: size=%q: want a positive length on a string or []byte field", ErrInvalidModel, m.typ, sf.Name, val)
				}
				col.Size = n
			case "default":
				if !hasVal {
					return fmt.Errorf("%w: %v.%s: default needs a value (default=V)", ErrInvalidModel, m.typ, sf.Name)
				}
				if typ == engine.Time && val == "now" {
					defNow = true
					break
				}
				d, lit, err := parseDefault(typ, val)
				if err == nil {
					err = defaultFits(base, nullable, d)
				}
				if err != nil {
					return fmt.Errorf("%w: %v.%s: default=%q: %v", ErrInvalidModel, m.typ, sf.Name, val, err)
				}
				def, col.Default = d, lit
			default:
				return fmt.Errorf("%w: %v.%s: unknown tag option %q (known: pk, auto, notnull, unique, index, size, default)", ErrInvalidModel, m.typ, sf.Name, o)
			}
		}
		m.table.Columns = append(m.table.Columns, col)
		m.fields = append(m.fields, idx)
		m.def = append(m.def, def)
		m.defNow = append(m.defNow, defNow)
	}
	return nil
}

// parseTag splits `name,opt,opt=value`. A default value may hold commas
// when it is the last option.
func parseTag(tag string) (name string, opts []string, err error) {
	name, rest, _ := strings.Cut(tag, ",")
	for rest != "" {
		rest = strings.TrimLeft(rest, " ")
		if strings.HasPrefix(rest, "default=") {
			opts = append(opts, rest)
			break
		}
		var o string
		o, rest, _ = strings.Cut(rest, ",")
		if o = strings.TrimSpace(o); o != "" {
			opts = append(opts, o)
		}
	}
	name = strings.TrimSpace(name)
	for _, r := range name {
		if !(r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r)) {
			return "", nil, fmt.Errorf("column name %q: use letters, digits and '_'", name)
		}
	}
	return name, opts, nil
}

func parseDefault(t engine.Type, s string) (v any, literal string, err error) {
	switch t {
	case engine.Integer:
		n, err := strconv.ParseInt(s, 10, 64)
		return n, strconv.FormatInt(n, 10), err
	case engine.Real:
		f, err := strconv.ParseFloat(s, 64)
		if err == nil && (math.IsNaN(f) || math.IsInf(f, 0)) {
			err = fmt.Errorf("not a finite number")
		}
		return f, strconv.FormatFloat(f, 'g', -1, 64), err
	case engine.Text:
		return s, "'" + strings.ReplaceAll(s, "'", "''") + "'", nil
	case engine.Bool:
		b, err := strconv.ParseBool(s)
		lit := "0"
		if b {
			lit = "1"
		}
		return b, lit, err
	}
	return nil, "", fmt.Errorf("only integer, real, text, bool and time (now) columns take a default")
}

// defaultFits checks that a default value can be held by the field's Go type.
func defaultFits(t reflect.Type, nullable bool, d any) error {
	z := reflect.New(t).Elem()
	switch v := d.(type) {
	case int64:
		if (z.CanInt() && z.OverflowInt(v)) || (z.CanUint() && (v < 0 || z.OverflowUint(uint64(v)))) {
			return fmt.Errorf("does not fit %v", t)
		}
	case float64:
		if z.OverflowFloat(v) {
			return fmt.Errorf("does not fit %v", t)
		}
	case bool:
		// A zero field takes the default, so a non-pointer bool with a
		// default could never be saved false.
		if !nullable {
			return fmt.Errorf("a bool field with a default must be a *bool, or false could never be saved")
		}
	}
	return nil
}

func logicalType(t reflect.Type) (engine.Type, bool) {
	if t == timeType {
		return engine.Time, true
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return engine.Integer, true
	case reflect.Float32, reflect.Float64:
		return engine.Real, true
	case reflect.String:
		return engine.Text, true
	case reflect.Bool:
		return engine.Bool, true
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return engine.Blob, true
		}
	}
	return 0, false
}

func isIntKind(k reflect.Kind) bool {
	return k >= reflect.Int && k <= reflect.Uint64 && k != reflect.Uintptr
}

// textKey is what n.sql caches m's statements under: its Go type, or
// for a table SQL writes (no Go type), the model itself.
func (m *model) textKey() any {
	if m.typ == nil {
		return m
	}
	return m.typ
}

func (m *model) fieldType(i int) reflect.Type { return m.typ.FieldByIndex(m.fields[i]).Type }

// snake turns a Go name into snake_case: BookID -> book_id, ISBN -> isbn.
func snake(s string) string {
	var b strings.Builder
	rs := []rune(s)
	for i, r := range rs {
		if unicode.IsUpper(r) {
			if i > 0 && (unicode.IsLower(rs[i-1]) || (i+1 < len(rs) && unicode.IsLower(rs[i+1]) && unicode.IsUpper(rs[i-1]))) {
				b.WriteByte('_')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// row reads every column of the struct v (addressable) as canonical values:
// int64, float64, string, []byte, bool, time.Time or nil. On the way it
// applies defaults and normalises times (UTC, microseconds), writing both
// back into v so that v holds exactly what is stored. It checks that every
// value fits its column and writes nothing on error.
func (m *model) row(v reflect.Value, now time.Time) ([]any, error) {
	vals := make([]any, len(m.table.Columns))
	type setBack struct {
		f reflect.Value
		x any
	}
	var back []setBack
	for i := range m.table.Columns {
		c := &m.table.Columns[i]
		f := v.FieldByIndex(m.fields[i])
		x, err := value.FromField(f)
		if err != nil {
			return nil, m.valueError(vals, i, err.Error())
		}
		// A pointer field takes its default when nil (so it can store the
		// zero value); any other field when zero.
		unset := x == nil || (f.Kind() != reflect.Pointer && reflect.ValueOf(x).IsZero())
		if m.defNow[i] && (unset || x.(time.Time).IsZero()) {
			x = now
			back = append(back, setBack{f, x})
		} else if m.def[i] != nil && unset {
			x = m.def[i]
			back = append(back, setBack{f, x})
		}
		if err := value.Fits(c, x); err != nil {
			return nil, m.valueError(vals, i, err.Error())
		}
		if t, ok := x.(time.Time); ok {
			x = t.UTC().Truncate(time.Microsecond)
			if !t.Equal(x.(time.Time)) || t.Location() != time.UTC {
				back = append(back, setBack{f, x})
			}
		}
		vals[i] = x
	}
	for _, b := range back {
		if err := value.Assign(b.f, b.x); err != nil {
			return nil, err
		}
	}
	return vals, nil
}

func (m *model) valueError(vals []any, i int, msg string) error {
	e := &ValueError{Table: m.table.Name, Column: m.table.Columns[i].Name, Msg: msg}
	if vals == nil {
		return e
	}
	// Name the row when its key was read before the failing column.
	var parts []string
	for _, k := range m.pk {
		if k >= i || vals[k] == nil || (k == m.auto && vals[k] == int64(0)) {
			return e
		}
		parts = append(parts, fmt.Sprintf("%s=%v", m.table.Columns[k].Name, vals[k]))
	}
	e.Msg += " (row " + strings.Join(parts, ", ") + ")"
	return e
}

func (m *model) keyVals(row []any) []any {
	k := make([]any, len(m.pk))
	for i, c := range m.pk {
		k[i] = row[c]
	}
	return k
}
