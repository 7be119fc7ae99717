package propel

// Converting Propel's runtime configuration (Propel 1 runtime-conf.xml,
// Propel 2 propel.yaml) into a tandem config: ImportConfig.

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/url"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/tandemdb/tandem"
)

// ImportOptions tunes ImportConfig.
type ImportOptions struct {
	// Datasource names the Propel datasource (runtime-conf.xml) or
	// connection (propel.yaml) to convert. Empty: Propel's default one
	// (<datasources default="…">, propel.runtime.defaultConnection), else
	// the only one.
	Datasource string
}

// Imported is a Propel datasource converted to a tandem config.
type Imported struct {
	// YAML is the tandem config, with comments saying where it came from
	// and what differs from Propel. It holds the passwords of the Propel
	// file.
	YAML string
	// Warnings are what the user must know or do before using YAML: the
	// datasources left out, a second database to add, drivers tandem does
	// not have yet, settings not carried over. They hold no password.
	Warnings []string
}

// ImportError is a problem in a Propel configuration file. It never holds
// a password, nor a DSN (which may hold one).
type ImportError struct {
	File string // the file, as named to ImportConfig
	Line int    // 1-based line in File; 0 when unknown
	// Path is the element or key at fault, such as
	// datasources/datasource[bookstore]/connection/dsn or
	// propel.database.connections.bookstore.dsn; "" for the whole file.
	Path string
	Msg  string
}

func (e *ImportError) Error() string {
	s := e.File + ": "
	if e.Line > 0 {
		s = fmt.Sprintf("%s:%d: ", e.File, e.Line)
	}
	if e.Path != "" {
		s += e.Path + ": "
	}
	return s + e.Msg
}

// ImportConfig converts one datasource of a Propel configuration file into
// a tandem config: the master connection becomes the primary datasource,
// named after the Propel datasource, and each slave another datasource.
// name is the file's name: an .xml one is read as a Propel 1
// runtime-conf.xml, a .yaml, .yml or .json one as a Propel 2 propel.yaml
// (a trailing .dist is ignored); any other is recognized by its content.
// Every error is an *ImportError.
func ImportConfig(data []byte, name string, opts ImportOptions) (*Imported, error) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	kind, err := confKind(data, name)
	if err != nil {
		return nil, err
	}
	var src *confSource
	if kind == "xml" {
		src, err = confFromXML(data, name)
	} else {
		src, err = confFromYAML(data, name)
	}
	if err != nil {
		return nil, err
	}
	ds, err := src.pick(opts.Datasource)
	if err != nil {
		return nil, err
	}
	conv := &confConverter{src: src, ds: ds}
	if err := conv.convert(); err != nil {
		return nil, err
	}
	return &Imported{YAML: conv.render(), Warnings: conv.warnings}, nil
}

// confKind says how to read the file: "xml" or "yaml".
func confKind(data []byte, name string) (string, error) {
	switch strings.ToLower(filepath.Ext(strings.TrimSuffix(name, ".dist"))) {
	case ".xml":
		return "xml", nil
	case ".yaml", ".yml", ".json":
		return "yaml", nil
	case ".php", ".inc":
		return "", &ImportError{File: name, Msg: "a PHP configuration cannot be read: give the runtime-conf.xml or propel.yaml it was built from"}
	case ".ini", ".properties":
		return "", &ImportError{File: name, Msg: "an INI configuration cannot be read: give a runtime-conf.xml or propel.yaml"}
	}
	if t := bytes.TrimLeft(data, " \t\r\n"); len(t) > 0 && t[0] == '<' {
		return "xml", nil
	}
	return "yaml", nil
}

// confSource is what a Propel file says about its datasources.
type confSource struct {
	file    string
	format  string // "Propel 1 runtime-conf.xml" or "Propel 2 propel.yaml"
	keys    bool   // paths are YAML keys (a.b), not XML elements (a/b)
	kind    string // what Propel calls a datasource there: "datasource" or "connection"
	def     string // the default datasource, "" when none is named
	defPath string // where def is given
	defLine int
	list    []*confDS
	// implicitDefault is the name Propel falls back to when none is named
	// and it exists ("default" in Propel 1); "" for none.
	implicitDefault string
}

// confDS is one Propel datasource (runtime-conf.xml) or connection
// (propel.yaml).
type confDS struct {
	id          string
	line        int
	path        string
	adapter     string
	adapterLine int
	adapterPath string
	master      confConn
	slaves      []confConn
	queries     bool // settings that run SQL on each new connection
	// load reads the rest of the datasource: only the one converted is
	// read, so a mistake in another does not stop the import.
	load func(ds *confDS) error
}

// confConn is one connection of a datasource: its master or a slave.
type confConn struct {
	path                 string // its element or key path, for messages
	line                 int
	dsn                  string
	dsnLine              int
	user, password       string
	hasUser, hasPassword bool
	charset              string // settings.charset, "" when not set
}

func (s *confSource) names() string {
	names := make([]string, len(s.list))
	for i, ds := range s.list {
		names[i] = strconv.Quote(ds.id)
	}
	return strings.Join(names, ", ")
}

func (s *confSource) find(id string) *confDS {
	for _, ds := range s.list {
		if ds.id == id {
			return ds
		}
	}
	return nil
}

// pick returns the datasource to convert, read: want, else Propel's
// default.
func (s *confSource) pick(want string) (*confDS, error) {
	ds, err := s.choose(want)
	if err != nil {
		return nil, err
	}
	if err := ds.load(ds); err != nil {
		return nil, err
	}
	return ds, nil
}

// choose returns the datasource to convert: want, else Propel's default.
func (s *confSource) choose(want string) (*confDS, error) {
	if len(s.list) == 0 {
		return nil, &ImportError{File: s.file, Msg: fmt.Sprintf("no %s defined", s.kind)}
	}
	if want != "" {
		if ds := s.find(want); ds != nil {
			return ds, nil
		}
		return nil, &ImportError{File: s.file, Msg: fmt.Sprintf("no %s %q (have: %s)", s.kind, want, s.names())}
	}
	if s.def != "" {
		if ds := s.find(s.def); ds != nil {
			return ds, nil
		}
		return nil, &ImportError{File: s.file, Line: s.defLine, Path: s.defPath,
			Msg: fmt.Sprintf("the default %s %q is not defined (have: %s)", s.kind, s.def, s.names())}
	}
	if s.implicitDefault != "" {
		if ds := s.find(s.implicitDefault); ds != nil {
			return ds, nil
		}
	}
	if len(s.list) == 1 {
		return s.list[0], nil
	}
	return nil, &ImportError{File: s.file, Msg: fmt.Sprintf("%d %ss and no default one: name the one to convert with --datasource (have: %s)",
		len(s.list), s.kind, s.names())}
}

// pathID writes a datasource name into an element or key path, quoted
// when it is not a plain word.
func pathID(id string) string {
	if id != "" && strings.Trim(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") == "" {
		return id
	}
	return strconv.Quote(id)
}

// ---- runtime-conf.xml (Propel 1) ----

// confReadXML parses XML into elements (xml.go), with messages that
// quote nothing a value could hold.
func confReadXML(data []byte, file string) (*element, error) {
	root, fault := readXML(data)
	if fault != nil {
		return nil, &ImportError{File: file, Line: fault.line, Msg: "malformed XML: " + confXMLMsg(fault.msg)}
	}
	if root == nil {
		return nil, &ImportError{File: file, Msg: "no XML element: is this a Propel runtime-conf.xml?"}
	}
	return root, nil
}

// confXMLNames are the element names an XML syntax message may repeat;
// any other name in one may be a piece of a password with a bare < in it.
var confXMLNames = map[string]bool{
	"config": true, "propel": true, "datasources": true, "datasource": true, "adapter": true,
	"connection": true, "connections": true, "dsn": true, "user": true, "password": true,
	"slaves": true, "slave": true, "classname": true, "options": true, "option": true,
	"attributes": true, "settings": true, "setting": true, "query": true, "log": true,
	"database": true, "runtime": true, "generator": true,
}

var confXMLNameRE = regexp.MustCompile(`(</?)([^\s>]*)`)

// confXMLMsg keeps from an encoding/xml message only what cannot come
// from a value: unknown element names and entity text are left out.
func confXMLMsg(msg string) string {
	switch {
	case strings.HasPrefix(msg, "invalid character entity"):
		return "invalid character entity (write a literal & as &amp;)"
	case strings.HasPrefix(msg, "invalid XML name"):
		return "invalid XML name (write a literal < as &lt;)"
	}
	return confXMLNameRE.ReplaceAllStringFunc(msg, func(s string) string {
		m := confXMLNameRE.FindStringSubmatch(s)
		if confXMLNames[m[2]] {
			return s
		}
		return m[1] + "…"
	})
}

// confText is an element's text without the surrounding white space.
func confText(e *element) string {
	return strings.TrimSpace(string(e.text))
}

// confFromXML reads a Propel 1 runtime-conf.xml:
// <config><propel><datasources default="…"><datasource id="…">.
func confFromXML(data []byte, file string) (*confSource, error) {
	root, err := confReadXML(data, file)
	if err != nil {
		return nil, err
	}
	src := &confSource{file: file, format: "Propel 1 runtime-conf.xml", kind: "datasource", implicitDefault: "default"}
	// Propel reads the children of <propel>, or of the root when there is
	// no <propel>.
	p := root.child("propel")
	if p == nil {
		p = root
	}
	dss := p.child("datasources")
	if dss == nil {
		if db := p.child("database"); db != nil && db.child("connections") != nil {
			return nil, &ImportError{File: file, Line: db.line, Path: "propel/database",
				Msg: "this is a Propel 2 propel.xml, not a Propel 1 runtime-conf.xml: give its propel.yaml equivalent"}
		}
		return nil, &ImportError{File: file, Line: p.line, Path: p.name,
			Msg: "no <datasources> element: is this a Propel runtime-conf.xml?"}
	}
	if def, ok := dss.attr("default"); ok {
		src.def = strings.TrimSpace(def)
		src.defPath = "datasources[default]"
		src.defLine = dss.line
	}
	for _, e := range dss.all("datasource") {
		id, ok := e.attr("id")
		id = strings.TrimSpace(id)
		if !ok || id == "" {
			return nil, &ImportError{File: file, Line: e.line, Path: "datasources/datasource", Msg: "missing id attribute"}
		}
		at := "datasources/datasource[" + pathID(id) + "]"
		if prev := src.find(id); prev != nil {
			return nil, &ImportError{File: file, Line: e.line, Path: at, Msg: fmt.Sprintf("defined twice (first on line %d)", prev.line)}
		}
		ds := &confDS{id: id, line: e.line, path: at, load: func(ds *confDS) error { return confXMLDS(file, e, ds) }}
		src.list = append(src.list, ds)
	}
	return src, nil
}

// confXMLDS reads a <datasource>: adapter, connection and slaves.
func confXMLDS(file string, e *element, ds *confDS) error {
	at := ds.path
	if a := e.child("adapter"); a != nil {
		ds.adapter = confText(a)
		ds.adapterLine = a.line
	} else {
		ds.adapterLine = e.line
	}
	ds.adapterPath = at + "/adapter"
	c := e.child("connection")
	if c == nil {
		return &ImportError{File: file, Line: e.line, Path: at, Msg: "no <connection> element"}
	}
	var err error
	if ds.master, err = confXMLConn(file, c, at+"/connection", ds); err != nil {
		return err
	}
	if s := e.child("slaves"); s != nil {
		for i, c := range s.all("connection") {
			conn, err := confXMLConn(file, c, fmt.Sprintf("%s/slaves/connection[%d]", at, i+1), ds)
			if err != nil {
				return err
			}
			ds.slaves = append(ds.slaves, conn)
		}
	}
	return nil
}

// confXMLConn reads a <connection>: dsn, user, password and settings.
func confXMLConn(file string, c *element, at string, ds *confDS) (confConn, error) {
	conn := confConn{path: at, line: c.line}
	d := c.child("dsn")
	if d == nil || confText(d) == "" {
		line := c.line
		if d != nil {
			line = d.line
		}
		return conn, &ImportError{File: file, Line: line, Path: at + "/dsn", Msg: "missing: want the PDO DSN, such as mysql:host=localhost;dbname=bookstore"}
	}
	conn.dsn = confText(d)
	conn.dsnLine = d.line
	if u := c.child("user"); u != nil {
		conn.user, conn.hasUser = confText(u), true
	}
	if p := c.child("password"); p != nil {
		// PHP passes the text as it is: no trimming.
		conn.password, conn.hasPassword = string(p.text), true
		if strings.TrimSpace(conn.password) == "" {
			conn.password = ""
		}
	}
	if s := c.child("settings"); s != nil {
		for _, st := range s.all("setting") {
			switch id, _ := st.attr("id"); id {
			case "charset":
				conn.charset = confText(st)
			case "queries":
				if len(st.all("query")) > 0 {
					ds.queries = true
				}
			}
		}
	}
	return conn, nil
}

// ---- propel.yaml (Propel 2) ----

var confYAMLLineRE = regexp.MustCompile(`^yaml: (?:line (\d+): )?(.*)$`)
var confYAMLQuotedRE = regexp.MustCompile("'[^']*'|`[^`]*`")

// confYAMLError turns a YAML syntax error into an ImportError with its
// line. Quoted pieces of the message (an anchor's name) may come from a
// value, so they are left out.
func confYAMLError(file string, err error) error {
	msg := err.Error()
	m := confYAMLLineRE.FindStringSubmatch(msg)
	line := 0
	if m != nil {
		fmt.Sscan(m[1], &line)
		msg = m[2]
		if strings.HasPrefix(msg, "did not find expected") {
			// The YAML library reports the 0-based line of the block.
			line++
			msg += " in the block that starts here"
		}
	}
	msg = confYAMLQuotedRE.ReplaceAllString(msg, "…")
	return &ImportError{File: file, Line: line, Msg: "YAML syntax: " + msg}
}

// confYAMLPair is one key and value of a YAML mapping.
type confYAMLPair struct{ key, value *yaml.Node }

// confYAMLDeref follows aliases.
func confYAMLDeref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 16; i++ {
		n = n.Alias
	}
	return n
}

// confYAMLPairs lists a mapping's keys and values in order, merge keys
// (<<: *anchor) resolved as Symfony's YAML parser does: a key given in the
// mapping itself wins. Not a mapping: ok is false.
func confYAMLPairs(n *yaml.Node) (pairs []confYAMLPair, ok bool) {
	budget := 10000 // merges and merged pairs, against anchors merging anchors exponentially
	return confYAMLMerge(n, 0, &budget)
}

func confYAMLMerge(n *yaml.Node, depth int, budget *int) (pairs []confYAMLPair, ok bool) {
	n = confYAMLDeref(n)
	if n == nil || n.Kind != yaml.MappingNode || depth > 8 {
		return nil, false
	}
	seen := map[string]bool{}
	var merged []confYAMLPair
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.Tag == "!!merge" {
			v = confYAMLDeref(v)
			sources := []*yaml.Node{v}
			if v != nil && v.Kind == yaml.SequenceNode {
				sources = v.Content
			}
			for _, src := range sources {
				if *budget <= 0 {
					break
				}
				*budget--
				ps, _ := confYAMLMerge(src, depth+1, budget)
				*budget -= len(ps)
				merged = append(merged, ps...)
			}
			continue
		}
		seen[k.Value] = true
		pairs = append(pairs, confYAMLPair{k, v})
	}
	for _, p := range merged {
		if !seen[p.key.Value] {
			seen[p.key.Value] = true
			pairs = append(pairs, p)
		}
	}
	return pairs, true
}

// confYAMLGet returns the value of key in mapping n, or nil.
func confYAMLGet(n *yaml.Node, key string) *yaml.Node {
	pairs, _ := confYAMLPairs(n)
	for _, p := range pairs {
		if p.key.Value == key {
			return confYAMLDeref(p.value)
		}
	}
	return nil
}

// confYAMLScalar reads a scalar value: null is "".
func confYAMLScalar(file string, n *yaml.Node, at string) (string, error) {
	if n.Kind != yaml.ScalarNode {
		return "", &ImportError{File: file, Line: n.Line, Path: at, Msg: "want a string"}
	}
	if n.Tag == "!!null" {
		return "", nil
	}
	if strings.HasPrefix(n.Tag, "!") && !strings.HasPrefix(n.Tag, "!!") {
		return "", &ImportError{File: file, Line: n.Line, Path: at, Msg: "the value starts with '!', which YAML reads as a tag: quote it"}
	}
	return n.Value, nil
}

// confFromYAML reads a Propel 2 propel.yaml:
// propel.database.connections.NAME and propel.runtime.defaultConnection.
func confFromYAML(data []byte, file string) (*confSource, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, confYAMLError(file, err)
	}
	if len(doc.Content) == 0 {
		return nil, &ImportError{File: file, Msg: "empty: want a Propel propel.yaml with propel.database.connections"}
	}
	root := confYAMLDeref(doc.Content[0])
	if _, ok := confYAMLPairs(root); !ok {
		return nil, &ImportError{File: file, Line: root.Line, Msg: "want a mapping with a propel key: is this a Propel propel.yaml?"}
	}
	format := "Propel 2 propel.yaml"
	if strings.EqualFold(filepath.Ext(strings.TrimSuffix(file, ".dist")), ".json") {
		format = "Propel 2 propel.json"
	}
	src := &confSource{file: file, format: format, kind: "connection", keys: true}
	p := confYAMLGet(root, "propel")
	if p == nil {
		return nil, &ImportError{File: file, Line: root.Line, Path: "propel", Msg: "missing: is this a Propel propel.yaml?"}
	}
	db := confYAMLGet(p, "database")
	if db == nil {
		return nil, &ImportError{File: file, Line: p.Line, Path: "propel.database", Msg: "missing: want database.connections"}
	}
	conns := confYAMLGet(db, "connections")
	if conns == nil {
		return nil, &ImportError{File: file, Line: db.Line, Path: "propel.database.connections", Msg: "missing: want the connections"}
	}
	pairs, ok := confYAMLPairs(conns)
	if !ok {
		return nil, &ImportError{File: file, Line: conns.Line, Path: "propel.database.connections", Msg: "want a mapping of connection names to connections"}
	}
	for _, pair := range pairs {
		id := pair.key.Value
		at := "propel.database.connections." + pathID(id)
		if prev := src.find(id); prev != nil {
			return nil, &ImportError{File: file, Line: pair.key.Line, Path: at, Msg: fmt.Sprintf("defined twice (first on line %d)", prev.line)}
		}
		value := confYAMLDeref(pair.value)
		src.list = append(src.list, &confDS{id: id, line: pair.key.Line, path: at,
			load: func(ds *confDS) error { return confYAMLDS(file, value, ds) }})
	}
	if rt := confYAMLGet(p, "runtime"); rt != nil {
		if d := confYAMLGet(rt, "defaultConnection"); d != nil {
			def, err := confYAMLScalar(file, d, "propel.runtime.defaultConnection")
			if err != nil {
				return nil, err
			}
			src.def, src.defLine, src.defPath = def, d.Line, "propel.runtime.defaultConnection"
		}
	}
	return src, nil
}

// confYAMLDS reads one connection of propel.database.connections.
func confYAMLDS(file string, n *yaml.Node, ds *confDS) error {
	at := ds.path
	if n == nil {
		return &ImportError{File: file, Line: ds.line, Path: at, Msg: "want a mapping with adapter, dsn, user and password"}
	}
	if _, ok := confYAMLPairs(n); !ok {
		return &ImportError{File: file, Line: n.Line, Path: at, Msg: "want a mapping with adapter, dsn, user and password"}
	}
	ds.adapterPath, ds.adapterLine = at+".adapter", n.Line
	if a := confYAMLGet(n, "adapter"); a != nil {
		s, err := confYAMLScalar(file, a, at+".adapter")
		if err != nil {
			return err
		}
		ds.adapter, ds.adapterLine = strings.TrimSpace(s), a.Line
	}
	var err error
	if ds.master, err = confYAMLConn(file, n, at); err != nil {
		return err
	}
	if s := confYAMLGet(n, "settings"); s != nil {
		if c := confYAMLGet(s, "charset"); c != nil {
			if ds.master.charset, err = confYAMLScalar(file, c, at+".settings.charset"); err != nil {
				return err
			}
			ds.master.charset = strings.TrimSpace(ds.master.charset)
		}
		if q := confYAMLGet(s, "queries"); q != nil && len(q.Content) > 0 {
			ds.queries = true
		}
	}
	if s := confYAMLGet(n, "slaves"); s != nil && !(s.Kind == yaml.ScalarNode && s.Tag == "!!null") {
		var items []*yaml.Node
		switch s.Kind {
		case yaml.SequenceNode:
			items = s.Content
		case yaml.MappingNode:
			pairs, _ := confYAMLPairs(s)
			for _, p := range pairs {
				items = append(items, p.value)
			}
		default:
			return &ImportError{File: file, Line: s.Line, Path: at + ".slaves", Msg: "want a list of slaves, each with dsn, user and password"}
		}
		for i, item := range items {
			item = confYAMLDeref(item)
			sat := fmt.Sprintf("%s.slaves[%d]", at, i)
			if _, ok := confYAMLPairs(item); !ok {
				line := s.Line
				if item != nil {
					line = item.Line
				}
				return &ImportError{File: file, Line: line, Path: sat, Msg: "want a mapping with dsn, user and password"}
			}
			conn, err := confYAMLConn(file, item, sat)
			if err != nil {
				return err
			}
			ds.slaves = append(ds.slaves, conn)
		}
	}
	return nil
}

// confYAMLConn reads dsn, user and password from mapping n.
func confYAMLConn(file string, n *yaml.Node, at string) (confConn, error) {
	conn := confConn{path: at, line: n.Line}
	d := confYAMLGet(n, "dsn")
	if d == nil {
		return conn, &ImportError{File: file, Line: n.Line, Path: at + ".dsn", Msg: "missing: want the PDO DSN, such as mysql:host=localhost;dbname=bookstore"}
	}
	dsn, err := confYAMLScalar(file, d, at+".dsn")
	if err != nil {
		return conn, err
	}
	if strings.TrimSpace(dsn) == "" {
		return conn, &ImportError{File: file, Line: d.Line, Path: at + ".dsn", Msg: "empty: want the PDO DSN, such as mysql:host=localhost;dbname=bookstore"}
	}
	conn.dsn, conn.dsnLine = strings.TrimSpace(dsn), d.Line
	if u := confYAMLGet(n, "user"); u != nil {
		if conn.user, err = confYAMLScalar(file, u, at+".user"); err != nil {
			return conn, err
		}
		conn.hasUser = true
	}
	if p := confYAMLGet(n, "password"); p != nil {
		if conn.password, err = confYAMLScalar(file, p, at+".password"); err != nil {
			return conn, err
		}
		conn.hasPassword = true
	}
	return conn, nil
}

// ---- conversion ----

// confDriverAvailable says whether tandem's driver table has driver.
func confDriverAvailable(driver string) bool { return slices.Contains(tandem.Drivers(), driver) }

// confAdapters maps Propel adapters to tandem drivers and the PDO DSN
// prefix that goes with them.
var confAdapters = map[string]struct{ driver, prefix string }{
	"mysql":  {"mysql", "mysql"},
	"pgsql":  {"postgres", "pgsql"},
	"sqlite": {"sqlite", "sqlite"},
}

// confPDODrivers are PDO's DSN prefixes, which an error may name.
var confPDODrivers = map[string]bool{
	"mysql": true, "pgsql": true, "sqlite": true, "sqlite2": true, "oci": true, "sqlsrv": true,
	"dblib": true, "mssql": true, "sybase": true, "odbc": true, "firebird": true, "ibm": true,
	"informix": true, "cubrid": true, "4d": true, "uri": true,
}

// confTarget is one tandem datasource to write.
type confTarget struct {
	name, driver, dsn string
	key               string // the database it reaches, to find duplicates
	role              string // "the master", "slave 2"
	path              string
}

// confConverter converts one Propel datasource.
type confConverter struct {
	src      *confSource
	ds       *confDS
	driver   string
	targets  []confTarget
	renamed  bool // the Propel id was not a valid tandem name
	single   bool // only one database: the user must add one
	warnings []string
	notes    []string // warnings about one connection, after the general ones
	// what the warnings gather over the connections
	noUser, relative, localhost, placeholders []string
	dropped                                   []string
}

func (c *confConverter) fail(line int, at, format string, args ...any) error {
	return &ImportError{File: c.src.file, Line: line, Path: at, Msg: fmt.Sprintf(format, args...)}
}

func (c *confConverter) warn(format string, args ...any) {
	c.warnings = append(c.warnings, fmt.Sprintf(format, args...))
}

// note is a warning about one connection.
func (c *confConverter) note(format string, args ...any) {
	c.notes = append(c.notes, fmt.Sprintf(format, args...))
}

func (c *confConverter) convert() error {
	ds := c.ds
	adapter := strings.ToLower(ds.adapter)
	if adapter == "" {
		return c.fail(ds.adapterLine, ds.adapterPath, "missing: want mysql, pgsql or sqlite")
	}
	a, ok := confAdapters[adapter]
	if !ok {
		return c.fail(ds.adapterLine, ds.adapterPath, "%s %q uses adapter %q, which tandem cannot import (it imports mysql, pgsql and sqlite)",
			c.src.kind, ds.id, ds.adapter)
	}
	c.driver = a.driver
	base := confName(ds.id, len(ds.slaves))
	c.renamed = base != ds.id
	conns := append([]confConn{ds.master}, ds.slaves...)
	seen := map[string]string{}
	for i, conn := range conns {
		t := confTarget{driver: a.driver, path: conn.path, name: base, role: "the master"}
		if i > 0 {
			t.name = fmt.Sprintf("%s-slave%d", base, i)
			t.role = fmt.Sprintf("slave %d", i)
		}
		if err := c.translate(adapter, a.prefix, conn, &t); err != nil {
			return err
		}
		if prev, dup := seen[t.key]; dup {
			// Propel configs often list the master among the slaves, to
			// spread reads; tandem would write the same database twice.
			c.dropped = append(c.dropped, fmt.Sprintf("%s (%s) reaches the same database as %s", t.role, conn.path, prev))
			continue
		}
		seen[t.key] = t.role
		c.targets = append(c.targets, t)
	}
	c.single = len(c.targets) < 2
	c.collectWarnings()
	return nil
}

// confName makes a Propel datasource name a tandem one (a letter, then up
// to 62 letters, digits, '_' or '-'), leaving room for "-slaveN".
func confName(id string, slaves int) string {
	var b strings.Builder
	for _, r := range id {
		if r < utf8.RuneSelf && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	s := b.String()
	if s == "" || !(s[0] >= 'a' && s[0] <= 'z' || s[0] >= 'A' && s[0] <= 'Z') {
		s = "ds_" + s
	}
	limit := 63
	if slaves > 0 {
		limit -= len("-slave") + len(strconv.Itoa(slaves))
	}
	if len(s) > limit {
		s = s[:limit]
	}
	return s
}

func (c *confConverter) collectWarnings() {
	ds := c.ds
	if others := len(c.src.list) - 1; others > 0 {
		var names []string
		for _, o := range c.src.list {
			if o != ds {
				names = append(names, strconv.Quote(o.id))
			}
		}
		c.warn("%s defines %d other %s, not converted: %s (convert each with --datasource, into its own tandem config)",
			c.src.file, others, confPlural(others, c.src.kind), strings.Join(names, ", "))
	}
	if c.renamed {
		c.warn("%s %q is named %q in the tandem config: a name is a letter, then letters, digits, '_' or '-'",
			c.src.kind, ds.id, c.targets[0].name)
	}
	for _, d := range c.dropped {
		c.warn("%s %q: %s: left out, or tandem would write that database twice", c.src.kind, ds.id, d)
	}
	if c.single {
		c.warn("%s %q has a single database: tandem mirrors at least two, so add a second datasource to the config before using it",
			c.src.kind, ds.id)
	}
	if !confDriverAvailable(c.driver) {
		c.warn("driver %q is not yet in tandem's driver table (it comes in a later release): tandem refuses this config until then", c.driver)
	}
	if len(ds.slaves) > 0 && len(c.targets) > 1 {
		c.warn("%s %q: Propel's slaves are replicas fed by the database's replication; tandem writes every datasource itself, so stop that replication to %s before using this config (or they would receive every write twice)",
			c.src.kind, ds.id, strings.Join(c.slaveNames(), ", "))
	}
	if ds.queries {
		c.warn("%s %q: the SQL in settings.queries that Propel runs on each new connection is not carried over", c.src.kind, ds.id)
	}
	if len(c.noUser) > 0 {
		c.warn("%s has no user: Propel connects to it without one (it does not take the master's), and so does the tandem DSN",
			strings.Join(c.noUser, ", "))
	}
	if len(c.localhost) > 0 {
		c.warn("%s: PDO reaches a MySQL server on localhost through its Unix socket, the tandem DSN through TCP: if MySQL does not listen on TCP, write unix(/path/to/mysqld.sock) in place of tcp(localhost:3306)",
			strings.Join(c.localhost, ", "))
	}
	if len(c.relative) > 0 {
		c.warn("%s: a relative SQLite path is relative to PHP's working directory in Propel, and to the config file's directory in tandem: put the tandem config there, or make the path absolute",
			strings.Join(c.relative, ", "))
	}
	if len(c.placeholders) > 0 {
		c.warn("%s: %%…%% parameters (such as %%env.DB_PASSWORD%%) are expanded by Propel, not by tandem: replace them with their values in the tandem config",
			strings.Join(c.placeholders, ", "))
	}
	c.warnings = append(c.warnings, c.notes...)
}

func (c *confConverter) slaveNames() []string {
	var names []string
	for _, t := range c.targets[1:] {
		names = append(names, t.name)
	}
	return names
}

func confPlural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

var confPlaceholderRE = regexp.MustCompile(`%[A-Za-z_][A-Za-z0-9_.]*%`)

// translate turns one Propel connection into a tandem datasource's DSN.
func (c *confConverter) translate(adapter, prefix string, conn confConn, t *confTarget) error {
	at := conn.path + "/dsn"
	if c.src.keys {
		at = conn.path + ".dsn"
	}
	drv, rest, ok := strings.Cut(conn.dsn, ":")
	if !ok || drv == "" {
		return c.fail(conn.dsnLine, at, "no driver prefix: want a PDO DSN starting with %s:", prefix)
	}
	drv = strings.ToLower(drv)
	if drv != prefix {
		if drv == "sqlite2" && prefix == "sqlite" {
			return c.fail(conn.dsnLine, at, "an SQLite 2 database (sqlite2:) cannot be mirrored: tandem opens SQLite 3 files")
		}
		named := "an unknown driver"
		if confPDODrivers[drv] {
			named = fmt.Sprintf("driver %q", drv)
		}
		return c.fail(conn.dsnLine, at, "the adapter is %q but the DSN is for %s (want %s:)", c.ds.adapter, named, prefix)
	}
	if confPlaceholderRE.MatchString(conn.dsn) || confPlaceholderRE.MatchString(conn.user) || confPlaceholderRE.MatchString(conn.password) {
		c.placeholders = append(c.placeholders, conn.path)
	}
	var err error
	switch adapter {
	case "mysql":
		err = c.mysql(rest, conn, at, t)
	case "pgsql":
		err = c.pgsql(rest, conn, at, t)
	case "sqlite":
		err = c.sqlite(rest, conn, at, t)
	}
	if err != nil {
		return err
	}
	if t.role != "the master" && adapter != "sqlite" && conn.user == "" && !strings.Contains(rest, "user=") {
		c.noUser = append(c.noUser, conn.path)
	}
	return nil
}

// confPDOParam is one key=value of a PDO DSN.
type confPDOParam struct{ key, value string }

// confPDOParams splits a PDO DSN's "key=value;key=value" as PDO does: a
// doubled ";;" is a literal ';', white space before a key is skipped.
func confPDOParams(s string) []confPDOParam {
	var out []confPDOParam
	for len(s) > 0 {
		s = strings.TrimLeft(s, " \t\r\n")
		eq := strings.IndexByte(s, '=')
		if eq < 0 {
			break
		}
		key := s[:eq]
		s = s[eq+1:]
		var v strings.Builder
		for {
			i := strings.IndexByte(s, ';')
			if i < 0 {
				v.WriteString(s)
				s = ""
				break
			}
			if i+1 < len(s) && s[i+1] == ';' {
				v.WriteString(s[:i+1])
				s = s[i+2:]
				continue
			}
			v.WriteString(s[:i])
			s = s[i+1:]
			break
		}
		// A key with ';' in it is the end of a word without '=': PDO skips it.
		if i := strings.LastIndexByte(key, ';'); i >= 0 {
			key = key[i+1:]
		}
		out = append(out, confPDOParam{strings.TrimSpace(key), v.String()})
	}
	return out
}

var confCharsetRE = regexp.MustCompile(`^[A-Za-z0-9_]+$`)

// mysql translates a PDO mysql DSN into go-sql-driver/mysql's form:
// USER:PASSWORD@tcp(HOST:PORT)/DBNAME?charset=C.
func (c *confConverter) mysql(rest string, conn confConn, at string, t *confTarget) error {
	host, port, socket, db, charset := "localhost", "3306", "", "", ""
	var dsnUser, dsnPassword string
	var hasDSNUser, hasDSNPassword bool
	var unknown []string
	for _, p := range confPDOParams(rest) {
		v := strings.TrimSpace(p.value)
		switch p.key {
		case "host":
			host = v
		case "port":
			port = v
		case "unix_socket":
			socket = v
		case "dbname":
			db = v
		case "charset":
			charset = v
		case "user":
			dsnUser, hasDSNUser = p.value, true
		case "password":
			dsnPassword, hasDSNPassword = p.value, true
		default:
			unknown = append(unknown, strconv.Quote(p.key))
		}
	}
	if len(unknown) > 0 {
		c.note("%s: PDO ignores the DSN's %s, and so does the tandem DSN", conn.path, strings.Join(unknown, ", "))
	}
	// PDO takes the user and password given beside the DSN over the DSN's.
	user, password := conn.user, conn.password
	if !(conn.hasUser && user != "") && hasDSNUser {
		user = dsnUser
	}
	if !(conn.hasPassword && password != "") && hasDSNPassword {
		password = dsnPassword
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return c.fail(conn.dsnLine, at, "the port is not a number from 1 to 65535")
	}
	if charset == "" {
		charset = conn.charset
		if charset == "" && t.role != "the master" {
			charset = c.ds.master.charset
		}
	}
	if charset != "" && !confCharsetRE.MatchString(charset) {
		return c.fail(conn.dsnLine, at, "the charset is not a character set name such as utf8mb4")
	}
	var addr string
	switch {
	case host == "":
		return c.fail(conn.dsnLine, at, "the host is empty")
	case host == "localhost" && socket != "":
		// PDO uses unix_socket only for host localhost (the default).
		addr = "unix(" + socket + ")"
	case host == "localhost":
		addr = "tcp(" + net.JoinHostPort(host, port) + ")"
		c.localhost = append(c.localhost, conn.path)
	default:
		addr = "tcp(" + net.JoinHostPort(host, port) + ")"
		if socket != "" {
			c.note("%s: PDO ignores unix_socket for a host other than localhost, and so does the tandem DSN", conn.path)
		}
	}
	if strings.ContainsAny(addr, "@") {
		return c.fail(conn.dsnLine, at, "the host or socket path contains '@', which a go-sql-driver/mysql DSN cannot hold")
	}
	if strings.Contains(user, ":") {
		return c.fail(conn.line, conn.path, "the user name contains ':', which a go-sql-driver/mysql DSN cannot hold")
	}
	var b strings.Builder
	if user != "" || password != "" {
		b.WriteString(user)
		if password != "" {
			b.WriteString(":" + password)
		}
		b.WriteString("@")
	}
	b.WriteString(addr + "/" + url.PathEscape(db))
	// tandem's mysql driver always talks utf8mb4 and creates utf8mb4
	// tables; it refuses another charset in the DSN.
	if charset != "" && !strings.EqualFold(charset, "utf8mb4") {
		c.warn("%s: charset %s left out of the DSN: tandem's mysql driver always uses utf8mb4 (existing %s tables keep their charset)", conn.path, charset, charset)
	}
	t.dsn = b.String()
	t.key = "mysql\x00" + addr + "\x00" + db
	return nil
}

// confConninfo splits a libpq connection string (key=value pairs separated
// by white space, values optionally in single quotes, backslash escapes).
// Its errors name no key nor value: either may be a misplaced password.
func confConninfo(s string) ([]confPDOParam, error) {
	var out []confPDOParam
	isSpace := func(b byte) bool { return b == ' ' || b == '\t' || b == '\n' || b == '\r' || b == '\f' || b == '\v' }
	i := 0
	for {
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		if i >= len(s) {
			return out, nil
		}
		start := i
		for i < len(s) && s[i] != '=' && !isSpace(s[i]) {
			i++
		}
		key := s[start:i]
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		if i >= len(s) || s[i] != '=' || key == "" {
			return nil, errors.New("a word without '=' (want key=value pairs)")
		}
		i++
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		var v strings.Builder
		if i < len(s) && s[i] == '\'' {
			i++
			closed := false
			for i < len(s) {
				if s[i] == '\\' && i+1 < len(s) {
					v.WriteByte(s[i+1])
					i += 2
					continue
				}
				if s[i] == '\'' {
					i++
					closed = true
					break
				}
				v.WriteByte(s[i])
				i++
			}
			if !closed {
				return nil, errors.New("a quoted value without its closing quote")
			}
		} else {
			for i < len(s) && !isSpace(s[i]) {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				v.WriteByte(s[i])
				i++
			}
		}
		out = append(out, confPDOParam{key, v.String()})
	}
}

// pgsql translates a PDO pgsql DSN into a URL:
// postgres://USER:PASSWORD@HOST:PORT/DBNAME?option=value.
func (c *confConverter) pgsql(rest string, conn confConn, at string, t *confTarget) error {
	// PDO hands the DSN to libpq with every ';' made a space.
	params, err := confConninfo(strings.ReplaceAll(rest, ";", " "))
	if err != nil {
		return c.fail(conn.dsnLine, at, "%v", err)
	}
	var host, hostaddr, port, db string
	user, password := conn.user, conn.password
	q := url.Values{}
	for _, p := range params {
		switch p.key {
		case "host":
			host = p.value
		case "hostaddr":
			hostaddr = p.value
		case "port":
			port = p.value
		case "dbname":
			db = p.value
		case "user":
			// PDO adds the user and password given beside the DSN only
			// when the DSN has none.
			user = p.value
		case "password":
			password = p.value
		default:
			q.Set(p.key, p.value)
		}
	}
	if host == "" && hostaddr != "" {
		host, hostaddr = hostaddr, ""
	}
	if hostaddr != "" {
		q.Set("hostaddr", hostaddr)
	}
	if strings.Contains(host, ",") || strings.Contains(port, ",") {
		return c.fail(conn.dsnLine, at, "several hosts: list each database as its own datasource")
	}
	if port == "" {
		port = "5432"
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return c.fail(conn.dsnLine, at, "the port is not a number from 1 to 65535")
	}
	if conn.charset != "" && q.Get("client_encoding") == "" {
		q.Set("client_encoding", conn.charset)
	}
	u := url.URL{Scheme: "postgres", Path: "/" + db}
	switch {
	case user != "" && password != "":
		u.User = url.UserPassword(user, password)
	case password != "":
		u.User = url.UserPassword("", password)
	case user != "":
		u.User = url.User(user)
	}
	switch {
	case host == "":
		// libpq then uses its Unix socket; a URL needs a host.
		host = "localhost"
		c.note("%s: no host in the DSN: libpq connects through its Unix socket, the tandem DSN to localhost:%s over TCP", conn.path, port)
		u.Host = net.JoinHostPort(host, port)
	case strings.HasPrefix(host, "/"):
		// A Unix socket directory.
		q.Set("host", host)
		q.Set("port", port)
	default:
		u.Host = net.JoinHostPort(host, port)
	}
	u.RawQuery = q.Encode()
	t.dsn = u.String()
	t.key = "postgres\x00" + host + "\x00" + port + "\x00" + db
	return nil
}

// sqlite translates a PDO sqlite DSN (a file path) into tandem's: the path.
func (c *confConverter) sqlite(rest string, conn confConn, at string, t *confTarget) error {
	p := rest
	if strings.HasPrefix(strings.ToLower(p), "file:") {
		// An SQLite URI filename: only a plain path is carried over.
		p = p[len("file:"):]
		if strings.ContainsAny(p, "?#%") {
			return c.fail(conn.dsnLine, at, "an SQLite URI with options or escapes: give a plain file path")
		}
		if strings.HasPrefix(p, "//") {
			hostPath := p[2:]
			slash := strings.IndexByte(hostPath, '/')
			if slash < 0 || (slash > 0 && hostPath[:slash] != "localhost") {
				return c.fail(conn.dsnLine, at, "an SQLite URI with a host: give a plain file path")
			}
			p = hostPath[slash:]
		}
		if strings.HasPrefix(p, "file:") {
			return c.fail(conn.dsnLine, at, "an SQLite URI inside an SQLite URI: give a plain file path")
		}
	}
	switch {
	case p == "":
		return c.fail(conn.dsnLine, at, "no file: PDO opens a temporary database, which cannot be mirrored")
	case p == ":memory:":
		return c.fail(conn.dsnLine, at, "an in-memory database (sqlite::memory:) cannot be mirrored: give a file path")
	case strings.Contains(p, "?"):
		return c.fail(conn.dsnLine, at, "the path contains '?', which tandem reads as the start of its SQLite options")
	}
	if !filepath.IsAbs(p) && !path.IsAbs(p) {
		c.relative = append(c.relative, conn.path)
	}
	t.dsn = p
	t.key = "sqlite\x00" + filepath.Clean(p)
	return nil
}

// ---- output ----

// confYAMLString writes s as a one-line YAML scalar.
func confYAMLString(s string) string {
	n := yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
	out, err := yaml.Marshal(&n)
	if err != nil || bytes.Count(out, []byte("\n")) > 1 {
		n.Style = yaml.DoubleQuotedStyle
		out, _ = yaml.Marshal(&n)
	}
	return strings.TrimSuffix(string(out), "\n")
}

// confComment writes text as YAML comment lines of at most 76 columns,
// each prefixed by indent.
func confComment(b *strings.Builder, indent, text string) {
	line := ""
	for _, w := range strings.Fields(text) {
		if line != "" && len(indent)+2+len(line)+1+len(w) > 78 {
			b.WriteString(indent + "# " + line + "\n")
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += w
	}
	if line != "" {
		b.WriteString(indent + "# " + line + "\n")
	}
}

// render writes the tandem config.
func (c *confConverter) render() string {
	var b strings.Builder
	ds := c.ds
	confComment(&b, "", fmt.Sprintf("tandem config imported from %s (a %s), %s %s (adapter %s).",
		strconv.Quote(c.src.file), c.src.format, c.src.kind, strconv.Quote(ds.id), strings.ToLower(ds.adapter)))
	if c.renamed {
		confComment(&b, "", fmt.Sprintf("The %s is named %s here: a tandem name is a letter, then letters, digits, '_' or '-'.",
			c.src.kind, c.targets[0].name))
	}
	if !confDriverAvailable(c.driver) {
		b.WriteString("#\n")
		confComment(&b, "", fmt.Sprintf("The %s driver is not yet in tandem's driver table: it comes with a later release, and until then tandem refuses this config (unknown driver).", c.driver))
	}
	fmt.Fprintf(&b, "primary: %s\n", c.targets[0].name)
	b.WriteString("datasources:\n")
	for i, t := range c.targets {
		if i == 1 {
			confComment(&b, "  ", fmt.Sprintf("The datasources below were Propel's slaves of %s. In Propel, slaves are read replicas that the database's own replication feeds from the master. In tandem, every datasource is written synchronously by tandem itself: stop the replication to these servers before using this config (or they would receive every write twice). They become full secondaries, which reads fail over to.",
				c.targets[0].name))
		}
		fmt.Fprintf(&b, "  - name: %s\n    driver: %s\n    dsn: %s\n", t.name, t.driver, confYAMLString(t.dsn))
	}
	if c.single {
		confComment(&b, "  ", "tandem mirrors at least two databases: add the second one here, such as")
		second := c.targets[0].name + "-copy"
		if len(second) > 63 {
			second = "copy"
		}
		example := map[string]string{
			"mysql":    "USER:PASSWORD@tcp(HOST:3306)/DBNAME",
			"postgres": "postgres://USER:PASSWORD@HOST:5432/DBNAME",
			"sqlite":   "path/to/copy.db",
		}[c.driver]
		fmt.Fprintf(&b, "  # - name: %s\n  #   driver: %s\n  #   dsn: %s\n", second, c.driver, confYAMLString(example))
	}
	return b.String()
}
