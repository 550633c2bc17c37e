-- Slot rows written without the executor (src/reserve_slot.c):
-- lockctl_internal.take_slot, reserve's fast path, and
-- lockctl_internal.confirm_slot, confirm's slot update.  What they write,
-- in which order they look, when they leave the work to the statements
-- (looked = false, or false), and that the table's indexes and rules stay
-- as an UPDATE would leave them.
\set VERBOSITY terse
\set SHOW_CONTEXT never

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

CREATE FUNCTION pg_temp.slots(name text)
    RETURNS TABLE (slot integer, capacity bigint, held bigint, confirmed bigint,
                   holds_taken bigint, holds_confirmed bigint)
    LANGUAGE sql
    AS $$SELECT s.slot, s.capacity, s.held, s.confirmed, s.holds_taken, s.holds_confirmed
            FROM lockctl.pool_slots s WHERE s.pool_id = pg_temp.pool(name) ORDER BY s.slot$$;

-- 8 units over 4 slots: 2 in each.
SELECT lockctl.create_pool('slotted', 8, 4);

-- From slot `start` up: slot 2, then 3; both full, the next look wraps to 0.
SELECT * FROM lockctl_internal.take_slot(pg_temp.pool('slotted'), 2, 4, 2);
SELECT * FROM lockctl_internal.take_slot(pg_temp.pool('slotted'), 2, 4, 2);
SELECT * FROM lockctl_internal.take_slot(pg_temp.pool('slotted'), 2, 4, 1);
SELECT * FROM pg_temp.slots('slotted');
-- A slot with too few units is passed over: 3 units fit in no slot (the
-- middle and slow paths are reserve's): none, but it looked.
SELECT * FROM lockctl_internal.take_slot(pg_temp.pool('slotted'), 0, 4, 3);
-- Slots past `slots` are not looked at (a pool being reshaped).
SELECT * FROM lockctl_internal.take_slot(pg_temp.pool('slotted'), 0, 1, 1);
SELECT * FROM lockctl_internal.take_slot(pg_temp.pool('slotted'), 0, 2, 1);
SELECT * FROM lockctl_internal.take_slot(pg_temp.pool('slotted'), 0, 2, 1);
-- Arguments the statement must judge: it looks itself.
SELECT * FROM lockctl_internal.take_slot(pg_temp.pool('slotted'), 4, 4, 1);
SELECT * FROM lockctl_internal.take_slot(pg_temp.pool('slotted'), -1, 4, 1);
SELECT * FROM lockctl_internal.take_slot(pg_temp.pool('slotted'), 0, 4, 0);
SELECT * FROM lockctl_internal.take_slot(pg_temp.pool('slotted'), 0, 0, 1);
SELECT * FROM lockctl_internal.take_slot(NULL, 0, 4, 1);
-- A pool that does not exist: no row, looked.
SELECT * FROM lockctl_internal.take_slot(-1, 0, 4, 1);

-- confirm_slot moves units from held to confirmed.
SELECT lockctl_internal.confirm_slot(pg_temp.pool('slotted'), 2, 2);
-- more than the slot holds, no such slot, a quantity of 0: the statement's
SELECT lockctl_internal.confirm_slot(pg_temp.pool('slotted'), 3, 3);
SELECT lockctl_internal.confirm_slot(pg_temp.pool('slotted'), 9, 1);
SELECT lockctl_internal.confirm_slot(pg_temp.pool('slotted'), 3, 0);
SELECT * FROM pg_temp.slots('slotted');
SELECT lockctl.drop_pool('slotted');

-- Through reserve and confirm: the slot row is written by the
-- transaction itself, not by a subtransaction (the SQL fast path's), and
-- the units add up.
SELECT lockctl.create_pool('hot', 100, 4);
BEGIN;
SELECT lockctl.reserve('hot', 3) AS id \gset
SELECT count(*) AS rows_of_this_transaction
  FROM lockctl.pool_slots s
 WHERE s.pool_id = pg_temp.pool('hot') AND s.xmin = pg_catalog.xid(pg_current_xact_id());
SELECT lockctl.confirm(:id);
COMMIT;
SELECT sum(held) AS held, sum(confirmed) AS confirmed, sum(holds_taken) AS taken,
       sum(holds_confirmed) AS confirmed_holds
  FROM pg_temp.slots('hot');
-- reserve and confirm in separate transactions, as a web checkout does
SELECT lockctl.reserve('hot', 5) AS id \gset
SELECT lockctl.confirm(:id);
SELECT sum(held) AS held, sum(confirmed) AS confirmed FROM pg_temp.slots('hot');

-- A limited pool: take_slot reads the limit from the row it takes.
SELECT lockctl.create_pool('limited', 10, 2, 4);
SELECT * FROM lockctl_internal.take_slot(pg_temp.pool('limited'), 0, 2, 1);
SELECT lockctl.reserve('limited', 4, 'ann') IS NOT NULL AS four_for_ann;
SELECT pg_temp.e($$SELECT lockctl.reserve('limited', 1, 'ann')$$) AS a_fifth;

-- REPEATABLE READ and SERIALIZABLE, a read-only transaction: the
-- statements' (their snapshots, predicate locks and errors).
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT * FROM lockctl_internal.take_slot(pg_temp.pool('hot'), 0, 4, 1);
SELECT lockctl_internal.confirm_slot(pg_temp.pool('hot'), 0, 1);
SELECT lockctl.reserve('hot', 1) IS NOT NULL AS reserved_in_rr;
COMMIT;
BEGIN ISOLATION LEVEL SERIALIZABLE;
SELECT * FROM lockctl_internal.take_slot(pg_temp.pool('hot'), 0, 4, 1);
COMMIT;
BEGIN READ ONLY;
SELECT * FROM lockctl_internal.take_slot(pg_temp.pool('hot'), 0, 4, 1);
SELECT lockctl_internal.confirm_slot(pg_temp.pool('hot'), 0, 1);
COMMIT;

-- A row this transaction wrote in an earlier command is its own to write
-- again; within one transaction, every unit adds up.
BEGIN;
SELECT * FROM lockctl_internal.take_slot(pg_temp.pool('hot'), 1, 4, 1);
SELECT * FROM lockctl_internal.take_slot(pg_temp.pool('hot'), 1, 4, 1);
SELECT lockctl_internal.confirm_slot(pg_temp.pool('hot'), 1, 2);
ROLLBACK;
-- Rolled back with the transaction, as any write.
SELECT sum(held) AS held, sum(confirmed) AS confirmed FROM pg_temp.slots('hot');

-- A table not as installed: the statements do the work (and its rules
-- apply), until it is as installed again.
CREATE FUNCTION pg_temp.count_slot_writes() RETURNS trigger LANGUAGE plpgsql
    AS $$BEGIN RAISE NOTICE 'a slot written by a statement'; RETURN NEW; END$$;
CREATE TRIGGER slot_writes BEFORE UPDATE ON lockctl.pool_slots
    FOR EACH ROW EXECUTE FUNCTION pg_temp.count_slot_writes();
SELECT * FROM lockctl_internal.take_slot(pg_temp.pool('hot'), 0, 4, 1);
SELECT lockctl_internal.confirm_slot(pg_temp.pool('hot'), 0, 1);
SELECT lockctl.reserve('hot', 1) AS id \gset
SELECT lockctl.confirm(:id);
DROP TRIGGER slot_writes ON lockctl.pool_slots;
SELECT * FROM lockctl_internal.take_slot(pg_temp.pool('hot'), 0, 4, 1);
-- a second CHECK: only the executor would test it
ALTER TABLE lockctl.pool_slots ADD CONSTRAINT held_small CHECK (held < 20);
SELECT (lockctl_internal.take_slot(pg_temp.pool('hot'), 0, 4, 1)).looked;
SELECT pg_temp.e($$SELECT lockctl.reserve('hot', 20) IS NOT NULL$$) AS second_check;
ALTER TABLE lockctl.pool_slots DROP CONSTRAINT held_small;
SELECT (lockctl_internal.take_slot(pg_temp.pool('hot'), 0, 4, 1)).looked;
-- a deferred unique constraint: checked at commit by a trigger the
-- executor queues
ALTER TABLE lockctl.pool_slots ADD CONSTRAINT slots_deferred UNIQUE (pool_id, slot)
    DEFERRABLE INITIALLY DEFERRED;
SELECT (lockctl_internal.take_slot(pg_temp.pool('hot'), 0, 4, 1)).looked;
ALTER TABLE lockctl.pool_slots DROP CONSTRAINT slots_deferred;
SELECT (lockctl_internal.take_slot(pg_temp.pool('hot'), 0, 4, 1)).looked;

-- A new version that does not fit on its page: the index entries are
-- made, in the primary key and in the partial index of kept units.  In one
-- transaction (whose own old versions no pruning can remove), slot 100's
-- page is filled by updating another row on it (one of no units put
-- there, when it is alone) until that row moves off
-- it; then take_slot's, and likewise confirm_slot's, new version of slot
-- 100 cannot stay on the page either.
CREATE FUNCTION pg_temp.page_of(p_pool bigint, p_slot integer) RETURNS bigint LANGUAGE sql
    AS $$SELECT (s.ctid::text::point)[0]::bigint FROM lockctl.pool_slots s
          WHERE s.pool_id = p_pool AND s.slot = p_slot$$;
CREATE FUNCTION pg_temp.fill_page_of(p_pool bigint, p_slot integer) RETURNS boolean
    LANGUAGE plpgsql AS $$
DECLARE
    v_page bigint := pg_temp.page_of(p_pool, p_slot);
    v_pool bigint;
    v_slot integer;
BEGIN
    SELECT s.pool_id, s.slot INTO v_pool, v_slot FROM lockctl.pool_slots s
     WHERE (s.ctid::text::point)[0] = v_page AND (s.pool_id, s.slot) <> (p_pool, p_slot)
     LIMIT 1;
    IF NOT FOUND THEN
        -- Alone on a page the table was extended by: a row of no units,
        -- past the pool's slots (never looked at), goes to the page the
        -- backend last put a row on, that one.
        v_pool := p_pool;
        SELECT max(s.slot) + 1000 INTO v_slot FROM lockctl.pool_slots s WHERE s.pool_id = p_pool;
        INSERT INTO lockctl.pool_slots (pool_id, slot, capacity) VALUES (v_pool, v_slot, 0);
        IF pg_temp.page_of(v_pool, v_slot) <> v_page THEN
            RETURN false;
        END IF;
    END IF;
    FOR i IN 1 .. 500 LOOP
        UPDATE lockctl.pool_slots s SET holds_expired = s.holds_expired
         WHERE s.pool_id = v_pool AND s.slot = v_slot;
        IF pg_temp.page_of(v_pool, v_slot) <> v_page THEN
            RETURN true;
        END IF;
    END LOOP;
    RETURN false;
END $$;
SELECT lockctl.create_pool('full', 1000, 400);
BEGIN;
UPDATE lockctl.pool_slots SET kept = 1, held = 1 WHERE pool_id = pg_temp.pool('full') AND slot = 100;
SELECT pg_temp.page_of(pg_temp.pool('full'), 100) AS page \gset
SELECT pg_temp.fill_page_of(pg_temp.pool('full'), 100) AS page_filled;
SELECT * FROM lockctl_internal.take_slot(pg_temp.pool('full'), 100, 400, 1);
SELECT pg_temp.page_of(pg_temp.pool('full'), 100) <> :page AS moved_off_its_page;
SELECT pg_temp.page_of(pg_temp.pool('full'), 100) AS page \gset
SELECT pg_temp.fill_page_of(pg_temp.pool('full'), 100) AS page_filled;
SELECT lockctl_internal.confirm_slot(pg_temp.pool('full'), 100, 1);
SELECT pg_temp.page_of(pg_temp.pool('full'), 100) <> :page AS moved_off_its_page;
-- found through each index
SET LOCAL enable_seqscan = off;
SET LOCAL enable_bitmapscan = off;
EXPLAIN (COSTS OFF) SELECT held FROM lockctl.pool_slots WHERE pool_id = 1 AND slot = 1;
SELECT slot, held, confirmed, kept, holds_taken, holds_confirmed FROM lockctl.pool_slots
 WHERE pool_id = pg_temp.pool('full') AND slot = 100;
EXPLAIN (COSTS OFF) SELECT slot FROM lockctl.pool_slots WHERE pool_id = 1 AND kept > 0;
SELECT slot, held, confirmed, kept FROM lockctl.pool_slots
 WHERE pool_id = pg_temp.pool('full') AND kept > 0;
COMMIT;
UPDATE lockctl.pool_slots SET kept = 0 WHERE pool_id = pg_temp.pool('full');
SELECT lockctl.drop_pool('full');

-- Only lockctl's own functions call them.
CREATE ROLE regress_slot_user;
SET ROLE regress_slot_user;
SELECT pg_temp.e($$SELECT lockctl_internal.take_slot(1, 0, 1, 1)$$) AS take_slot;
SELECT pg_temp.e($$SELECT lockctl_internal.confirm_slot(1, 0, 1)$$) AS confirm_slot;
RESET ROLE;
DROP ROLE regress_slot_user;

SELECT lockctl.drop_pool('hot');
SELECT lockctl.drop_pool('limited');
