#!/usr/bin/env bash
# Mirrored Save against the same Save on one SQLite file, side by side; or,
# with "record", mirrored Save with its write record against without it.
#
#   bash bench/save.sh [ROUNDS]          (default 8 rounds, about 25 s each)
#   bash bench/save.sh record [ROUNDS]   (default 8 rounds, about 10 s each)
#
# The disk's fsync time drifts by tens of percent over minutes on shared
# machines, so the modes are interleaved: each round runs every mode once
# for 1 s, and benchstat compares the rounds (-col /mode: ratios to single;
# -col /record: ratios to record=off, a Save that writes no intent record).
set -euo pipefail
cd "$(dirname "$0")/.."
what=save bench='BenchmarkSave$' col=/mode
if [ "${1:-}" = record ]; then
	what=record bench='BenchmarkSaveRecord$' col=/record
	shift
fi
rounds=${1:-8}
out=bench/out
mkdir -p "$out"
command -v benchstat >/dev/null || go install golang.org/x/perf/cmd/benchstat@latest
PATH=$PATH:$(go env GOPATH)/bin
go test -c -o "$out/tandem.test" .
: >"$out/$what.txt"
for i in $(seq "$rounds"); do
	"$out/tandem.test" -test.run '^$' -test.bench "$bench" -test.benchtime 1s -test.count 1 | tee -a "$out/$what.txt" | grep Bench >&2
done
benchstat -col "$col" -filter '.unit:saves/s' "$out/$what.txt"
if [ "$what" = record ]; then
	# The disk drifts between rounds more than the record costs, so also
	# compare within each round: on/off of the same minute, per round.
	for g in 1 8; do
		awk -v g="$g" '$1 ~ "/goroutines=" g "(-|$)" {
			for (i = 3; i < NF; i += 2) if ($(i + 1) == "saves/s") v = $i
			if ($1 ~ /record=off/) off = v; else if (off) print v / off
		}' "$out/$what.txt" | sort -n | awk -v g="$g" '{ r[NR] = $1; if ($1 < 1) below++ }
		END { if (NR) printf "goroutines=%s: on/off within a round: median %.2f, quartiles %.2f..%.2f, below 1 in %d of %d rounds\n",
			g, (NR % 2 ? r[(NR + 1) / 2] : (r[NR / 2] + r[NR / 2 + 1]) / 2), r[int(NR / 4) + 1], r[int(3 * NR / 4)], below, NR }'
	done
fi
