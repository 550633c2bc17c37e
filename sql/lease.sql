-- Leases with fencing tokens: every function, every error.
-- Tokens depend on the server's timeline and epoch, so they are never shown
-- as numbers: they are kept in a table and compared, and error messages
-- show them by name.
CREATE TEMP TABLE tok (name text PRIMARY KEY, token bigint);
GRANT SELECT ON tok TO PUBLIC;

-- Run a statement; show "ok" or its SQLSTATE, message and detail, with
-- every known token replaced by its name.
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

-- Signatures and defaults.
SELECT p.oid::regprocedure AS function, pg_get_function_result(p.oid) AS returns
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'lockctl'
   AND p.proname IN ('acquire', 'renew', 'release', 'fence', 'force_release', 'lease')
 ORDER BY p.oid::regprocedure::text;

-- A first grant: a positive token; the same owner again gets the same token.
INSERT INTO tok SELECT 'A', lockctl.acquire('job', 'worker-a', '1 min');
SELECT token > 0 AS positive FROM tok WHERE name = 'A';
SELECT lockctl.acquire('job', 'worker-a', '2 min') = token AS same_token
  FROM tok WHERE name = 'A';

-- Another owner does not get it, and does not wait by default.
SELECT lockctl.acquire('job', 'worker-b') IS NULL AS refused;
-- nor within a short wait (it returns NULL, it does not raise).
SELECT lockctl.acquire('job', 'worker-b', wait => '30 ms') IS NULL AS refused_after_wait;

-- Reading one lease, and the view.
SELECT owner, token = (SELECT token FROM tok WHERE name = 'A') AS token_ok,
       acquired_at <= now() + interval '1 s' AS acquired_ok,
       expires_at BETWEEN clock_timestamp() + interval '110 s'
                      AND clock_timestamp() + interval '121 s' AS expiry_pushed_out,
       waiters, acquired_by = current_user AS by_me, fenced
  FROM lockctl.lease('job');
SELECT count(*) AS no_row FROM lockctl.lease('no such lease');
SELECT database = current_database() AS this_db, resource, owner,
       waiters, acquired_by = current_user AS by_me, fenced
  FROM lockctl.leases WHERE resource = 'job';

-- renew: a new expiry from now; the ttl may also shorten it.
SELECT lockctl.renew('job', token, '10 min')
       BETWEEN clock_timestamp() + interval '599 s'
           AND clock_timestamp() + interval '601 s' AS renewed
  FROM tok WHERE name = 'A';
SELECT expires_at > clock_timestamp() + interval '9 min' AS longer
  FROM lockctl.lease('job');

-- fence: fine with the live token, inside a transaction; it shows in
-- pg_locks as an advisory lock of lockctl's own (objsubid 19523) and in
-- the view, and goes away at commit.
BEGIN;
SELECT lockctl.fence('job', token) FROM tok WHERE name = 'A';
SELECT locktype, mode, granted, objsubid FROM pg_locks
 WHERE locktype = 'advisory' AND pid = pg_backend_pid();
SELECT fenced FROM lockctl.lease('job');
COMMIT;
SELECT count(*) AS fence_lock_gone FROM pg_locks
 WHERE locktype = 'advisory' AND pid = pg_backend_pid();

-- Stale and wrong tokens: 40001 naming the token sent and the current one.
SELECT pg_temp.try($$SELECT lockctl.fence('job', 12345)$$);
SELECT pg_temp.try($$SELECT lockctl.renew('job', 12345)$$);
SELECT pg_temp.try($$SELECT lockctl.fence('other', 12345)$$);
SELECT pg_temp.try($$SELECT lockctl.renew('other', 12345)$$);
-- release with a wrong token changes nothing.
SELECT lockctl.release('job', 12345) AS released_wrong;
SELECT count(*) AS still_held FROM lockctl.lease('job');

-- release: true once; then the lease is free and the next token is higher.
SELECT lockctl.release('job', token) AS released FROM tok WHERE name = 'A';
SELECT lockctl.release('job', token) AS released_twice FROM tok WHERE name = 'A';
SELECT count(*) AS gone FROM lockctl.lease('job');
INSERT INTO tok SELECT 'B', lockctl.acquire('job', 'worker-b', '1 s');
SELECT b.token > a.token AS rises
  FROM tok a, tok b WHERE a.name = 'A' AND b.name = 'B';
-- the released token is stale now.
SELECT pg_temp.try($$SELECT lockctl.fence('job', (SELECT token FROM tok WHERE name = 'A'))$$);

-- Expiry: after its ttl the lease is not live; renew and fence say so, and
-- another owner takes it with a higher token.
SELECT pg_sleep(1.1);
SELECT count(*) AS expired_not_shown FROM lockctl.leases WHERE resource = 'job';
SELECT pg_temp.try($$SELECT lockctl.renew('job', (SELECT token FROM tok WHERE name = 'B'))$$);
SELECT pg_temp.try($$SELECT lockctl.fence('job', (SELECT token FROM tok WHERE name = 'B'))$$);
INSERT INTO tok SELECT 'C', lockctl.acquire('job', 'worker-c');
SELECT c.token > b.token AS rises_after_expiry
  FROM tok b, tok c WHERE b.name = 'B' AND c.name = 'C';
SELECT pg_temp.try($$SELECT lockctl.fence('job', (SELECT token FROM tok WHERE name = 'B'))$$);
-- the same owner after expiry gets a new token, not the old one.
SELECT lockctl.acquire('short', 'me', '1 s') IS NOT NULL AS got_short \gset
INSERT INTO tok SELECT 'S1', token FROM lockctl.lease('short');
SELECT pg_sleep(1.1);
SELECT lockctl.acquire('short', 'me') > token AS new_token_after_expiry
  FROM tok WHERE name = 'S1';

-- A fenced lease is not granted to anyone else until the fencing
-- transaction ends, even after it expires.
INSERT INTO tok SELECT 'D', lockctl.acquire('fenced', 'holder', '1 s');
BEGIN;
SELECT lockctl.fence('fenced', token) FROM tok WHERE name = 'D';
SELECT pg_sleep(1.1);
-- (another session is refused here: see specs/lease_fence_holds.spec)
COMMIT;
SELECT lockctl.acquire('fenced', 'next') > token AS granted_after_commit
  FROM tok WHERE name = 'D';

-- force_release: administrative; false when there is nothing to end.
SELECT lockctl.force_release('job') AS forced;
SELECT lockctl.force_release('job') AS forced_again;
SELECT count(*) AS gone FROM lockctl.lease('job');
CREATE ROLE lease_user;
CREATE ROLE lease_admin;
GRANT EXECUTE ON FUNCTION lockctl.force_release(text) TO lease_admin;
SET ROLE lease_user;
SELECT lockctl.acquire('theirs', 'u') IS NOT NULL AS user_can_acquire;
SELECT acquired_by FROM lockctl.leases WHERE resource = 'theirs';
SELECT pg_temp.try($$SELECT lockctl.force_release('theirs')$$);
RESET ROLE;
SET ROLE lease_admin;
SELECT lockctl.force_release('theirs') AS admin_forced;
RESET ROLE;

-- Bad input: NULLs, empty and over-long names, absurd intervals and tokens.
SELECT pg_temp.try($$SELECT lockctl.acquire(NULL, 'o')$$);
SELECT pg_temp.try($$SELECT lockctl.acquire('r', NULL)$$);
SELECT pg_temp.try($$SELECT lockctl.acquire('r', 'o', NULL)$$);
SELECT pg_temp.try($$SELECT lockctl.acquire('r', 'o', '1 s', NULL)$$);
SELECT pg_temp.try($$SELECT lockctl.acquire('', 'o')$$);
SELECT pg_temp.try($$SELECT lockctl.acquire('r', '')$$);
SELECT pg_temp.try($$SELECT lockctl.acquire(repeat('x', 201), 'o')$$);
SELECT pg_temp.try($$SELECT lockctl.acquire('r', repeat('é', 101))$$);
SELECT lockctl.release(repeat('x', 200),
                       lockctl.acquire(repeat('x', 200), repeat('y', 200))) AS longest_names_ok;
SELECT pg_temp.try($$SELECT lockctl.acquire('r', 'o', '0')$$);
SELECT pg_temp.try($$SELECT lockctl.acquire('r', 'o', '-1 s')$$);
SELECT pg_temp.try($$SELECT lockctl.acquire('r', 'o', '400 days')$$);
SELECT pg_temp.try($$SELECT lockctl.acquire('r', 'o', '1 s', '-1 s')$$);
SELECT pg_temp.try($$SELECT lockctl.acquire('r', 'o', '1 s', '2 days')$$);
SELECT pg_temp.try($$SELECT lockctl.acquire('r', 'o', '1 s', '1000000 years')$$);
SELECT pg_temp.try($$SELECT lockctl.renew('r', NULL)$$);
SELECT pg_temp.try($$SELECT lockctl.renew('r', 0)$$);
SELECT pg_temp.try($$SELECT lockctl.renew('r', -5)$$);
SELECT pg_temp.try($$SELECT lockctl.renew('r', 1, '0')$$);
SELECT pg_temp.try($$SELECT lockctl.release(NULL, 1)$$);
SELECT pg_temp.try($$SELECT lockctl.release('r', NULL)$$);
SELECT pg_temp.try($$SELECT lockctl.fence('r', NULL)$$);
SELECT pg_temp.try($$SELECT lockctl.fence(repeat('x', 201), 1)$$);
SELECT pg_temp.try($$SELECT lockctl.force_release(NULL)$$);
SELECT pg_temp.try($$SELECT lockctl.acquire('r', 'o', 'forever')$$);
-- none of that left a lease behind.
SELECT count(*) AS nothing_for_r FROM lockctl.lease('r');

-- Counters move.
SELECT grants >= 6 AS grants, regrants >= 1 AS regrants, renewals >= 1 AS renewals,
       releases >= 1 AS releases, force_releases >= 2 AS force_releases,
       expiries >= 1 AS expiries, conflicts >= 2 AS conflicts, waits >= 1 AS waits,
       timeouts >= 2 AS timeouts, fences >= 2 AS fences,
       fence_failures >= 5 AS fence_failures, max_leases
  FROM lockctl.lease_stats;

-- Clean up.
SELECT resource, lockctl.force_release(resource) FROM lockctl.leases
 WHERE database = current_database() ORDER BY resource;
SELECT count(*) AS none_left FROM lockctl.leases WHERE database = current_database();
REVOKE EXECUTE ON FUNCTION lockctl.force_release(text) FROM lease_admin;
DROP ROLE lease_user;
DROP ROLE lease_admin;

-- A lease belongs to its owner and token, not to the session: a new
-- session renews and releases it.
SELECT lockctl.acquire('outlives', 'o', '1 min') AS outlives_token \gset
\c
SELECT owner FROM lockctl.lease('outlives');
SELECT lockctl.renew('outlives', :outlives_token, '2 min') > now() AS renewed_elsewhere;
SELECT lockctl.release('outlives', :outlives_token) AS released_elsewhere;
