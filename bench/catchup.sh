#!/usr/bin/env bash
# Catch-up rate: a datasource that missed 100,000 writes to distinct rows
# of a table of 100,000 and of 1,000,000 rows catches up (CatchUp).
#
#   bash bench/catchup.sh [ROUNDS]      (default 6 rounds, about 60 s each)
#
# Each round builds both tables anew on two SQLite files (not timed), times
# one CatchUp per table size, and fails unless the files hold identical
# rows and no missed-key record afterwards. rows/s is measured on the wall
# clock; rows/cpu-s per second of the process's CPU time (user and system):
# when the two are close, catch-up is CPU-bound, not waiting for the disk.
# Other processes on the machine slow both (on a VM, CPU time stretches too).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-6}
out=bench/out
mkdir -p "$out"
command -v benchstat >/dev/null || go install golang.org/x/perf/cmd/benchstat@latest
PATH=$PATH:$(go env GOPATH)/bin
go test -c -o "$out/tandem.test" .
: >"$out/catchup.txt"
for i in $(seq "$rounds"); do
	"$out/tandem.test" -test.run '^$' -test.bench 'BenchmarkCatchUp$' -test.benchtime 1x -test.count 1 -test.timeout 30m |
		tee -a "$out/catchup.txt" | grep Bench >&2
done
echo "round  table   catch-up s   rows/s   rows/cpu-s"
awk '/^BenchmarkCatchUp\// {
	split($1, a, "[=-]"); size = a[2]; round[size]++
	for (i = 3; i < NF; i += 2) v[$(i + 1)] = $i
	printf "%5d  %-5s  %11.2f  %7.0f  %11.0f\n", round[size], size, v["ns/op"] / 1e9, v["rows/s"], v["rows/cpu-s"]
}' "$out/catchup.txt"
echo
benchstat -filter '.unit:(rows/s OR rows/cpu-s OR sec/op)' "$out/catchup.txt"
