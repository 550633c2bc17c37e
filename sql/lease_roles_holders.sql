--
-- Counted and shared holders belong to roles, as exclusive leases do
-- (lease_roles): another role cannot renew, release or fence a holder's
-- token, nor see it; holders count in lockctl.max_leases_per_role; the
-- caps and read-only rules apply to acquire_shared and to fence's extend;
-- the administrative releases end holders too.
--
-- alice takes leases; bob is another ordinary role with her tokens in
-- hand; dave is a member of alice (he has her privileges).
--
SET client_min_messages = warning;
CREATE ROLE regress_lh_alice;
CREATE ROLE regress_lh_bob;
CREATE ROLE regress_lh_dave IN ROLE regress_lh_alice;
CREATE SCHEMA lh;
GRANT USAGE ON SCHEMA lh TO PUBLIC;
-- lh.try(statement): its result, or its SQLSTATE, message and detail, with
-- tokens written as N; rolled back either way.
CREATE FUNCTION lh.try(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    r text;
    st text;
    msg text;
    det text;
BEGIN
    BEGIN
        EXECUTE q INTO r;
        r := 'ok: ' || coalesce(r, 'NULL');
        RAISE SQLSTATE 'LKCTL';
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
                                det = PG_EXCEPTION_DETAIL;
        IF st <> 'LKCTL' THEN
            r := st || ': ' || msg || coalesce(' / ' || nullif(det, ''), '');
        END IF;
    END;
    RETURN regexp_replace(r, '\d{6,}', 'N', 'g');
END $$;
RESET client_min_messages;

-- alice holds a permit of a counted lease and a shared lease.
SET ROLE regress_lh_alice;
SELECT lockctl.acquire('lh-c', 'alice', '1 hour', permits => 3) AS ctok \gset
SELECT lockctl.acquire_shared('lh-s', 'alice', '1 hour') AS stok \gset
SELECT resource, owner, mode, acquired_by FROM lockctl.leases
 WHERE resource LIKE 'lh-%' ORDER BY resource;
RESET ROLE;

-- bob, with her very tokens, gets what a wrong token gets: renew and
-- fence fail with the same 40001 and detail, release says false.
SET ROLE regress_lh_bob;
SELECT lh.try(format($$SELECT lockctl.renew('lh-c', %s)$$, :ctok)) AS renew_her_permit;
SELECT lh.try(format($$SELECT lockctl.fence('lh-s', %s)$$, :stok)) AS fence_her_shared;
SELECT count(DISTINCT replace(lh.try(q), 'lh-s', 'lh-c')) AS distinct_answers
  FROM (VALUES (format($$SELECT lockctl.renew('lh-c', %s)$$, :ctok)),
               (format($$SELECT lockctl.renew('lh-c', %s)$$, :ctok + 1)),
               (format($$SELECT lockctl.renew('lh-s', %s)$$, :stok)),
               (format($$SELECT lockctl.renew('lh-s', %s)$$, :stok + 7))) AS v(q);
SELECT count(DISTINCT replace(lh.try(q), 'lh-s', 'lh-c')) AS distinct_fence_answers
  FROM (VALUES (format($$SELECT lockctl.fence('lh-c', %s, '1 hour')$$, :ctok)),
               (format($$SELECT lockctl.fence('lh-c', %s)$$, :ctok + 1)),
               (format($$SELECT lockctl.fence('lh-s', %s)$$, :stok))) AS v(q);
SELECT lockctl.release('lh-c', :ctok) AS release_her_permit,
       lockctl.release('lh-s', :stok) AS release_her_shared;
-- her owner name gets him a permit of his own, not her token
SELECT lockctl.acquire('lh-c', 'alice', '1 hour', permits => 3) AS btok \gset
SELECT :btok <> :ctok AS his_own_token;
-- he sees her holders, not their owner names nor tokens; his own, fully
SELECT owner, token IS NOT NULL AS token_shown, acquired_by FROM lockctl.leases
 WHERE resource LIKE 'lh-%' ORDER BY resource, acquired_by;
SELECT lockctl.release('lh-c', :btok) AS bob_released_his;
RESET ROLE;

-- dave has alice's privileges: he renews, fences (with extend) and sees
-- her holders; acquire's safe retry is still hers alone.
SET ROLE regress_lh_dave;
SELECT owner, token = :ctok AS dave_sees_token FROM lockctl.leases WHERE resource = 'lh-c';
SELECT lockctl.acquire_shared('lh-s', 'alice', '1 hour') AS dtok \gset
SELECT :dtok <> :stok AS dave_not_her_retry;
SELECT lockctl.release('lh-s', :dtok) AS dave_released_his;
SELECT lockctl.renew('lh-c', :ctok, '2 hours') > now() + interval '1 hour' AS dave_renewed;
BEGIN;
SELECT lockctl.fence('lh-s', :stok, extend => '3 hours') AS dave_fenced;
SELECT fenced, expires_at > now() + interval '2 hours' AS extended
  FROM lockctl.leases WHERE resource = 'lh-s' AND owner = 'alice';
COMMIT;
RESET ROLE;

-- Read-only transactions: acquire_shared, renew and release of a holder,
-- and fence's extend (a renew) are writes (25006); a plain fence is not.
SET ROLE regress_lh_alice;
BEGIN READ ONLY;
SELECT lh.try($$SELECT lockctl.acquire_shared('lh-ro', 'alice')$$) AS acquire_shared_read_only;
SELECT lh.try($$SELECT lockctl.acquire('lh-ro', 'alice', permits => 2)$$) AS acquire_counted_read_only;
SELECT lh.try(format($$SELECT lockctl.renew('lh-c', %s)$$, :ctok)) AS renew_read_only;
SELECT lh.try(format($$SELECT lockctl.release('lh-c', %s)$$, :ctok)) AS release_read_only;
SELECT lh.try(format($$SELECT lockctl.fence('lh-c', %s, '1 hour')$$, :ctok)) AS fence_extend_read_only;
SELECT lh.try(format($$SELECT lockctl.fence('lh-c', %s)$$, :ctok)) AS fence_read_only;
COMMIT;
RESET ROLE;

-- lockctl.max_lease_ttl caps acquire_shared, a counted acquire and
-- fence's extend.
SET lockctl.max_lease_ttl = '1h';
SET ROLE regress_lh_alice;
SELECT lh.try($$SELECT lockctl.acquire_shared('lh-m', 'alice', '61 min')$$) AS shared_over_max_ttl;
SELECT lh.try($$SELECT lockctl.acquire('lh-m', 'alice', '61 min', permits => 2)$$) AS counted_over_max_ttl;
SELECT lh.try(format($$SELECT lockctl.fence('lh-c', %s, '2 hours')$$, :ctok)) AS extend_over_max_ttl;
RESET ROLE;
RESET lockctl.max_lease_ttl;

-- lockctl.max_leases_per_role counts every holder: alice holds two; a
-- third lease of any kind is refused (53400); a safe retry of a holder is
-- not; a released holder no longer counts.
SET lockctl.max_leases_per_role = 2;
SET ROLE regress_lh_alice;
SELECT lh.try($$SELECT lockctl.acquire('lh-q', 'alice', '1 hour', permits => 2)$$) AS third_counted;
SELECT lh.try($$SELECT lockctl.acquire_shared('lh-q', 'alice', '1 hour')$$) AS third_shared;
SELECT lh.try($$SELECT lockctl.acquire('lh-q', 'alice', '1 hour')$$) AS third_exclusive;
SELECT lockctl.acquire('lh-c', 'alice', '1 hour', permits => 3) = :ctok AS retry_at_quota;
SELECT lockctl.acquire_shared('lh-s', 'alice', '1 hour') = :stok AS shared_retry_at_quota;
SELECT lockctl.release('lh-c', :ctok) AS released_permit;
-- a holder that ran out is reclaimed before refusing
SELECT lockctl.acquire('lh-e', 'alice', '1 ms', permits => 2) IS NOT NULL AS short_permit_after_release;
SELECT pg_sleep(0.01);			-- lh-e (1 ms) has run out: reclaimed at the cap
SELECT lh.try($$SELECT lockctl.acquire('lh-x', 'alice', '1 hour') IS NOT NULL$$) AS after_expiry;
RESET ROLE;
RESET lockctl.max_leases_per_role;

-- release_role_leases ends her holders of every kind, and only hers.
SET ROLE regress_lh_bob;
SELECT lockctl.acquire_shared('lh-s', 'bob', '1 hour') IS NOT NULL AS bob_shares;
RESET ROLE;
SELECT count(*) AS alice_leases FROM lockctl.leases WHERE acquired_by = 'regress_lh_alice';
SELECT lockctl.release_role_leases('regress_lh_alice') AS released_alices;
SELECT resource, owner, mode, acquired_by FROM lockctl.leases
 WHERE resource LIKE 'lh-%' ORDER BY resource;
SELECT lockctl.release_role_leases('regress_lh_bob') AS released_bobs;
SELECT count(*) AS lh_left FROM lockctl.leases WHERE resource LIKE 'lh-%';
-- the holders of a dropped role are freed when the DROP commits
CREATE ROLE regress_lh_gone;
SET ROLE regress_lh_gone;
SELECT lockctl.acquire_shared('lh-g', 'gone', '1 hour') IS NOT NULL AS gone_shares;
SELECT lockctl.acquire('lh-h', 'gone', '1 hour', permits => 2) IS NOT NULL AS gone_counts;
RESET ROLE;
SELECT count(*) AS before_drop FROM lockctl.leases WHERE resource IN ('lh-g', 'lh-h');
DROP ROLE regress_lh_gone;
SELECT count(*) AS after_drop FROM lockctl.leases WHERE resource IN ('lh-g', 'lh-h');

DROP SCHEMA lh CASCADE;
DROP ROLE regress_lh_alice, regress_lh_bob, regress_lh_dave;
