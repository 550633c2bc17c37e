#!/usr/bin/env bash
# bench/wal.sh: WAL written per transaction by bench cases, by record type
# (pg_waldump --stats): what a durable commit has to flush, which on a
# loaded server decides throughput as much as CPU does (bench/README.md,
# "What bounds a sale").
#
#   bash bench/wal.sh PORT DATADIR CASE.sql...
#
# Starts (or reuses) the scratch server of DATADIR, durable as bench/run
# makes its server and without a checkpoint during the count (so that no
# full-page image of a page touched before it is counted), creates database
# lockctl_bench with lockctl, runs the setup.sql of each case's group, then
# for each case: WAL_N1 transactions (default 300) to warm up, then WAL_N2
# (default 2000) with pgbench -n -M prepared -c 1 between two WAL insert
# positions, and prints per transaction: records, record bytes, full-page
# image bytes, and each record type's count and bytes.  Stops the server at
# the end.  Run as root (the server runs as its own user) or as that user.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"

port=${1:?usage: bench/wal.sh PORT DATADIR CASE.sql...}
data=${2:?usage: bench/wal.sh PORT DATADIR CASE.sql...}
shift 2
N1=${WAL_N1:-300}
N2=${WAL_N2:-2000}

lockctl_scratch_start "$data" "$port" \
    "fsync = on" "synchronous_commit = on" "full_page_writes = on" \
    "shared_buffers = '256MB'" "max_locks_per_transaction = 256" \
    "checkpoint_timeout = '1h'" "max_wal_size = '10GB'" "autovacuum = off"
cases=$(mktemp -d /tmp/lockctl-wal-cases.XXXXXX)
chmod 755 "$cases"
trap 'lockctl_scratch_stop "$data"; rm -rf "$cases"' EXIT
psql_() { lockctl_scratch_psql "$data" "$port" "$@"; }
psql_ postgres -c 'DROP DATABASE IF EXISTS lockctl_bench' -c 'CREATE DATABASE lockctl_bench' >/dev/null
psql_ lockctl_bench -c 'CREATE EXTENSION lockctl' >/dev/null
lsn() { psql_ lockctl_bench -Atc 'SELECT pg_current_wal_insert_lsn()'; }
pgbench_() {
    lockctl_scratch_as_server_user "$PG_BINDIR/pgbench" -n -M prepared -c 1 -t "$1" \
        -h "$data" -p "$port" -f "$2" lockctl_bench >/dev/null
}

declare -A done_setup=()
for c in "$@"; do
    group=$(basename "$(dirname "$c")")
    if [ -z "${done_setup[$group]:-}" ] && [ -f "$(dirname "$c")/setup.sql" ]; then
        { echo 'SET client_min_messages = warning;'; cat "$(dirname "$c")/setup.sql"; } |
            psql_ lockctl_bench -q -f - >/dev/null
        done_setup[$group]=1
    fi
    f=$cases/$(basename "$c")
    cp "$c" "$f"
    chmod 644 "$f"
    psql_ lockctl_bench -qc 'CHECKPOINT'
    pgbench_ "$N1" "$f"
    from=$(lsn)
    pgbench_ "$N2" "$f"
    to=$(lsn)
    # The last record may sit in a segment not yet closed: close it.
    psql_ lockctl_bench -Atc 'SELECT pg_switch_wal()' >/dev/null
    echo "== $group/$(basename "$c"): per transaction ($N2 transactions)"
    lockctl_scratch_as_server_user "$PG_BINDIR/pg_waldump" -p "$data/pg_wal" \
        -s "$from" -e "$to" --stats=record |
        awk -v n="$N2" '
            { gsub(/\( *[0-9.]+\)|\[[0-9.]+%\]/, "") }
            /^Total/ { total = sprintf("%.2f records, %.0f bytes, %.0f bytes of full-page images", $2 / n, $3 / n, $4 / n) }
            $1 ~ /\// && $2 ~ /^[0-9]+$/ { printf "  %-28s %6.2f  %6.0f B\n", $1, $2 / n, $5 / n }
            END { print "  total: " total }'
done
