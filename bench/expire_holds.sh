#!/usr/bin/env bash
# bench/expire_holds.sh: the cost of lockctl_internal.expire_holds grows with the holds
# that are due, not with the holds that exist.
#
#   bash bench/expire_holds.sh [psql connection options...]
#
# In a database where lockctl is installed (run it as a superuser), makes a
# pool with EXISTING holds (default 1,000,000), DUE of them (default 100,000)
# past their expiry, and times lockctl_internal.expire_holds(BATCH) (default the
# worker's batch size, 1000) called in a loop, one transaction per batch, as
# the expiry worker does, until none is due.  If the expiry worker is
# running it shares the work; the time until none is due is reported either
# way.  Then it times one pass over the same million holds with none due.
# Drops its pool at the end.
set -euo pipefail
EXISTING=${EXISTING:-1000000}
DUE=${DUE:-100000}
BATCH=${BATCH:-1000}
PSQL=(psql -X -q -v ON_ERROR_STOP=1 "$@")

"${PSQL[@]}" <<SQL
SELECT lockctl.drop_pool('bench_expiry') FROM lockctl.pools WHERE resource = 'bench_expiry';
SELECT lockctl.create_pool('bench_expiry', $EXISTING, 64);
-- Fill it in bulk (through lockctl.reserve this would take minutes): every
-- slot holds what its holds add up to, as reserve would have left it.
BEGIN;
INSERT INTO lockctl.reservations (pool_id, slot, quantity, holder, created, expires)
SELECT p.id, i % 64, 1, 'bench', now(), now() + interval '1 hour'
  FROM lockctl.pools p, generate_series(0, $EXISTING - 1) i
 WHERE p.resource = 'bench_expiry';
UPDATE lockctl.pool_slots s
   SET held = n.held, holds_taken = n.taken
  FROM (SELECT r.pool_id, r.slot, sum(r.quantity) AS held, count(*) AS taken
          FROM lockctl.reservations r JOIN lockctl.pools p ON p.id = r.pool_id
         WHERE p.resource = 'bench_expiry' GROUP BY 1, 2) n
 WHERE s.pool_id = n.pool_id AND s.slot = n.slot;
COMMIT;
VACUUM ANALYZE lockctl.reservations, lockctl.pool_slots;
SQL

echo "holds: $("${PSQL[@]}" -Atc "SELECT count(*) FROM lockctl.holds WHERE resource = 'bench_expiry' AND status = 'held'")"

# One pass with nothing due: the partial index makes it cost nothing,
# whatever exists.  Timed inside the server, without connection set-up.
"${PSQL[@]}" <<SQL
DO \$\$
DECLARE t0 timestamptz;
BEGIN
    -- The first call in a session plans its statements; the worker's
    -- session is long-lived, so time a warm call.
    PERFORM lockctl_internal.expire_holds($BATCH);
    t0 := clock_timestamp();
    PERFORM lockctl_internal.expire_holds($BATCH);
    RAISE NOTICE 'a pass with nothing due among % holds: % ms', $EXISTING,
        round(extract(epoch FROM clock_timestamp() - t0)::numeric * 1000, 2);
END \$\$;
SQL

# DUE of them fall due at once; then batches of BATCH, each committed, as the
# worker runs them, until none is due.
"${PSQL[@]}" -c "UPDATE lockctl.reservations r SET expires = now() - interval '1 second'
  FROM lockctl.pools p WHERE p.id = r.pool_id AND p.resource = 'bench_expiry' AND r.id % ($EXISTING / $DUE) = 0"
"${PSQL[@]}" <<SQL
DO \$\$
DECLARE
    t0 timestamptz := clock_timestamp();
    n integer;
    total bigint := 0;
    batches integer := 0;
    secs numeric;
BEGIN
    LOOP
        n := lockctl_internal.expire_holds($BATCH);
        COMMIT;
        total := total + n;
        batches := batches + 1;
        EXIT WHEN n = 0;
    END LOOP;
    secs := extract(epoch FROM clock_timestamp() - t0)::numeric;
    RAISE NOTICE 'expired % of % holds in % batches of %: % s, % holds/s',
        total, $EXISTING, batches, $BATCH, round(secs, 2), round(total / secs);
END \$\$;
SQL
expired=$("${PSQL[@]}" -Atc "SELECT holds_expired FROM lockctl.pool_status WHERE resource = 'bench_expiry'")
"${PSQL[@]}" -Atc "SELECT 'consistent: ' || (held = $EXISTING - $expired AND available = $expired) FROM lockctl.pool_status WHERE resource = 'bench_expiry'"
"${PSQL[@]}" -c "SELECT lockctl.drop_pool('bench_expiry')" >/dev/null
