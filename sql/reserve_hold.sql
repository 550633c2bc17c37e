-- A hold's row written without the executor (src/reserve_hold.c):
-- lockctl_internal.insert_hold, reserve's insert, and
-- lockctl_internal.confirm_hold, confirm's update.  What they write, that
-- every index of the table has the rows an INSERT or UPDATE would have
-- given it, which holds confirm_hold matches, and when they leave the
-- work to the statements (NULL, looked = false).
\set VERBOSITY terse
\set SHOW_CONTEXT never

CREATE EXTENSION IF NOT EXISTS amcheck;

CREATE FUNCTION pg_temp.e(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE r text;
BEGIN
    EXECUTE stmt INTO r;
    RETURN coalesce(nullif(r, ''), 'ok');
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, '\d{4,}', 'N', 'g');
END $$;

CREATE FUNCTION pg_temp.pool(name text) RETURNS bigint LANGUAGE sql
    AS $$SELECT id FROM lockctl.pools WHERE resource = name$$;

-- Every btree index of lockctl.reservations has exactly the entries its
-- heap calls for (amcheck: every visible row of the heap that the index
-- predicate admits is found in the index, and nothing else is there).
CREATE FUNCTION pg_temp.indexes_whole() RETURNS TABLE (index name, whole boolean)
    LANGUAGE sql AS $$
    SELECT c.relname, (SELECT true FROM bt_index_check(c.oid, true))
      FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
     WHERE i.indrelid = 'lockctl.reservations'::regclass ORDER BY c.relname$$;

CREATE FUNCTION pg_temp.hold(p_id bigint)
    RETURNS TABLE (quantity bigint, holder text, mine boolean, status lockctl.hold_status,
                   finished_set boolean, lives_minutes numeric, era_tagged boolean)
    LANGUAGE sql AS $$
    SELECT r.quantity, r.holder, r.taken_by = current_user, r.status, r.finished IS NOT NULL,
           round(extract(epoch FROM r.expires - r.created) / 60),
           (r.id >> 48) = (SELECT t.era FROM lockctl.token_state() AS t)
      FROM lockctl.reservations AS r WHERE r.id = p_id$$;

SELECT lockctl.create_pool('hh', 100, 2);

-- reserve inserts its hold directly: as the INSERT would have.
SELECT lockctl.reserve('hh', 3, 'ann', '10 minutes') AS a \gset
SELECT * FROM pg_temp.hold(:a);
SELECT * FROM pg_temp.indexes_whole();

-- insert_hold itself: the id from the column's default (the next one,
-- era-tagged), status 'held'.  Any argument but the holder null: the
-- statement's (NULL, nothing written).
SELECT lockctl_internal.insert_hold(pg_temp.pool('hh'), 0, 2, NULL, current_user,
                                    now(), now() + interval '5 minutes') AS b \gset
SELECT :b > :a AS after_a, * FROM pg_temp.hold(:b);
SELECT lockctl_internal.insert_hold(NULL, 0, 2, NULL, current_user, now(), now()) AS null_pool,
       lockctl_internal.insert_hold(pg_temp.pool('hh'), 0, 2, NULL, NULL, now(), now()) AS null_role,
       lockctl_internal.insert_hold(pg_temp.pool('hh'), 0, 2, NULL, current_user, now(), NULL) AS null_expiry;
-- the table's CHECK is applied, as by the INSERT
SELECT pg_temp.e($$SELECT lockctl_internal.insert_hold(pg_temp.pool('hh'), 0, 0, NULL,
                                                       current_user, now(), now())$$) AS zero_units;
SELECT count(*) AS holds FROM lockctl.reservations;

-- confirm_hold: the live hold, set to 'confirmed' at `at`; its pool, slot
-- and quantity returned.
SELECT pool_id = pg_temp.pool('hh') AS its_pool, slot IN (0, 1) AS its_slot, quantity, looked
  FROM lockctl_internal.confirm_hold(:a, clock_timestamp());
SELECT * FROM pg_temp.hold(:a);
-- again: it is not live any more; no such hold: none, looked (confirm
-- then says why)
SELECT * FROM lockctl_internal.confirm_hold(:a, clock_timestamp());
SELECT * FROM lockctl_internal.confirm_hold(-1, clock_timestamp());
-- at or after its expiry: not matched (the worker's to expire)
SELECT * FROM lockctl_internal.confirm_hold(:b, now() + interval '5 minutes');
SELECT pool_id = pg_temp.pool('hh') AS its_pool, slot, quantity, looked
  FROM lockctl_internal.confirm_hold(:b, now() + interval '4 minutes');
SELECT * FROM pg_temp.indexes_whole();

-- Another role's hold is not matched (and never locked or changed).
CREATE ROLE hold_other;
GRANT USAGE ON SCHEMA lockctl TO hold_other;
SET ROLE hold_other;
SELECT lockctl.reserve('hh', 1) AS o \gset
RESET ROLE;
CREATE ROLE hold_stranger NOSUPERUSER;
SET ROLE hold_stranger;
-- not the stranger's to call; through confirm, no such hold for it
SELECT pg_temp.e($$SELECT lockctl_internal.confirm_hold($$ || :o || $$, clock_timestamp())$$) AS direct_call;
SELECT pg_temp.e($$SELECT lockctl.confirm($$ || :o || $$)$$) AS strangers_confirm;
RESET ROLE;
SELECT status FROM lockctl.reservations WHERE id = :o;
-- a member of the role that took it may
GRANT hold_other TO hold_stranger;
SET ROLE hold_stranger;
SELECT lockctl.confirm(:o) AS members_confirm;
RESET ROLE;

-- reserve and confirm in one transaction, and the hold rolled back with it.
BEGIN;
SELECT lockctl.confirm(lockctl.reserve('hh', 4)) AS sold;
ROLLBACK;
BEGIN;
SELECT lockctl.reserve('hh', 5) AS r \gset
SELECT lockctl.confirm(:r) AS sold;
SELECT lockctl.confirm(:r) AS sold_again;
COMMIT;
SELECT status, quantity FROM lockctl.reservations WHERE id = :r;
SELECT sum(held) AS held, sum(confirmed) AS confirmed, sum(holds_taken) AS taken,
       sum(holds_confirmed) AS confirmed_holds
  FROM lockctl.pool_slots WHERE pool_id = pg_temp.pool('hh');
SELECT * FROM pg_temp.indexes_whole();

-- REPEATABLE READ and SERIALIZABLE, a read-only transaction: the
-- statements'.
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT lockctl_internal.insert_hold(pg_temp.pool('hh'), 0, 1, NULL, current_user,
                                    now(), now() + interval '1 minute') AS direct_insert;
SELECT looked FROM lockctl_internal.confirm_hold(:b, clock_timestamp());
SELECT lockctl.confirm(lockctl.reserve('hh', 1)) AS sold_in_rr;
COMMIT;
BEGIN ISOLATION LEVEL SERIALIZABLE;
SELECT looked FROM lockctl_internal.confirm_hold(:b, clock_timestamp());
COMMIT;
BEGIN READ ONLY;
SELECT lockctl_internal.insert_hold(pg_temp.pool('hh'), 0, 1, NULL, current_user,
                                    now(), now() + interval '1 minute') AS direct_insert;
SELECT looked FROM lockctl_internal.confirm_hold(:b, clock_timestamp());
COMMIT;

-- A table not as installed: the statements do the work (and its trigger
-- fires), until it is as installed again.
CREATE FUNCTION pg_temp.said() RETURNS trigger LANGUAGE plpgsql
    AS $$BEGIN RAISE NOTICE 'a hold written by a statement (%)', TG_OP; RETURN NEW; END$$;
CREATE TRIGGER hold_writes BEFORE INSERT OR UPDATE ON lockctl.reservations
    FOR EACH ROW EXECUTE FUNCTION pg_temp.said();
SELECT lockctl.confirm(lockctl.reserve('hh', 1)) AS sold_by_statements;
DROP TRIGGER hold_writes ON lockctl.reservations;
SELECT lockctl.confirm(lockctl.reserve('hh', 1)) AS sold_directly;
-- another default for status or id: the INSERT would use it
ALTER TABLE lockctl.reservations ALTER COLUMN status SET DEFAULT 'cancelled';
SELECT lockctl_internal.insert_hold(pg_temp.pool('hh'), 0, 1, NULL, current_user,
                                    now(), now() + interval '1 minute') AS direct_insert;
SELECT pg_temp.e($$SELECT lockctl.reserve('hh', 1)$$) AS reserve_with_that_default;
ALTER TABLE lockctl.reservations ALTER COLUMN status SET DEFAULT 'held';
ALTER TABLE lockctl.reservations ALTER COLUMN id SET DEFAULT nextval('lockctl.hold_id_seq');
SELECT lockctl_internal.insert_hold(pg_temp.pool('hh'), 0, 1, NULL, current_user,
                                    now(), now() + interval '1 minute') AS direct_insert;
ALTER TABLE lockctl.reservations ALTER COLUMN id
    SET DEFAULT lockctl_internal.era_nextval('lockctl.hold_id_seq'::regclass);
-- a rule: the statement's rewriting applies
CREATE RULE hold_rule AS ON UPDATE TO lockctl.reservations DO ALSO NOTIFY hold_changed;
SELECT lockctl.reserve('hh', 1) AS r \gset
SELECT looked FROM lockctl_internal.confirm_hold(:r, clock_timestamp());
DROP RULE hold_rule ON lockctl.reservations;
SELECT looked FROM lockctl_internal.confirm_hold(:r, clock_timestamp());
-- a deferred unique constraint: checked at commit by a trigger the
-- executor queues
ALTER TABLE lockctl.reservations ADD CONSTRAINT hold_deferred UNIQUE (id)
    DEFERRABLE INITIALLY DEFERRED;
SELECT lockctl.reserve('hh', 1) AS r \gset
SELECT looked FROM lockctl_internal.confirm_hold(:r, clock_timestamp());
ALTER TABLE lockctl.reservations DROP CONSTRAINT hold_deferred;
SELECT looked FROM lockctl_internal.confirm_hold(:r, clock_timestamp());
-- A CHECK or an index the DBA added is applied by the direct paths
-- themselves, as by the statements.
ALTER TABLE lockctl.reservations ADD CONSTRAINT small_holds CHECK (quantity < 50);
SELECT pg_temp.e($$SELECT lockctl.reserve('hh', 60)$$) AS big_hold;
SELECT lockctl_internal.insert_hold(pg_temp.pool('hh'), 0, 1, NULL, current_user,
                                    now(), now() + interval '1 minute') IS NOT NULL AS direct_insert;
ALTER TABLE lockctl.reservations DROP CONSTRAINT small_holds;
CREATE INDEX hold_holder_idx ON lockctl.reservations (holder) WHERE holder IS NOT NULL;
SELECT lockctl.reserve('hh', 1, 'zed') AS r \gset
SELECT lockctl.confirm(:r);
SET enable_seqscan = off;
SET enable_bitmapscan = off;
SELECT count(*) AS zeds FROM lockctl.reservations WHERE holder = 'zed';
RESET enable_seqscan;
RESET enable_bitmapscan;
SELECT * FROM pg_temp.indexes_whole();
-- A write opens only the indexes its row enters: a partial index that the
-- new hold does not enter but its confirmed version does (and one that
-- only a keyed hold's versions enter) gets the entries all the same.
CREATE INDEX hold_confirmed_idx ON lockctl.reservations (pool_id) WHERE status = 'confirmed';
SELECT lockctl.reserve('hh', 1) AS r \gset
SELECT lockctl.confirm(:r);
SELECT lockctl.reserve('hh', 2, idempotency_key => 'hold-key') AS k \gset
SELECT looked FROM lockctl_internal.confirm_hold(:k, clock_timestamp());
SELECT lockctl.reserve('hh', 2, idempotency_key => 'hold-key') = :k AS same_keyed_hold;
SET enable_seqscan = off;
SET enable_bitmapscan = off;
SELECT count(*) FILTER (WHERE id = :r) AS unkeyed, count(*) FILTER (WHERE id = :k) AS keyed
  FROM lockctl.reservations WHERE status = 'confirmed' AND pool_id = pg_temp.pool('hh');
SELECT id = :k AS by_key FROM lockctl.reservations
 WHERE pool_id = pg_temp.pool('hh') AND taken_by = current_user AND idempotency_key = 'hold-key';
RESET enable_seqscan;
RESET enable_bitmapscan;
SELECT * FROM pg_temp.indexes_whole();
DROP INDEX lockctl.hold_confirmed_idx;
DROP INDEX lockctl.hold_holder_idx;

SELECT lockctl.drop_pool('hh');
DROP OWNED BY hold_other, hold_stranger;
DROP ROLE hold_stranger;
DROP ROLE hold_other;
DROP EXTENSION amcheck;
