#!/usr/bin/env bash
# The TPC-B-like comparison of bench/tpcb: one PostgreSQL server, tandem over
# two, pgpool-II native replication over the same two; one MariaDB server and
# tandem over two; one SQLite file and tandem over two. Each case runs at 1
# and at 8 clients for TPCB_DURATION (default 20s) per client count, in 4
# interleaved rounds, after 100,000 accounts are loaded; each replicated case
# is then checked with tandem verify and pgbench's balance invariant. About
# 6 minutes. The table goes to stdout and bench/out/tpcb.txt.
#
#   bash bench/tpcb.sh
#   TPCB_DURATION=60s TPCB_ENGINES=postgres bash bench/tpcb.sh
#
# Settings (environment): TPCB_ACCOUNTS, TPCB_DURATION, TPCB_ROUNDS,
# TPCB_WARMUP, TPCB_CLIENTS (1,8), TPCB_ENGINES (postgres,mariadb,sqlite),
# TPCB_OUT (the table's file), TPCB_PROFILE (write CPU profiles of the cases
# whose name holds it, e.g. "postgres tandem 8", to TPCB_PROFILE_DIR).
#
# Needs the Debian packages postgresql, mariadb-server and pgpool2
# (scripts/test.sh installs them when run as root).
set -euo pipefail
cd "$(dirname "$0")/.."
export TPCB_ACCOUNTS=${TPCB_ACCOUNTS:-100000}
export TPCB_DURATION=${TPCB_DURATION:-20s}
export TPCB_ROUNDS=${TPCB_ROUNDS:-4}
export TPCB_WARMUP=${TPCB_WARMUP:-1s}
out=${TPCB_OUT:-bench/out/tpcb.txt}
case $out in /*) ;; *) out=$PWD/$out ;; esac # go test runs in bench/tpcb
export TPCB_OUT=$out
mkdir -p "$(dirname "$TPCB_OUT")"
export TANDEM_FAIL_ON_SKIP=1 # a missing server is an error here, not a skip
echo "tpcb: $(nproc) cores, $(go version | cut -d' ' -f3), $(date -u +%FT%TZ)" >&2
go test -count=1 -v -timeout 60m -run '^TestTPCB$' ./bench/tpcb 2>&1 |
	grep -v '^=== RUN\|round [0-9]*/[0-9]*:'
