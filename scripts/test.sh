#!/usr/bin/env bash
# Runs tandem's whole test suite: formatting, vet, every test (with the race
# detector), the demo as a new user runs it, and a short fault soak.
# Installs what it needs.
#
#   bash scripts/test.sh
#
# Set TANDEM_FAIL_ON_SKIP=1 (CI does) to fail when any test was skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v go >/dev/null; then
	echo "test.sh: Go 1.26 is required (https://go.dev/dl/); not found on PATH" >&2
	exit 2
fi

# Packages the tests need; without one, the tests needing it are skipped,
# and CI fails on skips:
#   chromium        the demo's browser test (internal/demo/browser_test.go)
#   postgresql      the PostgreSQL servers internal/dbserver starts
#   mariadb-server  the MariaDB servers internal/dbserver starts
#   pgpool2         pgpool-II, which bench/tpcb compares tandem with
#   etcd-server     the etcd clusters internal/dbserver starts (arbiter/etcd)
#   prometheus      promtool, which checks the /metrics output (metrics_test.go)
#   php-cli, php-pgsql  PHP's PDO, a client of the proxy (proxy/pgwire)
missing=()
command -v chromium >/dev/null || missing+=(chromium)
# internal/dbserver finds initdb and postgres the same ways.
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 &&
	! { command -v pg_config >/dev/null && [ -x "$(pg_config --bindir)/initdb" ]; } &&
	! command -v initdb >/dev/null; then
	missing+=(postgresql)
fi
if ! { command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ]; } ||
	! { command -v mariadb-install-db >/dev/null || [ -x /usr/bin/mariadb-install-db ]; }; then
	missing+=(mariadb-server)
fi
{ [ -x /usr/sbin/pgpool ] || command -v pgpool >/dev/null; } || missing+=(pgpool2)
# internal/dbserver runs /usr/bin/etcd, or etcd on PATH.
{ [ -x /usr/bin/etcd ] || command -v etcd >/dev/null; } || missing+=(etcd-server)
command -v promtool >/dev/null || missing+=(prometheus)
command -v php >/dev/null || missing+=(php-cli)
{ command -v php >/dev/null && php -m 2>/dev/null | grep -q pdo_pgsql; } || missing+=(php-pgsql)
if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
		echo "test.sh: ${missing[*]} not found: installing (apt-get install ${missing[*]})"
		# The server packages start a system server; the tests never use
		# it (they run their own, on their own ports and directories), and
		# in a container without an init the start fails. policy-rc.d
		# exiting 101 tells the packages not to start services.
		policy=
		if [ ! -e /usr/sbin/policy-rc.d ]; then
			policy=/usr/sbin/policy-rc.d
			printf '#!/bin/sh\nexit 101\n' >"$policy"
			chmod 755 "$policy"
		fi
		if ! (DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null); then
			echo "test.sh: could not install ${missing[*]}: the tests needing them will be skipped" >&2
		fi
		if [ -n "$policy" ]; then rm -f "$policy"; fi
	else
		echo "test.sh: ${missing[*]} not found: the tests needing them will be skipped; install with:" >&2
		echo "    sudo apt-get install ${missing[*]}    # Debian, Ubuntu" >&2
	fi
fi

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	echo "gofmt would change: $unformatted" >&2
	exit 1
fi

echo "== go vet"
go vet ./...
# compat/ is a module of its own (the libraries applications use over
# database/sql: GORM, bun, sqlx, goose, sqlc's output), so that tandem's
# module does not depend on them.
(cd compat && go vet ./...)

echo "== go test"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
race=-race # the race detector needs cgo and a C compiler
if [ "$(go env CGO_ENABLED)" != 1 ] || ! command -v "$(go env CC)" >/dev/null; then
	echo "test.sh: no C compiler for cgo: running without the race detector" >&2
	race=
fi
# -p 1: one package at a time, so that the server tests' load (several
# database servers, writers that fail over) never starves the timing of
# another package's tests on a small machine.
go test $race -p 1 -count=1 -timeout 30m -v ./... >"$log" 2>&1
status=$?
(cd compat && go test $race -p 1 -count=1 -timeout 20m -v ./...) >>"$log" 2>&1 || status=1
set -e
# The full log is long; show failures and the per-package summary.
grep -E '^(=== RUN|--- (FAIL|SKIP)|FAIL|ok |panic|PASS)' "$log" | grep -v '^=== RUN' || true
if [ $status -ne 0 ]; then
	echo "---- failing output (everything each failed test wrote) ----"
	# go test -v marks whose output follows with "=== RUN/CONT/NAME"
	# lines; the first pass collects the names of the failed tests.
	awk 'FNR == NR { if (match($0, /--- FAIL: [^ ]+/)) failed[substr($0, RSTART + 10, RLENGTH - 10)] = 1; next }
		/^=== (RUN|CONT|NAME|PAUSE)/ { show = ($3 in failed); if (show) print; next }
		/^(ok|FAIL|PASS)|--- (PASS|SKIP)/ { show = 0 }
		/--- FAIL|^panic/ { show = 1 }
		show { print }' "$log" "$log" | head -1000 || true
	exit $status
fi
passed=$(grep -c -- '--- PASS' "$log" || true)
skipped=$(grep -c -- '--- SKIP' "$log" || true)
if [ "${TANDEM_FAIL_ON_SKIP:-0}" = 1 ] && [ "$skipped" -gt 0 ]; then
	echo "test.sh: $skipped test(s) skipped and TANDEM_FAIL_ON_SKIP=1:" >&2
	grep -A3 -- '--- SKIP' "$log" >&2
	exit 1
fi

echo "== demo"
demo=$(mktemp -d)
go run ./cmd/tandem demo --dir "$demo/tandem-demo" --check >"$demo/out.txt"
grep -q "every row is identical on every datasource" "$demo/out.txt"
go run ./cmd/tandem status --config "$demo/tandem-demo/tandem.yaml" >/dev/null
go run ./cmd/tandem verify --config "$demo/tandem-demo/tandem.yaml" >/dev/null
rm -rf "$demo"

# A short randomized multi-process fault soak (scripts/soak.sh): writer
# processes on a SQLite pair (witness), on a PostgreSQL pair (witness) and
# on a PostgreSQL pair whose view a 3-member etcd cluster holds (its
# members killed and cut off too), faults drawn from fixed seeds, every
# database checked directly. It fails on any lost acknowledged write,
# divergence, broken invariant or unsettled run.
echo "== soak"
bash scripts/soak.sh -engine sqlite -runs 5 -seed 100 | tail -n 14
bash scripts/soak.sh -engine postgres -arbiter witness -runs 2 -seed 200 | tail -n 14
bash scripts/soak.sh -engine postgres -arbiter etcd -runs 2 -seed 300 | tail -n 14

echo "$passed passed, 0 failed, $skipped skipped"
