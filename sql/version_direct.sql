-- A checked UPDATE whose version bump the statement makes itself
-- (src/version_direct.c): the same rows, versions, errors and counters as
-- through the row trigger, on every path where it is taken and where it is
-- not.  After each statement that must fail, the SQLSTATE is echoed.

CREATE TABLE vd (id int PRIMARY KEY, val text, version int NOT NULL DEFAULT 1);
SELECT lockctl.enable_versioning('vd');
INSERT INTO vd (id, val) SELECT g, 'v' || g FROM generate_series(1, 4) g;

-- compared, not assigned (SQLAlchemy's server-side recipe): bumped by one
PREPARE upd(int, text, int) AS
    UPDATE vd SET val = $2 WHERE id = $1 AND version = $3 RETURNING *;
EXECUTE upd(1, 'a', 1);
-- stale: no row
EXECUTE upd(1, 'b', 1);
EXECUTE upd(1, 'b', 2);
-- the same under a generic plan
SET plan_cache_mode = force_generic_plan;
EXECUTE upd(1, 'c', 3);
EXECUTE upd(1, 'c', 3);
RESET plan_cache_mode;
-- a NULL version matches nothing
EXECUTE upd(1, 'd', NULL);

-- the ORM form: the version read + 1 assigned, the version read compared
PREPARE orm(int, text, int, int) AS
    UPDATE vd SET val = $2, version = $4 WHERE id = $1 AND version = $3 RETURNING *;
EXECUTE orm(2, 'a', 1, 2);
-- the version read itself assigned (strict mode's form): the next one stored
EXECUTE orm(2, 'b', 2, 2);
-- any other value assigned: refused by the trigger, as ever
EXECUTE orm(2, 'c', 3, 7);
\echo :LAST_ERROR_SQLSTATE
EXECUTE orm(2, 'c', 3, NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM vd WHERE id = 2;

-- several rows of one version in one statement, each bumped from its own
UPDATE vd SET val = 'm' WHERE version = 1 RETURNING *;

-- in PL/pgSQL, with the version in a variable
DO $$
DECLARE
    v int;
BEGIN
    SELECT version INTO v FROM vd WHERE id = 3;
    UPDATE vd SET val = 'plpgsql' WHERE id = 3 AND version = v;
END
$$;
SELECT * FROM vd WHERE id = 3;

-- at the type's maximum: the trigger's own error, not an overflow
SET session_replication_role = replica;
UPDATE vd SET version = 2147483647 WHERE id = 4;
RESET session_replication_role;
EXECUTE upd(4, 'max', 2147483647);
\echo :LAST_ERROR_SQLSTATE
UPDATE vd SET version = 2147483646 WHERE id = 4 AND version = 2147483647;
\echo :LAST_ERROR_SQLSTATE
SET session_replication_role = replica;
UPDATE vd SET version = 2147483646 WHERE id = 4;
RESET session_replication_role;
-- one below it: bumped to it
EXECUTE upd(4, 'max', 2147483646);

-- where the trigger does not fire, nothing is bumped
SET session_replication_role = replica;
EXECUTE upd(1, 'replica', 4);
RESET session_replication_role;
ALTER TABLE vd DISABLE TRIGGER lockctl_version;
EXECUTE upd(1, 'disabled', 4);
ALTER TABLE vd ENABLE TRIGGER lockctl_version;

-- beside another BEFORE ROW UPDATE trigger (the row trigger is kept)
CREATE FUNCTION vd_mark() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.val := NEW.val || '!';
    RETURN NEW;
END
$$;
CREATE TRIGGER vd_mark BEFORE UPDATE ON vd FOR EACH ROW EXECUTE FUNCTION vd_mark();
EXECUTE upd(1, 'marked', 4);
DROP TRIGGER vd_mark ON vd;

-- smallint and bigint version columns
CREATE TABLE vd2 (id int PRIMARY KEY, version smallint NOT NULL DEFAULT 32765);
CREATE TABLE vd8 (id int PRIMARY KEY, version bigint NOT NULL DEFAULT 9223372036854775806);
SELECT lockctl.enable_versioning('vd2'), lockctl.enable_versioning('vd8');
INSERT INTO vd2 VALUES (1);
INSERT INTO vd8 VALUES (1);
UPDATE vd2 SET id = 1 WHERE id = 1 AND version = 32765 RETURNING *;
UPDATE vd2 SET id = 1 WHERE id = 1 AND version = 32766 RETURNING *;
UPDATE vd2 SET id = 1 WHERE id = 1 AND version = 32767 RETURNING *;
\echo :LAST_ERROR_SQLSTATE
UPDATE vd8 SET id = 1 WHERE id = 1 AND version = 9223372036854775806 RETURNING *;
UPDATE vd8 SET id = 1 WHERE id = 1 AND version = 9223372036854775807 RETURNING *;
\echo :LAST_ERROR_SQLSTATE

-- the counters: every checked row, every stale statement, as the trigger
-- counts them
SELECT table_name, checked_updates, conflicts, stale_matches
  FROM lockctl.versioned_tables WHERE table_name::text IN ('vd', 'vd2', 'vd8')
 ORDER BY 1;
-- EXPLAIN ANALYZE shows the trigger's calls (it is kept there); its
-- trigger line alone, the same in every major
CREATE FUNCTION vd_explain() RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
    l text;
BEGIN
    FOR l IN EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF)
             UPDATE vd SET val = 'explained' WHERE id = 2 AND version = 3
    LOOP
        IF l LIKE 'Trigger%' THEN
            RETURN NEXT l;
        END IF;
    END LOOP;
END
$$;
SELECT * FROM vd_explain();
SELECT * FROM vd ORDER BY id;

-- The bump is the version compared + 1 only where the comparison is an
-- integer equality: an equality of another btree family (here one that
-- equates the versions of the same tens) keeps the trigger, and the row
-- stores its own version + 1.
CREATE FUNCTION vd_tens_cmp(int, int) RETURNS int LANGUAGE sql IMMUTABLE
    AS 'SELECT btint4cmp($1 / 10, $2 / 10)';
CREATE FUNCTION vd_tens_lt(int, int) RETURNS bool LANGUAGE sql IMMUTABLE AS 'SELECT $1 / 10 < $2 / 10';
CREATE FUNCTION vd_tens_le(int, int) RETURNS bool LANGUAGE sql IMMUTABLE AS 'SELECT $1 / 10 <= $2 / 10';
-- (not in SQL, which the planner would inline)
CREATE FUNCTION vd_tens_eq(int, int) RETURNS bool LANGUAGE plpgsql IMMUTABLE
    AS 'BEGIN RETURN $1 / 10 = $2 / 10; END';
CREATE FUNCTION vd_tens_ge(int, int) RETURNS bool LANGUAGE sql IMMUTABLE AS 'SELECT $1 / 10 >= $2 / 10';
CREATE FUNCTION vd_tens_gt(int, int) RETURNS bool LANGUAGE sql IMMUTABLE AS 'SELECT $1 / 10 > $2 / 10';
CREATE OPERATOR <% (LEFTARG = int, RIGHTARG = int, FUNCTION = vd_tens_lt);
CREATE OPERATOR <=% (LEFTARG = int, RIGHTARG = int, FUNCTION = vd_tens_le);
CREATE OPERATOR =% (LEFTARG = int, RIGHTARG = int, FUNCTION = vd_tens_eq);
CREATE OPERATOR >=% (LEFTARG = int, RIGHTARG = int, FUNCTION = vd_tens_ge);
CREATE OPERATOR >% (LEFTARG = int, RIGHTARG = int, FUNCTION = vd_tens_gt);
CREATE OPERATOR CLASS vd_tens_ops FOR TYPE int USING btree AS
    OPERATOR 1 <%, OPERATOR 2 <=%, OPERATOR 3 =%, OPERATOR 4 >=%, OPERATOR 5 >%,
    FUNCTION 1 vd_tens_cmp(int, int);
CREATE TABLE vdt (id int PRIMARY KEY, version int NOT NULL);
SELECT lockctl.enable_versioning('vdt');
INSERT INTO vdt VALUES (1, 12);
PREPARE tens(int) AS UPDATE vdt SET id = 1 WHERE id = 1 AND version =% $1 RETURNING *;
EXECUTE tens(10);
SET plan_cache_mode = force_generic_plan;
EXECUTE tens(10);
RESET plan_cache_mode;
DEALLOCATE tens;
DROP TABLE vdt;
DROP OPERATOR CLASS vd_tens_ops USING btree;
DROP OPERATOR FAMILY vd_tens_ops USING btree;
DROP OPERATOR <% (int, int), <=% (int, int), =% (int, int), >=% (int, int), >% (int, int);
DROP FUNCTION vd_tens_cmp(int, int), vd_tens_lt(int, int), vd_tens_le(int, int),
    vd_tens_eq(int, int), vd_tens_ge(int, int), vd_tens_gt(int, int);

-- lockctl_internal.version_next() is the projection's own: called any
-- other way it is refused, even by a superuser, and even inside an UPDATE
-- of a versioned table that lockctl checks through it
SELECT lockctl_internal.version_next(1, 1, '(0,1)');
\echo :LAST_ERROR_SQLSTATE
UPDATE vd SET val = lockctl_internal.version_next(version, version, ctid)::text,
              version = version
 WHERE id = 1 RETURNING *;
\echo :LAST_ERROR_SQLSTATE

DROP TABLE vd, vd2, vd8;
DROP FUNCTION vd_mark(), vd_explain();
