--
-- Privileges: what an ordinary role can and cannot do.
--
-- alice and bob are ordinary roles.  A lease belongs to the role that took
-- it: bob can neither renew, release nor fence alice's lease, even with her
-- token (sql/lease_roles.sql has the details), and he cannot learn it: the
-- views and functions show a lease's token and owner only to the role that
-- took it and roles with its privileges (dave, a member of alice), and to
-- superusers, not to pg_read_all_stats (carol); and acquire's safe retry
-- hands the live token back only to the same owner AND the same role.
-- Forcing a lease free, creating, resizing and dropping pools, running the
-- worker's functions, resetting counters and writing lockctl's tables are
-- administrative, refused with 42501 unless granted.  Versioning a table is
-- for its owner, and update_versioned runs with the caller's privileges.
--
-- (The install script under a hostile search_path is t/091.)
--
SET client_min_messages = warning;
CREATE ROLE regress_lockctl_alice;
CREATE ROLE regress_lockctl_bob;
CREATE ROLE regress_lockctl_carol IN ROLE pg_read_all_stats;
CREATE ROLE regress_lockctl_dave IN ROLE regress_lockctl_alice;
CREATE SCHEMA pv AUTHORIZATION regress_lockctl_alice;
GRANT USAGE ON SCHEMA pv TO regress_lockctl_bob;
-- pv.try(label, statement): the statement's result, or its SQLSTATE and
-- message; rolled back either way.
CREATE FUNCTION pv.try(label text, q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    r text;
    st text;
    msg text;
BEGIN
    BEGIN
        EXECUTE q INTO r;
        r := 'ok: ' || coalesce(r, 'NULL');
        RAISE SQLSTATE 'LKCTL';
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
        IF st <> 'LKCTL' THEN
            r := st || ': ' || msg;
        END IF;
    END;
    RETURN rpad(label, 44) || ' ' || regexp_replace(r, '\d{6,}', 'N', 'g');
END $$;
GRANT EXECUTE ON FUNCTION pv.try(text, text) TO PUBLIC;
SELECT lockctl.create_pool('pv-pool', 10);
RESET client_min_messages;

-- alice takes a lease and a hold, and versions a table of hers.
SET ROLE regress_lockctl_alice;
SELECT lockctl.acquire('pv-r', 'alice', '1 hour') AS tok \gset
SELECT lockctl.reserve('pv-pool', 2, 'alice', '1 hour') AS hold \gset
CREATE TABLE pv.acct (id int PRIMARY KEY, val int, version bigint);
INSERT INTO pv.acct VALUES (1, 10, 1);
SELECT lockctl.enable_versioning('pv.acct');
GRANT SELECT ON pv.acct TO regress_lockctl_bob;
RESET ROLE;

-- bob, without the token and without grants.
SET ROLE regress_lockctl_bob;
SELECT pv.try('renew with a wrong token', format($$SELECT lockctl.renew('pv-r', %s, '1 s')$$, :tok + 1))
UNION ALL SELECT pv.try('release with a wrong token', format($$SELECT lockctl.release('pv-r', %s)$$, :tok + 1))
UNION ALL SELECT pv.try('fence with a wrong token', format($$SELECT lockctl.fence('pv-r', %s)$$, :tok + 1))
UNION ALL SELECT pv.try('acquire it as another owner', $$SELECT lockctl.acquire('pv-r', 'bob') IS NULL$$)
UNION ALL SELECT pv.try('acquire it as owner alice', $$SELECT lockctl.acquire('pv-r', 'alice', '1 hour') IS NULL$$)
UNION ALL SELECT pv.try('acquire it as owner alice, waiting', $$SELECT lockctl.acquire('pv-r', 'alice', '1 hour', '100 ms') IS NULL$$)
UNION ALL SELECT pv.try('read the token in leases', $$SELECT token IS NULL FROM lockctl.leases WHERE resource = 'pv-r'$$)
UNION ALL SELECT pv.try('read the token with lease()', $$SELECT token IS NULL FROM lockctl.lease('pv-r')$$)
UNION ALL SELECT pv.try('read tokens via lockctl_internal.leases()', $$SELECT count(*) FROM lockctl_internal.leases() WHERE token IS NOT NULL AND roleid <> 'regress_lockctl_bob'::regrole$$)
UNION ALL SELECT pv.try('force_release', $$SELECT lockctl.force_release('pv-r')$$)
UNION ALL SELECT pv.try('create_pool', $$SELECT lockctl.create_pool('pv-bob', 5)$$)
UNION ALL SELECT pv.try('set_capacity', $$SELECT lockctl.set_capacity('pv-pool', 1000)$$)
UNION ALL SELECT pv.try('set_slots', $$SELECT lockctl.set_slots('pv-pool', 4)$$)
UNION ALL SELECT pv.try('drop_pool', $$SELECT lockctl.drop_pool('pv-pool')$$)
UNION ALL SELECT pv.try('expire_holds', $$SELECT lockctl_internal.expire_holds(10)$$)
UNION ALL SELECT pv.try('purge_holds', $$SELECT lockctl_internal.purge_holds('1 s', 10)$$)
UNION ALL SELECT pv.try('wake_expiry_worker', $$SELECT lockctl.wake_expiry_worker()$$)
UNION ALL SELECT pv.try('reset_versioning_stats', $$SELECT lockctl.reset_versioning_stats()$$)
UNION ALL SELECT pv.try('internal: rebalance', $$SELECT lockctl_internal.rebalance(1, 0, 0)$$)
UNION ALL SELECT pv.try('internal: reshape_pool', $$SELECT lockctl_internal.reshape_pool('x', 1, 'pv-pool', 1000, 1, true)$$)
UNION ALL SELECT pv.try('internal: lock_pool', $$SELECT lockctl_internal.lock_pool('pv-pool')$$)
UNION ALL SELECT pv.try('internal: hold_state', $$SELECT lockctl_internal.hold_state('x', 1, '{}')$$)
UNION ALL SELECT pv.try('insert into pools', $$INSERT INTO lockctl.pools (resource, capacity, slots) VALUES ('pv-x', 1, 1)$$)
UNION ALL SELECT pv.try('update pool_slots', $$UPDATE lockctl.pool_slots SET capacity = capacity + 100$$)
UNION ALL SELECT pv.try('update reservations', $$UPDATE lockctl.reservations SET status = 'confirmed'$$)
UNION ALL SELECT pv.try('delete from reservations', $$DELETE FROM lockctl.reservations$$)
UNION ALL SELECT pv.try('select from reservations', $$SELECT count(*) FROM lockctl.reservations$$)
UNION ALL SELECT pv.try('nextval of hold_id_seq', $$SELECT nextval('lockctl.hold_id_seq') > 0$$)
UNION ALL SELECT pv.try('truncate pools', $$TRUNCATE lockctl.pools CASCADE$$)
UNION ALL SELECT pv.try('enable_versioning on alice''s table', $$SELECT lockctl.enable_versioning('pv.acct')$$)
UNION ALL SELECT pv.try('disable_versioning on alice''s table', $$SELECT lockctl.disable_versioning('pv.acct')$$)
UNION ALL SELECT pv.try('update_versioned without UPDATE', $$SELECT lockctl.update_versioned('pv.acct', 1, 1, '{"val": 0}')$$)
UNION ALL SELECT pv.try('plain UPDATE without UPDATE', $$UPDATE pv.acct SET val = 0, version = 1$$)
UNION ALL SELECT pv.try('create a function in lockctl', $$CREATE FUNCTION lockctl.evil() RETURNS int LANGUAGE sql AS 'SELECT 1'$$)
UNION ALL SELECT pv.try('create a table in lockctl', $$CREATE TABLE lockctl.evil (i int)$$)
-- what any role may do
UNION ALL SELECT pv.try('reserve', $$SELECT lockctl.reserve('pv-pool', 1, 'bob') IS NOT NULL$$)
UNION ALL SELECT pv.try('available', $$SELECT lockctl.available('pv-pool')$$)
UNION ALL SELECT pv.try('read pool_status', $$SELECT held FROM lockctl.pool_status WHERE resource = 'pv-pool'$$)
UNION ALL SELECT pv.try('read leases', $$SELECT owner FROM lockctl.leases WHERE resource = 'pv-r'$$)
UNION ALL SELECT pv.try('acquire a lease of its own', $$SELECT lockctl.acquire('pv-bob', 'bob', '1 hour') IS NOT NULL$$)
UNION ALL SELECT pv.try('read versioned_tables', $$SELECT count(*) > 0 FROM lockctl.versioned_tables$$);
-- bob sees the token of his own lease, and his own retry gets it back.
SELECT token IS NOT NULL AS own_token_shown FROM lockctl.leases WHERE resource = 'pv-bob';
SELECT lockctl.acquire('pv-bob', 'bob', '1 hour') = token AS own_retry_same_token
  FROM lockctl.lease('pv-bob');
RESET ROLE;

-- alice sees her token and her retry gets it back.
SET ROLE regress_lockctl_alice;
SELECT token = :tok AS alice_sees_token FROM lockctl.leases WHERE resource = 'pv-r';
SELECT lockctl.acquire('pv-r', 'alice', '1 hour') = :tok AS alice_retry_same_token;
SELECT token IS NULL AS bobs_token_hidden FROM lockctl.lease('pv-bob');
RESET ROLE;

-- dave, a member of alice, sees her token; carol, in pg_read_all_stats,
-- sees no token; a retry as owner alice is still another role's: not
-- granted.
SET ROLE regress_lockctl_dave;
SELECT token = :tok AS dave_sees_token FROM lockctl.leases WHERE resource = 'pv-r';
SELECT lockctl.acquire('pv-r', 'alice') IS NULL AS dave_not_granted;
RESET ROLE;
SET ROLE regress_lockctl_carol;
SELECT token IS NULL AS carol_sees_no_token FROM lockctl.lease('pv-r');
SELECT token IS NULL AS carol_sees_not_bobs FROM lockctl.leases WHERE resource = 'pv-bob';
SELECT lockctl.acquire('pv-r', 'alice') IS NULL AS carol_not_granted;
RESET ROLE;

-- Nothing changed: alice's lease, hold, pool and table are as she left them.
SELECT owner, token = :tok AS same_token, acquired_by FROM lockctl.leases WHERE resource = 'pv-r';
SELECT capacity, held, confirmed, slots FROM lockctl.pool_status WHERE resource = 'pv-pool';
SELECT status FROM lockctl.holds WHERE id = :hold;
SELECT * FROM pv.acct;
SELECT table_name, enabled FROM lockctl.versioned_tables WHERE table_name = 'pv.acct'::regclass;
SELECT count(*) AS bob_leases FROM lockctl.leases WHERE resource = 'pv-bob';
SELECT lockctl.force_release('pv-bob');

-- Even with the token, bob may not renew, fence or release alice's lease
-- (a lease belongs to its role; the token only names it); dave may.
SET ROLE regress_lockctl_bob;
SELECT pv.try('renew with her token', format($$SELECT lockctl.renew('pv-r', %s, '2 hours')$$, :tok))
UNION ALL SELECT pv.try('fence with her token', format($$SELECT lockctl.fence('pv-r', %s)$$, :tok))
UNION ALL SELECT pv.try('release with her token', format($$SELECT lockctl.release('pv-r', %s)$$, :tok));
RESET ROLE;
SET ROLE regress_lockctl_dave;
SELECT lockctl.renew('pv-r', :tok, '2 hours') IS NOT NULL AS dave_renewed_with_token;
BEGIN;
SELECT lockctl.fence('pv-r', :tok);
COMMIT;
RESET ROLE;

-- Holds: the holds view shows each role only the holds taken by roles whose
-- privileges it has, the holds it may confirm, cancel and extend (what
-- another role can and cannot do to them: zz_roles).
SET ROLE regress_lockctl_bob;
SELECT lockctl.reserve('pv-pool', 1, 'bob', '1 hour') AS bobhold \gset
SELECT id = :bobhold AS own, holder, taken_by FROM lockctl.holds ORDER BY id;
SELECT count(*) AS alices_hold_seen FROM lockctl.holds WHERE id = :hold;
-- a leaky function of the caller's does not see the hidden rows either
CREATE FUNCTION pg_temp.peek(h text) RETURNS boolean LANGUAGE plpgsql COST 0.0001 AS $$
BEGIN RAISE NOTICE 'peeked at %', h; RETURN true; END $$;
SELECT count(*) FROM lockctl.holds WHERE pg_temp.peek(holder);
DROP FUNCTION pg_temp.peek(text);
RESET ROLE;
SET ROLE regress_lockctl_alice;
SELECT holder, taken_by FROM lockctl.holds ORDER BY id;
RESET ROLE;
-- the session's role is recorded, not the SECURITY DEFINER owner
SELECT holder, taken_by FROM lockctl.holds WHERE resource = 'pv-pool' ORDER BY id;
-- a member of alice (with INHERIT) sees hers; pg_read_all_stats sees all,
-- without the holder of another role's
GRANT regress_lockctl_alice TO regress_lockctl_bob;
SET ROLE regress_lockctl_bob;
SELECT holder FROM lockctl.holds ORDER BY id;
RESET ROLE;
REVOKE regress_lockctl_alice FROM regress_lockctl_bob;
GRANT pg_read_all_stats TO regress_lockctl_bob;
SET ROLE regress_lockctl_bob;
SELECT holder FROM lockctl.holds ORDER BY id;
RESET ROLE;
REVOKE pg_read_all_stats FROM regress_lockctl_bob;
SELECT lockctl.cancel(:bobhold);

-- Granted, the administrative functions work for bob.
GRANT EXECUTE ON FUNCTION lockctl.set_capacity(text, bigint) TO regress_lockctl_bob;
GRANT EXECUTE ON FUNCTION lockctl.force_release(text) TO regress_lockctl_bob;
SET ROLE regress_lockctl_bob;
SELECT lockctl.set_capacity('pv-pool', 20);
SELECT lockctl.force_release('pv-r');
SELECT pv.try('create_pool, still not granted', $$SELECT lockctl.create_pool('pv-bob', 5)$$);
RESET ROLE;
SELECT capacity FROM lockctl.pool_status WHERE resource = 'pv-pool';
SELECT count(*) AS live FROM lockctl.leases WHERE resource = 'pv-r';

-- Clean up.
SET client_min_messages = warning;
SELECT lockctl.drop_pool('pv-pool');
DROP SCHEMA pv CASCADE;
REVOKE ALL ON FUNCTION lockctl.set_capacity(text, bigint) FROM regress_lockctl_bob;
REVOKE ALL ON FUNCTION lockctl.force_release(text) FROM regress_lockctl_bob;
DROP ROLE regress_lockctl_dave;
DROP ROLE regress_lockctl_carol;
DROP ROLE regress_lockctl_alice;
DROP ROLE regress_lockctl_bob;
