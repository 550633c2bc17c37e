-- Version checks that understand the statement: what each path of the
-- executor classifies as checked (the version read is compared in WHERE,
-- or assigned from a value the client sent) or blind (the version only
-- bumped from itself, or not touched).  After each statement that must
-- fail, the SQLSTATE is echoed.

CREATE TABLE doc (id int PRIMARY KEY, body text, version bigint NOT NULL DEFAULT 1);
SELECT lockctl.enable_versioning('doc');
INSERT INTO doc (id, body) SELECT g, 'b' || g FROM generate_series(1, 6) g;

--
-- the WHERE clause proves the version read
--
-- SQLAlchemy's server-side recipe: compares, does not assign; the
-- database bumps the version
UPDATE doc SET body = 'x' WHERE id = 1 AND version = 1 RETURNING *;
-- the same again is stale: it matches no row (a stale match, counted)
UPDATE doc SET body = 'y' WHERE id = 1 AND version = 1 RETURNING *;
-- the ORM form: read + 1 assigned, read compared
UPDATE doc SET body = 'y', version = 3 WHERE id = 1 AND version = 2 RETURNING *;
-- TypeORM's update() with the version in its criteria
UPDATE doc SET body = 'z', version = version + 1 WHERE version = 3 AND id = 1 RETURNING *;
-- the constant may be written on the left, cast, or compared as numeric
UPDATE doc SET body = 'w' WHERE 4 = version AND id = 1 RETURNING *;
UPDATE doc SET body = 'v' WHERE version::numeric = 5.0 AND id = 1 RETURNING *;
-- what is assigned with the predicate must be the current or next version
UPDATE doc SET body = 'u', version = 9 WHERE id = 1 AND version = 6;
\echo :LAST_ERROR_SQLSTATE
-- version = version + 5 with the predicate: the database stores current + 1
UPDATE doc SET body = 'u', version = version + 5 WHERE id = 1 AND version = 6 RETURNING *;
-- a predicate under OR proves nothing
UPDATE doc SET body = 'u' WHERE id = 1 AND (version = 7 OR true);
\echo :LAST_ERROR_SQLSTATE
-- nor does one that compares the version with another column, or itself
UPDATE doc SET body = 'u' WHERE id = 1 AND version = length(body) + 6;
\echo :LAST_ERROR_SQLSTATE
UPDATE doc SET body = 'u' WHERE id = 1 AND version = version;
\echo :LAST_ERROR_SQLSTATE
-- an operator that is not a btree equality proves nothing, whatever its name
CREATE FUNCTION always_true(bigint, int) RETURNS bool LANGUAGE sql IMMUTABLE AS 'SELECT true';
CREATE OPERATOR =~= (LEFTARG = bigint, RIGHTARG = int, FUNCTION = always_true,
                     RESTRICT = eqsel);
UPDATE doc SET body = 'u' WHERE id = 1 AND version =~= 1;
\echo :LAST_ERROR_SQLSTATE
DROP OPERATOR =~= (bigint, int);
DROP FUNCTION always_true;
-- Rails' update_counters / increment!: bumped from itself, nothing compared
UPDATE doc SET body = 'r', version = COALESCE(version, 0) + 1 WHERE id = 2;
\echo :LAST_ERROR_SQLSTATE
-- TypeORM's save(): the same
UPDATE doc SET body = 't', version = version + 1 WHERE id IN (2);
\echo :LAST_ERROR_SQLSTATE
-- a value read from the table itself is the version itself
UPDATE doc SET body = 's', version = d2.version FROM doc d2 WHERE d2.id = doc.id AND doc.id = 2;
\echo :LAST_ERROR_SQLSTATE
UPDATE doc SET body = 's', version = (SELECT max(version) FROM doc) WHERE id = 2;
\echo :LAST_ERROR_SQLSTATE
-- a value from another table is a value sent: checked row by row
CREATE TABLE incoming (id int, body text, version bigint);
INSERT INTO incoming VALUES (2, 'from import', 1), (3, 'stale import', 0);
UPDATE doc SET body = i.body, version = i.version FROM incoming i WHERE i.id = doc.id AND doc.id = 2
    RETURNING doc.*;
UPDATE doc SET body = i.body, version = i.version FROM incoming i WHERE i.id = doc.id;
\echo :LAST_ERROR_SQLSTATE
-- version = version overwrites on purpose, and bumps
UPDATE doc SET body = 'admin', version = version WHERE id = 3 RETURNING *;

--
-- prepared statements, generic and custom plans
--
PREPARE checked(int, text, bigint) AS
    UPDATE doc SET body = $2 WHERE id = $1 AND version = $3 RETURNING version;
PREPARE orm_form(int, text, bigint, bigint) AS
    UPDATE doc SET body = $2, version = $4 WHERE id = $1 AND version = $3 RETURNING version;
PREPARE bump(int, text) AS
    UPDATE doc SET body = $2, version = version + 1 WHERE id = $1 RETURNING version;
PREPARE sent(int, text, bigint) AS
    UPDATE doc SET body = $2, version = $3 WHERE id = $1 RETURNING version;
SET plan_cache_mode = force_generic_plan;
EXECUTE checked(4, 'g1', 1);
EXECUTE checked(4, 'g2', 1);
EXECUTE orm_form(4, 'g3', 2, 3);
EXECUTE sent(4, 'g4', 3);
EXECUTE sent(4, 'g5', 3);
\echo :LAST_ERROR_SQLSTATE
EXECUTE bump(4, 'g6');
\echo :LAST_ERROR_SQLSTATE
SET plan_cache_mode = force_custom_plan;
EXECUTE checked(5, 'c1', 1);
EXECUTE checked(5, 'c2', 1);
EXECUTE orm_form(5, 'c3', 2, 3);
EXECUTE sent(5, 'c4', 3);
EXECUTE bump(5, 'c5');
\echo :LAST_ERROR_SQLSTATE
RESET plan_cache_mode;
-- the plan's shape follows the table; the verdict follows the plan
CREATE INDEX doc_version ON doc (id, version);
SET enable_seqscan = off;
EXECUTE checked(5, 'i1', 4);
EXECUTE bump(5, 'i2');
\echo :LAST_ERROR_SQLSTATE
RESET enable_seqscan;
DROP INDEX doc_version;
DEALLOCATE ALL;

--
-- PL/pgSQL and SQL functions: their variables and arguments are values sent
--
CREATE FUNCTION save_doc_plpgsql(i int, b text, v bigint) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    nv bigint;
BEGIN
    UPDATE doc SET body = b WHERE id = i AND version = v RETURNING version INTO nv;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'doc % was changed by someone else', i USING ERRCODE = '40001';
    END IF;
    RETURN nv;
END
$$;
CREATE FUNCTION bump_doc_plpgsql(i int, b text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE doc SET body = b, version = version + 1 WHERE id = i;
END
$$;
CREATE FUNCTION save_doc_sql(i int, b text, v bigint) RETURNS bigint
LANGUAGE sql AS $$
    UPDATE doc SET body = b WHERE id = i AND version = v RETURNING version
$$;
CREATE FUNCTION bump_doc_sql(i int, b text) RETURNS bigint
LANGUAGE sql AS $$
    UPDATE doc SET body = b, version = version + 1 WHERE id = i RETURNING version
$$;
SELECT save_doc_plpgsql(6, 'p1', 1);
SELECT save_doc_plpgsql(6, 'p2', 1);
\echo :LAST_ERROR_SQLSTATE
SELECT bump_doc_plpgsql(6, 'p3');
\echo :LAST_ERROR_SQLSTATE
SELECT save_doc_sql(6, 's1', 2);
SELECT save_doc_sql(6, 's2', 2);
SELECT bump_doc_sql(6, 's3');
\echo :LAST_ERROR_SQLSTATE
-- the same statement run again in one function keeps its verdict
DO $$
BEGIN
    FOR k IN 1..3 LOOP
        PERFORM save_doc_plpgsql(6, 'loop', 2 + k);
    END LOOP;
END
$$;
SELECT id, body, version FROM doc WHERE id = 6;

--
-- nested statements each have their own verdict
--
CREATE TABLE audit (id int PRIMARY KEY, n int, version int);
SELECT lockctl.enable_versioning('audit');
INSERT INTO audit VALUES (1, 0, NULL);
-- a checked outer statement that calls a blind inner one: the inner fails
CREATE FUNCTION audit_blind() RETURNS text LANGUAGE sql AS $$
    UPDATE audit SET n = n + 1 WHERE id = 1 RETURNING 'audited'
$$;
CREATE FUNCTION audit_checked(v int) RETURNS text LANGUAGE sql AS $$
    UPDATE audit SET n = n + 1 WHERE id = 1 AND version = v RETURNING 'audited'
$$;
UPDATE doc SET body = audit_blind() WHERE id = 1 AND version = 7;
\echo :LAST_ERROR_SQLSTATE
-- a blind outer statement around a checked inner one: the outer fails
UPDATE doc SET body = audit_checked(1) WHERE id = 1;
\echo :LAST_ERROR_SQLSTATE
-- both checked: both pass
UPDATE doc SET body = audit_checked(1) WHERE id = 1 AND version = 7 RETURNING *;
SELECT * FROM audit;
-- a user trigger that writes another versioned table, checked, from a
-- blind statement's row: the trigger's statement passes, the outer fails
CREATE FUNCTION doc_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE audit SET n = n + 1 WHERE id = 1 AND version = (SELECT a.version FROM audit a WHERE a.id = 1) + 0;
    RETURN NEW;
END
$$;
CREATE FUNCTION doc_touch_checked() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v int;
BEGIN
    SELECT version INTO v FROM audit WHERE id = 1;
    UPDATE audit SET n = n + 1 WHERE id = 1 AND version = v;
    RETURN NEW;
END
$$;
-- named to fire before lockctl_version
CREATE TRIGGER a_touch BEFORE UPDATE ON doc FOR EACH ROW EXECUTE FUNCTION doc_touch_checked();
UPDATE doc SET body = 'blind outer' WHERE id = 1;
\echo :LAST_ERROR_SQLSTATE
UPDATE doc SET body = 'checked outer' WHERE id = 1 AND version = 8 RETURNING *;
SELECT * FROM audit;
DROP TRIGGER a_touch ON doc;
-- a version compared with a subquery's value is not followed: refused
CREATE TRIGGER a_touch BEFORE UPDATE ON doc FOR EACH ROW EXECUTE FUNCTION doc_touch();
UPDATE doc SET body = 'checked outer' WHERE id = 1 AND version = 9;
\echo :LAST_ERROR_SQLSTATE
DROP TRIGGER a_touch ON doc;

--
-- writable CTEs
--
WITH u AS (UPDATE doc SET body = 'cte' WHERE id = 2 AND version = 2 RETURNING id, version)
SELECT * FROM u;
WITH u AS (UPDATE doc SET body = 'cte blind' WHERE id = 2 RETURNING id, version)
SELECT * FROM u;
\echo :LAST_ERROR_SQLSTATE
-- two CTEs: one checked, one blind
WITH a AS (UPDATE doc SET body = 'a' WHERE id = 2 AND version = 3 RETURNING id),
     b AS (UPDATE audit SET n = 0 WHERE id = 1 RETURNING id)
SELECT (SELECT count(*) FROM a) AS a, (SELECT count(*) FROM b) AS b;
\echo :LAST_ERROR_SQLSTATE
WITH a AS (UPDATE doc SET body = 'a' WHERE id = 2 AND version = 3 RETURNING id),
     b AS (UPDATE audit SET n = 0 WHERE id = 1 AND version = 4 RETURNING id)
SELECT (SELECT count(*) FROM a) AS a, (SELECT count(*) FROM b) AS b;
-- a CTE that reads the version and an UPDATE that assigns it: the version
-- itself, through the CTE
WITH cur AS (SELECT id, version FROM doc WHERE id = 2)
UPDATE doc SET body = 'via cte', version = cur.version FROM cur WHERE cur.id = doc.id;
\echo :LAST_ERROR_SQLSTATE
WITH cur AS MATERIALIZED (SELECT id, version FROM doc WHERE id = 2)
UPDATE doc SET body = 'via cte', version = cur.version FROM cur WHERE cur.id = doc.id;
\echo :LAST_ERROR_SQLSTATE
-- EXPLAIN alone runs nothing; EXPLAIN ANALYZE runs the check
EXPLAIN (COSTS OFF) UPDATE doc SET body = 'e' WHERE id = 2;
EXPLAIN (COSTS OFF, ANALYZE, TIMING OFF, SUMMARY OFF) UPDATE doc SET body = 'e' WHERE id = 2;
\echo :LAST_ERROR_SQLSTATE

--
-- INSERT ... ON CONFLICT DO UPDATE
--
INSERT INTO doc VALUES (2, 'upsert', 4) ON CONFLICT (id)
    DO UPDATE SET body = excluded.body, version = excluded.version RETURNING *;
INSERT INTO doc VALUES (2, 'stale upsert', 4) ON CONFLICT (id)
    DO UPDATE SET body = excluded.body, version = excluded.version RETURNING *;
\echo :LAST_ERROR_SQLSTATE
-- compared in its WHERE: a stale one updates nothing
INSERT INTO doc VALUES (2, 'upsert where', 5) ON CONFLICT (id)
    DO UPDATE SET body = excluded.body WHERE doc.version = excluded.version RETURNING *;
INSERT INTO doc VALUES (2, 'stale upsert where', 5) ON CONFLICT (id)
    DO UPDATE SET body = excluded.body WHERE doc.version = excluded.version RETURNING *;
-- bumped from itself: blind
INSERT INTO doc VALUES (2, 'upsert bump') ON CONFLICT (id)
    DO UPDATE SET body = excluded.body, version = doc.version + 1;
\echo :LAST_ERROR_SQLSTATE

--
-- MERGE
--
MERGE INTO doc d USING (VALUES (3, 'merged', 2)) s(id, body, v) ON d.id = s.id AND d.version = s.v
    WHEN MATCHED THEN UPDATE SET body = s.body;
SELECT * FROM doc WHERE id = 3;
-- stale: no row matches, nothing changes
MERGE INTO doc d USING (VALUES (3, 'merged stale', 2)) s(id, body, v) ON d.id = s.id AND d.version = s.v
    WHEN MATCHED THEN UPDATE SET body = s.body;
SELECT * FROM doc WHERE id = 3;
-- the version in the action's condition
MERGE INTO doc d USING (VALUES (3, 'merged cond', 3)) s(id, body, v) ON d.id = s.id
    WHEN MATCHED AND d.version = s.v THEN UPDATE SET body = s.body;
SELECT * FROM doc WHERE id = 3;
-- the version assigned from the source: checked row by row
MERGE INTO doc d USING incoming s ON d.id = s.id
    WHEN MATCHED THEN UPDATE SET body = s.body, version = s.version;
\echo :LAST_ERROR_SQLSTATE
-- blind
MERGE INTO doc d USING (VALUES (3, 'merged blind')) s(id, body) ON d.id = s.id
    WHEN MATCHED THEN UPDATE SET body = s.body;
\echo :LAST_ERROR_SQLSTATE
MERGE INTO doc d USING (VALUES (3, 'merged bump')) s(id, body) ON d.id = s.id
    WHEN MATCHED THEN UPDATE SET body = s.body, version = d.version + 1;
\echo :LAST_ERROR_SQLSTATE
-- one blind action makes every UPDATE of the statement blind
MERGE INTO doc d USING (VALUES (3, 'two', 4)) s(id, body, v) ON d.id = s.id
    WHEN MATCHED AND d.version = s.v THEN UPDATE SET body = s.body
    WHEN MATCHED THEN UPDATE SET body = 'other';
\echo :LAST_ERROR_SQLSTATE
-- DELETE actions
MERGE INTO doc d USING (VALUES (3)) s(id) ON d.id = s.id
    WHEN MATCHED THEN DELETE;
\echo :LAST_ERROR_SQLSTATE
MERGE INTO doc d USING (VALUES (3, 4)) s(id, v) ON d.id = s.id
    WHEN MATCHED AND d.version = s.v THEN DELETE;
SELECT count(*) AS doc3 FROM doc WHERE id = 3;

--
-- DELETE
--
-- without the version: refused in mode strict
DELETE FROM doc WHERE id = 4;
\echo :LAST_ERROR_SQLSTATE
DELETE FROM doc;
\echo :LAST_ERROR_SQLSTATE
-- stale: matches nothing (a stale match)
DELETE FROM doc WHERE id = 4 AND version = 1;
-- current: deleted
DELETE FROM doc WHERE id = 4 AND version = 4 RETURNING *;
-- a DELETE that reaches no row refuses nothing
DELETE FROM doc WHERE id = 999;
-- mode orm: ORMs that delete by key alone
CREATE TABLE ormdoc (id int PRIMARY KEY, lock_version int NOT NULL DEFAULT 0);
SELECT lockctl.enable_versioning('ormdoc', 'lock_version', 'orm');
INSERT INTO ormdoc VALUES (1), (2);
DELETE FROM ormdoc WHERE id = 1 RETURNING *;
DELETE FROM ormdoc WHERE id = 2 AND lock_version = 0 RETURNING *;
-- referential actions follow a checked write: they pass and bump
CREATE TABLE parent (id int PRIMARY KEY, version int);
CREATE TABLE child (id int PRIMARY KEY, parent_id int REFERENCES parent ON DELETE CASCADE ON UPDATE CASCADE,
                    version int);
SELECT lockctl.enable_versioning('parent');
SELECT lockctl.enable_versioning('child');
INSERT INTO parent VALUES (1, NULL), (2, NULL);
INSERT INTO child VALUES (10, 1, NULL), (20, 2, NULL);
UPDATE parent SET id = 3 WHERE id = 1 AND version = 1;
SELECT * FROM child ORDER BY id;
DELETE FROM parent WHERE id = 2 AND version = 1;
SELECT * FROM child ORDER BY id;
-- but a blind write of the child itself is still refused
DELETE FROM child WHERE id = 10;
\echo :LAST_ERROR_SQLSTATE

--
-- mode server: the database keeps the counter, the client compares it
--
CREATE TABLE srv (id int PRIMARY KEY, body text, version int);
SELECT lockctl.enable_versioning('srv', 'version', 'server');
INSERT INTO srv (id, body) VALUES (1, 'a'), (2, 'b');
UPDATE srv SET body = 'x' WHERE id = 1 AND version = 1 RETURNING *;
UPDATE srv SET body = 'y', version = version + 1 WHERE id = 1 AND version = 2 RETURNING *;
-- assigning the version is refused, with or without the predicate
UPDATE srv SET body = 'z', version = 4 WHERE id = 1 AND version = 3;
\echo :LAST_ERROR_SQLSTATE
UPDATE srv SET body = 'z', version = 3 WHERE id = 1;
\echo :LAST_ERROR_SQLSTATE
UPDATE srv SET body = 'z' WHERE id = 1;
\echo :LAST_ERROR_SQLSTATE
DELETE FROM srv WHERE id = 2;
\echo :LAST_ERROR_SQLSTATE
-- update_versioned works in every mode
SELECT lockctl.update_versioned('srv', 1, 3, '{"body": "uv"}');
SELECT lockctl.update_versioned('srv', 1, 3, '{"body": "uv"}');
\echo :LAST_ERROR_SQLSTATE
DELETE FROM srv WHERE id = 2 AND version = 1 RETURNING *;
SELECT * FROM srv;

--
-- partitioned tables
--
CREATE TABLE pdoc (id int, region text, body text, version int, PRIMARY KEY (id, region))
    PARTITION BY LIST (region);
CREATE TABLE pdoc_eu PARTITION OF pdoc FOR VALUES IN ('eu');
CREATE TABLE pdoc_us PARTITION OF pdoc FOR VALUES IN ('us');
SELECT lockctl.enable_versioning('pdoc');
INSERT INTO pdoc VALUES (1, 'eu', 'a', NULL), (2, 'us', 'b', NULL), (3, 'us', 'c', NULL);
UPDATE pdoc SET body = 'x' WHERE id = 1 AND version = 1 RETURNING tableoid::regclass, *;
UPDATE pdoc SET body = 'x' WHERE id = 2;
\echo :LAST_ERROR_SQLSTATE
-- a row moved to another partition by a checked UPDATE keeps its new version
UPDATE pdoc SET region = 'eu' WHERE id = 2 AND version = 1 RETURNING tableoid::regclass, *;
UPDATE pdoc SET region = 'us' WHERE id = 2;
\echo :LAST_ERROR_SQLSTATE
-- through a partition directly
UPDATE pdoc_us SET body = 'y' WHERE id = 3 AND version = 1 RETURNING *;
DELETE FROM pdoc_us WHERE id = 3;
\echo :LAST_ERROR_SQLSTATE
-- ON CONFLICT into the partitioned table: the routed partition gets the
-- statement's verdict
INSERT INTO pdoc VALUES (1, 'eu', 'upsert', 2) ON CONFLICT (id, region)
    DO UPDATE SET body = excluded.body, version = excluded.version RETURNING tableoid::regclass, *;
INSERT INTO pdoc VALUES (1, 'eu', 'upsert', 2) ON CONFLICT (id, region)
    DO UPDATE SET body = excluded.body, version = excluded.version;
\echo :LAST_ERROR_SQLSTATE
INSERT INTO pdoc VALUES (1, 'eu', 'upsert blind') ON CONFLICT (id, region)
    DO UPDATE SET body = excluded.body;
\echo :LAST_ERROR_SQLSTATE
-- MERGE into the partitioned table, moving a row
MERGE INTO pdoc d USING (VALUES (1, 'eu', 3)) s(id, region, v) ON d.id = s.id AND d.region = s.region
    WHEN MATCHED AND d.version = s.v THEN UPDATE SET region = 'us';
SELECT tableoid::regclass, * FROM pdoc ORDER BY id;
DELETE FROM pdoc WHERE id = 1 AND version = 4;
SELECT tableoid::regclass, * FROM pdoc ORDER BY id;

--
-- the counters: stale matches and checked deletes
--
SELECT table_name, checked_updates, conflicts, stale_matches, blind_writes,
       checked_deletes, inserts
  FROM lockctl.versioned_tables ORDER BY table_name::text;

DROP TABLE doc, incoming, audit, ormdoc, child, parent, srv, pdoc;
DROP FUNCTION save_doc_plpgsql, bump_doc_plpgsql, save_doc_sql, bump_doc_sql,
    audit_blind, audit_checked, doc_touch, doc_touch_checked;
