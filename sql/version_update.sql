-- lockctl.update_versioned(): results, errors and counters, through
-- custom and generic plans, stale, ahead and missing rows, errors raised
-- after the row was written, and the tables it refuses.  Any faster path
-- for its UPDATE must keep this output byte for byte.
-- After each statement that must fail, the SQLSTATE is echoed.

CREATE FUNCTION uv_counts(tbl regclass) RETURNS TABLE (checked bigint,
    conflicts bigint, stale bigint, blind bigint)
    LANGUAGE sql AS $$
    SELECT checked_updates, conflicts, stale_matches, blind_writes
      FROM lockctl.versioned_tables WHERE table_name = tbl $$;

CREATE TABLE uv (id int PRIMARY KEY, val text NOT NULL, n int CHECK (n >= 0),
                 version bigint NOT NULL DEFAULT 1);
SELECT lockctl.enable_versioning('uv');
INSERT INTO uv (id, val) SELECT g, 'v' || g FROM generate_series(1, 3) g;

-- ten runs: the custom plans, then the generic plan, each stale once
SELECT lockctl.update_versioned('uv', 1, g, jsonb_build_object('val', 'a' || g))
  FROM generate_series(1, 10) g;
SELECT lockctl.update_versioned('uv', 1, 5, '{"val": "stale"}');
\echo :LAST_ERROR_SQLSTATE
SELECT lockctl.update_versioned('uv', 1, 11, '{"val": "b"}');
SELECT lockctl.update_versioned('uv', 1, 13, '{"val": "ahead"}');
\echo :LAST_ERROR_SQLSTATE
SELECT lockctl.update_versioned('uv', 1, 12, '{"val": "c"}');
SELECT * FROM uv ORDER BY id;
SELECT * FROM uv_counts('uv');

-- no such row: P0002, nothing counted (and again, the plans kept)
SELECT lockctl.update_versioned('uv', 99, 1, '{"val": "x"}');
\echo :LAST_ERROR_SQLSTATE
SELECT lockctl.update_versioned('uv', 99, 1, '{"val": "x"}');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM uv_counts('uv');

-- a constraint fails after the check: counted as checked, as the trigger
-- counted it before the constraint; stale and failing: the conflict first
SELECT lockctl.update_versioned('uv', 2, 1, '{"n": -1}');
\echo :LAST_ERROR_SQLSTATE
SELECT lockctl.update_versioned('uv', 2, 7, '{"n": -1}');
\echo :LAST_ERROR_SQLSTATE
SELECT lockctl.update_versioned('uv', 2, 1, '{"val": null}');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM uv_counts('uv');

-- caught in PL/pgSQL: the conflict, then the retry with the version read
DO $$
DECLARE
    v bigint;
BEGIN
    BEGIN
        PERFORM lockctl.update_versioned('uv', 3, 9, '{"val": "lost"}');
    EXCEPTION WHEN serialization_failure THEN
        SELECT version INTO v FROM uv WHERE id = 3;
        RAISE NOTICE 'conflict, retried: %',
            lockctl.update_versioned('uv', 3, v, '{"val": "retried"}');
    END;
END $$;
SELECT * FROM uv WHERE id = 3;
SELECT * FROM uv_counts('uv');

-- a NULL version (a nullable column): a conflict, in every form
CREATE TABLE uvn (id int PRIMARY KEY, version int);
SELECT lockctl.enable_versioning('uvn');
INSERT INTO uvn VALUES (1, NULL);
UPDATE uvn SET version = NULL WHERE id = 1;
SELECT lockctl.update_versioned('uvn', 1, 1, '{}');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM uv_counts('uvn');

-- at the type's maximum: the trigger's 22003
CREATE TABLE uvs (id int PRIMARY KEY, version smallint NOT NULL);
SELECT lockctl.enable_versioning('uvs', 'version', 'server');
INSERT INTO uvs VALUES (1, 32766);
SELECT lockctl.update_versioned('uvs', 1, 32766, '{}');
SELECT lockctl.update_versioned('uvs', 1, 32767, '{}');
\echo :LAST_ERROR_SQLSTATE
SELECT lockctl.update_versioned('uvs', 1, 32766, '{}');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM uvs;
SELECT * FROM uv_counts('uvs');

-- statement-level triggers fire once per call, stale or missing too; a
-- BEFORE ROW trigger of the user's fires once per row it reaches
CREATE TABLE uvt (id int PRIMARY KEY, val text, version bigint NOT NULL DEFAULT 1);
SELECT lockctl.enable_versioning('uvt');
INSERT INTO uvt (id, val) VALUES (1, 'a');
CREATE FUNCTION uvt_note() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE NOTICE '% % %', TG_NAME, TG_WHEN, TG_LEVEL;
    IF TG_LEVEL = 'ROW' THEN
        RETURN NEW;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER uvt_stmt BEFORE UPDATE ON uvt
    FOR EACH STATEMENT EXECUTE FUNCTION uvt_note();
SELECT lockctl.update_versioned('uvt', 1, 1, '{"val": "b"}');
SELECT lockctl.update_versioned('uvt', 1, 1, '{"val": "c"}');
\echo :LAST_ERROR_SQLSTATE
SELECT lockctl.update_versioned('uvt', 2, 1, '{"val": "c"}');
\echo :LAST_ERROR_SQLSTATE
DROP TRIGGER uvt_stmt ON uvt;
CREATE TRIGGER a_uvt_row BEFORE UPDATE ON uvt
    FOR EACH ROW EXECUTE FUNCTION uvt_note();
SELECT lockctl.update_versioned('uvt', 1, 2, '{"val": "d"}');
SELECT lockctl.update_versioned('uvt', 1, 2, '{"val": "e"}');
\echo :LAST_ERROR_SQLSTATE
DROP TRIGGER a_uvt_row ON uvt;
CREATE TRIGGER uvt_after AFTER UPDATE ON uvt
    FOR EACH ROW EXECUTE FUNCTION uvt_note();
SELECT lockctl.update_versioned('uvt', 1, 3, '{"val": "f"}');
SELECT lockctl.update_versioned('uvt', 1, 3, '{"val": "g"}');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM uvt;
SELECT * FROM uv_counts('uvt');

-- nested: an AFTER trigger of one table calls update_versioned on another
CREATE TABLE uvlog (id int PRIMARY KEY, hits int NOT NULL, version bigint NOT NULL DEFAULT 1);
SELECT lockctl.enable_versioning('uvlog');
INSERT INTO uvlog (id, hits) VALUES (1, 0);
CREATE FUNCTION uvt_log() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    r uvlog;
BEGIN
    SELECT * INTO r FROM uvlog WHERE id = 1;
    PERFORM lockctl.update_versioned('uvlog', 1,
        CASE WHEN NEW.val = 'stale' THEN r.version - 1 ELSE r.version END,
        jsonb_build_object('hits', r.hits + 1));
    RETURN NULL;
END $$;
DROP TRIGGER uvt_after ON uvt;
CREATE TRIGGER uvt_log AFTER UPDATE ON uvt FOR EACH ROW EXECUTE FUNCTION uvt_log();
SELECT lockctl.update_versioned('uvt', 1, 4, '{"val": "h"}');
SELECT lockctl.update_versioned('uvt', 1, 5, '{"val": "i"}');
SELECT lockctl.update_versioned('uvt', 1, 6, '{"val": "stale"}');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM uvt;
SELECT * FROM uvlog;
SELECT * FROM uv_counts('uvt');
SELECT * FROM uv_counts('uvlog');

-- row-level security: a row the caller may not see does not exist
CREATE ROLE regress_uv_user;
CREATE TABLE uvr (id int PRIMARY KEY, owner name NOT NULL, val text,
                  version bigint NOT NULL DEFAULT 1);
SELECT lockctl.enable_versioning('uvr');
INSERT INTO uvr (id, owner, val) VALUES (1, 'regress_uv_user', 'a'), (2, 'nobody', 'b');
ALTER TABLE uvr ENABLE ROW LEVEL SECURITY;
CREATE POLICY uvr_own ON uvr USING (owner = current_user);
GRANT SELECT, UPDATE ON uvr TO regress_uv_user;
SET ROLE regress_uv_user;
SELECT lockctl.update_versioned('uvr', 1, 1, '{"val": "x"}');
SELECT lockctl.update_versioned('uvr', 1, 1, '{"val": "y"}');
\echo :LAST_ERROR_SQLSTATE
SELECT lockctl.update_versioned('uvr', 2, 1, '{"val": "y"}');
\echo :LAST_ERROR_SQLSTATE
SELECT lockctl.update_versioned('uvr', 1, 2, '{"owner": "nobody"}');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT * FROM uvr ORDER BY id;
SELECT * FROM uv_counts('uvr');

-- a temporary table: checked, not counted
CREATE TEMP TABLE uvtmp (id int PRIMARY KEY, version int NOT NULL DEFAULT 1);
SELECT lockctl.enable_versioning('uvtmp');
INSERT INTO uvtmp VALUES (1);
SELECT lockctl.update_versioned('uvtmp', 1, 1, '{}');
-- (no CONTEXT: it names the session's temporary schema, pg_temp_N)
\set SHOW_CONTEXT never
SELECT lockctl.update_versioned('uvtmp', 1, 1, '{}');
\echo :LAST_ERROR_SQLSTATE
\set SHOW_CONTEXT errors
SELECT * FROM uvtmp;

-- the table changes between calls: a new column, then versioning again
ALTER TABLE uv ADD COLUMN note text;
SELECT lockctl.update_versioned('uv', 1, 13, '{"note": "n"}');
SELECT lockctl.update_versioned('uv', 1, 13, '{"note": "n"}');
\echo :LAST_ERROR_SQLSTATE
SELECT lockctl.disable_versioning('uv');
SELECT lockctl.enable_versioning('uv', 'version', 'orm');
SELECT lockctl.update_versioned('uv', 1, 14, '{"note": "o"}');
SELECT lockctl.update_versioned('uv', 1, 16, '{"note": "o"}');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM uv WHERE id = 1;
SELECT * FROM uv_counts('uv');

-- the version column in the primary key: update_versioned's UPDATE then
-- compares the version in its WHERE too, and the expected version must
-- still be the current one, not the next (the check the direct path of a
-- checked UPDATE would otherwise take over)
CREATE TABLE uvpk (id int, version int NOT NULL DEFAULT 1, val text,
                   PRIMARY KEY (id, version));
SELECT lockctl.enable_versioning('uvpk');
INSERT INTO uvpk VALUES (1, 5, 'a');
SELECT lockctl.update_versioned('uvpk', '{"id": 1, "version": 5}'::jsonb, 6, '{"val": "b"}');
\echo :LAST_ERROR_SQLSTATE
SELECT lockctl.update_versioned('uvpk', '{"id": 1, "version": 5}'::jsonb, 5, '{"val": "c"}');
SELECT * FROM uvpk;

DROP TABLE uv, uvn, uvs, uvt, uvlog, uvr, uvtmp, uvpk;
DROP FUNCTION uv_counts(regclass), uvt_note(), uvt_log();
DROP ROLE regress_uv_user;
