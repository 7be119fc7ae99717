#!/usr/bin/env bash
# pgbench's own TPC-B (its default built-in script, simple query protocol)
# against one PostgreSQL server directly, tandem's PostgreSQL proxy
# (tandem proxy, built from ./cmd/tandem and run as a process of its own)
# over two servers, and pgpool-II in native replication mode over the same
# two. Every database is loaded directly with pgbench -i at scale 10
# (1,000,000 accounts) and pgbench_history gets a key (hid bigserial, which
# tandem needs; all cases get it); tandem adopt takes the tandem pair in
# and tandem verify proves it identical. Each case runs at 1 client
# (-c 1 -j 1) and at 8 (-c 8 -j 2) for PROXYBENCH_DURATION (default 20s)
# after a PROXYBENCH_WARMUP (3s) warm-up run, in 3 interleaved rounds whose
# order rotates. After every run each database must hold pgbench's balance
# invariant; at the end tandem verify must find the tandem pair identical.
# About 9 minutes. The table (tx/s, average, median and p99 latency, the
# targets) goes to stdout and bench/out/proxy.txt.
#
#   bash bench/proxy.sh
#   PROXYBENCH_DURATION=60s PROXYBENCH_ROUNDS=5 bash bench/proxy.sh
#
# Settings (environment): PROXYBENCH_SCALE (10), PROXYBENCH_DURATION (20s,
# whole seconds), PROXYBENCH_WARMUP (3s; 0s: none), PROXYBENCH_ROUNDS (3),
# PROXYBENCH_CLIENTS (1,8), PROXYBENCH_OUT (the table's file),
# PROXYBENCH_TANDEM (a tandem binary to measure instead of building one).
#
# Needs the Debian packages postgresql (server, psql, pgbench) and pgpool2
# (scripts/test.sh installs them when run as root).
set -euo pipefail
cd "$(dirname "$0")/.."
export PROXYBENCH=1
export PROXYBENCH_SCALE=${PROXYBENCH_SCALE:-10}
export PROXYBENCH_DURATION=${PROXYBENCH_DURATION:-20s}
export PROXYBENCH_WARMUP=${PROXYBENCH_WARMUP:-3s}
export PROXYBENCH_ROUNDS=${PROXYBENCH_ROUNDS:-3}
out=${PROXYBENCH_OUT:-bench/out/proxy.txt}
case $out in /*) ;; *) out=$PWD/$out ;; esac # go test runs in bench/tpcb
export PROXYBENCH_OUT=$out
mkdir -p "$(dirname "$PROXYBENCH_OUT")"
export TANDEM_FAIL_ON_SKIP=1 # a missing server or program is an error here, not a skip
echo "proxy: $(nproc) cores, $(go version | cut -d' ' -f3), $(date -u +%FT%TZ)" >&2
go test -count=1 -v -timeout 60m -run '^TestProxyBench$' ./bench/tpcb 2>&1 |
	grep --line-buffered -v '^=== RUN' # each run's line as it ends
