-- Shared leases (acquire_shared): many shared holders or one exclusive,
-- never both.  Tokens are kept in a table and never shown as numbers.
CREATE TEMP TABLE tok (name text PRIMARY KEY, token bigint);

CREATE FUNCTION pg_temp.try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    st text; msg text; det text; r record;
BEGIN
    EXECUTE stmt;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
                            det = PG_EXCEPTION_DETAIL;
    FOR r IN SELECT name, token FROM tok ORDER BY name LOOP
        msg := replace(msg, r.token::text, r.name);
        det := replace(det, r.token::text, r.name);
    END LOOP;
    RETURN st || ': ' || msg || coalesce(' | ' || nullif(det, ''), '');
END $$;

-- Two shared holders, each with its own token; the exclusive acquire is
-- refused while they hold.
INSERT INTO tok SELECT 'R1', lockctl.acquire_shared('doc', 'r1', '1 min');
INSERT INTO tok SELECT 'R2', lockctl.acquire_shared('doc', 'r2', '1 min');
SELECT count(DISTINCT token) AS distinct_tokens, bool_and(token > 0) AS positive FROM tok;
SELECT lockctl.acquire('doc', 'w') IS NULL AS exclusive_refused;
SELECT lockctl.acquire('doc', 'w', wait => '30 ms') IS NULL AS exclusive_refused_after_wait;
-- the same owner asking again gets its token back.
SELECT lockctl.acquire_shared('doc', 'r1', '1 min') = token AS same_token
  FROM tok WHERE name = 'R1';
SELECT owner, mode, permits, waiters, fenced FROM lockctl.leases
 WHERE resource = 'doc' ORDER BY owner;
SELECT shared_live, shared_grants >= 2 AS shared_grants FROM lockctl.lease_stats;

-- renew, fence and release: each shared holder on its own.  A shared
-- fence takes the resource's fence lock in ShareLock (so the two fence
-- together, and a third shared holder is still granted) and the holder's
-- own lock.
SELECT lockctl.renew('doc', token, '10 min') > clock_timestamp() + interval '9 min' AS renewed
  FROM tok WHERE name = 'R1';
BEGIN;
SELECT lockctl.fence('doc', token) FROM tok WHERE name = 'R1';
SELECT lockctl.fence('doc', token, extend => '20 min') FROM tok WHERE name = 'R2';
SELECT mode, objsubid, count(*) FROM pg_locks
 WHERE locktype = 'advisory' AND pid = pg_backend_pid()
 GROUP BY 1, 2 ORDER BY 1, 2;
INSERT INTO tok SELECT 'R3', lockctl.acquire_shared('doc', 'r3', '1 min');
COMMIT;
SELECT owner, expires_at > clock_timestamp() + interval '19 min' AS extended
  FROM lockctl.leases WHERE resource = 'doc' ORDER BY owner;
SELECT pg_temp.try($$SELECT lockctl.fence('doc', 12345)$$);
SELECT pg_temp.try($$SELECT lockctl.renew('doc', 12345)$$);
SELECT lockctl.release('doc', token) AS released FROM tok WHERE name LIKE 'R%' ORDER BY name;
SELECT lockctl.release('doc', token) AS released_twice FROM tok WHERE name = 'R1';
SELECT pg_temp.try($$SELECT lockctl.fence('doc', (SELECT token FROM tok WHERE name = 'R1'))$$);

-- Once the shared holders are gone, the exclusive lease is granted, and a
-- shared acquire is refused while it is live.
INSERT INTO tok SELECT 'X', lockctl.acquire('doc', 'w', '1 min');
SELECT x.token > r.token AS rises FROM tok x, tok r WHERE x.name = 'X' AND r.name = 'R3';
SELECT lockctl.acquire_shared('doc', 'r4') IS NULL AS shared_refused;
SELECT mode, permits FROM lockctl.leases WHERE resource = 'doc';
SELECT lockctl.release('doc', token) AS released FROM tok WHERE name = 'X';

-- A shared holder that expires no longer keeps the exclusive lease out.
INSERT INTO tok SELECT 'S', lockctl.acquire_shared('short', 's', '1 s');
SELECT lockctl.acquire('short', 'w') IS NULL AS exclusive_refused;
SELECT pg_sleep(1.1);
SELECT pg_temp.try($$SELECT lockctl.renew('short', (SELECT token FROM tok WHERE name = 'S'))$$);
SELECT lockctl.acquire('short', 'w') IS NOT NULL AS granted_after_expiry;

-- A counted lease is neither: acquire_shared of a counted resource, and a
-- counted acquire of a shared one, disagree on the permits.
SELECT lockctl.acquire('sem', 'c', permits => 2) IS NOT NULL AS counted;
SELECT pg_temp.try($$SELECT lockctl.acquire_shared('sem', 's')$$);
SELECT lockctl.acquire_shared('rw', 's') IS NOT NULL AS shared;
SELECT pg_temp.try($$SELECT lockctl.acquire('rw', 'c', permits => 2)$$);

-- force_release ends every shared holder.
SELECT lockctl.acquire_shared('rw', 's2') IS NOT NULL AS shared;
SELECT lockctl.force_release('rw') AS forced;
SELECT count(*) AS none_left FROM lockctl.leases WHERE resource = 'rw';

-- Bad input, as for acquire.
SELECT pg_temp.try($$SELECT lockctl.acquire_shared(NULL, 'o')$$);
SELECT pg_temp.try($$SELECT lockctl.acquire_shared('r', NULL)$$);
SELECT pg_temp.try($$SELECT lockctl.acquire_shared('r', 'o', NULL)$$);
SELECT pg_temp.try($$SELECT lockctl.acquire_shared('r', 'o', '1 s', NULL)$$);
SELECT pg_temp.try($$SELECT lockctl.acquire_shared('', 'o')$$);
SELECT pg_temp.try($$SELECT lockctl.acquire_shared('r', 'o', '0')$$);
SELECT pg_temp.try($$SELECT lockctl.acquire_shared('r', 'o', '1 s', '-1 s')$$);
SELECT count(*) AS nothing_for_r FROM lockctl.leases WHERE resource = 'r';

-- Clean up.
SELECT resource, lockctl.force_release(resource) FROM lockctl.leases
 WHERE database = current_database() GROUP BY resource ORDER BY resource;
SELECT count(*) AS none_left FROM lockctl.leases WHERE database = current_database();
