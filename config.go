package tandem

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/tandemdb/tandem/arbiter"
	"github.com/tandemdb/tandem/engine"
)

// Config says which datasources tandem mirrors. Load one from YAML with
// LoadConfig, or build it in Go and pass it to Open, which validates it.
type Config struct {
	// Primary names the datasource whose locks order writes. Empty: the
	// first datasource.
	Primary string
	// Datasources are the databases to keep identical, at least two.
	Datasources []Datasource
	// Timeout bounds how long a write waits for one datasource (a lock
	// held by another process, a hung server) before going on without it.
	// Zero: DefaultTimeout.
	Timeout time.Duration
	// HealthInterval is how often every datasource is checked, returning
	// ones caught up and stale intent records repaired. Zero:
	// DefaultHealthInterval.
	HealthInterval time.Duration
	// Commit says how a write commits on the databases it reached:
	// CommitConcurrent (the default, "") commits every database at once;
	// CommitTwoPhase prepares every secondary first, then commits the
	// primary, then the secondaries, so that no secondary ever holds a
	// write its primary did not commit. Two-phase needs every datasource's
	// engine to have it (PostgreSQL, with max_prepared_transactions > 0).
	Commit string
	// Conflicts says how rows changed on both sides of a split brain are
	// resolved. Zero: ConflictManual.
	Conflicts ConflictPolicy
	// Arbiter says where the cluster's view lives (see package arbiter):
	// the one record every process reads, which says which datasource is
	// the primary and which datasources writes skip. Zero: a witness file
	// beside the config when every datasource is a SQLite file (they live
	// on one machine), else none: the view lives in the primary's
	// database, and the primary changes only by an operator's promote.
	Arbiter ArbiterConfig

	file            string         // the YAML file it came from, for messages
	dir             string         // relative SQLite paths are relative to this directory
	primaryLine     int            // line of the primary field in file
	lines           map[string]int // line of each other top-level field
	datasourcesLine int            // line of the datasources list in file
}

// ArbiterConfig names an arbiter and its settings: the YAML field arbiter,
// a kind (witness, etcd, none) or a mapping with a kind field.
type ArbiterConfig struct {
	// Kind is a registered arbiter kind ("witness"; "etcd" once package
	// arbiter/etcd is imported), ArbiterNone, or "" for the default.
	Kind string
	// Fields are the kind's settings (witness: path; etcd: endpoints, key).
	Fields map[string]any
}

// ArbiterNone keeps the view in the primary's database: a secondary that
// fails is still left out, but the primary changes only by `tandem
// promote`.
const ArbiterNone = "none"

// The ways a write commits (Config.Commit).
const (
	CommitConcurrent = "concurrent"
	CommitTwoPhase   = "two-phase"
)

// Datasource is one configured database.
type Datasource struct {
	// Name identifies the datasource in status, logs and commands.
	Name string
	// Driver is the engine: "sqlite".
	Driver string
	// DSN locates the database. For sqlite: a file path, relative to the
	// config file's directory, optionally followed by ?synchronous=…&busy_timeout=….
	DSN string

	line   int            // line of the entry in the config file
	fields map[string]int // line of each field
	dsn    string         // resolved by Validate
	eng    engine.Engine  // set by Validate
}

// Engine returns the datasource's engine, once Validate has found it (nil
// before).
func (ds *Datasource) Engine() engine.Engine { return ds.eng }

// ResolvedDSN returns the DSN Validate resolved (relative paths made
// absolute), "" before. It may hold a password: never log it; the engine's
// Redact removes it.
func (ds *Datasource) ResolvedDSN() string { return ds.dsn }

var nameRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]{0,62}$`)

// LoadConfig reads and validates a YAML config file. Every error is a
// *ConfigError naming the field and line; nothing is created or written.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &ConfigError{File: path, Msg: fmt.Sprintf("cannot read: %v", errors.Unwrap(err))}
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, &ConfigError{File: path, Msg: err.Error()}
	}
	cfg, err := ParseConfig(data, filepath.Dir(abs))
	if err != nil {
		var many *ConfigErrors
		var ce *ConfigError
		switch {
		case errors.As(err, &many):
			for _, e := range many.Errors {
				e.File = path
			}
		case errors.As(err, &ce):
			ce.File = path
		}
		return nil, err
	}
	cfg.file = path
	return cfg, nil
}

// ParseConfig parses and validates YAML config text. Relative SQLite paths
// are resolved against dir.
func ParseConfig(data []byte, dir string) (*Config, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &ConfigError{Msg: "empty config: want primary and datasources"}
		}
		return nil, yamlError(err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, yamlError(err)
		}
		return nil, &ConfigError{Line: extra.Line, Msg: "a second YAML document: want one"}
	}
	cfg := &Config{dir: dir, lines: map[string]int{}}
	if len(doc.Content) == 0 {
		return nil, &ConfigError{Msg: "empty config: want primary and datasources"}
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, &ConfigError{Line: root.Line, Msg: "want a mapping with primary and datasources"}
	}
	var errs configErrors
	seen := map[string]bool{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if seen[k.Value] {
			errs.add(&ConfigError{Line: k.Line, Field: k.Value, Msg: "given twice"})
			continue
		}
		seen[k.Value] = true
		cfg.lines[k.Value] = v.Line
		switch k.Value {
		case "primary":
			s, err := scalar(v, "primary")
			errs.add(err)
			cfg.Primary = s
			cfg.primaryLine = v.Line
		case "datasources":
			cfg.datasourcesLine = k.Line
			if v.Kind != yaml.SequenceNode {
				errs.add(&ConfigError{Line: v.Line, Field: "datasources", Msg: "want a list of datasources"})
				continue
			}
			for j, item := range v.Content {
				ds, dsErrs := parseDatasource(item, j)
				errs = append(errs, dsErrs...)
				cfg.Datasources = append(cfg.Datasources, ds)
			}
		case "timeout", "health_interval":
			d, err := duration(v, k.Value)
			errs.add(err)
			if k.Value == "timeout" {
				cfg.Timeout = d
			} else {
				cfg.HealthInterval = d
			}
		case "conflicts":
			errs = append(errs, parseConflicts(v, cfg)...)
		case "commit":
			s, err := scalar(v, "commit")
			errs.add(err)
			cfg.Commit = s
		case "arbiter":
			errs.add(parseArbiter(v, cfg))
		default:
			errs.add(&ConfigError{Line: k.Line, Field: k.Value, Msg: "unknown field (known: primary, datasources, timeout, health_interval, commit, conflicts, arbiter)"})
		}
	}
	if !seen["datasources"] {
		errs.add(&ConfigError{Line: root.Line, Field: "datasources", Msg: "missing: list at least two datasources"})
	}
	// What parsed is checked as a whole too, but for what failed to parse:
	// its checks would only repeat that.
	var checked configErrors
	checked.add(cfg.Validate())
	for _, ce := range checked {
		if !errs.covers(ce.Field) {
			errs = append(errs, ce)
		}
	}
	slices.SortStableFunc(errs, func(a, b *ConfigError) int { return a.Line - b.Line })
	if err := errs.err(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// covers reports whether an error in l is about field, or about the
// datasource or section field is in.
func (l configErrors) covers(field string) bool {
	for _, ce := range l {
		if ce.Field == field || strings.HasPrefix(field, ce.Field+".") || strings.HasPrefix(ce.Field, field+".") {
			return true
		}
		if i := strings.Index(field, "]"); i > 0 && strings.HasPrefix(ce.Field, field[:i+1]) {
			return true // the same datasource
		}
	}
	return false
}

// configErrors collects every error of a config, so that all are
// reported at once.
type configErrors []*ConfigError

// add appends err (a *ConfigError, or a ConfigErrors), unless nil.
func (l *configErrors) add(err error) {
	if err == nil {
		return
	}
	var many *ConfigErrors
	if errors.As(err, &many) {
		*l = append(*l, many.Errors...)
		return
	}
	var ce *ConfigError
	if errors.As(err, &ce) {
		*l = append(*l, ce)
		return
	}
	*l = append(*l, &ConfigError{Msg: err.Error()})
}

// err returns nil, the one error, or a *ConfigErrors holding them all.
func (l configErrors) err() error {
	switch len(l) {
	case 0:
		return nil
	case 1:
		return l[0]
	}
	return &ConfigErrors{Errors: l}
}

var lineRE = regexp.MustCompile(`^yaml: (?:line (\d+): )?(.*)$`)

// yamlError turns a YAML syntax error into a ConfigError with its line.
func yamlError(err error) error {
	msg := err.Error()
	m := lineRE.FindStringSubmatch(msg)
	if m == nil {
		return &ConfigError{Msg: "YAML syntax: " + strings.TrimPrefix(msg, "yaml: ")}
	}
	line := 0
	fmt.Sscan(m[1], &line)
	if strings.HasPrefix(m[2], "did not find expected") {
		// A parser (not scanner) error: the YAML library reports the
		// 0-based line where the enclosing block starts, not the problem.
		return &ConfigError{Line: line + 1, Msg: "YAML syntax: " + m[2] + " in the block that starts here"}
	}
	return &ConfigError{Line: line, Msg: "YAML syntax: " + m[2]}
}

func scalar(v *yaml.Node, field string) (string, error) {
	if v.Kind != yaml.ScalarNode || v.Tag == "!!null" {
		return "", &ConfigError{Line: v.Line, Field: field, Msg: "want a string"}
	}
	return v.Value, nil
}

func duration(v *yaml.Node, field string) (time.Duration, error) {
	s, err := scalar(v, field)
	if err != nil {
		return 0, err
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, &ConfigError{Line: v.Line, Field: field, Msg: fmt.Sprintf("%q: want a positive duration such as 500ms or 2s", s)}
	}
	return d, nil
}

// parseArbiter reads the arbiter field: a kind, or a mapping whose kind
// field names it and whose other fields are the kind's settings.
func parseArbiter(n *yaml.Node, cfg *Config) error {
	cfg.lines["arbiter.kind"] = n.Line
	if n.Kind == yaml.ScalarNode {
		cfg.Arbiter.Kind = n.Value
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return &ConfigError{Line: n.Line, Field: "arbiter", Msg: "want a kind (witness, etcd, none) or a mapping with a kind field"}
	}
	var fields map[string]any
	if err := n.Decode(&fields); err != nil {
		return &ConfigError{Line: n.Line, Field: "arbiter", Msg: err.Error()}
	}
	for j := 0; j+1 < len(n.Content); j += 2 {
		cfg.lines["arbiter."+n.Content[j].Value] = n.Content[j].Line
	}
	kind, ok := fields["kind"].(string)
	if !ok || kind == "" {
		return &ConfigError{Line: n.Line, Field: "arbiter.kind", Msg: "missing: want witness, etcd or none"}
	}
	delete(fields, "kind")
	cfg.Arbiter = ArbiterConfig{Kind: kind, Fields: fields}
	return nil
}

func parseConflicts(n *yaml.Node, cfg *Config) configErrors {
	if n.Kind != yaml.MappingNode {
		return configErrors{{Line: n.Line, Field: "conflicts", Msg: "want a mapping with policy (and column for newest)"}}
	}
	var errs configErrors
	seen := map[string]bool{}
	for j := 0; j+1 < len(n.Content); j += 2 {
		k, v := n.Content[j], n.Content[j+1]
		field := "conflicts." + k.Value
		if seen[k.Value] {
			errs.add(&ConfigError{Line: k.Line, Field: field, Msg: "given twice"})
			continue
		}
		seen[k.Value] = true
		s, err := scalar(v, field)
		if err != nil {
			errs.add(err)
			continue
		}
		cfg.lines[field] = v.Line
		switch k.Value {
		case "policy":
			cfg.Conflicts.Policy = s
		case "column":
			cfg.Conflicts.Column = s
		default:
			errs.add(&ConfigError{Line: k.Line, Field: field, Msg: "unknown field (known: policy, column)"})
		}
	}
	return errs
}

func parseDatasource(n *yaml.Node, i int) (Datasource, configErrors) {
	at := fmt.Sprintf("datasources[%d]", i)
	ds := Datasource{line: n.Line, fields: map[string]int{}}
	if n.Kind != yaml.MappingNode {
		return ds, configErrors{{Line: n.Line, Field: at, Msg: "want a mapping with name, driver and dsn"}}
	}
	var errs configErrors
	for j := 0; j+1 < len(n.Content); j += 2 {
		k, v := n.Content[j], n.Content[j+1]
		field := at + "." + k.Value
		var dst *string
		switch k.Value {
		case "name":
			dst = &ds.Name
		case "driver":
			dst = &ds.Driver
		case "dsn":
			dst = &ds.DSN
		default:
			errs.add(&ConfigError{Line: k.Line, Field: field, Msg: "unknown field (known: name, driver, dsn)"})
			continue
		}
		if _, dup := ds.fields[k.Value]; dup {
			errs.add(&ConfigError{Line: k.Line, Field: field, Msg: "given twice"})
			continue
		}
		ds.fields[k.Value] = v.Line
		s, err := scalar(v, field)
		if err != nil {
			errs.add(err)
			continue
		}
		*dst = s
	}
	return ds, errs
}

// Validate checks the config and resolves each datasource's DSN. It is
// called by LoadConfig and Open; it creates and writes nothing.
func (c *Config) Validate() error {
	var errs configErrors
	fail := func(line int, field, format string, args ...any) {
		errs.add(&ConfigError{File: c.file, Line: line, Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	if len(c.Datasources) < 2 {
		fail(c.datasourcesLine, "datasources", "%d given: tandem mirrors at least two", len(c.Datasources))
	}
	seen := map[string]int{}
	for i := range c.Datasources {
		ds := &c.Datasources[i]
		at := fmt.Sprintf("datasources[%d]", i)
		line := func(f string) int {
			if l, ok := ds.fields[f]; ok {
				return l
			}
			return ds.line
		}
		if ds.Name == "" {
			fail(ds.line, at+".name", "missing")
			continue
		}
		if !nameRE.MatchString(ds.Name) {
			fail(line("name"), at+".name", "%q: want a letter, then letters, digits, '_' or '-' (at most 63)", ds.Name)
			continue
		}
		if j, dup := seen[ds.Name]; dup {
			fail(line("name"), at+".name", "%q is already the name of datasources[%d]", ds.Name, j)
			continue
		}
		seen[ds.Name] = i
		if ds.Driver == "" {
			fail(ds.line, at+".driver", "missing (known: %s)", knownDrivers())
			continue
		}
		eng, ok := engine.Lookup(ds.Driver)
		if !ok {
			if pkg, own := enginePackage(ds.Driver); own {
				fail(line("driver"), at+".driver", "driver %q is not linked into this program: import _ %q", ds.Driver, pkg)
				continue
			}
			fail(line("driver"), at+".driver", "unknown driver %q (known: %s)", ds.Driver, knownDrivers())
			continue
		}
		if ds.DSN == "" {
			fail(ds.line, at+".dsn", "missing")
			continue
		}
		dir := c.dir
		if dir == "" {
			dir = "."
		}
		resolved, err := eng.ResolveDSN(ds.DSN, dir)
		if err != nil {
			fail(line("dsn"), at+".dsn", "%v", err)
			continue
		}
		ds.dsn = resolved
		ds.eng = eng
	}
	if c.Timeout < 0 {
		fail(c.lines["timeout"], "timeout", "%v: want a positive duration", c.Timeout)
	}
	if c.HealthInterval < 0 {
		fail(c.lines["health_interval"], "health_interval", "%v: want a positive duration", c.HealthInterval)
	}
	switch c.Commit {
	case "", CommitConcurrent:
	case CommitTwoPhase:
		for i, ds := range c.Datasources {
			if ds.eng != nil && engine.CapabilitiesOf(ds.eng).TwoPhaser == nil {
				fail(c.lines["commit"], "commit", "two-phase: datasources[%d] (%s) uses driver %s, which has no two-phase commit (postgres has)", i, ds.Name, ds.Driver)
			}
		}
	default:
		fail(c.lines["commit"], "commit", "%q: want concurrent or two-phase", c.Commit)
	}
	switch p := c.Conflicts; p.Policy {
	case "", ConflictManual, ConflictPrimary:
		if p.Column != "" {
			fail(c.lines["conflicts.column"], "conflicts.column", "only the newest policy takes a column (policy is %q)", p.Policy)
		}
	case ConflictNewest:
		if p.Column == "" {
			fail(c.lines["conflicts.policy"], "conflicts.column", "missing: the newest policy compares rows by a named column, such as updated_at")
		}
	default:
		fail(c.lines["conflicts.policy"], "conflicts.policy", "%q: want manual, primary or newest", p.Policy)
	}
	switch k := c.Arbiter.Kind; k {
	case "", ArbiterNone:
		if k == ArbiterNone && len(c.Arbiter.Fields) > 0 {
			fail(c.lines["arbiter.kind"], "arbiter", "none takes no settings")
		}
	default:
		if _, ok := arbiter.Lookup(k); !ok {
			msg := fmt.Sprintf("unknown kind %q (known: %s, none)", k, strings.Join(arbiter.Kinds(), ", "))
			if k == "etcd" {
				msg = `kind "etcd" is not linked into this program: import _ "github.com/tandemdb/tandem/arbiter/etcd"`
			}
			fail(c.lines["arbiter.kind"], "arbiter.kind", "%s", msg)
		}
	}
	if c.Primary != "" && len(seen) > 0 { // with none, the datasources' own errors say enough
		if _, ok := seen[c.Primary]; !ok {
			names := make([]string, 0, len(seen))
			for n := range seen {
				names = append(names, n)
			}
			sort.Strings(names)
			fail(c.primaryLine, "primary", "%q is not a datasource (have: %s)", c.Primary, strings.Join(names, ", "))
		}
	}
	return errs.err()
}

// knownDrivers lists the registered engines for an error message.
func knownDrivers() string {
	names := engine.Drivers()
	if len(names) == 0 {
		return "none is linked into this program; import one, e.g. _ \"github.com/tandemdb/tandem/engine/sqlite\""
	}
	return strings.Join(names, ", ")
}

// enginePackage returns the import path of the package that registers
// driver, for the engines tandem ships, so that a config naming one the
// program does not link says what to import rather than "unknown".
func enginePackage(driver string) (string, bool) {
	switch driver {
	case "sqlite", "postgres", "mysql":
		return "github.com/tandemdb/tandem/engine/" + driver, true
	}
	return "", false
}

// Defaults for Config fields left zero.
const (
	DefaultTimeout        = 1 * time.Second
	DefaultHealthInterval = 250 * time.Millisecond
)

func (c *Config) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return DefaultTimeout
}

func (c *Config) healthInterval() time.Duration {
	if c.HealthInterval > 0 {
		return c.HealthInterval
	}
	return DefaultHealthInterval
}

// arbiterKind is the kind of arbiter the config asks for, defaults
// applied: a witness for SQLite files, none otherwise.
func (c *Config) arbiterKind() string {
	if c.Arbiter.Kind != "" {
		return c.Arbiter.Kind
	}
	for _, ds := range c.Datasources {
		if ds.Driver != "sqlite" {
			return ArbiterNone
		}
	}
	return "witness"
}

// ranking is the datasources' names in rank order: the configured primary
// first, then the others in configured order.
func (c *Config) ranking() []string {
	p := c.primaryIndex()
	out := []string{c.Datasources[p].Name}
	for i, ds := range c.Datasources {
		if i != p {
			out = append(out, ds.Name)
		}
	}
	return out
}

// primaryIndex is the index of the configured primary datasource.
func (c *Config) primaryIndex() int {
	for i, ds := range c.Datasources {
		if ds.Name == c.Primary {
			return i
		}
	}
	return 0
}
