#!/usr/bin/env bash
# Mirrored Save against the same Save on one SQLite file, side by side; or,
# with "record", mirrored Save with its write record against without it;
# or, with "view", mirrored Save without the fence against with it under
# each arbiter (none, witness, a 3-member etcd cluster: needs etcd-server).
#
#   bash bench/save.sh [ROUNDS]          (default 8 rounds, about 25 s each)
#   bash bench/save.sh record [ROUNDS]   (default 8 rounds, about 10 s each)
#   bash bench/save.sh view [ROUNDS]     (default 8 rounds, about 20 s each)
#
# The disk's fsync time drifts by tens of percent over minutes on shared
# machines, so the modes are interleaved: each round runs every mode once
# for 1 s, and benchstat compares the rounds (-col /mode: ratios to single;
# -col /record: ratios to record=off, a Save that writes no intent record;
# -col /view: ratios to view=nofence, a Save that skips the fence).
set -euo pipefail
cd "$(dirname "$0")/.."
what=save bench='BenchmarkSave$' col=/mode
case "${1:-}" in
record)
	what=record bench='BenchmarkSaveRecord$' col=/record
	shift
	;;
view)
	what=view bench='BenchmarkSaveView$' col=/view
	shift
	;;
esac
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
# The disk drifts between rounds more than the record or the fence costs,
# so also compare within each round: each mode against the baseline of the
# same minute, per round.
within() { # baseline mode, mode, goroutines
	awk -v base="$1" -v mode="$2" -v g="$3" '$1 ~ "/goroutines=" g "(-|$)" {
		for (i = 3; i < NF; i += 2) if ($(i + 1) == "saves/s") v = $i
		if ($1 ~ base "/") b = v; else if ($1 ~ mode "/" && b) print v / b
	}' "$out/$what.txt" | sort -n | awk -v m="$2" -v b="$1" -v g="$3" '{ r[NR] = $1; if ($1 < 1) below++ }
	END { if (NR) printf "goroutines=%s: %s against %s within a round: median %.2f, quartiles %.2f..%.2f, below 1 in %d of %d rounds\n",
		g, m, b, (NR % 2 ? r[(NR + 1) / 2] : (r[NR / 2] + r[NR / 2 + 1]) / 2), r[int(NR / 4) + 1], r[int(3 * NR / 4)], below + 0, NR }'
}
case "$what" in
record)
	for g in 1 8; do
		within record=off record=nocheck "$g"
		within record=off record=on "$g"
		within record=nocheck record=on "$g"
	done
	;;
view)
	for g in 1 8; do
		for m in none witness etcd; do within view=nofence "view=$m" "$g"; done
	done
	;;
esac
