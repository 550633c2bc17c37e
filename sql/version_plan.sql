-- A generic plan's checked UPDATE, run again and again: what was found of
-- it at its first run is kept (src/version_plan.c), and what depends on
-- each run (the parameters, session_replication_role, EXPLAIN ANALYZE)
-- is still decided at each run; a change of the table is seen at the next
-- run.  The same rows, versions, errors and counters as through the row
-- trigger.  After each statement that must fail, the SQLSTATE is echoed.

CREATE TABLE vp (id int PRIMARY KEY, val text, version int NOT NULL DEFAULT 1);
SELECT lockctl.enable_versioning('vp');
INSERT INTO vp (id, val) SELECT g, 'v' || g FROM generate_series(1, 3) g;
SET plan_cache_mode = force_generic_plan;

-- compared, not assigned: bumped by one at each run
PREPARE upd(int, text, int) AS
    UPDATE vp SET val = $2 WHERE id = $1 AND version = $3 RETURNING *;
EXECUTE upd(1, 'a', 1);
EXECUTE upd(1, 'b', 2);
EXECUTE upd(1, 'c', 3);
-- stale: no row
EXECUTE upd(1, 'd', 3);
-- a NULL version matches nothing
EXECUTE upd(1, 'd', NULL);

-- the ORM form: the next version sent, then the version read itself
PREPARE orm(int, text, int, int) AS
    UPDATE vp SET val = $2, version = $4 WHERE id = $1 AND version = $3 RETURNING *;
EXECUTE orm(2, 'a', 1, 2);
EXECUTE orm(2, 'b', 2, 3);
EXECUTE orm(2, 'c', 3, 3);
-- any other value assigned: refused by the trigger, run after run
EXECUTE orm(2, 'd', 4, 7);
\echo :LAST_ERROR_SQLSTATE
EXECUTE orm(2, 'd', 4, NULL);
\echo :LAST_ERROR_SQLSTATE
EXECUTE orm(2, 'd', 4, 5);

-- where the trigger does not fire in this session, nothing is bumped
SET session_replication_role = replica;
EXECUTE upd(1, 'replica', 4);
EXECUTE orm(2, 'replica', 5, 7);
RESET session_replication_role;
EXECUTE upd(1, 'origin', 4);

-- EXPLAIN ANALYZE of the kept plan: the trigger fires, and shows
CREATE FUNCTION vp_explain(v int) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
    l text;
BEGIN
    FOR l IN EXECUTE format('EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) EXECUTE upd(1, %L, %s)', 'explained', v)
    LOOP
        IF l LIKE 'Trigger%' THEN
            RETURN NEXT l;
        END IF;
    END LOOP;
END
$$;
SELECT * FROM vp_explain(5);
EXECUTE upd(1, 'after', 6);

-- a disabled trigger: nothing bumped; enabled again: bumped again
ALTER TABLE vp DISABLE TRIGGER lockctl_version;
EXECUTE upd(1, 'disabled', 7);
ALTER TABLE vp ENABLE TRIGGER lockctl_version;
EXECUTE upd(1, 'enabled', 7);

-- another BEFORE ROW UPDATE trigger added under the kept plan: the row
-- trigger is taken again
CREATE FUNCTION vp_mark() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.val := NEW.val || '!';
    RETURN NEW;
END
$$;
CREATE TRIGGER vp_mark BEFORE UPDATE ON vp FOR EACH ROW EXECUTE FUNCTION vp_mark();
EXECUTE upd(1, 'marked', 8);
DROP TRIGGER vp_mark ON vp;
EXECUTE upd(1, 'unmarked', 9);

-- versioning disabled under the kept plan: a plain UPDATE; enabled again
-- in mode 'server': the ORM form is refused
SELECT lockctl.disable_versioning('vp');
EXECUTE upd(1, 'plain', 10);
SELECT lockctl.enable_versioning('vp', mode => 'server');
EXECUTE upd(1, 'server', 10);
EXECUTE orm(2, 'server', 7, 8);
\echo :LAST_ERROR_SQLSTATE

-- the same plan from PL/pgSQL, run in a loop
DO $$
DECLARE
    v int;
BEGIN
    FOR i IN 1..8 LOOP
        SELECT version INTO v FROM vp WHERE id = 3;
        UPDATE vp SET val = 'loop ' || i WHERE id = 3 AND version = v;
    END LOOP;
END
$$;

SELECT * FROM vp ORDER BY id;
SELECT table_name, checked_updates, conflicts, stale_matches
  FROM lockctl.versioned_tables WHERE table_name::text = 'vp';

RESET plan_cache_mode;
DEALLOCATE upd;
DEALLOCATE orm;
DROP TABLE vp;
DROP FUNCTION vp_explain(int), vp_mark();
