package mysql

import (
	"errors"
	"regexp"

	"github.com/go-sql-driver/mysql"

	"github.com/tandemdb/tandem/engine"
)

var _ engine.Violator = Engine{}

var (
	// 1062: Duplicate entry 'x' for key 'isbn' (MySQL 8: 'book.isbn').
	duplicateKey = regexp.MustCompile(`for key '(?:[^']*\.)?([^']*)'$`)
	// 1451, 1452: ... a foreign key constraint fails (`db`.`child`,
	// CONSTRAINT `fk` FOREIGN KEY (`parent`) REFERENCES ...
	foreignKey = regexp.MustCompile("constraint fails \\((?:`[^`]*`\\.)?`([^`]*)`, CONSTRAINT `([^`]*)` FOREIGN KEY \\(([^)]*)\\)")
	// 1048: Column 'x' cannot be null; 1364: Field 'x' doesn't have a default value.
	nullColumn = regexp.MustCompile(`^(?:Column|Field) '([^']*)'`)
)

// Violation implements engine.Violator from the error numbers: 1062
// (duplicate entry: the index's name, not the table or columns), 1451 and
// 1452 (a foreign key: table, constraint, columns), 1048 and 1364 (a NOT
// NULL column without a value). Upsert's guard against an update through
// another unique index also ends in 1048, on the key's first column (see
// the package doc); tandem tells it apart where it knows the value given.
func (Engine) Violation(err error) (engine.Violation, bool) {
	var me *mysql.MySQLError
	if !errors.As(err, &me) {
		return engine.Violation{}, false
	}
	var v engine.Violation
	switch me.Number {
	case 1062:
		v.Kind = engine.Unique
		if m := duplicateKey.FindStringSubmatch(me.Message); m != nil {
			v.Constraint = m[1]
		}
	case 1451, 1452:
		v.Kind = engine.ForeignKey
		if m := foreignKey.FindStringSubmatch(me.Message); m != nil {
			v.Table, v.Constraint, v.Columns = m[1], m[2], engine.SplitColumns(m[3])
		}
	case 1048, 1364:
		v.Kind = engine.NotNull
		if m := nullColumn.FindStringSubmatch(me.Message); m != nil {
			v.Columns = []string{m[1]}
		}
	default:
		return engine.Violation{}, false
	}
	return v, true
}
