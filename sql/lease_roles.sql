--
-- Leases belong to roles: what another role can and cannot do to a lease,
-- the caps a DBA sets, and the administrative clean-up.
--
-- alice takes leases; bob is another ordinary role and plays the attacker,
-- with alice's token in hand; dave is a member of alice (he has her
-- privileges); carol is in pg_read_all_stats; ops is granted the
-- administrative functions.  Waiters, a dropped database, a restart and
-- other encodings are in t/029_lease_roles.pl; the fence lock that bob
-- must not be able to queue on is in specs/lease_roles_fence.spec.
--
SET client_min_messages = warning;
CREATE ROLE regress_lr_alice;
CREATE ROLE regress_lr_bob;
CREATE ROLE regress_lr_carol IN ROLE pg_read_all_stats;
CREATE ROLE regress_lr_dave IN ROLE regress_lr_alice;
CREATE ROLE regress_lr_ops;
CREATE SCHEMA lr;
GRANT USAGE ON SCHEMA lr TO PUBLIC;
-- lr.try(statement): its result, or its SQLSTATE, message and detail, with
-- tokens written as N (so that two errors can be compared whatever token
-- they name); rolled back either way.
CREATE FUNCTION lr.try(q text) RETURNS text LANGUAGE plpgsql AS $$
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
-- lr.hint(statement): the SQLSTATE and hint of its error.
CREATE FUNCTION lr.hint(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    st text;
    h text;
BEGIN
    EXECUTE q;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, h = PG_EXCEPTION_HINT;
    RETURN st || ': ' || h;
END $$;
RESET client_min_messages;

-- alice takes a lease.
SET ROLE regress_lr_alice;
SELECT lockctl.acquire('lr-a', 'alice', '1 hour') AS tok \gset
SELECT acquired_by FROM lockctl.lease('lr-a');
RESET ROLE;

-- bob, with alice's very token, cannot renew, release or fence her lease:
-- he gets what a stale token gets, and the same for a wrong token and for
-- a resource nobody holds, so no answer tells him whether a guess was right.
SET ROLE regress_lr_bob;
SELECT lr.try(format($$SELECT lockctl.renew('lr-a', %s, '1 s')$$, :tok)) AS renew_with_her_token;
SELECT count(DISTINCT replace(lr.try(q), 'lr-none', 'lr-a')) AS distinct_renew_answers
  FROM (VALUES (format($$SELECT lockctl.renew('lr-a', %s)$$, :tok)),
               (format($$SELECT lockctl.renew('lr-a', %s)$$, :tok + 1)),
               (format($$SELECT lockctl.renew('lr-a', %s)$$, :tok - 1)),
               (format($$SELECT lockctl.renew('lr-none', %s)$$, :tok))) AS v(q);
SELECT lr.try(format($$SELECT lockctl.fence('lr-a', %s)$$, :tok)) AS fence_with_her_token;
SELECT count(DISTINCT replace(lr.try(q), 'lr-none', 'lr-a')) AS distinct_fence_answers
  FROM (VALUES (format($$SELECT lockctl.fence('lr-a', %s)$$, :tok)),
               (format($$SELECT lockctl.fence('lr-a', %s)$$, :tok + 1)),
               (format($$SELECT lockctl.fence('lr-none', %s)$$, :tok))) AS v(q);
SELECT lockctl.release('lr-a', :tok) AS release_with_her_token,
       lockctl.release('lr-a', :tok + 1) AS release_with_a_wrong_one;
-- nor take it over by passing her owner name
SELECT lockctl.acquire('lr-a', 'alice', '1 hour') IS NULL AS retry_as_alice_not_granted;
-- he sees that the lease exists, on what, until when and whose, but
-- neither its token nor its owner name
SELECT owner, token, acquired_by, expires_at > now() AS live
  FROM lockctl.leases WHERE resource = 'lr-a';
SELECT owner, token, acquired_by FROM lockctl.lease('lr-a');
-- and a SECURITY DEFINER function of a superuser lends him no authority:
-- a lease is acted on as the session's role
RESET ROLE;
CREATE FUNCTION lr.renew_as_definer(t bigint) RETURNS timestamptz
    LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog
    AS $$ SELECT lockctl.renew('lr-a', t, '1 hour') $$;
SET ROLE regress_lr_bob;
SELECT lr.try(format($$SELECT lr.renew_as_definer(%s)$$, :tok)) AS renew_through_a_definer;
RESET ROLE;
DROP FUNCTION lr.renew_as_definer(bigint);

-- Nothing changed: alice's lease is as she left it.
SET ROLE regress_lr_alice;
SELECT owner, token = :tok AS same_token, fenced FROM lockctl.lease('lr-a');
RESET ROLE;

-- carol (pg_read_all_stats) monitors: every lease, never a token or owner.
SET ROLE regress_lr_carol;
SELECT owner, token, acquired_by FROM lockctl.leases WHERE resource = 'lr-a';
SELECT lr.try(format($$SELECT lockctl.renew('lr-a', %s)$$, :tok)) AS carol_renews;
RESET ROLE;

-- dave has alice's privileges: he sees her token and owner, and renews,
-- fences and releases her lease; acquire's safe retry is still hers alone.
SET ROLE regress_lr_dave;
SELECT owner, token = :tok AS dave_sees_token FROM lockctl.leases WHERE resource = 'lr-a';
SELECT lockctl.acquire('lr-a', 'alice', '1 hour') IS NULL AS dave_retry_not_granted;
SELECT lr.try(format($$SELECT lockctl.renew('lr-a', %s)$$, :tok + 1)) AS dave_wrong_token;
SELECT lockctl.renew('lr-a', :tok, '2 hours') > now() + interval '1 hour' AS dave_renewed;
BEGIN;
SELECT lockctl.fence('lr-a', :tok) AS dave_fenced;
SELECT fenced FROM lockctl.lease('lr-a');
COMMIT;
-- the flag goes with the fencing transaction
SELECT fenced AS fenced_after_commit FROM lockctl.lease('lr-a');
SELECT lockctl.release('lr-a', :tok) AS dave_released;
RESET ROLE;
SELECT count(*) AS left_of_lr_a FROM lockctl.leases WHERE resource = 'lr-a';

-- The fenced flag after the fencing transaction ends: cleared at commit
-- and at rollback, and a lease released while fenced frees its slot then.
SET ROLE regress_lr_alice;
SELECT lockctl.acquire('lr-f', 'alice', '1 hour') AS ftok \gset
BEGIN;
SELECT lockctl.fence('lr-f', :ftok);
ROLLBACK;
SELECT fenced AS fenced_after_rollback FROM lockctl.lease('lr-f');
BEGIN;
SELECT lockctl.fence('lr-f', :ftok);
SELECT lockctl.release('lr-f', :ftok) AS released_while_fenced;
SELECT slots_used AS slots_while_fenced FROM lockctl.lease_stats \gset
COMMIT;
SELECT slots_used = :slots_while_fenced - 1 AS slot_freed_at_commit FROM lockctl.lease_stats;
RESET ROLE;

-- Leases in read-only transactions: a lease outlives the transaction, so
-- taking, renewing and releasing one is a write (25006); fencing, which
-- lasts as long as the transaction, is not.
SET ROLE regress_lr_alice;
SELECT lockctl.acquire('lr-ro', 'alice', '1 hour') AS rotok \gset
BEGIN READ ONLY;
SELECT lr.try($$SELECT lockctl.acquire('lr-ro2', 'alice')$$) AS acquire_read_only;
SELECT lr.try(format($$SELECT lockctl.renew('lr-ro', %s)$$, :rotok)) AS renew_read_only;
SELECT lr.try(format($$SELECT lockctl.release('lr-ro', %s)$$, :rotok)) AS release_read_only;
SELECT lr.try(format($$SELECT lockctl.fence('lr-ro', %s)$$, :rotok)) AS fence_read_only;
COMMIT;
SET default_transaction_read_only = on;
SELECT lr.try($$SELECT lockctl.acquire('lr-ro2', 'alice')$$) AS acquire_default_read_only;
RESET default_transaction_read_only;
SELECT count(*) AS lr_ro2_leases FROM lockctl.leases WHERE resource = 'lr-ro2';
SELECT lockctl.release('lr-ro', :rotok);
RESET ROLE;

-- ttl arithmetic: a month is 30 days and a day 24 hours, as PostgreSQL
-- compares intervals, both for the range check and for the expiry, so a
-- ttl never lasts longer than the maximum nor ends before it starts.
SET ROLE regress_lr_alice;
SELECT lockctl.acquire('lr-t1', 'alice', '12 mons 5 days') IS NOT NULL AS twelve_months_five_days;
SELECT expires_at - acquired_at BETWEEN interval '365 days' - interval '1 s'
                                   AND interval '365 days' + interval '1 ms' AS lasts_365_days
  FROM lockctl.lease('lr-t1');
SELECT lr.try($$SELECT lockctl.acquire('lr-t2', 'alice', '1 year 5 days 1 second')$$) AS one_year_five_days_and_a_second;
SELECT lockctl.acquire('lr-t3', 'alice', '1 mon -30 days 1 hour') IS NOT NULL AS month_less_30_days_plus_hour;
SELECT expires_at - acquired_at BETWEEN interval '1 hour' - interval '1 s'
                                   AND interval '1 hour' + interval '1 ms' AS lasts_one_hour
  FROM lockctl.lease('lr-t3');
SELECT lr.try($$SELECT lockctl.acquire('lr-t4', 'alice', '1 mon -30 days')$$) AS month_less_30_days;
SELECT lr.try($$SELECT lockctl.acquire('lr-t4', 'alice', '-1 mon 29 days 23:59:59')$$) AS ends_in_the_past;
SELECT lr.try($$SELECT lockctl.acquire('lr-t4', 'alice', '178956970 years')$$) AS overflowing_years;
RESET ROLE;
SELECT lockctl.release_role_leases('regress_lr_alice') AS released_alices;

-- lockctl.max_lease_ttl: longer ttls are refused (22023), by acquire and by
-- renew; an ordinary role cannot raise it.
SET lockctl.max_lease_ttl = '1h';
SET ROLE regress_lr_alice;
SELECT lr.try($$SELECT lockctl.acquire('lr-m', 'alice', '61 min')$$) AS acquire_over_max_ttl;
SELECT lr.hint($$SELECT lockctl.acquire('lr-m', 'alice', '61 min')$$) AS acquire_over_max_ttl_hint;
SELECT lockctl.acquire('lr-m', 'alice', '1 hour') AS mtok \gset
SELECT lr.try(format($$SELECT lockctl.renew('lr-m', %s, '2 hours')$$, :mtok)) AS renew_over_max_ttl;
SELECT lockctl.renew('lr-m', :mtok, '30 min') IS NOT NULL AS renew_under_max_ttl;
SELECT lr.try($$SET lockctl.max_lease_ttl = 0$$) AS alice_raises_max_ttl;
SELECT lockctl.release('lr-m', :mtok);
RESET ROLE;
RESET lockctl.max_lease_ttl;

-- lockctl.max_leases_per_role: leases (and waiters) of one role, across
-- the cluster; over it, 53400 with a hint; a safe retry takes no more;
-- leases that ran out are reclaimed before refusing; an ordinary role
-- cannot raise it; another role has its own count.
SET lockctl.max_leases_per_role = 2;
SET ROLE regress_lr_alice;
SELECT lockctl.acquire('lr-q1', 'alice', '1 hour') AS q1 \gset
SELECT lockctl.acquire('lr-q2', 'alice', '1 ms') IS NOT NULL AS q2_granted;
SELECT pg_sleep(0.01);			-- q2 (1 ms) has run out: reclaimed at the cap
SELECT lockctl.acquire('lr-q3', 'alice', '1 hour') IS NOT NULL AS q3_granted;
SELECT lr.try($$SELECT lockctl.acquire('lr-q4', 'alice', '1 hour')$$) AS over_quota;
SELECT lr.hint($$SELECT lockctl.acquire('lr-q4', 'alice', '1 hour')$$) AS over_quota_hint;
SELECT lockctl.acquire('lr-q1', 'alice', '1 hour') = :q1 AS retry_at_quota;
SELECT lr.try($$SET lockctl.max_leases_per_role = 0$$) AS alice_raises_quota;
SELECT lockctl.release('lr-q1', :q1);
SELECT lockctl.acquire('lr-q4', 'alice', '1 hour') IS NOT NULL AS q4_after_release;
RESET ROLE;
SET ROLE regress_lr_bob;
SELECT lockctl.acquire('lr-q5', 'bob', '1 hour') IS NOT NULL AS bob_has_his_own_count;
RESET ROLE;
RESET lockctl.max_leases_per_role;

-- The administrative clean-up: refused to ordinary roles (42501), checks
-- its arguments, and releases every lease of a role (in every database)
-- or of a database, waking no one's token into view.
SET ROLE regress_lr_bob;
SELECT lr.try($$SELECT lockctl.release_role_leases('regress_lr_alice')$$) AS bob_releases_alices;
SELECT lr.try($$SELECT lockctl.release_database_leases(current_database())$$) AS bob_releases_database;
RESET ROLE;
SELECT lr.try($$SELECT lockctl.release_role_leases(NULL)$$) AS null_role;
SELECT lr.try($$SELECT lockctl.release_role_leases(0)$$) AS role_zero;
SELECT lr.try($$SELECT lockctl.release_role_leases('regress_lr_nobody')$$) AS unknown_role;
SELECT lr.try($$SELECT lockctl.release_database_leases(NULL)$$) AS null_database;
SELECT lr.try($$SELECT lockctl.release_database_leases('regress_lr_nodb')$$) AS unknown_database;
GRANT EXECUTE ON FUNCTION lockctl.release_role_leases(regrole),
                          lockctl.release_database_leases(name) TO regress_lr_ops;
SET ROLE regress_lr_ops;
SELECT lockctl.release_role_leases('regress_lr_alice') AS ops_released_alices;
SELECT count(*) AS alices_left FROM lockctl.leases WHERE acquired_by = 'regress_lr_alice';
SELECT count(*) AS bobs_left FROM lockctl.leases WHERE acquired_by = 'regress_lr_bob';
RESET ROLE;
SET ROLE regress_lr_bob;
SELECT lockctl.acquire('lr-d1', 'bob', '1 hour') IS NOT NULL AS d1,
       lockctl.acquire('lr-d2', 'bob', '1 hour') IS NOT NULL AS d2;
RESET ROLE;
SET ROLE regress_lr_ops;
SELECT lockctl.release_database_leases(current_database()) >= 3 AS ops_released_database;
RESET ROLE;
SELECT count(*) AS left_in_database FROM lockctl.leases WHERE database = current_database();

-- A dropped role's leases are freed when the drop commits, not before,
-- and not if it rolls back (also in a savepoint).
CREATE ROLE regress_lr_gone;
SET ROLE regress_lr_gone;
SELECT lockctl.acquire('lr-g', 'gone', '1 hour') IS NOT NULL AS gone_holds;
RESET ROLE;
BEGIN;
DROP ROLE regress_lr_gone;
SELECT count(*) AS before_commit FROM lockctl.leases WHERE resource = 'lr-g';
ROLLBACK;
SELECT count(*) AS after_rollback FROM lockctl.leases WHERE resource = 'lr-g';
BEGIN;
SAVEPOINT s;
DROP ROLE regress_lr_gone;
ROLLBACK TO SAVEPOINT s;
COMMIT;
SELECT count(*) AS after_savepoint_rollback FROM lockctl.leases WHERE resource = 'lr-g';
BEGIN;
SAVEPOINT s;
DROP ROLE regress_lr_gone;
RELEASE SAVEPOINT s;
COMMIT;
SELECT count(*) AS after_drop FROM lockctl.leases WHERE resource = 'lr-g';

-- Clean up.
SET client_min_messages = warning;
REVOKE ALL ON FUNCTION lockctl.release_role_leases(regrole),
                       lockctl.release_database_leases(name) FROM regress_lr_ops;
DROP SCHEMA lr CASCADE;
DROP ROLE regress_lr_dave;
DROP ROLE regress_lr_carol;
DROP ROLE regress_lr_ops;
DROP ROLE regress_lr_alice;
DROP ROLE regress_lr_bob;
