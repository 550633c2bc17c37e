--
-- The bad-input sweep: every lockctl function called with NULLs, empty and
-- over-long strings, negative, zero and huge numbers and intervals, wrong
-- types where a cast lets them through, and unknown objects.  Each call must
-- end in a clear error with a proper SQLSTATE (shown as "SQLSTATE: message")
-- or in a documented result (shown as "ok: value"), never in a crash, and
-- must leave nothing behind: the counts at the end show it.
--
-- pg_temp.try() runs one statement in a subtransaction, reports its SQLSTATE
-- and message (or its result), and rolls it back.  Tables are rolled back by
-- PostgreSQL; state outside tables (leases in shared memory) must be left
-- untouched by the failing call itself: the counts at the end check it.
--
SET client_min_messages = warning;
-- {name} in a statement stands for a fixture's id (bi_var), and the id is
-- shown as {name} again in the result, so that the output does not depend
-- on sequence values.
CREATE TEMP TABLE bi_var (k text PRIMARY KEY, v text);
CREATE FUNCTION pg_temp.try(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    r text;
    st text;
    msg text;
    x record;
BEGIN
    FOR x IN SELECT * FROM bi_var LOOP
        q := replace(q, '{' || x.k || '}', x.v);
    END LOOP;
    -- A call that succeeds is rolled back too (by raising LKCTL), so that
    -- each case starts from the same tables.  Leases live in shared memory
    -- and are not rolled back: no lease case below may succeed.
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
    FOR x IN SELECT * FROM bi_var LOOP
        IF x.k = 'tok' THEN
            r := regexp_replace(r, '\m' || x.v || '\M', '{tok}', 'g');
        ELSE
            r := regexp_replace(r, '\mhold ' || x.v || '\M', 'hold {' || x.k || '}', 'g');
        END IF;
    END LOOP;
    RETURN r;
END $$;
CREATE TABLE badinput_case (n serial, q text);
CREATE FUNCTION pg_temp.sweep() RETURNS TABLE (q text, result text) LANGUAGE sql AS $$
    SELECT c.q, pg_temp.try(c.q) FROM badinput_case c ORDER BY c.n
$$;

-- Fixtures: a pool, a live hold, a confirmed one, a cancelled one, a
-- versioned table, a view, tables with a wrong version column.
SELECT lockctl.create_pool('bi-pool', 10);
SELECT lockctl.reserve('bi-pool', 2, 'h', '1 hour') AS h_live \gset
SELECT lockctl.reserve('bi-pool', 1, 'h', '1 hour') AS h_conf \gset
SELECT lockctl.confirm(:h_conf);
SELECT lockctl.reserve('bi-pool', 1, 'h', '1 hour') AS h_canc \gset
SELECT lockctl.cancel(:h_canc);
CREATE TABLE bi_acct (id int PRIMARY KEY, val int, version bigint);
INSERT INTO bi_acct VALUES (1, 10, 1);
SELECT lockctl.enable_versioning('bi_acct');
CREATE TABLE bi_plain (id int PRIMARY KEY, val int, version bigint);
CREATE TABLE bi_textver (id int PRIMARY KEY, version text);
CREATE TABLE bi_nover (id int PRIMARY KEY, val int);
CREATE TABLE bi_nokey (val int, version bigint);
CREATE TABLE bi_comp (a int, b text, val int, version bigint, PRIMARY KEY (a, b));
INSERT INTO bi_comp VALUES (1, 'x', 0, 1);
SELECT lockctl.enable_versioning('bi_comp');
CREATE VIEW bi_view AS SELECT * FROM bi_plain;
CREATE SEQUENCE bi_seq;
SELECT lockctl.acquire('bi-res', 'bi-owner', '1 hour') AS tok \gset
INSERT INTO bi_var VALUES ('live', :'h_live'), ('conf', :'h_conf'), ('canc', :'h_canc'),
    ('tok', :'tok');
SELECT count(*) AS pools0 FROM lockctl.pools \gset
SELECT count(*) AS holds0 FROM lockctl.reservations \gset
SELECT count(*) AS leases0 FROM lockctl.leases \gset
SELECT expires_at AS exp0 FROM lockctl.leases WHERE resource = 'bi-res' \gset
RESET client_min_messages;

-- Leases
INSERT INTO badinput_case (q) VALUES
    ($$SELECT lockctl.acquire(NULL, 'o')$$),
    ($$SELECT lockctl.acquire('r', NULL)$$),
    ($$SELECT lockctl.acquire('', 'o')$$),
    ($$SELECT lockctl.acquire('r', '')$$),
    ($$SELECT lockctl.acquire(repeat('x', 201), 'o')$$),
    ($$SELECT lockctl.acquire('r', repeat('x', 201))$$),
    ($$SELECT lockctl.acquire(repeat('é', 101), 'o')$$),
    ($$SELECT lockctl.acquire('r', 'o', NULL)$$),
    ($$SELECT lockctl.acquire('r', 'o', '0')$$),
    ($$SELECT lockctl.acquire('r', 'o', '-1 s')$$),
    ($$SELECT lockctl.acquire('r', 'o', '1 microsecond')$$),
    ($$SELECT lockctl.acquire('r', 'o', '1000 years')$$),
    ($$SELECT lockctl.acquire('r', 'o', '-178000000 years')$$),
    ($$SELECT lockctl.acquire('r', 'o', '1 s', NULL)$$),
    ($$SELECT lockctl.acquire('r', 'o', '1 s', '-1 s')$$),
    ($$SELECT lockctl.acquire('r', 'o', '1 s', '1000 years')$$),
    ($$SELECT lockctl.acquire('r', 'o', 'soon')$$),
    ($$SELECT lockctl.acquire('r', 'o', 5)$$),
    ($$SELECT lockctl.acquire(1, 2)$$),
    ($$SELECT lockctl.acquire('bi-res', 'someone else') IS NULL$$),
    ($$SELECT lockctl.renew(NULL, 1, '1 s')$$),
    ($$SELECT lockctl.renew('bi-res', NULL, '1 s')$$),
    ($$SELECT lockctl.renew('', 1, '1 s')$$),
    ($$SELECT lockctl.renew(repeat('x', 201), 1, '1 s')$$),
    ($$SELECT lockctl.renew('bi-res', 0, '1 s')$$),
    ($$SELECT lockctl.renew('bi-res', -1, '1 s')$$),
    ($$SELECT lockctl.renew('bi-res', 9223372036854775807, '1 s')$$),
    ($$SELECT lockctl.renew('bi-res', 1.5, '1 s')$$),
    ($$SELECT lockctl.renew('bi-res', '12abc', '1 s')$$),
    ($$SELECT lockctl.renew('bi-unknown', 1, '1 s')$$),
    ($$SELECT lockctl.renew('bi-res', 1, NULL)$$),
    ($$SELECT lockctl.renew('bi-res', 1, '-1 s')$$),
    ($$SELECT lockctl.renew('bi-res', 1, '1000 years')$$),
    ($$SELECT lockctl.release(NULL, 1)$$),
    ($$SELECT lockctl.release('bi-res', NULL)$$),
    ($$SELECT lockctl.release('', 1)$$),
    ($$SELECT lockctl.release(repeat('x', 201), 1)$$),
    ($$SELECT lockctl.release('bi-res', 0)$$),
    ($$SELECT lockctl.release('bi-res', -5)$$),
    ($$SELECT lockctl.release('bi-res', 1)$$),
    ($$SELECT lockctl.release('bi-unknown', 1)$$),
    ($$SELECT lockctl.fence(NULL, 1)$$),
    ($$SELECT lockctl.fence('bi-res', NULL)$$),
    ($$SELECT lockctl.fence('', 1)$$),
    ($$SELECT lockctl.fence(repeat('x', 201), 1)$$),
    ($$SELECT lockctl.fence('bi-res', 0)$$),
    ($$SELECT lockctl.fence('bi-res', 1)$$),
    ($$SELECT lockctl.fence('bi-unknown', 1)$$),
    ($$SELECT lockctl.force_release(NULL)$$),
    ($$SELECT lockctl.force_release('')$$),
    ($$SELECT lockctl.force_release(repeat('x', 201))$$),
    ($$SELECT lockctl.force_release('bi-unknown')$$),
    ($$SELECT lockctl.release_role_leases(NULL)$$),
    ($$SELECT lockctl.release_role_leases(0)$$),
    ($$SELECT lockctl.release_role_leases('')$$),
    ($$SELECT lockctl.release_role_leases('bi_no_such_role')$$),
    ($$SELECT lockctl.release_role_leases(-1)$$),
    ($$SELECT lockctl.release_database_leases(NULL)$$),
    ($$SELECT lockctl.release_database_leases('')$$),
    ($$SELECT lockctl.release_database_leases(repeat('x', 201))$$),
    ($$SELECT lockctl.release_database_leases('bi_no_such_db')$$),
    ($$SELECT count(*) FROM lockctl.lease(NULL)$$),
    ($$SELECT count(*) FROM lockctl.lease('')$$),
    ($$SELECT count(*) FROM lockctl.lease(repeat('x', 201))$$),
    ($$SELECT count(*) FROM lockctl.lease('bi-unknown')$$);
SELECT * FROM pg_temp.sweep();
TRUNCATE badinput_case;

-- Version-checked updates
INSERT INTO badinput_case (q) VALUES
    ($$SELECT lockctl.enable_versioning(NULL)$$),
    ($$SELECT lockctl.enable_versioning('bi_plain', NULL)$$),
    ($$SELECT lockctl.enable_versioning('bi_plain', 'version', NULL)$$),
    ($$SELECT lockctl.enable_versioning('bi_plain', 'version', 'bogus')$$),
    ($$SELECT lockctl.enable_versioning('bi_plain', 'version', '')$$),
    ($$SELECT lockctl.enable_versioning('bi_plain', '')$$),
    ($$SELECT lockctl.enable_versioning('bi_plain', 'nope')$$),
    ($$SELECT lockctl.enable_versioning('bi_plain', repeat('v', 100))$$),
    ($$SELECT lockctl.enable_versioning('bi_textver')$$),
    ($$SELECT lockctl.enable_versioning('bi_nover')$$),
    ($$SELECT lockctl.enable_versioning('bi_view')$$),
    ($$SELECT lockctl.enable_versioning('bi_seq')$$),
    ($$SELECT lockctl.enable_versioning('bi_acct')$$),
    ($$SELECT lockctl.enable_versioning('no_such_table')$$),
    ($$SELECT lockctl.enable_versioning(0)$$),
    ($$SELECT lockctl.enable_versioning(4294967295)$$),
    ($$SELECT lockctl.enable_versioning('pg_catalog.pg_class')$$),
    ($$SELECT lockctl.enable_versioning('lockctl.pools')$$),
    ($$SELECT lockctl.disable_versioning(NULL)$$),
    ($$SELECT lockctl.disable_versioning('bi_plain')$$),
    ($$SELECT lockctl.disable_versioning('bi_view')$$),
    ($$SELECT lockctl.disable_versioning(0)$$),
    ($$SELECT lockctl.disable_versioning('no_such_table')$$),
    ($$SELECT lockctl.update_versioned(NULL, 1, 1, '{"val": 1}')$$),
    ($$SELECT lockctl.update_versioned('bi_acct', NULL::int, 1, '{"val": 1}')$$),
    ($$SELECT lockctl.update_versioned('bi_acct', 1, NULL, '{"val": 1}')$$),
    ($$SELECT lockctl.update_versioned('bi_acct', 1, 1, NULL)$$),
    ($$SELECT lockctl.update_versioned('bi_acct', NULL, 1, '{"val": 1}')$$),
    ($$SELECT lockctl.update_versioned('bi_acct', 1, 0, '{"val": 1}')$$),
    ($$SELECT lockctl.update_versioned('bi_acct', 1, -1, '{"val": 1}')$$),
    ($$SELECT lockctl.update_versioned('bi_acct', 1, 9223372036854775807, '{"val": 1}')$$),
    ($$SELECT lockctl.update_versioned('bi_acct', 1, 5, '{"val": 1}')$$),
    ($$SELECT lockctl.update_versioned('bi_acct', 99, 1, '{"val": 1}')$$),
    ($$SELECT lockctl.update_versioned('bi_acct', 'abc'::text, 1, '{"val": 1}')$$),
    ($$SELECT lockctl.update_versioned('bi_acct', 1::bigint, 1, '{"val": 1}')$$),
    ($$SELECT lockctl.update_versioned('bi_acct', '1', 1, '{"val": 1}')$$),
    ($$SELECT lockctl.update_versioned('bi_acct', ''::text, 1, '{"val": 1}')$$),
    ($$SELECT lockctl.update_versioned('bi_acct', NULL::text, 1, '{"val": 1}')$$),
    ($$SELECT lockctl.update_versioned('bi_acct', repeat('9', 30), 1, '{"val": 1}')$$),
    ($$SELECT lockctl.update_versioned('bi_acct', 1, 1, '[1, 2]')$$),
    ($$SELECT lockctl.update_versioned('bi_acct', 1, 1, '"val"')$$),
    ($$SELECT lockctl.update_versioned('bi_acct', 1, 1, '{"nope": 1}')$$),
    ($$SELECT lockctl.update_versioned('bi_acct', 1, 1, '{"val": "abc"}')$$),
    ($$SELECT lockctl.update_versioned('bi_acct', 1, 1, '{"val": 1e30}')$$),
    ($$SELECT lockctl.update_versioned('bi_acct', 1, 1, '{"version": 7}')$$),
    ($$SELECT lockctl.update_versioned('bi_acct', 1, 1, '{"id": 2}')$$),
    ($$SELECT lockctl.update_versioned('bi_plain', 1, 1, '{"val": 1}')$$),
    ($$SELECT lockctl.update_versioned('bi_nokey', 1, 1, '{"val": 1}')$$),
    ($$SELECT lockctl.update_versioned('bi_view', 1, 1, '{"val": 1}')$$),
    ($$SELECT lockctl.update_versioned(0, 1, 1, '{"val": 1}')$$),
    ($$SELECT lockctl.update_versioned('bi_comp', '{"a": 1, "b": "x"}'::jsonb, 1, '{"val": 1}')$$),
    ($$SELECT lockctl.update_versioned('bi_comp', '{"a": 1}'::jsonb, 1, '{"val": 1}')$$),
    ($$SELECT lockctl.update_versioned('bi_comp', '{"a": 1, "b": "x", "c": 2}'::jsonb, 1, '{"val": 1}')$$),
    ($$SELECT lockctl.update_versioned('bi_comp', '[1, "x"]'::jsonb, 1, '{"val": 1}')$$),
    ($$SELECT lockctl.update_versioned('bi_comp', '{"a": null, "b": "x"}'::jsonb, 1, '{"val": 1}')$$),
    ($$SELECT lockctl.update_versioned('bi_comp', '{"a": "one", "b": "x"}'::jsonb, 1, '{"val": 1}')$$),
    ($$SELECT lockctl.update_versioned('bi_comp', 1, 1, '{"val": 1}')$$),
    ($$SELECT lockctl.update_versioned('bi_comp', '{"a": 2, "b": "x"}'::jsonb, 1, '{"val": 1}')$$),
    ($$SELECT lockctl.enable_versioning('bi_plain', 'version', 'STRICT')$$),
    ($$SELECT lockctl.reset_versioning_stats('bi_plain')$$),
    ($$SELECT lockctl.reset_versioning_stats('bi_view')$$),
    ($$SELECT lockctl.reset_versioning_stats(0)$$),
    ($$SELECT lockctl.reset_versioning_stats(4242424242::oid)$$),
    ($$SELECT lockctl.reset_versioning_stats('bi_acct')$$),
    ($$SELECT lockctl.reset_versioning_stats(NULL)$$),
    ($$SELECT lockctl.version_trigger()$$);
SELECT * FROM pg_temp.sweep();
TRUNCATE badinput_case;

-- Reservations
INSERT INTO badinput_case (q) VALUES
    ($$SELECT lockctl.create_pool(NULL, 1)$$),
    ($$SELECT lockctl.create_pool('', 1)$$),
    ($$SELECT lockctl.create_pool(repeat('x', 201), 1)$$),
    ($$SELECT lockctl.create_pool(repeat('é', 101), 1)$$),
    ($$SELECT lockctl.create_pool('bi-p2', NULL)$$),
    ($$SELECT lockctl.create_pool('bi-p2', -1)$$),
    ($$SELECT lockctl.create_pool('bi-p2', 1000000000000001)$$),
    ($$SELECT lockctl.create_pool('bi-p2', 9223372036854775807)$$),
    ($$SELECT lockctl.create_pool('bi-p2', 1.5)$$),
    ($$SELECT lockctl.create_pool('bi-p2', 'ten')$$),
    ($$SELECT lockctl.create_pool('bi-p2', 10, 0)$$),
    ($$SELECT lockctl.create_pool('bi-p2', 10, -1)$$),
    ($$SELECT lockctl.create_pool('bi-p2', 10, 1025)$$),
    ($$SELECT lockctl.create_pool('bi-pool', 10)$$),
    ($$SELECT lockctl.set_capacity(NULL, 1)$$),
    ($$SELECT lockctl.set_capacity('', 1)$$),
    ($$SELECT lockctl.set_capacity('bi-unknown', 1)$$),
    ($$SELECT lockctl.set_capacity('bi-pool', NULL)$$),
    ($$SELECT lockctl.set_capacity('bi-pool', -1)$$),
    ($$SELECT lockctl.set_capacity('bi-pool', 2)$$),
    ($$SELECT lockctl.set_capacity('bi-pool', 1000000000000001)$$),
    ($$SELECT lockctl.set_slots(NULL, 1)$$),
    ($$SELECT lockctl.set_slots('bi-unknown', 1)$$),
    ($$SELECT lockctl.set_slots('bi-pool', 0)$$),
    ($$SELECT lockctl.set_slots('bi-pool', -1)$$),
    ($$SELECT lockctl.set_slots('bi-pool', 100000)$$),
    ($$SELECT lockctl.drop_pool(NULL)$$),
    ($$SELECT lockctl.drop_pool('')$$),
    ($$SELECT lockctl.drop_pool(repeat('x', 201))$$),
    ($$SELECT lockctl.drop_pool('bi-unknown')$$),
    ($$SELECT lockctl.reserve(NULL)$$),
    ($$SELECT lockctl.reserve('')$$),
    ($$SELECT lockctl.reserve(repeat('x', 201))$$),
    ($$SELECT lockctl.reserve('bi-unknown')$$),
    ($$SELECT lockctl.reserve('bi-pool', NULL)$$),
    ($$SELECT lockctl.reserve('bi-pool', 0)$$),
    ($$SELECT lockctl.reserve('bi-pool', -1)$$),
    ($$SELECT lockctl.reserve('bi-pool', 9223372036854775807)$$),
    ($$SELECT lockctl.reserve('bi-pool', 11)$$),
    ($$SELECT lockctl.reserve('bi-pool', 1, repeat('x', 201))$$),
    ($$SELECT lockctl.reserve('bi-pool', 1, repeat('é', 101))$$),
    ($$SELECT lockctl.reserve('bi-pool', 1, '')$$),
    ($$SELECT lockctl.reserve('bi-pool', 1, NULL) > 0$$),
    ($$SELECT lockctl.reserve('bi-pool', 1, 'h', NULL)$$),
    ($$SELECT lockctl.reserve('bi-pool', 1, 'h', '0')$$),
    ($$SELECT lockctl.reserve('bi-pool', 1, 'h', '-1 s')$$),
    ($$SELECT lockctl.reserve('bi-pool', 1, 'h', '1000 years')$$),
    ($$SELECT lockctl.reserve('bi-pool', 1, 'h', '1 s', '')$$),
    ($$SELECT lockctl.reserve('bi-pool', 1, 'h', '1 s', repeat('k', 201))$$),
    ($$SELECT lockctl.reserve('bi-pool', 1, 'h', 'later')$$),
    ($$SELECT lockctl.confirm(NULL)$$),
    ($$SELECT lockctl.confirm(0)$$),
    ($$SELECT lockctl.confirm(-1)$$),
    ($$SELECT lockctl.confirm(9223372036854775807)$$),
    ($$SELECT lockctl.confirm('abc')$$),
    ($$SELECT lockctl.confirm({canc})$$),
    ($$SELECT lockctl.confirm({conf})$$),
    ($$SELECT lockctl.cancel(NULL)$$),
    ($$SELECT lockctl.cancel(0)$$),
    ($$SELECT lockctl.cancel(-1)$$),
    ($$SELECT lockctl.cancel({conf})$$),
    ($$SELECT lockctl.cancel({canc})$$),
    ($$SELECT lockctl.extend(NULL, '1 s')$$),
    ($$SELECT lockctl.extend({live}, NULL)$$),
    ($$SELECT lockctl.extend({live}, '0')$$),
    ($$SELECT lockctl.extend({live}, '-1 s')$$),
    ($$SELECT lockctl.extend({live}, '1000 years')$$),
    ($$SELECT lockctl.extend(0, '1 s')$$),
    ($$SELECT lockctl.extend({conf}, '1 s')$$),
    ($$SELECT lockctl.extend({canc}, '1 s')$$),
    ($$SELECT lockctl.available(NULL)$$),
    ($$SELECT lockctl.available('')$$),
    ($$SELECT lockctl.available(repeat('x', 201))$$),
    ($$SELECT lockctl.available('bi-unknown')$$),
    ($$SELECT lockctl.available('bi-pool')$$),
    ($$SELECT lockctl_internal.expire_holds(NULL)$$),
    ($$SELECT lockctl_internal.expire_holds(0)$$),
    ($$SELECT lockctl_internal.expire_holds(-1)$$),
    ($$SELECT lockctl_internal.expire_holds(2147483647)$$),
    ($$SELECT lockctl_internal.purge_holds(NULL, 10)$$),
    ($$SELECT lockctl_internal.purge_holds('1 day', NULL)$$),
    ($$SELECT lockctl_internal.purge_holds('-1 day', 10)$$),
    ($$SELECT lockctl_internal.purge_holds('1 day', 0)$$),
    ($$SELECT lockctl_internal.purge_holds('1 day', -1)$$),
    -- internal helpers (superusers can call them)
    ($$SELECT lockctl_internal.check_resource(NULL, NULL)$$),
    ($$SELECT lockctl_internal.check_resource('x', repeat('x', 201))$$),
    ($$SELECT lockctl_internal.check_capacity(NULL, NULL)$$),
    ($$SELECT lockctl_internal.check_capacity('x', -1)$$),
    ($$SELECT lockctl_internal.check_slots(NULL, 0)$$),
    ($$SELECT lockctl_internal.check_slots('x', 1025)$$),
    ($$SELECT lockctl_internal.check_role_caps(NULL, 1)$$),
    ($$SELECT lockctl_internal.check_role_caps('x', NULL)$$),
    ($$SELECT lockctl_internal.check_role_caps('x', -1)$$),
    ($$SELECT lockctl_internal.keyed_hold(NULL, NULL, NULL, NULL)$$),
    ($$SELECT lockctl_internal.rebalance(NULL, 0, 0)$$),
    ($$SELECT lockctl_internal.rebalance(0, 0, 0)$$),
    ($$SELECT lockctl_internal.rebalance(0, -1, 0)$$),
    ($$SELECT lockctl_internal.rebalance(0, 0, -1)$$),
    ($$SELECT lockctl_internal.rebalance(0, 1, 0, 0, 1000)$$),
    ($$SELECT lockctl_internal.reshape_pool('x', 0, 'x', 10, 1, true)$$);
SELECT * FROM pg_temp.sweep();
TRUNCATE badinput_case;

-- Nothing was left behind: no pool, hold or lease more than the fixtures.
SELECT (SELECT count(*) FROM lockctl.pools) - :pools0 AS new_pools,
       (SELECT count(*) FROM lockctl.reservations) - :holds0 AS new_holds,
       (SELECT count(*) FROM lockctl.leases) - :leases0 AS new_leases,
       (SELECT count(*) FROM lockctl.leases WHERE resource IN ('r', 'x')) AS stray_leases,
       (SELECT string_agg(table_name::text, ',' ORDER BY table_name::text)
          FROM lockctl.versioned_tables) AS versioned,
       (SELECT count(*) FROM pg_trigger WHERE tgrelid = 'bi_plain'::regclass) AS plain_triggers;
-- (expires_at is computed from the monotonic clock at each read, so it may
-- move by microseconds; a failed renew would have moved it by an hour)
SELECT token = :tok AS same_token,
       abs(extract(epoch FROM expires_at - :'exp0')) < 10 AS same_expiry, owner
  FROM lockctl.leases WHERE resource = 'bi-res';
SELECT capacity, held, confirmed, available FROM lockctl.pool_status WHERE resource = 'bi-pool';
SELECT val, version FROM bi_acct;

-- Clean up.
SELECT lockctl.release('bi-res', :tok);
SELECT lockctl.cancel(:h_live);
SELECT lockctl.drop_pool('bi-pool');
DROP TABLE bi_acct, bi_plain, bi_textver, bi_nover, bi_nokey, bi_comp, badinput_case CASCADE;
DROP SEQUENCE bi_seq;
