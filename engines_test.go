package tandem

// The root package's tests (package tandem and package tandem_test, one
// test binary) open clusters on every engine: servers_test.go on PostgreSQL
// and MySQL/MariaDB, the rest on SQLite. The library itself links none.
import (
	_ "github.com/tandemdb/tandem/engine/mysql"
	_ "github.com/tandemdb/tandem/engine/postgres"
	_ "github.com/tandemdb/tandem/engine/sqlite"
)
