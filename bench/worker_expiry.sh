#!/usr/bin/env bash
# bench/worker_expiry.sh: how long the expiry worker takes to expire N due
# holds while M holds exist (defaults: 100,000 due among 1,000,000).
#
#   bash bench/worker_expiry.sh                    100000 due of 1000000
#   bash bench/worker_expiry.sh 10000 100000       a quick run
#
# Builds and installs lockctl, starts a scratch server of its own (port
# LOCKCTL_BENCH_PORT, default 5497), takes M - N long holds and N holds with
# a 1 s ttl through lockctl.reserve() while the worker is kept off the
# database (lockctl.worker_databases), then lets the worker in and measures,
# from lockctl.workers: the time from the reload until every due hold is
# expired, and the worker's own time for that pass.  Last, the cost of a
# pass that finds nothing due among the M holds.
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"

DUE=${1:-100000}
TOTAL=${2:-1000000}
[ "$DUE" -le "$TOTAL" ] || lockctl_die "due ($DUE) must not exceed total ($TOTAL)"
POOLS=100
CHUNK=50000

lockctl_install_deps
exec 9>"$LOCKCTL_LOCKFILE"
flock 9
lockctl_build_install
flock -u 9

DIR=${LOCKCTL_BENCH_DIR:-/var/tmp/lockctl-worker-bench-$(id -u)}
PORT=${LOCKCTL_BENCH_PORT:-5497}
lockctl_as_root rm -rf "$DIR"
mkdir -p "$DIR"
chown "$(lockctl_server_user)" "$DIR"
lockctl_as_server_user initdb -D "$DIR/data" -A trust -U postgres >/dev/null
cat >>"$DIR/data/postgresql.conf" <<CONF
port = $PORT
listen_addresses = ''
unix_socket_directories = '$DIR'
shared_preload_libraries = 'lockctl'
lockctl.expiry_interval = '1s'
lockctl.expiry_batch_size = 1000
shared_buffers = '512MB'
max_wal_size = '4GB'
synchronous_commit = off
CONF
lockctl_as_server_user pg_ctl -D "$DIR/data" -l "$DIR/log" -w start >/dev/null
trap 'lockctl_as_server_user pg_ctl -D "$DIR/data" -m fast -w stop >/dev/null' EXIT

q() { lockctl_as_server_user psql -X -q -At -v ON_ERROR_STOP=1 -h "$DIR" -p "$PORT" -U postgres "$@"; }

# Keep the worker off the bench database while the holds are taken.
q -d postgres -c "ALTER SYSTEM SET lockctl.worker_databases = 'postgres'" -c 'SELECT pg_reload_conf()' >/dev/null
q -d postgres -c 'CREATE DATABASE lockctl_bench'
q -d lockctl_bench -c 'CREATE EXTENSION lockctl'
q -d lockctl_bench -c "SELECT lockctl.create_pool('pool' || i, $TOTAL) FROM generate_series(1, $POOLS) AS i" >/dev/null

# take N holds with this ttl, CHUNK per transaction, two sessions at a time
take() {
    local n=$1 ttl=$2 size pids=()
    while [ "$n" -gt 0 ]; do
        size=$(( n < CHUNK ? n : CHUNK ))
        q -d lockctl_bench -c "SELECT count(lockctl.reserve('pool' || (1 + i % $POOLS), 1, NULL, '$ttl')) FROM generate_series(1, $size) AS i" >/dev/null &
        pids+=($!)
        if [ ${#pids[@]} -ge 2 ]; then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi
        n=$(( n - size ))
    done
    wait
}
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

lockctl_log "taking $((TOTAL - DUE)) long holds and $DUE holds with a 1 s ttl (worker kept off)"
t0=$(date +%s.%N)
take $((TOTAL - DUE)) '1 day'
take "$DUE" '1 second'
q -d lockctl_bench -c 'VACUUM ANALYZE lockctl.reservations, lockctl.pool_slots'
t1=$(date +%s.%N)
echo "setup: $(secs "$t0" "$t1") s"
# wait (bounded) until every short hold is due
for _ in $(seq 1 100); do
    [ "$(q -d lockctl_bench -c "SELECT count(*) FROM lockctl.reservations WHERE status = 'held' AND expires <= now()")" -ge "$DUE" ] && break
    sleep 0.1
done
q -d lockctl_bench -c "SELECT 'holds: ' || count(*) || ', due now: ' || count(*) FILTER (WHERE status = 'held' AND expires <= now()) FROM lockctl.reservations"

lockctl_log "letting the worker in"
start=$(date +%s.%N)
q -d postgres -c "ALTER SYSTEM RESET lockctl.worker_databases" -c 'SELECT pg_reload_conf()' >/dev/null
deadline=$(( $(date +%s) + 600 ))
while :; do
    [ "$(date +%s)" -lt "$deadline" ] || lockctl_die "the worker did not expire $DUE holds within 600 s"
    n=$(q -d lockctl_bench -c "SELECT coalesce(max(holds_expired) FILTER (WHERE last_run IS NOT NULL), 0) FROM lockctl.workers WHERE datname = 'lockctl_bench'")
    [ "$n" -ge "$DUE" ] && break
    sleep 0.02
done
end=$(date +%s.%N)
q -d lockctl_bench -c "
SELECT 'worker: expired ' || holds_expired || ' holds; pass time (worker start to end of pass): '
       || round(extract(epoch FROM last_run - started)::numeric, 2) || ' s; '
       || round(holds_expired / extract(epoch FROM last_run - started))::text || ' holds/s'
  FROM lockctl.workers WHERE datname = 'lockctl_bench'"
echo "wall time from reload to all $DUE expired: $(secs "$start" "$end") s (includes the launcher's reaction and the worker's start)"
q -d lockctl_bench -c "SELECT 'still due: ' || count(*) FROM lockctl.reservations WHERE status = 'held' AND expires <= now()"
q -d lockctl_bench -c "SELECT 'available over all pools: ' || sum(lockctl.available('pool' || i)) || ' of ' || $POOLS * $TOTAL::bigint FROM generate_series(1, $POOLS) AS i"

lockctl_log "a pass with nothing due among $TOTAL holds"
echo "lockctl_internal.expire_holds(1000) finding nothing due (second call in the session): $(q -d lockctl_bench -c '\timing on' -c 'BEGIN' -c 'SELECT lockctl_internal.expire_holds(1000)' -c 'SELECT lockctl_internal.expire_holds(1000)' -c 'ROLLBACK' | grep '^Time' | sed -n 3p)"
