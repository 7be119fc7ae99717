#!/usr/bin/env bash
# Runs tandem's whole test suite: formatting, vet, every test (with the race
# detector), and the demo as a new user runs it. Installs what it needs.
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

# The demo's browser test (demo/browser_test.go) drives a headless Chromium;
# without one it is skipped, and CI fails on skips.
if ! command -v chromium >/dev/null; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
		echo "test.sh: chromium not found: installing it (apt-get install chromium)"
		if ! (DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null); then
			echo "test.sh: could not install chromium: the browser test will be skipped" >&2
		fi
	else
		echo "test.sh: chromium not found: the browser test will be skipped; install it with:" >&2
		echo "    sudo apt-get install chromium    # Debian, Ubuntu" >&2
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

echo "== go test"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
race=-race # the race detector needs cgo and a C compiler
if [ "$(go env CGO_ENABLED)" != 1 ] || ! command -v "$(go env CC)" >/dev/null; then
	echo "test.sh: no C compiler for cgo: running without the race detector" >&2
	race=
fi
go test $race -count=1 -timeout 20m -v ./... >"$log" 2>&1
status=$?
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

echo "$passed passed, 0 failed, $skipped skipped"
