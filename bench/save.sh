#!/usr/bin/env bash
# Mirrored Save against the same Save on one SQLite file, side by side.
#
#   bash bench/save.sh [ROUNDS]      (default 8 rounds, about 25 s each)
#
# The disk's fsync time drifts by tens of percent over minutes on shared
# machines, so the modes are interleaved: each round runs every mode once
# for 1 s, and benchstat compares the rounds (-col /mode: ratios to single).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-8}
out=bench/out
mkdir -p "$out"
command -v benchstat >/dev/null || go install golang.org/x/perf/cmd/benchstat@latest
PATH=$PATH:$(go env GOPATH)/bin
go test -c -o "$out/tandem.test" .
: >"$out/save.txt"
for i in $(seq "$rounds"); do
	"$out/tandem.test" -test.run '^$' -test.bench 'BenchmarkSave$' -test.benchtime 1s -test.count 1 | tee -a "$out/save.txt" | grep Bench >&2
done
benchstat -col /mode -filter '.unit:saves/s' "$out/save.txt"
