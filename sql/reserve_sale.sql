-- A sale's two calls in C (src/reserve_sale.c): lockctl.reserve and
-- lockctl.confirm(id) take the common case through the direct paths and
-- hand every other to lockctl_internal.reserve_by_sql / confirm_by_sql,
-- which raise every error.  Each bound of reserve's arguments, on both
-- sides of its edge; the steps done by statement after the first write
-- (charge_holder, insert_hold_by_sql, confirm_slot_by_sql); a caller's
-- search_path that shadows pg_catalog's names changes nothing.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS lockctl;
RESET client_min_messages;
\set VERBOSITY terse

SELECT lockctl.create_pool('rs-big', lockctl_internal.max_units());

-- quantity: 1 and max_units() are taken; 0 and max_units() + 1 are not
SELECT lockctl.reserve('rs-big', 1) IS NOT NULL AS one;
SELECT lockctl.reserve('rs-big', 0);
SELECT lockctl.reserve('rs-big', lockctl_internal.max_units() + 1);
SELECT lockctl.reserve('rs-big', NULL);

-- ttl: min_hold_ttl() and max_hold_ttl() are taken, a microsecond past
-- either is not; months, mixed signs and more than a day of hours are
-- compared as interval compares them
SELECT lockctl.reserve('rs-big', 1, NULL, lockctl_internal.min_hold_ttl()) IS NOT NULL AS min_ttl;
SELECT lockctl.reserve('rs-big', 1, NULL, lockctl_internal.min_hold_ttl() - interval '1 microsecond');
SELECT lockctl.reserve('rs-big', 1, NULL, lockctl_internal.max_hold_ttl()) IS NOT NULL AS max_ttl;
SELECT lockctl.reserve('rs-big', 1, NULL, lockctl_internal.max_hold_ttl() + interval '1 microsecond');
SELECT lockctl.reserve('rs-big', 1, NULL, interval '364 days 24 hours') IS NOT NULL AS hours_to_max;
SELECT lockctl.reserve('rs-big', 1, NULL, interval '364 days 24 hours 1 microsecond');
SELECT lockctl.reserve('rs-big', 1, NULL, interval '12 months 5 days') IS NOT NULL AS months;
SELECT lockctl.reserve('rs-big', 1, NULL, interval '12 months 6 days');
SELECT lockctl.reserve('rs-big', 1, NULL, interval '1 day -23 hours') IS NOT NULL AS mixed_signs;
SELECT lockctl.reserve('rs-big', 1, NULL, interval '1 day -24 hours');
SELECT lockctl.reserve('rs-big', 1, NULL, NULL);
-- the expiry is taken from the ttl as timestamptz + interval computes it
SELECT lockctl.reserve('rs-big', 1, NULL, interval '2 days 3 hours') AS h_ttl \gset
SELECT expires - created = interval '2 days 3 hours' AS expires_after_ttl
  FROM lockctl.reservations WHERE id = :h_ttl;

-- names: up to name_max_bytes() bytes, not empty
SELECT lockctl.reserve('rs-big', 1, repeat('h', lockctl_internal.name_max_bytes())) IS NOT NULL AS longest_holder;
SELECT lockctl.reserve('rs-big', 1, repeat('h', lockctl_internal.name_max_bytes() + 1));
SELECT lockctl.reserve('rs-big', 1, '');
SELECT lockctl.reserve(repeat('r', lockctl_internal.name_max_bytes() + 1));
SELECT lockctl.reserve('');
SELECT lockctl.reserve(NULL);
SELECT lockctl.reserve('rs-none');
SELECT lockctl.reserve('rs-big', 1, NULL, '5 minutes', '');

-- confirm: NULL, a missing id, twice
SELECT lockctl.confirm(NULL);
SELECT lockctl.confirm(-1);
SELECT lockctl.reserve('rs-big') AS h \gset
SELECT lockctl.confirm(:h) AS first, lockctl.confirm(:h) AS again;

-- A limited pool: the holder's count charged directly, its errors as
-- charge_holder raises them; nothing is left of a refused call.
SELECT lockctl.create_pool('rs-limited', 10, 1, 3);
SELECT lockctl.reserve('rs-limited', 2, 'ann') IS NOT NULL AS two_for_ann;
SELECT lockctl.reserve('rs-limited', 2, 'ann');
SELECT lockctl.reserve('rs-limited', 1);
SELECT lockctl.reserve('rs-limited', 1, 'ann') IS NOT NULL AS third_for_ann;
SELECT h.holder, h.units FROM lockctl.holder_units h JOIN lockctl.pools p ON p.id = h.pool_id
 WHERE p.resource = 'rs-limited' ORDER BY h.holder;
SELECT held, confirmed FROM lockctl.pool_status WHERE resource = 'rs-limited';

-- A trigger on pool_slots: neither direct slot path may write it, so
-- reserve is handed over whole, and confirm's hold is confirmed directly
-- but its slot by confirm_slot_by_sql (the trigger sees both writes).
SELECT lockctl.create_pool('rs-trig', 5, 1);
CREATE FUNCTION public.rs_slot_seen() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE NOTICE 'slot row written: held %, confirmed %', NEW.held, NEW.confirmed;
    RETURN NEW;
END;
$$;
CREATE TRIGGER rs_slot_seen BEFORE UPDATE ON lockctl.pool_slots
    FOR EACH ROW EXECUTE FUNCTION public.rs_slot_seen();
SELECT lockctl.reserve('rs-trig', 2) AS h_trig \gset
SELECT lockctl.confirm(:h_trig) AS confirmed;
DROP TRIGGER rs_slot_seen ON lockctl.pool_slots;
DROP FUNCTION public.rs_slot_seen();
SELECT status FROM lockctl.reservations WHERE id = :h_trig;
SELECT held, confirmed, capacity FROM lockctl.pool_status WHERE resource = 'rs-trig';

-- A role whose search_path puts its own schema before pg_catalog, with
-- functions and operators named as the ones lockctl uses: nothing of
-- them is called.
CREATE ROLE rs_shadow;
CREATE SCHEMA rs_shadow AUTHORIZATION rs_shadow;
SET ROLE rs_shadow;
CREATE FUNCTION rs_shadow.clock_timestamp() RETURNS timestamptz LANGUAGE sql
    AS $$ SELECT '2000-01-01'::timestamptz $$;
CREATE FUNCTION rs_shadow.int8pl_evil(bigint, bigint) RETURNS bigint LANGUAGE sql
    AS $$ SELECT 0::bigint $$;
CREATE OPERATOR rs_shadow.+ (FUNCTION = rs_shadow.int8pl_evil, LEFTARG = bigint, RIGHTARG = bigint);
CREATE OPERATOR rs_shadow.- (FUNCTION = rs_shadow.int8pl_evil, LEFTARG = bigint, RIGHTARG = bigint);
SET search_path = rs_shadow, pg_catalog;
SELECT lockctl.reserve('rs-trig', 1) AS h_sh \gset
SELECT lockctl.confirm(:h_sh) AS confirmed;
-- the same through the statements (REPEATABLE READ: no direct path)
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT lockctl.reserve('rs-trig', 1) AS h_sh2 \gset
SELECT lockctl.confirm(:h_sh2) AS confirmed;
COMMIT;
RESET search_path;
RESET ROLE;
SELECT r.created > '2001-01-01' AS real_clock, r.status
  FROM lockctl.reservations r WHERE r.id IN (:h_sh, :h_sh2) ORDER BY r.id;
SELECT held, confirmed, capacity FROM lockctl.pool_status WHERE resource = 'rs-trig';
DROP SCHEMA rs_shadow CASCADE;
DROP ROLE rs_shadow;

-- The hand-over functions are lockctl's own: not for PUBLIC.
CREATE ROLE rs_stranger;
SET ROLE rs_stranger;
SELECT lockctl_internal.reserve_by_sql('rs-big');
SELECT lockctl_internal.confirm_by_sql(1);
SELECT lockctl_internal.insert_hold_by_sql(1, 0, 1, NULL, 'x', now(), now());
SELECT lockctl_internal.confirm_slot_by_sql(1, 0, 1);
RESET ROLE;
DROP ROLE rs_stranger;

-- A rule on a table the direct paths write: rules are the rewriter's, so
-- a write to a table with one goes through a statement, which applies it.
-- A DO ALSO rule on pool_slots sees each of a sale's slot writes (reserve,
-- confirm, cancel), as the same rule does when the sale runs by statement.
SELECT lockctl.create_pool('rs-rule', 5, 1);
-- (The log keeps the pool: the worker may expire rs-big's hold of the
-- shortest ttl meanwhile, an update of another pool's slot.)
CREATE TABLE public.rs_slot_log (pool_id bigint, held bigint, confirmed bigint);
CREATE RULE rs_slot_rule AS ON UPDATE TO lockctl.pool_slots
    DO ALSO INSERT INTO public.rs_slot_log VALUES (NEW.pool_id, NEW.held, NEW.confirmed);
SELECT lockctl.reserve('rs-rule', 2) AS h_rule \gset
SELECT lockctl.confirm(:h_rule) AS confirmed;
SELECT lockctl.reserve('rs-rule', 1) AS h_rule2 \gset
SELECT lockctl.cancel(:h_rule2) AS cancelled;
SELECT held, confirmed FROM public.rs_slot_log
 WHERE pool_id = (SELECT id FROM lockctl.pools WHERE resource = 'rs-rule')
 ORDER BY held DESC, confirmed;
DROP RULE rs_slot_rule ON lockctl.pool_slots;
TRUNCATE public.rs_slot_log;
-- and none once it is dropped (the direct path again)
SELECT lockctl.reserve('rs-rule', 1) IS NOT NULL AS held_again;
SELECT count(*) AS logged FROM public.rs_slot_log
 WHERE pool_id = (SELECT id FROM lockctl.pools WHERE resource = 'rs-rule');
DROP TABLE public.rs_slot_log;
SELECT held, confirmed, capacity FROM lockctl.pool_status WHERE resource = 'rs-rule';

-- A rule on holder_units: lockctl's statement counts a holder's units
-- with INSERT ... ON CONFLICT, which PostgreSQL refuses on a table with
-- rules; the direct path refuses it as well, and nothing is held.
SELECT lockctl.create_pool('rs-rule-limited', 10, 1, 3);
CREATE TABLE public.rs_units_log (holder text, units bigint);
CREATE RULE rs_units_rule AS ON UPDATE TO lockctl.holder_units
    DO ALSO INSERT INTO public.rs_units_log VALUES (NEW.holder, NEW.units);
SELECT lockctl.reserve('rs-rule-limited', 1, 'bob');
DROP RULE rs_units_rule ON lockctl.holder_units;
DROP TABLE public.rs_units_log;
SELECT held FROM lockctl.pool_status WHERE resource = 'rs-rule-limited';
SELECT lockctl.reserve('rs-rule-limited', 1, 'bob') IS NOT NULL AS held_without_rule;

-- Rules on range_reservations and request_keys: their statements insert
-- with ON CONFLICT, which PostgreSQL refuses on a table with INSERT or
-- UPDATE rules; the direct paths refuse as well, leaving nothing behind.
SELECT lockctl.create_calendar('rs-rule-room');
CREATE TABLE public.rs_rule_log (what text);
CREATE RULE rs_range_rule AS ON INSERT TO lockctl.range_reservations
    DO ALSO INSERT INTO public.rs_rule_log VALUES ('range');
CREATE RULE rs_request_rule AS ON INSERT TO lockctl.request_keys
    DO ALSO INSERT INTO public.rs_rule_log VALUES ('request');
SELECT lockctl.reserve_range('rs-rule-room', tstzrange('2030-01-01 10:00+00', '2030-01-01 11:00+00'));
SELECT lockctl.claim_request('rs-rule-request');
DROP RULE rs_range_rule ON lockctl.range_reservations;
DROP RULE rs_request_rule ON lockctl.request_keys;
SELECT count(*) AS logged FROM public.rs_rule_log;
DROP TABLE public.rs_rule_log;
SELECT count(*) AS ranges FROM lockctl.range_reservations r
  JOIN lockctl.calendars c ON c.id = r.calendar_id WHERE c.resource = 'rs-rule-room';
SELECT count(*) AS requests FROM lockctl.request_keys WHERE key = 'rs-rule-request';
SELECT lockctl.drop_calendar('rs-rule-room');

SELECT lockctl.drop_pool(p) FROM unnest(ARRAY['rs-big', 'rs-limited', 'rs-trig', 'rs-rule', 'rs-rule-limited']) AS p;
