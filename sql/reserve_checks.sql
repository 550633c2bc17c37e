-- The CHECK constraints of the reservation tables, prepared once per
-- backend and handed to every statement that writes the tables
-- (src/reserve_checks.c): they must check exactly what a statement
-- preparing its own would, follow any change of the table or of a
-- function, and keep the privilege on the function as it is.
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

-- The sets this backend keeps: one per table, made at first use.
CREATE VIEW pg_temp.kept AS
SELECT count(*) AS kept FROM pg_backend_memory_contexts WHERE name = 'lockctl kept checks';

SELECT lockctl.create_pool('kc', 5);
SELECT lockctl.confirm(lockctl.reserve('kc', 1, 'ann', '1 hour'));
-- pool_slots and reservations
SELECT * FROM pg_temp.kept;
SELECT id AS pool FROM lockctl.pools WHERE resource = 'kc' \gset

-- Kept, they refuse what they refused (superuser, direct writes).
SELECT pg_temp.e(format('UPDATE lockctl.pool_slots SET held = capacity - confirmed + 1 WHERE pool_id = %s', :pool));
SELECT pg_temp.e(format('UPDATE lockctl.pool_slots SET kept = held + 1 WHERE pool_id = %s', :pool));
SELECT pg_temp.e(format($$UPDATE lockctl.reservations SET finished = NULL WHERE pool_id = %s AND status = 'confirmed'$$, :pool));
SELECT pg_temp.e(format('UPDATE lockctl.reservations SET quantity = 0 WHERE pool_id = %s', :pool));
SELECT held, confirmed, available FROM lockctl.pool_status WHERE resource = 'kc';

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
