package propel

// Imported configs name every engine tandem ships (adapters mysql, pgsql
// and sqlite); the tests parse them with tandem.ParseConfig, which knows the
// engines the test binary links.
import (
	_ "github.com/tandemdb/tandem/engine/mysql"
	_ "github.com/tandemdb/tandem/engine/postgres"
	_ "github.com/tandemdb/tandem/engine/sqlite"
)
