#!/usr/bin/env bash
# tandem's randomized multi-process fault soak (internal/soak): each run
# starts 2-3 writer processes on one cluster, injects faults drawn from the
# run's seed (locks held, writers killed and stopped, a lost mount; on
# servers also servers killed and paused and connections cut), heals them,
# lets the cluster settle and checks every database directly.
#
#   bash scripts/soak.sh [-engine sqlite|postgres|mariadb] [-arbiter witness|etcd|none]
#                        [-runs N] [-seed S]
#                        [-repeat R] [-writers 2..3] [-goroutines G]
#                        [-duration 4s] [-settle 30s] [-v] [-keep]
#
# Run i uses seed S+i; `-runs 1 -seed S` replays one run's schedule (the
# soak prints the exact command for each failing seed). The schedule is
# the seed's, the outcome depends on timing too: `-repeat R` runs each
# seed R times. Exit status: 0 when every run passed, 1 when one failed, 2
# on bad usage.
#
# -arbiter etcd starts a 3-member etcd cluster on loopback ports for the
# soak (each run keeps its view under a key of its own) and also draws
# its members killed and cut off from each other. The default arbiter is
# the config's: a witness for SQLite, none for servers (a lost primary
# then stops writes until it returns).
#
# postgres and mariadb need the servers' packages (postgresql,
# mariadb-server), etcd needs etcd-server; scripts/test.sh installs them.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v go >/dev/null; then
	echo "soak.sh: Go 1.26 is required (https://go.dev/dl/); not found on PATH" >&2
	exit 2
fi
exec go run ./internal/soak/cmd/soak "$@"
