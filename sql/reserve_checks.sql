-- The CHECK constraints and partial-index predicates of lockctl's tables,
-- prepared once per backend and handed to every statement that writes the
-- tables (src/kept_exprs.c): they must check and index exactly as a
-- statement preparing its own would, follow any change of the table, its
-- indexes or a function, and keep the privilege on the function as it is.
\set VERBOSITY terse
\set SHOW_CONTEXT never

CREATE FUNCTION pg_temp.e(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE r text;
BEGIN
    EXECUTE stmt INTO r;
    RETURN coalesce(nullif(r, ''), 'ok');
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, 'hold \d+', 'hold N', 'g');
END $$;

-- What this backend keeps: a table's CHECKs, an index's predicate.
CREATE VIEW pg_temp.kept AS
SELECT ident AS kept FROM pg_backend_memory_contexts
 WHERE name = 'lockctl kept expressions' ORDER BY ident;

SELECT lockctl.create_pool('kc', 10);
SELECT lockctl.confirm(lockctl.reserve('kc', 1, 'ann', '1 hour'));
-- pool_slots and its partial index (a sale writes its hold's row
-- directly, src/reserve_hold.c, with expressions of its own)
SELECT * FROM pg_temp.kept;
SELECT id AS pool FROM lockctl.pools WHERE resource = 'kc' \gset

-- Kept, they refuse what they refused (superuser, direct writes).
SELECT pg_temp.e(format('UPDATE lockctl.pool_slots SET held = capacity - confirmed + 1 WHERE pool_id = %s', :pool));
SELECT pg_temp.e(format('UPDATE lockctl.pool_slots SET kept = held + 1 WHERE pool_id = %s', :pool));
SELECT pg_temp.e(format($$UPDATE lockctl.reservations SET finished = NULL WHERE pool_id = %s AND status = 'confirmed'$$, :pool));
SELECT pg_temp.e(format('UPDATE lockctl.reservations SET quantity = 0 WHERE pool_id = %s', :pool));
SELECT held, confirmed, available FROM lockctl.pool_status WHERE resource = 'kc';

-- Kept, the predicates index what they indexed: every partial index of
-- the two tables, read alone, finds exactly the rows a scan of the table
-- finds (a row wrongly in or out of one would show).
SELECT lockctl.reserve('kc', 1, 'dan', '1 hour') AS h_cancel \gset
SELECT lockctl.cancel(:h_cancel);
SELECT lockctl.reserve('kc', 1, 'eve', '1 hour', 'key-1') IS NOT NULL AS keyed;
-- cancel's UPDATE and a keyed reserve's INSERT: reservations and its
-- partial indexes too
SELECT * FROM pg_temp.kept;
CREATE TEMP TABLE scans (how text, due bigint, keyed bigint, live_or_done bigint, done bigint);
CREATE FUNCTION pg_temp.scan(how text) RETURNS void LANGUAGE sql AS $$
INSERT INTO scans
SELECT how,
       (SELECT count(*) FROM lockctl.reservations WHERE status = 'held'),
       (SELECT count(*) FROM lockctl.reservations WHERE idempotency_key IS NOT NULL),
       (SELECT count(*) FROM lockctl.reservations WHERE status <> 'confirmed' AND taken_by = current_user),
       (SELECT count(*) FROM lockctl.reservations WHERE status IN ('cancelled', 'expired') AND finished IS NOT NULL);
$$;
SET enable_seqscan = off;
SET enable_bitmapscan = off;
EXPLAIN (COSTS OFF) SELECT count(*) FROM lockctl.reservations WHERE status = 'held';
EXPLAIN (COSTS OFF) SELECT count(*) FROM lockctl.reservations WHERE idempotency_key IS NOT NULL;
EXPLAIN (COSTS OFF) SELECT count(*) FROM lockctl.reservations WHERE status <> 'confirmed' AND taken_by = current_user;
EXPLAIN (COSTS OFF) SELECT count(*) FROM lockctl.reservations WHERE status IN ('cancelled', 'expired') AND finished IS NOT NULL;
SELECT pg_temp.scan('partial indexes');
RESET enable_seqscan;
RESET enable_bitmapscan;
SET enable_indexscan = off;
SET enable_indexonlyscan = off;
SET enable_bitmapscan = off;
SELECT pg_temp.scan('table');
RESET enable_indexscan;
RESET enable_indexonlyscan;
RESET enable_bitmapscan;
SELECT * FROM scans ORDER BY how;

-- A CHECK added to the table counts at once, in this session, and the
-- installed one still does; rolled back, it is gone again.
BEGIN;
ALTER TABLE lockctl.pool_slots ADD CONSTRAINT kc_at_most_2 CHECK (held <= 2);
SELECT pg_temp.e($$SELECT lockctl.reserve('kc', 3, 'bob', '1 hour')$$);
SELECT pg_temp.e(format('UPDATE lockctl.pool_slots SET held = -1 WHERE pool_id = %s', :pool));
ROLLBACK;
SELECT lockctl.reserve('kc', 3, 'bob', '1 hour') IS NOT NULL AS taken_3;

-- The CHECK's function replaced: the new one counts at once (the kept
-- expression called the old one).  Rolled back, the C one is back.
BEGIN;
CREATE OR REPLACE FUNCTION lockctl_internal.is_slot_row(bigint, bigint, bigint, bigint)
    RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT false';
SELECT pg_temp.e($$SELECT lockctl.reserve('kc', 1, 'cy', '1 hour')$$);
ROLLBACK;
SELECT lockctl.reserve('kc', 1, 'cy', '1 hour') IS NOT NULL AS taken_1;
SELECT held, confirmed, available FROM lockctl.pool_status WHERE resource = 'kc';
-- reserve and confirm write slot rows without a statement
-- (src/reserve_slot.c); cancel's statement keeps pool_slots' set again
SELECT lockctl.cancel(lockctl.reserve('kc', 1, 'dee', '1 hour'));
SELECT * FROM pg_temp.kept;

-- A role that may write the table but not execute the CHECK's function
-- fails as it would without the kept set, and only when a row is checked.
BEGIN;
CREATE ROLE lockctl_kc_writer;
GRANT USAGE ON SCHEMA lockctl TO lockctl_kc_writer;
GRANT SELECT, UPDATE ON lockctl.pool_slots TO lockctl_kc_writer;
SET ROLE lockctl_kc_writer;
SELECT pg_temp.e(format('UPDATE lockctl.pool_slots SET held = held WHERE pool_id = %s', :pool));
SELECT pg_temp.e($$UPDATE lockctl.pool_slots SET held = held WHERE pool_id = -1 RETURNING 'updated'$$);
RESET ROLE;
ROLLBACK;

-- Nothing above changed the accounting.
SELECT held, confirmed, available FROM lockctl.pool_status WHERE resource = 'kc';
SELECT s.held = (SELECT coalesce(sum(r.quantity), 0) FROM lockctl.reservations r
                  WHERE r.pool_id = s.pool_id AND r.status = 'held') AS held_is_sum
  FROM lockctl.pool_slots s WHERE s.pool_id = :pool;
SELECT lockctl.drop_pool('kc');
