-- Counted leases (acquire's permits) and fence's extend: every function on
-- a counted lease, every error.  Tokens are never shown as numbers: they
-- are kept in a table, and error messages show them by name.
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

-- Three permits: three holders, each with its own rising token; a fourth
-- is refused (and does not wait by default, nor past a short wait).
INSERT INTO tok SELECT 'P1', lockctl.acquire('pool', 'w1', '1 min', permits => 3);
INSERT INTO tok SELECT 'P2', lockctl.acquire('pool', 'w2', '1 min', permits => 3);
INSERT INTO tok SELECT 'P3', lockctl.acquire('pool', 'w3', '1 min', permits => 3);
SELECT count(DISTINCT token) AS distinct_tokens, bool_and(token > 0) AS positive
  FROM tok WHERE name LIKE 'P%';
SELECT (SELECT token FROM tok WHERE name = 'P1') < (SELECT token FROM tok WHERE name = 'P2')
   AND (SELECT token FROM tok WHERE name = 'P2') < (SELECT token FROM tok WHERE name = 'P3') AS rising;
SELECT lockctl.acquire('pool', 'w4', permits => 3) IS NULL AS fourth_refused;
SELECT lockctl.acquire('pool', 'w4', wait => '30 ms', permits => 3) IS NULL AS fourth_refused_after_wait;
-- the same owner (and role) asking again gets its own token back.
SELECT lockctl.acquire('pool', 'w2', '1 min', permits => 3) = token AS same_token
  FROM tok WHERE name = 'P2';

-- The views: a row per holder, with the kind and the permits.
SELECT owner, token = (SELECT token FROM tok t WHERE t.name = 'P' || substr(l.owner, 2)) AS token_ok,
       waiters, fenced, mode, permits
  FROM lockctl.leases l WHERE resource = 'pool' ORDER BY owner;
SELECT owner, fenced FROM lockctl.lease('pool') ORDER BY owner;
SELECT live >= 3 AS live, counted_live, counted_grants >= 3 AS counted_grants
  FROM lockctl.lease_stats;

-- Calls that disagree on the number of permits are refused while the
-- resource is held: another count, and an exclusive acquire.
SELECT pg_temp.try($$SELECT lockctl.acquire('pool', 'w5', permits => 4)$$);
SELECT pg_temp.try($$SELECT lockctl.acquire('pool', 'w5', permits => 2)$$);
SELECT pg_temp.try($$SELECT lockctl.acquire('pool', 'w5')$$);
-- ... and a counted acquire of an exclusive lease.
INSERT INTO tok SELECT 'X', lockctl.acquire('excl', 'x', '1 min');
SELECT pg_temp.try($$SELECT lockctl.acquire('excl', 'y', permits => 2)$$);
SELECT lockctl.release('excl', token) AS released_excl FROM tok WHERE name = 'X';
-- once the exclusive lease is gone, the resource may be counted.
INSERT INTO tok SELECT 'X2', lockctl.acquire('excl', 'y', '1 min', permits => 2);
SELECT mode, permits FROM lockctl.leases WHERE resource = 'excl';
SELECT lockctl.release('excl', token) AS released_counted FROM tok WHERE name = 'X2';

-- renew, fence and release: each holder on its own.
SELECT lockctl.renew('pool', token, '10 min') > clock_timestamp() + interval '9 min' AS renewed
  FROM tok WHERE name = 'P1';
SELECT owner, expires_at > clock_timestamp() + interval '9 min' AS longer
  FROM lockctl.leases WHERE resource = 'pool' ORDER BY owner;
BEGIN;
SELECT lockctl.fence('pool', token) FROM tok WHERE name = 'P2';
SELECT lockctl.fence('pool', token) FROM tok WHERE name = 'P3';
-- each holder's fence is a lock of its own (objsubid 19524), so holders
-- fence at the same time without waiting for each other.
SELECT locktype, mode, granted, objsubid, count(*) FROM pg_locks
 WHERE locktype = 'advisory' AND pid = pg_backend_pid()
 GROUP BY 1, 2, 3, 4;
SELECT owner, fenced FROM lockctl.leases WHERE resource = 'pool' ORDER BY owner;
COMMIT;
-- a wrong token, on a counted lease: 40001 like any stale token.
SELECT pg_temp.try($$SELECT lockctl.fence('pool', 12345)$$);
SELECT pg_temp.try($$SELECT lockctl.renew('pool', 12345)$$);
SELECT lockctl.release('pool', 12345) AS released_wrong;
-- release frees one permit: the next owner gets it, with a higher token.
SELECT lockctl.release('pool', token) AS released FROM tok WHERE name = 'P2';
SELECT lockctl.release('pool', token) AS released_twice FROM tok WHERE name = 'P2';
SELECT pg_temp.try($$SELECT lockctl.renew('pool', (SELECT token FROM tok WHERE name = 'P2'))$$);
SELECT pg_temp.try($$SELECT lockctl.fence('pool', (SELECT token FROM tok WHERE name = 'P2'))$$);
INSERT INTO tok SELECT 'P4', lockctl.acquire('pool', 'w4', '1 min', permits => 3);
SELECT p4.token > p3.token AS rises FROM tok p3, tok p4
 WHERE p3.name = 'P3' AND p4.name = 'P4';
SELECT count(*) AS holders FROM lockctl.leases WHERE resource = 'pool';

-- A holder that expires frees its permit; renew and fence say so.
INSERT INTO tok SELECT 'S1', lockctl.acquire('short', 's1', '1 s', permits => 2);
INSERT INTO tok SELECT 'S2', lockctl.acquire('short', 's2', '1 min', permits => 2);
SELECT lockctl.acquire('short', 's3', permits => 2) IS NULL AS full;
SELECT pg_sleep(1.1);
SELECT owner FROM lockctl.leases WHERE resource = 'short';
SELECT pg_temp.try($$SELECT lockctl.renew('short', (SELECT token FROM tok WHERE name = 'S1'))$$);
SELECT pg_temp.try($$SELECT lockctl.fence('short', (SELECT token FROM tok WHERE name = 'S1'))$$);
SELECT lockctl.acquire('short', 's3', permits => 2) IS NOT NULL AS granted_after_expiry;

-- An expired holder whose fencing transaction is open keeps its permit
-- until that transaction ends (the fence's promise), and the write it
-- protects is still protected.
INSERT INTO tok SELECT 'F1', lockctl.acquire('fenced', 'f1', '1 s', permits => 2);
INSERT INTO tok SELECT 'F2', lockctl.acquire('fenced', 'f2', '1 min', permits => 2);
BEGIN;
SELECT lockctl.fence('fenced', token) FROM tok WHERE name = 'F1';
SELECT pg_sleep(1.1);
-- (another session is refused here: see specs/lease_counted_fence.spec)
COMMIT;
SELECT lockctl.acquire('fenced', 'f3', permits => 2) IS NOT NULL AS granted_after_commit;

-- fence(..., extend): renews as part of the protected write, exclusive or
-- counted; the extend is checked like a ttl.
INSERT INTO tok SELECT 'E', lockctl.acquire('ext', 'e', '2 s');
BEGIN;
SELECT lockctl.fence('ext', token, extend => '10 min') FROM tok WHERE name = 'E';
SELECT expires_at > clock_timestamp() + interval '9 min' AS extended, fenced
  FROM lockctl.lease('ext');
COMMIT;
SELECT lockctl.fence('pool', token, extend => '20 min') FROM tok WHERE name = 'P3';
SELECT owner, expires_at > clock_timestamp() + interval '19 min' AS extended
  FROM lockctl.leases WHERE resource = 'pool' ORDER BY owner;
SELECT pg_temp.try($$SELECT lockctl.fence('ext', (SELECT token FROM tok WHERE name = 'E'), extend => '0')$$);
SELECT pg_temp.try($$SELECT lockctl.fence('ext', (SELECT token FROM tok WHERE name = 'E'), extend => '400 days')$$);
SELECT pg_temp.try($$SELECT lockctl.fence('ext', 12345, extend => '1 min')$$);
-- extend => NULL is a plain fence: the expiry does not move.
SELECT lockctl.fence('ext', token, extend => NULL) FROM tok WHERE name = 'E';
SELECT expires_at > clock_timestamp() + interval '9 min' AS still_extended
  FROM lockctl.lease('ext');

-- force_release ends every holder of a counted lease.
SELECT lockctl.force_release('pool') AS forced;
SELECT count(*) AS none_left FROM lockctl.leases WHERE resource = 'pool';
SELECT lockctl.force_release('pool') AS forced_again;

-- Bad input: permits 0, negative, huge, NULL; no lease is left behind.
SELECT pg_temp.try($$SELECT lockctl.acquire('bad', 'o', permits => 0)$$);
SELECT pg_temp.try($$SELECT lockctl.acquire('bad', 'o', permits => -1)$$);
SELECT pg_temp.try($$SELECT lockctl.acquire('bad', 'o', permits => 1000001)$$);
SELECT pg_temp.try($$SELECT lockctl.acquire('bad', 'o', permits => 2147483647)$$);
SELECT pg_temp.try($$SELECT lockctl.acquire('bad', 'o', permits => NULL)$$);
SELECT pg_temp.try($$SELECT lockctl.acquire('bad', 'o', permits => 99999999999)$$);
SELECT count(*) AS nothing_for_bad FROM lockctl.lease('bad');
-- a disagreeing call leaves nothing behind either.
INSERT INTO tok SELECT 'L', lockctl.acquire('lone', 'l', '1 min');
SELECT pg_temp.try($$SELECT lockctl.acquire('lone', 'z', permits => 3)$$);
SELECT lockctl.release('lone', token) AS released FROM tok WHERE name = 'L';
SELECT count(*) AS nothing_for_lone FROM lockctl.lease('lone');
SELECT lockctl.release('big', lockctl.acquire('big', 'z', permits => 1000000)) AS most_permits_ok;

-- Clean up.
SELECT resource, lockctl.force_release(resource) FROM lockctl.leases
 WHERE database = current_database() GROUP BY resource ORDER BY resource;
SELECT count(*) AS none_left FROM lockctl.leases WHERE database = current_database();
