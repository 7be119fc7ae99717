// Package sqliteonly is what a program that uses tandem with SQLite alone
// sees. Everything lives in the test file, whose test binary links
// tandem and its SQLite engine and no other engine: it checks that such a
// program may name driver "sqlite", that a config naming one of tandem's
// other engines says which package to import, and that the root package
// links no engine (no PostgreSQL or MySQL driver) by itself.
package sqliteonly
