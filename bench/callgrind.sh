#!/usr/bin/env bash
# bench/callgrind.sh: instructions per transaction of bench cases, counted
# by callgrind in the backend that runs them: robust on a noisy machine,
# where throughput is not.
#
#   PG_CONFIG=... bash bench/callgrind.sh PORT DATADIR CASE.sql...
#
# Starts a scratch server of its own in DATADIR (a new cluster, durable as
# bench/run makes its server: fsync, synchronous_commit and
# full_page_writes on; autovacuum off), with the postmaster and every
# backend under callgrind, creates database lockctl_bench with lockctl,
# runs the setup.sql of each case's group, then runs each case with
# pgbench -n -M prepared -c 1 twice (-t N1 and -t N2) and prints
# (I(N2) - I(N1)) / (N2 - N1): the instructions of one transaction in its
# backend, with the connection's start and the first calls' planning
# cancelled out.  N1 and N2: CG_N1 (default 100), CG_N2 (default 400).
# Stops the server at the end.  Run as root (the server runs as postgres)
# or as the server's user.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"

port=${1:?usage: bench/callgrind.sh PORT DATADIR CASE.sql...}
data=${2:?usage: bench/callgrind.sh PORT DATADIR CASE.sql...}
shift 2
N1=${CG_N1:-100}
N2=${CG_N2:-400}
user=$(lockctl_server_user)
cg=$data.cg
as_user() { lockctl_scratch_as_server_user "$@"; }

# DATADIR is deleted and made again: only one this script made (with its
# DATADIR.cg beside it), never another directory.
if [ -e "$data" ] && [ ! -d "$cg" ]; then
    echo "bench/callgrind.sh: $data exists and was not made by this script" >&2
    exit 1
fi
rm -rf "$data" "$cg"
mkdir -m 700 "$data"; mkdir -m 755 "$cg"
chown "$user" "$data" "$cg"
as_user initdb -D "$data" -U postgres --auth-local=trust --encoding=UTF8 --no-locale >/dev/null
as_user sh -c "cat >> '$data/postgresql.conf'" <<CONF
listen_addresses = ''
port = $port
unix_socket_directories = '$data'
shared_preload_libraries = 'lockctl'
fsync = on
synchronous_commit = on
full_page_writes = on
shared_buffers = '256MB'
max_locks_per_transaction = 256
autovacuum = off
checkpoint_timeout = '1h'
max_wal_size = '10GB'
CONF
as_user sh -c "exec valgrind --tool=callgrind --callgrind-out-file='$cg/cg.%p' \
    postgres -D '$data' >'$data/server.log' 2>'$cg/valgrind.log'" &
server=$!
trap 'as_user pg_ctl stop -D "$data" -m fast -w -t 120 >/dev/null 2>&1 || kill $server' EXIT
for _ in $(seq 120); do
    as_user pg_isready -q -h "$data" -p "$port" && break
    sleep 1
done
psql_() { as_user psql -X -q -v ON_ERROR_STOP=1 -h "$data" -p "$port" "$@"; }
psql_ -d postgres -c 'CREATE DATABASE lockctl_bench'
psql_ -d lockctl_bench -c 'CREATE EXTENSION lockctl'

cases=$(mktemp -d /tmp/lockctl-cg-cases.XXXXXX)
chmod 755 "$cases"
declare -A done_setup=()
# total FILE: the instructions callgrind counted in one process.
total() { sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$1"; }
# run N CASE: the instructions of the backend of one pgbench run.
run() {
    local n=$1 f=$2 before after new best=0 t
    psql_ -d lockctl_bench -c 'CHECKPOINT'
    before=$(ls "$cg" | sort)
    as_user pgbench -n -M prepared -c 1 -t "$n" -h "$data" -p "$port" -f "$f" lockctl_bench >/dev/null 2>"$cases/pgbench.err" ||
        { cat "$cases/pgbench.err" >&2; return 1; }
    # The backend writes its file as it exits, after pgbench has returned.
    sleep 3
    after=$(ls "$cg" | sort)
    for new in $(comm -13 <(echo "$before") <(echo "$after")); do
        t=$(total "$cg/$new")
        [ "${t:-0}" -gt "$best" ] && best=$t
    done
    echo "$best"
}
for c in "$@"; do
    group=$(basename "$(dirname "$c")")
    if [ -z "${done_setup[$group]:-}" ] && [ -f "$(dirname "$c")/setup.sql" ]; then
        psql_ -d lockctl_bench -f - <"$(dirname "$c")/setup.sql" >/dev/null
        done_setup[$group]=1
    fi
    cp "$c" "$cases/"
    chmod 644 "$cases/$(basename "$c")"
    i1=$(run "$N1" "$cases/$(basename "$c")")
    i2=$(run "$N2" "$cases/$(basename "$c")")
    printf '%-40s %12d instructions per transaction (%s txns: %s, %s: %s)\n' \
        "$group/$(basename "$c")" $(( (i2 - i1) / (N2 - N1) )) "$N1" "$i1" "$N2" "$i2"
done
rm -rf "$cases"
