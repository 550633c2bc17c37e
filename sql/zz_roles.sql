--
-- Roles cannot interfere: what one ordinary role can and cannot do to
-- another's holds, idempotency keys and request keys, and the caps on a
-- role's holds.  (Locks a role may not queue: specs/roles_lock_before_check
-- and specs/reserve_soldout_unlocks; the worker: t/045; counters of
-- temporary tables: t/012; PREPARE TRANSACTION: t/033.)
--
-- web takes holds; payments is granted web (GRANT web TO payments) and so
-- acts on web's holds; lazy is a member of web without INHERIT; mallory is
-- an ordinary role without any grant; carol is in pg_read_all_stats.
--
SET client_min_messages = warning;
CREATE ROLE regress_roles_web;
CREATE ROLE regress_roles_payments;
GRANT regress_roles_web TO regress_roles_payments;
CREATE ROLE regress_roles_lazy NOINHERIT IN ROLE regress_roles_web;
CREATE ROLE regress_roles_mallory;
CREATE ROLE regress_roles_carol IN ROLE pg_read_all_stats;
CREATE SCHEMA rl;
GRANT USAGE ON SCHEMA rl TO PUBLIC;
-- rl.outcome(statement, id): what the statement does, rolled back: 'ok: '
-- and its result, or its SQLSTATE, message, detail and hint, with id
-- written ID (so that the answers for two ids can be compared).
CREATE FUNCTION rl.outcome(q text, id bigint DEFAULT NULL) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    r text;
    st text;
    msg text;
    det text;
    hin text;
BEGIN
    BEGIN
        EXECUTE q INTO r;
        r := 'ok: ' || coalesce(r, 'NULL');
        RAISE SQLSTATE 'LKCTL';
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
                                det = PG_EXCEPTION_DETAIL, hin = PG_EXCEPTION_HINT;
        IF st <> 'LKCTL' THEN
            r := concat_ws(' | ', st || ': ' || msg, nullif(det, ''), nullif(hin, ''));
        END IF;
    END;
    IF id IS NOT NULL THEN
        r := regexp_replace(r, '\m' || id || '\M', 'ID', 'g');
    END IF;
    RETURN r;
END $$;
GRANT EXECUTE ON FUNCTION rl.outcome(text, bigint) TO PUBLIC;
-- A SECURITY DEFINER function of a superuser that confirms a hold: it does
-- not make its caller the owner of anyone's holds.
CREATE FUNCTION rl.confirm_as_definer(id bigint) RETURNS boolean
    LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog
    RETURN lockctl.confirm(id);
GRANT EXECUTE ON FUNCTION rl.confirm_as_definer(bigint) TO PUBLIC;
SELECT lockctl.create_pool('rl-seats', 100);
RESET client_min_messages;

-- web takes holds in every state, and an idempotency key.
SET ROLE regress_roles_web;
SELECT lockctl.reserve('rl-seats', 1, 'web-cart-1', '1 hour', 'order-1') AS h_live \gset
SELECT lockctl.reserve('rl-seats', 1, 'web-cart-2', '1 hour') AS h_conf \gset
SELECT lockctl.confirm(:h_conf);
SELECT lockctl.reserve('rl-seats', 1, 'web-cart-3', '1 hour') AS h_canc \gset
SELECT lockctl.cancel(:h_canc);
SELECT lockctl.reserve('rl-seats', 1, 'web-cart-4', '1 millisecond') AS h_exp \gset
-- its time is up once the clock has passed its expiry (worker or not)
DO $$
BEGIN
    WHILE clock_timestamp() <= (SELECT expires FROM lockctl.holds WHERE holder = 'web-cart-4') LOOP
        PERFORM pg_sleep(0.001);
    END LOOP;
END $$;
SELECT max(id) + 1000000 AS h_never FROM lockctl.holds \gset
RESET ROLE;

-- mallory: web's holds, whatever their state, are exactly like an id that
-- was never taken, for every action: the same SQLSTATE, message, detail
-- and hint, and no state revealed.
SET ROLE regress_roles_mallory;
WITH ids(kind, id) AS (
    VALUES ('live', :h_live), ('confirmed', :h_conf), ('cancelled', :h_canc),
           ('expired', :h_exp), ('never taken', :h_never)),
calls(action, q) AS (
    VALUES ('confirm', 'SELECT lockctl.confirm(%s)'),
           ('cancel', 'SELECT lockctl.cancel(%s)'),
           ('extend', 'SELECT lockctl.extend(%s, ''1 hour'')'))
SELECT c.action, count(DISTINCT rl.outcome(format(c.q, i.id), i.id)) AS distinct_answers,
       min(rl.outcome(format(c.q, i.id), i.id)) AS answer
  FROM ids AS i CROSS JOIN calls AS c
 GROUP BY c.action ORDER BY c.action;
SELECT count(*) AS webs_holds_seen FROM lockctl.holds;
-- through a superuser's SECURITY DEFINER function: still mallory's call
SELECT rl.outcome(format('SELECT rl.confirm_as_definer(%s)', :h_live), :h_live) AS via_definer;
RESET ROLE;

-- Nothing changed (the expired hold is the worker's to mark, or not yet).
SELECT id = :h_live AS live, status FROM lockctl.holds
 WHERE id IN (:h_live, :h_conf, :h_canc) ORDER BY id;
SELECT status IN ('held', 'expired') AS expired_one_untouched FROM lockctl.holds WHERE id = :h_exp;

-- For web itself, the same calls tell the state (as before).
SET ROLE regress_roles_web;
SELECT split_part(rl.outcome(format('SELECT lockctl.confirm(%s)', :h_canc), :h_canc), ' | ', 1) AS web_confirms_cancelled;
SELECT split_part(rl.outcome(format('SELECT lockctl.cancel(%s)', :h_conf), :h_conf), ' | ', 1) AS web_cancels_confirmed;
RESET ROLE;

-- lazy is a member of web without INHERIT: not web's privileges until it
-- says SET ROLE, then it acts as web.
SET ROLE regress_roles_lazy;
SELECT rl.outcome(format('SELECT lockctl.extend(%s, ''2 hours'') IS NOT NULL', :h_live), :h_live) AS lazy_extends;
SET ROLE regress_roles_web;
SELECT rl.outcome(format('SELECT lockctl.extend(%s, ''2 hours'') IS NOT NULL', :h_live), :h_live) AS lazy_as_web_extends;
RESET ROLE;

-- payments, granted web, confirms web's hold and sees web's holds.
SET ROLE regress_roles_payments;
SELECT count(*) AS holds_payments_sees FROM lockctl.holds;
SELECT lockctl.confirm(:h_live) AS payments_confirmed;
SELECT status, taken_by FROM lockctl.holds WHERE id = :h_live;
RESET ROLE;

-- Idempotency keys are per role: mallory's 'order-1' is a hold of her own;
-- she neither gets web's hold nor keeps web from replaying its own.
SET ROLE regress_roles_mallory;
SELECT lockctl.reserve('rl-seats', 1, 'mallory', '1 hour', 'order-1') AS m_hold \gset
SELECT :m_hold <> :h_live AS not_webs_hold;
SELECT lockctl.reserve('rl-seats', 1, 'mallory', '1 hour', 'order-1') = :m_hold AS replays_her_own;
SELECT rl.outcome($$SELECT lockctl.reserve('rl-seats', 3, 'mallory', '1 hour', 'order-1')$$, :m_hold) AS another_quantity;
RESET ROLE;
SET ROLE regress_roles_web;
SELECT lockctl.reserve('rl-seats', 1, 'web-cart-1', '1 hour', 'order-1') = :h_live AS web_replays_its_own;
RESET ROLE;
SELECT taken_by, holder, status FROM lockctl.holds
 WHERE idempotency_key = 'order-1' ORDER BY id;
-- carol (pg_read_all_stats) sees that every hold exists, and whose it is,
-- but not another role's holder or key
SET ROLE regress_roles_carol;
SELECT taken_by, holder, idempotency_key, status FROM lockctl.holds
 WHERE id IN (:h_live, :m_hold) ORDER BY id;
RESET ROLE;

-- Request keys are per role too (src/request.sql): mallory's 'req-1' is
-- hers, web's result is never hers, and naming web's scope is refused.
SET ROLE regress_roles_web;
BEGIN;
SELECT lockctl.claim_request('req-1', fingerprint => 'fp') IS NULL AS web_goes_ahead;
SELECT lockctl.complete_request('req-1', '{"paid": true}');
COMMIT;
RESET ROLE;
SET ROLE regress_roles_mallory;
SELECT rl.outcome($$SELECT lockctl.claim_request('req-1', fingerprint => 'fp')$$) AS mallory_claims_req_1;
SELECT rl.outcome($$SELECT lockctl.claim_request('req-1', scope => 'regress_roles_web')$$) AS in_webs_scope;
SELECT rl.outcome($$SELECT lockctl.complete_request('req-1', '{}', scope => 'regress_roles_web')$$) AS complete_webs;
SELECT count(*) AS webs_keys_seen FROM lockctl.requests;
RESET ROLE;
SET ROLE regress_roles_payments;
SELECT lockctl.claim_request('req-1', fingerprint => 'fp', scope => 'regress_roles_web') AS payments_replays_webs;
RESET ROLE;

-- Caps on a role's holds: settings a superuser sets (in postgresql.conf,
-- per database, per role: ALTER ROLE ... SET); the role cannot raise its own.
SET lockctl.max_holds_per_role = 2;
SET ROLE regress_roles_mallory;
SELECT rl.outcome('SET lockctl.max_holds_per_role = 0') AS raise_own_cap;
SELECT lockctl.reserve('rl-seats', 1, 'mallory') IS NOT NULL AS second_live_hold;
SELECT rl.outcome($$SELECT lockctl.reserve('rl-seats', 1, 'mallory')$$) AS third_live_hold;
-- a retry of a key is no new hold: still answered
SELECT lockctl.reserve('rl-seats', 1, 'mallory', '1 hour', 'order-1') = :m_hold AS replay_at_the_cap;
-- web is not affected by mallory's count
SET ROLE regress_roles_web;
SELECT lockctl.reserve('rl-seats', 1, 'web') IS NOT NULL AS web_reserves;
RESET ROLE;
RESET lockctl.max_holds_per_role;
SET lockctl.max_kept_holds_per_role = 1;
SET ROLE regress_roles_mallory;
SELECT lockctl.cancel(:m_hold);
SELECT rl.outcome($$SELECT lockctl.reserve('rl-seats', 1, 'mallory')$$) AS with_one_kept;
RESET ROLE;
RESET lockctl.max_kept_holds_per_role;
-- no call that was refused took a unit
SELECT holds_taken, confirmed FROM lockctl.pool_status WHERE resource = 'rl-seats';

-- A capped role's check reads its own entries of the role indexes and no
-- others (src/reserve_caps.c), however many live holds other roles have:
-- web's reserve with mallory's 300 live holds in the database neither
-- scans lockctl.reservations nor reservations_due_idx (every live hold of
-- every role: what the generic plan of a count query chose), and reads
-- web's own entries of reservations_role_idx, in one scan.
SELECT lockctl.create_pool('rl-many', 1000);
SET ROLE regress_roles_mallory;
SELECT count(lockctl.reserve('rl-many', 1, 'm' || g)) AS mallory_live_holds
  FROM generate_series(1, 300) AS g;
RESET ROLE;
SET lockctl.max_holds_per_role = 1000;
-- the pending statistics of earlier transactions flushed, so that the
-- xact counters below count this transaction's reads alone
SELECT pg_stat_force_next_flush();
BEGIN;
SET LOCAL ROLE regress_roles_web;
SELECT lockctl.reserve('rl-many', 1, 'web') IS NOT NULL AS web_reserves_capped;
RESET ROLE;
SELECT pg_stat_get_xact_numscans('lockctl.reservations'::regclass) AS table_scans,
       pg_stat_get_xact_numscans('lockctl.reservations_due_idx'::regclass) AS due_index_scans,
       pg_stat_get_xact_numscans('lockctl.reservations_role_idx'::regclass) AS role_index_scans,
       pg_stat_get_xact_tuples_returned('lockctl.reservations_role_idx'::regclass) < 300
         AS none_of_mallorys_read;
ROLLBACK;

-- What the count knows of the tables (their OIDs, columns and indexes) is
-- kept between calls and worked out again when they change: with
-- reservations_role_idx made again (a new OID), then made in another shape
-- (its columns in the other order, or a predicate that leaves out counted
-- rows: the count asks the query instead), and
-- after the rollback that brings the first one back, mallory at her cap is
-- refused, and one below it is not.
SELECT count(*) AS m_live, count(*) + 1 AS m_live_1 FROM lockctl.reservations
 WHERE taken_by = 'regress_roles_mallory' AND status = 'held' \gset
SET lockctl.max_holds_per_role = :m_live;
SET ROLE regress_roles_mallory;
SELECT rl.outcome($$SELECT lockctl.reserve('rl-many', 1, 'one more')$$) AS at_the_cap;
RESET ROLE;
BEGIN;
DROP INDEX lockctl.reservations_role_idx;
CREATE INDEX reservations_role_idx ON lockctl.reservations (taken_by, status)
    WHERE status <> 'confirmed';
SET LOCAL ROLE regress_roles_mallory;
SELECT rl.outcome($$SELECT lockctl.reserve('rl-many', 1, 'one more')$$) AS at_the_cap_index_made_again;
RESET ROLE;
DROP INDEX lockctl.reservations_role_idx;
CREATE INDEX reservations_role_idx ON lockctl.reservations (status, taken_by)
    WHERE status <> 'confirmed';
SET LOCAL ROLE regress_roles_mallory;
SELECT rl.outcome($$SELECT lockctl.reserve('rl-many', 1, 'one more')$$) AS at_the_cap_counted_by_query;
RESET ROLE;
-- in the installed shape but with a predicate that leaves out the rows
-- counted: read directly, it would hold no entry of mallory's
DROP INDEX lockctl.reservations_role_idx;
CREATE INDEX reservations_role_idx ON lockctl.reservations (taken_by, status)
    WHERE status = 'confirmed';
SET LOCAL ROLE regress_roles_mallory;
SELECT rl.outcome($$SELECT lockctl.reserve('rl-many', 1, 'one more')$$) AS at_the_cap_other_predicate;
RESET ROLE;
-- and one that keeps every row counted: refused as well
DROP INDEX lockctl.reservations_role_idx;
CREATE INDEX reservations_role_idx ON lockctl.reservations (taken_by, status)
    WHERE status IN ('held', 'cancelled', 'expired');
SET LOCAL ROLE regress_roles_mallory;
SELECT rl.outcome($$SELECT lockctl.reserve('rl-many', 1, 'one more')$$) AS at_the_cap_covering_predicate;
RESET ROLE;
ROLLBACK;
SET ROLE regress_roles_mallory;
SELECT rl.outcome($$SELECT lockctl.reserve('rl-many', 1, 'one more')$$) AS at_the_cap_index_back;
RESET ROLE;
SET lockctl.max_holds_per_role = :m_live_1;
SET ROLE regress_roles_mallory;
SELECT lockctl.reserve('rl-many', 1, 'one more') IS NOT NULL AS one_below_the_cap;
RESET ROLE;
RESET lockctl.max_holds_per_role;

-- Clean up.
SET client_min_messages = warning;
SELECT lockctl.drop_pool('rl-seats');
SELECT lockctl.drop_pool('rl-many');
DELETE FROM lockctl.request_keys WHERE scope::text LIKE 'regress_roles_%';
DROP SCHEMA rl CASCADE;
DROP ROLE regress_roles_payments, regress_roles_lazy, regress_roles_mallory,
          regress_roles_carol, regress_roles_web;
