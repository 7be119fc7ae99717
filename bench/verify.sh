#!/usr/bin/env bash
# tandem verify against SQLite's own sqldiff, side by side, on two SQLite
# files of 1,000,000 rows (an integer primary key and 4 columns: text, real,
# integer, text):
#
#   identical   the two files are copies
#   5 diffs     3 rows changed, 1 deleted, 1 added on the second file
#
#   bash bench/verify.sh [ROUNDS]      (default 7 rounds, about 10 s each)
#
# Each round times, in turn, sqldiff and tandem verify on both pairs (wall
# clock, whole processes). The script fails unless sqldiff finds nothing in
# the identical pair and tandem verify exits 0 there, and unless both find
# the same 5 rows in the other, with the same kinds. It prints each time,
# then the medians and the ratios tandem/sqldiff (under 1: tandem is
# faster). It installs sqldiff (Debian's sqlite3-tools) when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-7}
out=bench/out/verify
mkdir -p "$out"
if ! command -v sqldiff >/dev/null; then
	apt-get install -y sqlite3-tools >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y sqlite3-tools >/dev/null; }
fi
command -v sqlite3 >/dev/null || apt-get install -y sqlite3 >/dev/null
go build -o "$out/tandem" ./cmd/tandem

rows=1000000
if [ ! -f "$out/a.db" ] || [ "$(sqlite3 "$out/a.db" 'SELECT count(*) FROM t' 2>/dev/null)" != "$rows" ]; then
	rm -f "$out"/*.db "$out"/*.db-wal "$out"/*.db-shm
	sqlite3 "$out/a.db" "PRAGMA journal_mode=WAL;
		CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, price REAL, qty INTEGER, note TEXT);
		WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < $rows)
		INSERT INTO t SELECT i, 'name ' || i, i * 0.25, i % 1000, hex(randomblob(8)) FROM s;
		PRAGMA wal_checkpoint(TRUNCATE);" >/dev/null
	cp "$out/a.db" "$out/same.db"
	cp "$out/a.db" "$out/diff.db"
	sqlite3 "$out/diff.db" "UPDATE t SET name = 'changed' WHERE id = 100;
		UPDATE t SET price = price + 1 WHERE id = 500000;
		UPDATE t SET qty = NULL, note = 'x' WHERE id = 999999;
		DELETE FROM t WHERE id = 777777;
		INSERT INTO t VALUES (1000001, 'new', 1.5, 3, 'n');
		PRAGMA wal_checkpoint(TRUNCATE);" >/dev/null
fi
for pair in same diff; do
	printf 'datasources:\n  - {name: a, driver: sqlite, dsn: a.db}\n  - {name: b, driver: sqlite, dsn: %s.db}\n' "$pair" >"$out/$pair.yaml"
done

# The differences each tool reports, as "kind id" lines.
sqldiff_rows() {
	sed -E -n 's/^UPDATE .* WHERE id=([0-9]+);$/changed \1/p; s/^DELETE FROM .* WHERE id=([0-9]+);$/missing \1/p; s/^INSERT INTO [^(]*\([^)]*\) VALUES\(([0-9]+),.*$/extra \1/p' | sort
}
tandem_rows() {
	sed -E -n 's/^  (changed|missing|extra) +id=([0-9-]+) .*/\1 \2/p' | sort
}

# timed FILE CMD... runs CMD with its output in FILE and appends "wall
# cpu" seconds (cpu: user + system) to $out/t; it returns CMD's exit code.
TIMEFORMAT='%R %U %S'
timed() {
	local f=$1
	shift
	{ time "$@" >"$f"; } 2>"$out/t.raw" || { local c=$?; awk '{print $1, $2 + $3}' "$out/t.raw" >"$out/t"; return $c; }
	awk '{print $1, $2 + $3}' "$out/t.raw" >"$out/t"
}

: >"$out/times.txt"
for i in $(seq "$rounds"); do
	for pair in same diff; do
		timed "$out/sqldiff-$pair.txt" sqldiff "$out/a.db" "$out/$pair.db"
		echo "$i $pair sqldiff $(cat "$out/t")" >>"$out/times.txt"
		code=0
		timed "$out/tandem-$pair.txt" "$out/tandem" verify --config "$out/$pair.yaml" || code=$?
		echo "$i $pair tandem $(cat "$out/t")" >>"$out/times.txt"
		s=$(sqldiff_rows <"$out/sqldiff-$pair.txt")
		v=$(tandem_rows <"$out/tandem-$pair.txt")
		if [ "$pair" = same ] && { [ -n "$s" ] || [ "$code" != 0 ]; }; then
			echo "identical pair: sqldiff printed $(wc -l <"$out/sqldiff-$pair.txt") lines, tandem verify exited $code" >&2
			exit 1
		fi
		if [ "$pair" = diff ] && { [ "$s" != "$v" ] || [ "$(echo "$s" | wc -l)" != 5 ] || [ "$code" != 1 ]; }; then
			printf 'the tools disagree (tandem exit %s)\nsqldiff:\n%s\ntandem:\n%s\n' "$code" "$s" "$v" >&2
			exit 1
		fi
	done
	echo "round $i: $(grep "^$i " "$out/times.txt" | awk '{printf "%s/%s %.3f s  ", $2, $3, $4}')" >&2
done
echo "differences found by both, in the 5-diff pair:"
sed 's/^/  /' <<<"$(sqldiff_rows <"$out/sqldiff-diff.txt")"
echo
awk '
function median(list,   n, a, i, j, t) {
	n = split(list, a, " ")
	for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
{ wall[$2 " " $3] = wall[$2 " " $3] " " $4; cpu[$2 " " $3] = cpu[$2 " " $3] " " $5 }
END {
	printf "median of %d rounds      sqldiff s (cpu s)   tandem verify s (cpu s)   tandem/sqldiff (wall)\n", NR / 4
	for (p = 1; p <= 2; p++) {
		pair = p == 1 ? "same" : "diff"
		s = median(wall[pair " sqldiff"]); v = median(wall[pair " tandem"])
		printf "%-23s %9.3f (%5.2f)   %15.3f (%5.2f)   %21.2f\n", p == 1 ? "identical" : "5 rows differ", s, median(cpu[pair " sqldiff"]), v, median(cpu[pair " tandem"]), v / s
	}
	printf "tandem, 5 rows differ / sqldiff, identical: %.2f (the issue asks at most 1.2)\n", median(wall["diff tandem"]) / median(wall["same sqldiff"])
}' "$out/times.txt"
