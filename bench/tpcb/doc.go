// Package tpcb is tandem's side-by-side benchmark: the TPC-B-like
// transaction pgbench runs (update an account's balance and read it,
// update a teller and a branch, insert a history row), from Go, against
//
//   - one database, no replication (PostgreSQL, MariaDB, one SQLite file);
//   - tandem over two of them;
//   - pgpool-II in native_replication mode over the same two PostgreSQL
//     servers, driven by the same Go code as the single server.
//
// Everything lives in the test files: TestTPCB starts the servers (through
// internal/dbserver) and pgpool-II itself, loads the accounts, runs every
// case for a fixed time at 1 and at 8 clients, checks after each
// replicated case that both databases are identical (verify.Compare) and
// that the balances add up on each, and prints one table. The driver
// case sends the single database's plain SQL through tandem's
// database/sql driver (package stdlib).
//
// By default (go test ./...) it is a smoke run: few accounts, two
// seconds per case, only the correctness checks. bench/tpcb.sh runs the
// measured one:
//
//	bash bench/tpcb.sh                # 100,000 accounts, 20 s per case
//	TPCB_DURATION=60s bash bench/tpcb.sh
package tpcb
