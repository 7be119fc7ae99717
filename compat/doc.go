// Package compat holds tandem's tests with the Go libraries applications
// use over database/sql (GORM, bun, sqlx, goose, sqlc-generated code),
// each run through tandem's driver (package stdlib) on a SQLite pair and
// a PostgreSQL pair, with a fault in the middle. It is a module of its own
// so that tandem's own module does not depend on them.
package compat
