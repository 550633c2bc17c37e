-- Sets of leases: lockctl.acquire_all and lockctl.release_all.  All or
-- nothing, same-owner retries, the views and counters, every error.
-- Tokens are never shown as numbers.
CREATE FUNCTION pg_temp.try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    st text; msg text; det text;
BEGIN
    EXECUTE stmt;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
                            det = PG_EXCEPTION_DETAIL;
    RETURN st || ': ' || msg || coalesce(' | ' || nullif(det, ''), '');
END $$;
CREATE TEMP TABLE sets (name text PRIMARY KEY, tokens bigint[]);
CREATE TEMP TABLE s0 AS SELECT set_grants, grants, regrants FROM lockctl.lease_stats;

-- A set of three: rising tokens in the order of the array, one set id.
INSERT INTO sets SELECT 'A', lockctl.acquire_all('{all-c,all-a,all-b}', 'o1', '1 min');
SELECT cardinality(tokens) AS n, tokens[1] < tokens[2] AND tokens[2] < tokens[3] AS rising
  FROM sets WHERE name = 'A';
SELECT l.resource, l.owner, l.mode, l.token = s.tokens[array_position('{all-c,all-a,all-b}', l.resource)] AS its_token,
       l.set_id IS NOT NULL AS in_set
  FROM lockctl.leases l, sets s WHERE s.name = 'A' AND l.resource LIKE 'all-%' ORDER BY l.resource;
SELECT count(DISTINCT set_id) AS sets FROM lockctl.leases WHERE resource LIKE 'all-%';

-- A safe retry (same owner, same role) returns the same tokens, same set.
SELECT lockctl.acquire_all('{all-c,all-a,all-b}', 'o1', '1 min') = tokens AS same_tokens
  FROM sets WHERE name = 'A';
SELECT count(DISTINCT set_id) AS sets FROM lockctl.leases WHERE resource LIKE 'all-%';

-- Another owner: nothing, and nothing of the set is taken (all or nothing).
SELECT lockctl.acquire_all('{all-free,all-b}', 'o2', '1 min') IS NULL AS refused;
SELECT count(*) AS free_taken FROM lockctl.leases WHERE resource = 'all-free';
-- ... nor after a short wait.
SELECT lockctl.acquire_all('{all-free,all-b}', 'o2', '1 min', '20 ms') IS NULL AS refused_after_wait;
SELECT count(*) AS free_taken, (SELECT count(*) FROM lockctl.lease_waiters) AS waiters
  FROM lockctl.leases WHERE resource = 'all-free';

-- Part of the set already held by the same owner: kept (same token), and
-- it joins the new set; the rest is new.
INSERT INTO sets SELECT 'B', lockctl.acquire_all('{all-b,all-d}', 'o1', '1 min');
SELECT b.tokens[1] = a.tokens[3] AS kept_token, b.tokens[2] > a.tokens[3] AS new_token
  FROM sets a, sets b WHERE a.name = 'A' AND b.name = 'B';
SELECT resource, set_id = (SELECT set_id FROM lockctl.leases WHERE resource = 'all-d') AS in_new_set
  FROM lockctl.leases WHERE resource LIKE 'all-%' ORDER BY resource;

-- Each lease of a set is on its own: renew, fence, release one by one.
SELECT lockctl.renew('all-a', tokens[2], '2 min') > now() AS renewed FROM sets WHERE name = 'A';
BEGIN;
SELECT lockctl.fence('all-c', tokens[1]) FROM sets WHERE name = 'A';
SELECT resource, fenced FROM lockctl.leases WHERE resource LIKE 'all-%' ORDER BY resource;
COMMIT;
SELECT lockctl.release('all-c', tokens[1]) AS released FROM sets WHERE name = 'A';

-- fence_all: every lease fenced, in one transaction, whatever the order;
-- with extend, each renewed.
BEGIN;
SELECT lockctl.fence_all('{all-d,all-a,all-b}', ARRAY[b.tokens[2], a.tokens[2], b.tokens[1]], '5 min')
  FROM sets a, sets b WHERE a.name = 'A' AND b.name = 'B';
SELECT resource, fenced, expires_at > now() + interval '4 min' AS extended
  FROM lockctl.leases WHERE resource LIKE 'all-%' ORDER BY resource;
COMMIT;
SELECT resource, fenced FROM lockctl.leases WHERE resource LIKE 'all-%' ORDER BY resource;
-- a stale token fails the call with fence's 40001
BEGIN;
SELECT left(pg_temp.try($$SELECT lockctl.fence_all('{all-a,all-c}', ARRAY[tokens[2], 1]) FROM sets WHERE name = 'A'$$), 66) AS stale;
ROLLBACK;

-- release_all: release's answer for each, in order; a wrong token, a
-- free resource and a released lease answer false.
SELECT lockctl.release_all('{all-a,all-c,all-b,all-d,all-none}',
                           ARRAY[a.tokens[2], a.tokens[1], b.tokens[1], b.tokens[2] + 1000, 1])
  FROM sets a, sets b WHERE a.name = 'A' AND b.name = 'B';
SELECT lockctl.release_all('{all-d}', ARRAY[tokens[2]]) FROM sets WHERE name = 'B';
SELECT count(*) AS left_over FROM lockctl.leases WHERE resource LIKE 'all-%';

-- The counters: three sets granted, the retry regranted three leases and
-- the partial retry one.
SELECT l.set_grants - s.set_grants AS set_grants, l.grants - s.grants AS grants,
       l.regrants - s.regrants AS regrants
  FROM lockctl.lease_stats l, s0 s;

-- A counted resource cannot be in a set; a resource with a shared holder
-- waits as an exclusive acquire does.
SELECT lockctl.acquire('all-counted', 'c', '1 min', permits => 2) > 0 AS counted;
SELECT pg_temp.try($$SELECT lockctl.acquire_all('{all-x,all-counted}', 'o1')$$);
SELECT count(*) AS x_taken FROM lockctl.leases WHERE resource = 'all-x';
SELECT lockctl.acquire_shared('all-sh', 'r', '1 min') > 0 AS shared;
SELECT lockctl.acquire_all('{all-x,all-sh}', 'o1') IS NULL AS refused;
SELECT lockctl.force_release('all-counted'), lockctl.force_release('all-sh');

-- Bad input.
SELECT pg_temp.try($$SELECT lockctl.acquire_all(NULL, 'o')$$);
SELECT pg_temp.try($$SELECT lockctl.acquire_all('{}', 'o')$$);
SELECT pg_temp.try($$SELECT lockctl.acquire_all('{a,NULL}', 'o')$$);
SELECT pg_temp.try($$SELECT lockctl.acquire_all('{a,""}', 'o')$$);
SELECT pg_temp.try($$SELECT lockctl.acquire_all('{a,b,a}', 'o')$$);
SELECT pg_temp.try($$SELECT lockctl.acquire_all(ARRAY['a', repeat('x', 201)], 'o')$$);
SELECT pg_temp.try($$SELECT lockctl.acquire_all(ARRAY['a', repeat('x', 200)], 'o')$$);
SELECT lockctl.release_all(ARRAY['a', repeat('x', 200)], lockctl.acquire_all(ARRAY['a', repeat('x', 200)], 'o'));
SELECT pg_temp.try($$SELECT lockctl.acquire_all((SELECT array_agg('r' || i) FROM generate_series(1, 33) i), 'o')$$);
SELECT lockctl.release_all(r, lockctl.acquire_all(r, 'o')) = array_fill(true, ARRAY[32]) AS thirty_two
  FROM (SELECT array_agg('r' || i) AS r FROM generate_series(1, 32) i) s;
SELECT pg_temp.try($$SELECT lockctl.acquire_all('{{a},{b}}', 'o')$$);
SELECT pg_temp.try($$SELECT lockctl.acquire_all('{a}', NULL)$$);
SELECT pg_temp.try($$SELECT lockctl.acquire_all('{a}', '')$$);
SELECT pg_temp.try($$SELECT lockctl.acquire_all('{a}', 'o', '0 s')$$);
SELECT pg_temp.try($$SELECT lockctl.acquire_all('{a}', 'o', '1 min', '-1 s')$$);
SELECT pg_temp.try($$SELECT lockctl.acquire_all('{a}', 'o', '1 min', '2 days')$$);
SELECT pg_temp.try($$SELECT lockctl.release_all(NULL, '{1}')$$);
SELECT pg_temp.try($$SELECT lockctl.release_all('{a}', NULL)$$);
SELECT pg_temp.try($$SELECT lockctl.release_all('{a}', '{1,2}')$$);
SELECT pg_temp.try($$SELECT lockctl.release_all('{a,b}', '{1,NULL}')$$);
SELECT pg_temp.try($$SELECT lockctl.release_all('{a}', '{0}')$$);
SELECT pg_temp.try($$SELECT lockctl.release_all('{a,a}', '{1,2}')$$);
SELECT pg_temp.try($$SELECT lockctl.release_all('{a}', '{{1}}')$$);
SELECT pg_temp.try($$SELECT lockctl.fence_all('{a,b}', '{1}')$$);
SELECT pg_temp.try($$SELECT lockctl.fence_all('{a,a}', '{1,1}')$$);
SELECT pg_temp.try($$SELECT lockctl.fence_all('{a}', '{-1}')$$);
SELECT pg_temp.try($$SELECT lockctl.fence_all('{a}', '{1}', '0 s')$$);
SELECT pg_temp.try($$SELECT lockctl.fence_all('{}', '{}')$$);

CREATE ROLE regress_la_alice;
CREATE ROLE regress_la_bob;
CREATE ROLE regress_la_boss IN ROLE regress_la_alice;

-- max_lease_ttl and max_leases_per_role apply to every lease of a set.
SET lockctl.max_lease_ttl = '10 s';
SELECT pg_temp.try($$SELECT lockctl.acquire_all('{a,b}', 'o', '1 min')$$);
RESET lockctl.max_lease_ttl;
SET lockctl.max_leases_per_role = 2;
SET ROLE regress_la_bob;
SELECT pg_temp.try($$SELECT lockctl.acquire_all('{q1,q2,q3}', 'o')$$);
SELECT count(*) AS none_taken FROM lockctl.leases WHERE resource LIKE 'q_';
SELECT lockctl.release_all('{q1,q2}', lockctl.acquire_all('{q1,q2}', 'o'));
-- a place in line counts for each resource of a waiting set
SELECT lockctl.acquire('q1', 'other', '1 min') > 0 AS q1_held;
SELECT pg_temp.try($$SELECT lockctl.acquire_all('{q1,q2}', 'o', '1 min', '1 min')$$);
SELECT count(*) AS waiters FROM lockctl.lease_waiters;
RESET ROLE;
SELECT lockctl.force_release('q1');
RESET lockctl.max_leases_per_role;

-- Read-only: refused as acquire is.
BEGIN READ ONLY;
SELECT pg_temp.try($$SELECT lockctl.acquire_all('{a}', 'o')$$);
SELECT pg_temp.try($$SELECT lockctl.release_all('{a}', '{1}')$$);
COMMIT;

-- Roles: another role's set looks stale to release_all, and is left alone;
-- a role with the owner's privileges may release it.
SET ROLE regress_la_alice;
SELECT cardinality(lockctl.acquire_all('{r-1,r-2}', 'al', '1 min')) AS alice_took;
RESET ROLE;
CREATE TEMP TABLE rt AS SELECT array_agg(token ORDER BY resource) AS t FROM lockctl.leases WHERE resource IN ('r-1', 'r-2');
GRANT SELECT ON rt TO PUBLIC;
SET ROLE regress_la_bob;
SELECT lockctl.release_all('{r-1,r-2}', t) AS bob FROM rt;
SELECT count(*) AS owners_shown FROM lockctl.leases WHERE resource IN ('r-1', 'r-2') AND owner IS NOT NULL;
SELECT lockctl.acquire_all('{r-2,r-3}', 'al', '1 min') IS NULL AS bob_not_a_retry;
RESET ROLE;
SET ROLE regress_la_boss;
SELECT lockctl.release_all('{r-1,r-2}', t) AS boss FROM rt;
RESET ROLE;
DROP TABLE rt;
DROP ROLE regress_la_alice, regress_la_bob, regress_la_boss;
