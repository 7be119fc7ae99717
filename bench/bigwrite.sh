#!/usr/bin/env bash
# One SQL statement that changes many rows, through Cluster.Exec:
# INSERT ... SELECT of BIGWRITE_ROWS rows (default 1,000,000) on a SQLite
# pair and on a PostgreSQL pair (bench/bigwrite). Prints, per engine, the
# time, the peak of the Go heap (sampled every 5 ms), the process's peak
# resident memory (cumulative: the second engine's includes the first's),
# and verify's verdict; the lines also go to bench/out/bigwrite.txt.
#
#   bash bench/bigwrite.sh
#   BIGWRITE_ROWS=100000 BIGWRITE_ENGINES=sqlite bash bench/bigwrite.sh
#
# BIGWRITE_PROFILE=/tmp/heap.prof writes a heap profile as the heap grows
# (go tool pprof -top /tmp/heap.prof). Needs the Debian package postgresql
# for the PostgreSQL pair (scripts/test.sh installs it when run as root).
set -euo pipefail
cd "$(dirname "$0")/.."
export BIGWRITE_ROWS=${BIGWRITE_ROWS:-1000000}
mkdir -p bench/out
export BIGWRITE_OUT=$PWD/bench/out/bigwrite.txt
export TANDEM_FAIL_ON_SKIP=1 # a missing server is an error here, not a skip
go test -count=1 -timeout 60m -run TestBigStatement -v ./bench/bigwrite | grep -E 'rows|^(---|ok|FAIL)'
cat "$BIGWRITE_OUT"
