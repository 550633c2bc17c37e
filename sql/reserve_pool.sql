-- A pool found by its name without the executor (src/reserve_pool.c):
-- lockctl_internal.pool_of, reserve's look-up.  What it finds, what it
-- sees of the transaction's own changes, and when it leaves the look-up to
-- reserve's SELECT (looked = false), which must then give the same answer.
\set VERBOSITY terse
\set SHOW_CONTEXT never
-- Without its index, reserve's SELECT of the pool is a sequential scan
-- under reserve's enable_seqscan = off, whose cost passes jit_above_cost:
-- JIT is not what is tested here (and its dlopen upsets scripts/valgrind).
SET jit = off;

CREATE FUNCTION pg_temp.e(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE r text;
BEGIN
    EXECUTE stmt INTO r;
    RETURN coalesce(nullif(r, ''), 'ok');
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, '\d{4,}', 'N', 'g');
END $$;

-- Whether pool_of's answer for name is the table's (id and slots, or none).
CREATE FUNCTION pg_temp.same(name text) RETURNS boolean LANGUAGE sql AS $$
    SELECT (f.id, f.slots) IS NOT DISTINCT FROM
           (SELECT (p.id, p.slots) FROM lockctl.pools p WHERE p.resource = name)
      FROM lockctl_internal.pool_of(name) f$$;

SELECT lockctl.create_pool('pool-of', 10, 3);
SELECT lockctl.create_pool('Pool-Of', 5);
-- found; names are compared exactly (case, accents, long names)
SELECT slots, looked, pg_temp.same('pool-of') FROM lockctl_internal.pool_of('pool-of');
SELECT slots, looked, pg_temp.same('Pool-Of') FROM lockctl_internal.pool_of('Pool-Of');
SELECT 'café' || repeat('x', lockctl_internal.name_max_bytes() - 5) AS longest \gset
SELECT lockctl.create_pool(:'longest', 1);
SELECT slots, looked, pg_temp.same(:'longest') FROM lockctl_internal.pool_of(:'longest');
SELECT * FROM lockctl_internal.pool_of(replace(:'longest', 'é', 'e'));
-- none: no row, but looked (reserve's "does not exist")
SELECT * FROM lockctl_internal.pool_of('POOL-OF');
SELECT * FROM lockctl_internal.pool_of('');
SELECT * FROM lockctl_internal.pool_of(NULL);

-- A pool made, resized and dropped earlier in the same transaction is
-- seen as the SELECT sees it.
BEGIN;
SELECT lockctl.create_pool('pool-of-new', 4, 2);
SELECT slots, looked, pg_temp.same('pool-of-new') FROM lockctl_internal.pool_of('pool-of-new');
SELECT lockctl.set_slots('pool-of-new', 4);
SELECT slots, looked, pg_temp.same('pool-of-new') FROM lockctl_internal.pool_of('pool-of-new');
SELECT lockctl.confirm(lockctl.reserve('pool-of-new', 3));
SELECT lockctl.drop_pool('pool-of-new');
SELECT * FROM lockctl_internal.pool_of('pool-of-new');
ROLLBACK;
SELECT * FROM lockctl_internal.pool_of('pool-of-new');

-- REPEATABLE READ and SERIALIZABLE: the statement looks.
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT id IS NULL AS no_id, looked FROM lockctl_internal.pool_of('pool-of');
SELECT lockctl.cancel(lockctl.reserve('pool-of')) AS reserved_and_cancelled;
COMMIT;
BEGIN ISOLATION LEVEL SERIALIZABLE;
SELECT id IS NULL AS no_id, looked FROM lockctl_internal.pool_of('pool-of');
COMMIT;

-- A table not as installed: the statement looks, and reserve still sells
-- (through its SELECT) and still says which pool does not exist.  Each
-- change is seen at once, and its undoing too.
BEGIN;
ALTER TABLE lockctl.pools ENABLE ROW LEVEL SECURITY;
SELECT id IS NULL AS no_id, looked FROM lockctl_internal.pool_of('pool-of');
SELECT lockctl.cancel(lockctl.reserve('pool-of')) AS reserved_and_cancelled;
SELECT pg_temp.e($$SELECT lockctl.reserve('no-such-pool')$$);
ROLLBACK;
SELECT looked, pg_temp.same('pool-of') FROM lockctl_internal.pool_of('pool-of');
BEGIN;
ALTER TABLE lockctl.pools DROP CONSTRAINT pools_resource_key;
SELECT id IS NULL AS no_id, looked FROM lockctl_internal.pool_of('pool-of');
SELECT lockctl.cancel(lockctl.reserve('pool-of')) AS reserved_and_cancelled;
SELECT pg_temp.e($$SELECT lockctl.reserve('no-such-pool')$$);
-- another unique index on resource, but not a plain one of text's operators
CREATE UNIQUE INDEX pools_resource_pattern ON lockctl.pools (resource text_pattern_ops);
SELECT id IS NULL AS no_id, looked FROM lockctl_internal.pool_of('pool-of');
DROP INDEX lockctl.pools_resource_pattern;
CREATE UNIQUE INDEX pools_resource_expr ON lockctl.pools ((resource || '!'));
SELECT id IS NULL AS no_id, looked FROM lockctl_internal.pool_of('pool-of');
DROP INDEX lockctl.pools_resource_expr;
CREATE UNIQUE INDEX pools_resource_part ON lockctl.pools (resource) WHERE slots > 1;
SELECT id IS NULL AS no_id, looked FROM lockctl_internal.pool_of('pool-of');
DROP INDEX lockctl.pools_resource_part;
-- a plain unique btree on resource, of another name: as good
CREATE UNIQUE INDEX pools_resource_again ON lockctl.pools (resource);
SELECT slots, looked, pg_temp.same('pool-of') FROM lockctl_internal.pool_of('pool-of');
ROLLBACK;
SELECT looked, pg_temp.same('pool-of') FROM lockctl_internal.pool_of('pool-of');

-- A role that may execute it but not read the table: the statement looks
-- (and refuses that role).
CREATE ROLE lockctl_pool_of_reader;
GRANT USAGE ON SCHEMA lockctl_internal TO lockctl_pool_of_reader;
GRANT EXECUTE ON FUNCTION lockctl_internal.pool_of(text) TO lockctl_pool_of_reader;
SET ROLE lockctl_pool_of_reader;
SELECT id IS NULL AS no_id, looked FROM lockctl_internal.pool_of('pool-of');
SELECT pg_temp.e($$SELECT count(*) FROM lockctl.pools$$);
RESET ROLE;
REVOKE ALL ON FUNCTION lockctl_internal.pool_of(text) FROM lockctl_pool_of_reader;
REVOKE ALL ON SCHEMA lockctl_internal FROM lockctl_pool_of_reader;
DROP ROLE lockctl_pool_of_reader;
-- and PUBLIC may not execute it at all
SELECT has_function_privilege('public', 'lockctl_internal.pool_of(text)', 'EXECUTE') AS public_may;

-- reserve's errors are the same either way.
SELECT pg_temp.e($$SELECT lockctl.reserve('no-such-pool')$$);
SELECT lockctl.create_calendar('pool-of-calendar');
SELECT pg_temp.e($$SELECT lockctl.reserve('pool-of-calendar')$$);
SELECT lockctl.drop_calendar('pool-of-calendar');

SELECT lockctl.drop_pool('pool-of');
SELECT lockctl.drop_pool('Pool-Of');
SELECT lockctl.drop_pool(:'longest');
