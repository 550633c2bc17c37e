-- Fenced tables guarded by shared and counted leases: every holder that
-- fenced may write, each as itself (its own token in the token column), a
-- holder whose token is below the row's is refused as stale, a holder that
-- did not fence, or whose holder slot has ended, is refused, and an
-- exclusive grant waits for the shared holders (docs/fenced-tables.md,
-- "Lease kinds").  Tokens are never shown as numbers: fk.try() names them.
SET client_min_messages = warning;
CREATE SCHEMA fk;
RESET client_min_messages;

CREATE TABLE fk.tok (name text PRIMARY KEY, token bigint);

-- fk.try(stmt): "ok", or the SQLSTATE, message and detail, with every
-- known token replaced by its name; a failed statement leaves nothing.
CREATE FUNCTION fk.try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    st text; msg text; det text; r record;
BEGIN
    EXECUTE stmt;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
                            det = PG_EXCEPTION_DETAIL;
    FOR r IN SELECT name, token FROM fk.tok ORDER BY length(token::text) DESC, name LOOP
        msg := replace(msg, r.token::text, r.name);
        det := replace(det, r.token::text, r.name);
    END LOOP;
    RETURN st || ': ' || msg || coalesce(' | ' || nullif(det, ''), '');
END $$;
CREATE FUNCTION fk.t(n text) RETURNS bigint LANGUAGE sql STABLE
    AS $$ SELECT token FROM fk.tok WHERE name = n $$;
-- fk.who(tbl): each row with the name of the token that wrote it.
CREATE FUNCTION fk.who(tbl regclass) RETURNS TABLE (id int, body text, written_by text)
    LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY EXECUTE format(
        'SELECT d.id, d.body, coalesce(k.name, d.token::text)
           FROM %s AS d LEFT JOIN fk.tok AS k ON k.token = d.token ORDER BY d.id', tbl);
END $$;

CREATE TABLE fk.doc (id int PRIMARY KEY, body text, token bigint);
CREATE TABLE fk.slot (id int PRIMARY KEY, body text, token bigint);
INSERT INTO fk.doc VALUES (1, 'draft', NULL);
INSERT INTO fk.slot VALUES (1, 'free', NULL), (2, 'free', NULL);
SELECT lockctl.enable_fencing('fk.doc', 'fk-doc', 'token');
SELECT lockctl.enable_fencing('fk.slot', 'fk-slot', 'token');

--
-- Shared holders
--
INSERT INTO fk.tok VALUES
    ('sa', lockctl.acquire_shared('fk-doc', 'reader-a', '1 min', '0')),
    ('sb', lockctl.acquire_shared('fk-doc', 'reader-b', '1 min', '0'));
SELECT fk.t('sa') IS NOT NULL AND fk.t('sb') > fk.t('sa') AS two_shared_holders;
SELECT mode, count(*) FROM lockctl.leases WHERE resource = 'fk-doc' GROUP BY mode;
-- no exclusive grant while they hold it
SELECT lockctl.acquire('fk-doc', 'writer', '1 min', '0') IS NULL AS exclusive_refused;

-- a shared holder that has not fenced cannot write
SELECT fk.try($$UPDATE fk.doc SET body = 'nobody' WHERE id = 1$$);

-- each fenced holder writes as itself
BEGIN;
SELECT lockctl.fence('fk-doc', fk.t('sa')) IS NOT NULL AS fenced;
SELECT fk.try($$UPDATE fk.doc SET body = 'by a' WHERE id = 1$$);
COMMIT;
SELECT * FROM fk.who('fk.doc');
BEGIN;
SELECT lockctl.fence('fk-doc', fk.t('sb')) IS NOT NULL AS fenced;
SELECT fk.try($$UPDATE fk.doc SET body = 'by b' WHERE id = 1$$);
SELECT fk.try($$INSERT INTO fk.doc VALUES (2, 'new by b')$$);
COMMIT;
SELECT * FROM fk.who('fk.doc');

-- the lower token is stale on a row the higher one wrote, not on its own
BEGIN;
SELECT lockctl.fence('fk-doc', fk.t('sa')) IS NOT NULL AS fenced;
SELECT fk.try($$UPDATE fk.doc SET body = 'by a again' WHERE id = 1$$);
SELECT fk.try($$DELETE FROM fk.doc WHERE id = 2$$);
SELECT fk.try($$INSERT INTO fk.doc VALUES (3, 'new by a')$$);
COMMIT;
SELECT * FROM fk.who('fk.doc');

-- a released holder's token fences nothing, and its transaction writes
-- nothing even if it fenced before the release
BEGIN;
SELECT lockctl.fence('fk-doc', fk.t('sa')) IS NOT NULL AS fenced;
SELECT lockctl.release('fk-doc', fk.t('sa'));
SELECT fk.try($$UPDATE fk.doc SET body = 'after release' WHERE id = 3$$);
COMMIT;
SELECT fk.try($$SELECT lockctl.fence('fk-doc', fk.t('sa'))$$);
SELECT * FROM fk.who('fk.doc');

-- the other holder still writes; once it is gone an exclusive holder can
-- take over, and its higher token overwrites what the shared ones wrote
BEGIN;
SELECT lockctl.fence('fk-doc', fk.t('sb')) IS NOT NULL AS fenced;
SELECT fk.try($$UPDATE fk.doc SET body = 'b again' WHERE id = 3$$);
COMMIT;
SELECT lockctl.release('fk-doc', fk.t('sb'));
INSERT INTO fk.tok VALUES ('x', lockctl.acquire('fk-doc', 'writer', '1 min', '0'));
SELECT fk.t('x') > fk.t('sb') AS exclusive_after_shared;
BEGIN;
SELECT lockctl.fence('fk-doc', fk.t('x')) IS NOT NULL AS fenced;
SELECT fk.try($$UPDATE fk.doc SET body = 'by x'$$);
COMMIT;
SELECT * FROM fk.who('fk.doc');
SELECT lockctl.release('fk-doc', fk.t('x'));

--
-- Counted holders (permits => 2)
--
INSERT INTO fk.tok VALUES
    ('c1', lockctl.acquire('fk-slot', 'worker-1', '1 min', '0', permits => 2)),
    ('c2', lockctl.acquire('fk-slot', 'worker-2', '1 min', '0', permits => 2));
SELECT lockctl.acquire('fk-slot', 'worker-3', '1 min', '0', permits => 2) IS NULL AS no_third_permit;
SELECT fk.try($$UPDATE fk.slot SET body = 'nobody'$$);
BEGIN;
SELECT lockctl.fence('fk-slot', fk.t('c1')) IS NOT NULL AS fenced;
SELECT fk.try($$UPDATE fk.slot SET body = 'by 1' WHERE id = 1$$);
COMMIT;
BEGIN;
SELECT lockctl.fence('fk-slot', fk.t('c2')) IS NOT NULL AS fenced;
SELECT fk.try($$UPDATE fk.slot SET body = 'by 2' WHERE id = 2$$);
SELECT fk.try($$UPDATE fk.slot SET body = 'by 2' WHERE id = 1$$);
COMMIT;
SELECT * FROM fk.who('fk.slot');
-- worker 1's token is below the rows worker 2 wrote
BEGIN;
SELECT lockctl.fence('fk-slot', fk.t('c1')) IS NOT NULL AS fenced;
SELECT fk.try($$UPDATE fk.slot SET body = 'by 1 again' WHERE id = 2$$);
COMMIT;
SELECT * FROM fk.who('fk.slot');

SELECT table_name, writes_checked, refused_unfenced, refused_stale
  FROM lockctl.fenced_tables ORDER BY table_name::text;

SELECT lockctl.release('fk-slot', fk.t('c1')), lockctl.release('fk-slot', fk.t('c2'));
SELECT lockctl.disable_fencing('fk.doc'), lockctl.disable_fencing('fk.slot');
SET client_min_messages = warning;
DROP SCHEMA fk CASCADE;
RESET client_min_messages;
