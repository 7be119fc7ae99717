package engine

import "strings"

// Violator is implemented by engines that tell which constraint a
// statement's error broke, so that tandem reports it alike on every
// engine (tandem.ErrDuplicateKey and its kin).
type Violator interface {
	// Violation describes err when it is a statement's breach of a
	// unique, foreign key or NOT NULL constraint; ok false otherwise.
	Violation(err error) (v Violation, ok bool)
}

// Violation is a constraint a statement broke, with what the engine's
// error names of it.
type Violation struct {
	Kind       ViolationKind
	Table      string   // "" where the engine's error does not name it
	Columns    []string // nil where it does not name them
	Constraint string   // the constraint's or index's name; "" where not named
}

// ViolationKind is the kind of constraint broken.
type ViolationKind int

// The kinds of constraint a Violation reports.
const (
	Unique     ViolationKind = iota + 1 // a primary key or a unique index: the value is taken
	ForeignKey                          // a referenced row is missing, or a referencing row remains
	NotNull                             // a NOT NULL column given no value
)

// String names the kind.
func (k ViolationKind) String() string {
	switch k {
	case Unique:
		return "unique"
	case ForeignKey:
		return "foreign key"
	case NotNull:
		return "not null"
	}
	return "unknown"
}

// SplitColumns splits a list of column names as engines' messages write
// it ("a, b", or "a,b"), each trimmed of spaces and of quote characters.
func SplitColumns(list string) []string {
	var out []string
	for _, c := range strings.Split(list, ",") {
		if c = strings.Trim(strings.TrimSpace(c), "`\"'"); c != "" {
			out = append(out, c)
		}
	}
	return out
}
