-- Fenced tables: lockctl.enable_fencing(), the trigger on every write path,
-- the TRUNCATE check, the bypass, lockctl.fenced_tables, disable_fencing().
-- Tokens depend on the server's timeline and epoch, so they are never shown
-- as numbers: try() replaces every known token by its name.
SET client_min_messages = warning;
CREATE ROLE regress_fence_owner;
CREATE ROLE regress_fence_other;
CREATE ROLE regress_fence_admin SUPERUSER;
CREATE SCHEMA fx AUTHORIZATION regress_fence_owner;
GRANT USAGE ON SCHEMA fx TO regress_fence_other;
RESET client_min_messages;

CREATE TABLE fx.tok (name text PRIMARY KEY, token bigint);
GRANT ALL ON fx.tok TO PUBLIC;

-- fx.try(stmt): "ok", or the SQLSTATE, message and detail, with every
-- known token replaced by its name.  A subtransaction: a failed statement
-- leaves nothing behind; a successful one (a fence too) stays.
CREATE FUNCTION fx.try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    st text; msg text; det text; r record;
BEGIN
    EXECUTE stmt;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
                            det = PG_EXCEPTION_DETAIL;
    FOR r IN SELECT name, token FROM fx.tok ORDER BY length(token::text) DESC, name LOOP
        msg := replace(msg, r.token::text, r.name);
        det := replace(det, r.token::text, r.name);
    END LOOP;
    RETURN st || ': ' || msg || coalesce(' | ' || nullif(det, ''), '');
END $$;
GRANT EXECUTE ON FUNCTION fx.try(text) TO PUBLIC;
-- fx.t(name): the token called name.
CREATE FUNCTION fx.t(n text) RETURNS bigint LANGUAGE sql STABLE
    AS $$ SELECT token FROM fx.tok WHERE name = n $$;
GRANT EXECUTE ON FUNCTION fx.t(text) TO PUBLIC;

-- The tables.  acct: one lease per account, and a token column.  report:
-- one lease for the whole table.  ledger: partitioned, a lease per region.
SET ROLE regress_fence_owner;
CREATE TABLE fx.acct (id int PRIMARY KEY, balance int NOT NULL, token bigint);
CREATE TABLE fx.report (id int PRIMARY KEY, body text);
CREATE TABLE fx.ledger (region text, id int, amount int, token bigint,
                        PRIMARY KEY (region, id)) PARTITION BY LIST (region);
CREATE TABLE fx.ledger_eu PARTITION OF fx.ledger FOR VALUES IN ('eu');
CREATE TABLE fx.ledger_us PARTITION OF fx.ledger FOR VALUES IN ('us');
INSERT INTO fx.acct VALUES (1, 100, NULL), (2, 200, NULL), (3, 300, NULL), (4, 400, NULL);
INSERT INTO fx.report VALUES (1, 'draft');
INSERT INTO fx.ledger VALUES ('eu', 1, 10, NULL), ('us', 1, 20, NULL);
RESET ROLE;

--
-- enable_fencing: bad input changes nothing
--
SELECT fx.try($$SELECT lockctl.enable_fencing(NULL, 'r')$$);
SELECT fx.try($$SELECT lockctl.enable_fencing('fx.acct')$$);
SELECT fx.try($$SELECT lockctl.enable_fencing('fx.acct', NULL, NULL, NULL)$$);
SELECT fx.try($$SELECT lockctl.enable_fencing('fx.acct', 'r', resource_expression => 'id::text')$$);
SELECT fx.try($$SELECT lockctl.enable_fencing('fx.acct', '')$$);
SELECT fx.try($$SELECT lockctl.enable_fencing('fx.acct', repeat('x', 201))$$);
SELECT fx.try($$SELECT lockctl.enable_fencing('fx.acct', 'r', '')$$);
SELECT fx.try($$SELECT lockctl.enable_fencing('fx.acct', resource_expression => '  ')$$);
SELECT fx.try($$SELECT lockctl.enable_fencing('fx.no_such_table', 'r')$$);
SELECT fx.try($$SELECT lockctl.enable_fencing(4242424242::oid::regclass, 'r')$$);
SELECT fx.try($$SELECT lockctl.enable_fencing('fx.acct', 'r', 'no_such_column')$$);
SELECT fx.try($$SELECT lockctl.enable_fencing('fx.acct', 'r', 'balance')$$);
SELECT fx.try($$SELECT lockctl.enable_fencing('fx.acct', 'r', 'xmin')$$);
SELECT fx.try($$SELECT lockctl.enable_fencing('fx.acct', resource_expression => 'no_such_column::text')$$);
-- the expression: one immutable expression over the row's own columns
SELECT fx.try($$SELECT lockctl.enable_fencing('fx.acct', resource_expression => 'random()::text')$$);
SELECT fx.try($$SELECT lockctl.enable_fencing('fx.acct', resource_expression => 'format(''acct:%s'', id)')$$);
SELECT fx.try($$SELECT lockctl.enable_fencing('fx.acct', resource_expression => 'now()::text || id')$$);
SELECT fx.try($$SELECT lockctl.enable_fencing('fx.acct', resource_expression => '(SELECT ''x'')')$$);
SELECT fx.try($$SELECT lockctl.enable_fencing('fx.acct', resource_expression => 'max(id)::text')$$);
SELECT fx.try($$SELECT lockctl.enable_fencing('fx.acct', resource_expression => 'row_number() OVER ()')$$);
SELECT fx.try($$SELECT lockctl.enable_fencing('fx.acct', resource_expression => 'generate_series(1, id)')$$);
SELECT fx.try($$SELECT lockctl.enable_fencing('fx.acct', resource_expression => 'ctid::text')$$);
SELECT fx.try($$SELECT lockctl.enable_fencing('fx.acct', resource_expression => 'acct::text')$$);
SELECT fx.try($$SELECT lockctl.enable_fencing('fx.acct', resource_expression => 'id; DROP TABLE fx.acct')$$);
SELECT fx.try($$SELECT lockctl.enable_fencing('fx.acct', resource_expression => 'id) FROM pg_class WHERE (true')$$);
SELECT fx.try($$SELECT lockctl.enable_fencing('fx.acct', resource_expression => 'id::text AS name')$$);
SELECT fx.try($$SELECT lockctl.enable_fencing('fx.acct', resource_expression => 'token::text', token_column => 'token')$$);
CREATE TABLE fx.odd (id int PRIMARY KEY, g int GENERATED ALWAYS AS (id * 2) STORED,
                     i bigint GENERATED ALWAYS AS IDENTITY, small int);
SELECT fx.try($$SELECT lockctl.enable_fencing('fx.odd', resource_expression => 'g::text')$$);
SELECT fx.try($$SELECT lockctl.enable_fencing('fx.odd', 'r', 'g')$$);
SELECT fx.try($$SELECT lockctl.enable_fencing('fx.odd', 'r', 'i')$$);
SELECT fx.try($$SELECT lockctl.enable_fencing('fx.odd', 'r', 'small')$$);
-- only ordinary and partitioned tables, never a catalog
CREATE VIEW fx.acct_view AS SELECT * FROM fx.acct;
CREATE MATERIALIZED VIEW fx.acct_mv AS SELECT * FROM fx.acct;
CREATE SEQUENCE fx.acct_seq;
SELECT fx.try($$SELECT lockctl.enable_fencing('fx.acct_view', 'r')$$);
SELECT fx.try($$SELECT lockctl.enable_fencing('fx.acct_mv', 'r')$$);
SELECT fx.try($$SELECT lockctl.enable_fencing('fx.acct_seq', 'r')$$);
SELECT fx.try($$SELECT lockctl.enable_fencing('fx.acct_pkey', 'r')$$);
SELECT fx.try($$SELECT lockctl.enable_fencing('pg_catalog.pg_class', 'r')$$);
-- only the owner (or a superuser)
SET ROLE regress_fence_other;
SELECT fx.try($$SELECT lockctl.enable_fencing('fx.acct', 'r')$$);
RESET ROLE;
SELECT count(*) AS triggers_left_behind FROM pg_trigger WHERE tgfoid = 'lockctl.fence_trigger'::regproc;
SELECT * FROM lockctl.fenced_tables;

-- The trigger function is only for the trigger manager.
SELECT fx.try($$SELECT lockctl.fence_trigger()$$);

--
-- enable: a lease per account, with a token column; one lease for report;
-- a lease per region of ledger.  The owner does it.
--
SET ROLE regress_fence_owner;
SELECT lockctl.enable_fencing('fx.acct', token_column => 'token',
                              resource_expression => $$'acct:' || id$$);
SELECT lockctl.enable_fencing('fx.report', 'nightly-report');
SELECT lockctl.enable_fencing('fx.ledger', resource_expression => $$'region:' || region$$,
                              token_column => 'token');
RESET ROLE;
SELECT fx.try($$SELECT lockctl.enable_fencing('fx.acct', 'r')$$);
SELECT fx.try($$SELECT lockctl.enable_fencing('fx.ledger_eu', 'r')$$);
-- the stored form: every name qualified, as pg_dump will write it
SELECT tgname, pg_get_triggerdef(oid) FROM pg_trigger
 WHERE tgfoid = 'lockctl.fence_trigger'::regproc AND tgparentid = 0 ORDER BY tgrelid::regclass::text;
SELECT table_name, resource, resource_expression, token_column, enabled,
       writes_checked, refused_unfenced, refused_stale, bypassed
  FROM lockctl.fenced_tables ORDER BY table_name::text;

INSERT INTO fx.tok SELECT 'A1', lockctl.acquire('acct:1', 'worker-a');
INSERT INTO fx.tok SELECT 'A2', lockctl.acquire('acct:2', 'worker-a');
INSERT INTO fx.tok SELECT 'A9', lockctl.acquire('acct:9', 'worker-a');
INSERT INTO fx.tok SELECT 'R', lockctl.acquire('nightly-report', 'worker-a');
INSERT INTO fx.tok SELECT 'EU', lockctl.acquire('region:eu', 'worker-a');
INSERT INTO fx.tok SELECT 'US', lockctl.acquire('region:us', 'worker-a');

--
-- Every write path: refused without a live fence, accepted with one.
--
-- INSERT
SELECT fx.try($$INSERT INTO fx.acct VALUES (9, 900)$$);
BEGIN;
SELECT lockctl.fence('acct:9', fx.t('A9'));
-- the row records the token that wrote it, whatever the INSERT said
SELECT fx.try($$INSERT INTO fx.acct VALUES (9, 900, 42)$$);
SELECT fx.try($$INSERT INTO fx.acct VALUES (6, 600)$$);
COMMIT;
SELECT id, balance, token = fx.t('A9') AS by_a9 FROM fx.acct WHERE id = 9;
-- UPDATE
SELECT fx.try($$UPDATE fx.acct SET balance = balance + 1 WHERE id = 1$$);
BEGIN;
SELECT lockctl.fence('acct:1', fx.t('A1'));
SELECT fx.try($$UPDATE fx.acct SET balance = balance + 1 WHERE id = 1$$);
-- one row of the statement without a fence fails the whole statement
SELECT fx.try($$UPDATE fx.acct SET balance = balance + 1 WHERE id IN (1, 2)$$);
-- an UPDATE that moves a row to another lease needs both
SELECT fx.try($$UPDATE fx.acct SET id = 5 WHERE id = 1$$);
COMMIT;
SELECT id, balance, token = fx.t('A1') AS by_a1 FROM fx.acct WHERE id IN (1, 2) ORDER BY id;
-- DELETE
SELECT fx.try($$DELETE FROM fx.acct WHERE id = 9$$);
BEGIN;
SELECT lockctl.fence('acct:9', fx.t('A9'));
SELECT fx.try($$DELETE FROM fx.acct WHERE id = 9$$);
COMMIT;
SELECT count(*) AS acct_9_rows FROM fx.acct WHERE id = 9;
-- INSERT ... ON CONFLICT: the proposed row is checked, then the row it updates
SELECT fx.try($$INSERT INTO fx.acct VALUES (2, 0) ON CONFLICT (id) DO UPDATE SET balance = 0$$);
SELECT fx.try($$INSERT INTO fx.acct VALUES (2, 0) ON CONFLICT (id) DO NOTHING$$);
BEGIN;
SELECT lockctl.fence('acct:2', fx.t('A2'));
SELECT fx.try($$INSERT INTO fx.acct VALUES (2, 0) ON CONFLICT (id) DO UPDATE SET balance = 222$$);
COMMIT;
SELECT id, balance, token = fx.t('A2') AS by_a2 FROM fx.acct WHERE id = 2;
-- MERGE: each action on each row
SELECT fx.try($$MERGE INTO fx.acct a USING (VALUES (2, 1), (9, 9)) v(id, b) ON a.id = v.id
                WHEN MATCHED THEN UPDATE SET balance = v.b
                WHEN NOT MATCHED THEN INSERT VALUES (v.id, v.b)$$);
BEGIN;
SELECT lockctl.fence('acct:2', fx.t('A2'));
SELECT fx.try($$MERGE INTO fx.acct a USING (VALUES (2, 1), (9, 9)) v(id, b) ON a.id = v.id
                WHEN MATCHED THEN UPDATE SET balance = v.b
                WHEN NOT MATCHED THEN INSERT VALUES (v.id, v.b)$$);
SELECT lockctl.fence('acct:9', fx.t('A9'));
SELECT fx.try($$MERGE INTO fx.acct a USING (VALUES (2, 1), (9, 9)) v(id, b) ON a.id = v.id
                WHEN MATCHED THEN UPDATE SET balance = v.b
                WHEN NOT MATCHED THEN INSERT VALUES (v.id, v.b)$$);
SELECT fx.try($$MERGE INTO fx.acct a USING (VALUES (9)) v(id) ON a.id = v.id
                WHEN MATCHED THEN DELETE$$);
COMMIT;
SELECT id, balance FROM fx.acct WHERE id IN (2, 9) ORDER BY id;
-- COPY
BEGIN;
COPY fx.acct FROM stdin;
9	900	\N
\.
ROLLBACK;
BEGIN;
SELECT lockctl.fence('acct:9', fx.t('A9'));
COPY fx.acct FROM stdin;
9	900	\N
\.
COMMIT;
SELECT id, balance, token = fx.t('A9') AS by_a9 FROM fx.acct WHERE id = 9;
-- through an updatable view, and through a function
SELECT fx.try($$UPDATE fx.acct_view SET balance = 0 WHERE id = 9$$);
CREATE FUNCTION fx.pay(i int) RETURNS void LANGUAGE sql
    AS $$ UPDATE fx.acct SET balance = balance - 1 WHERE id = i $$;
SELECT fx.try($$SELECT fx.pay(9)$$);
BEGIN;
SELECT lockctl.fence('acct:9', fx.t('A9'));
SELECT fx.try($$UPDATE fx.acct_view SET balance = 0 WHERE id = 9$$);
SELECT fx.try($$SELECT fx.pay(9)$$);
COMMIT;
SELECT id, balance FROM fx.acct WHERE id = 9;

-- One lease for the whole table: every row needs that one fence.
SELECT fx.try($$INSERT INTO fx.report VALUES (2, 'x')$$);
SELECT fx.try($$UPDATE fx.report SET body = 'x'$$);
SELECT fx.try($$DELETE FROM fx.report$$);
BEGIN;
SELECT lockctl.fence('nightly-report', fx.t('R'));
SELECT fx.try($$INSERT INTO fx.report VALUES (2, 'x')$$);
SELECT fx.try($$UPDATE fx.report SET body = 'final'$$);
SELECT fx.try($$DELETE FROM fx.report WHERE id = 2$$);
COMMIT;
SELECT * FROM fx.report;

-- Partitions: routing, a row moved to another partition, direct writes to
-- a partition, and partitions created or attached after enable_fencing.
SELECT fx.try($$INSERT INTO fx.ledger VALUES ('eu', 2, 1)$$);
SELECT fx.try($$INSERT INTO fx.ledger_eu VALUES ('eu', 2, 1)$$);
SELECT fx.try($$UPDATE fx.ledger_us SET amount = 0$$);
BEGIN;
SELECT lockctl.fence('region:eu', fx.t('EU'));
SELECT fx.try($$INSERT INTO fx.ledger VALUES ('eu', 2, 1)$$);
SELECT fx.try($$INSERT INTO fx.ledger_eu VALUES ('eu', 3, 1)$$);
-- moving a row from eu to us is a DELETE in eu and an INSERT in us
SELECT fx.try($$UPDATE fx.ledger SET region = 'us' WHERE region = 'eu' AND id = 3$$);
SELECT lockctl.fence('region:us', fx.t('US'));
SELECT fx.try($$UPDATE fx.ledger SET region = 'us' WHERE region = 'eu' AND id = 3$$);
COMMIT;
SELECT tableoid::regclass AS part, region, id, token = fx.t('EU') AS by_eu,
       token = fx.t('US') AS by_us
  FROM fx.ledger ORDER BY region, id;
SET ROLE regress_fence_owner;
CREATE TABLE fx.ledger_asia PARTITION OF fx.ledger FOR VALUES IN ('asia');
CREATE TABLE fx.ledger_au (region text, id int, amount int, token bigint,
                           PRIMARY KEY (region, id));
INSERT INTO fx.ledger_au VALUES ('au', 1, 5, NULL);
ALTER TABLE fx.ledger ATTACH PARTITION fx.ledger_au FOR VALUES IN ('au');
RESET ROLE;
SELECT fx.try($$INSERT INTO fx.ledger VALUES ('asia', 1, 1)$$);
SELECT fx.try($$UPDATE fx.ledger_au SET amount = 0$$);
INSERT INTO fx.tok SELECT 'ASIA', lockctl.acquire('region:asia', 'worker-a');
INSERT INTO fx.tok SELECT 'AU', lockctl.acquire('region:au', 'worker-a');
BEGIN;
SELECT lockctl.fence('region:asia', fx.t('ASIA'));
SELECT lockctl.fence('region:au', fx.t('AU'));
SELECT fx.try($$INSERT INTO fx.ledger VALUES ('asia', 1, 1)$$);
SELECT fx.try($$UPDATE fx.ledger_au SET amount = 0$$);
COMMIT;
SELECT region, id, amount, token IS NOT NULL AS stamped FROM fx.ledger
 WHERE region IN ('asia', 'au') ORDER BY region;
-- a partition that is detached leaves the fence behind with its parent
SET ROLE regress_fence_owner;
ALTER TABLE fx.ledger DETACH PARTITION fx.ledger_au;
RESET ROLE;
SELECT fx.try($$UPDATE fx.ledger_au SET amount = 1$$);

-- Foreign key cascades write the referencing rows: they are checked too.
SET ROLE regress_fence_owner;
CREATE TABLE fx.note (id int PRIMARY KEY,
                      acct_id int REFERENCES fx.acct ON DELETE CASCADE ON UPDATE CASCADE,
                      body text);
CREATE TABLE fx.audit (id int PRIMARY KEY,
                       acct_id int REFERENCES fx.acct ON DELETE SET NULL, body text);
INSERT INTO fx.note VALUES (1, 3, 'n'), (2, 4, 'n');
INSERT INTO fx.audit VALUES (1, 3, 'a');
SELECT lockctl.enable_fencing('fx.note', resource_expression => $$'acct:' || acct_id$$);
SELECT lockctl.enable_fencing('fx.audit', 'audit');
RESET ROLE;
INSERT INTO fx.tok SELECT 'A3', lockctl.acquire('acct:3', 'worker-a');
INSERT INTO fx.tok SELECT 'A4', lockctl.acquire('acct:4', 'worker-a');
INSERT INTO fx.tok SELECT 'A7', lockctl.acquire('acct:7', 'worker-a');
INSERT INTO fx.tok SELECT 'AUD', lockctl.acquire('audit', 'worker-a');
BEGIN;
SELECT lockctl.fence('acct:3', fx.t('A3'));
-- the account's own fence covers its notes (same lease name), not the audit row
SELECT fx.try($$DELETE FROM fx.acct WHERE id = 3$$);
SELECT lockctl.fence('audit', fx.t('AUD'));
SELECT fx.try($$DELETE FROM fx.acct WHERE id = 3$$);
COMMIT;
SELECT (SELECT count(*) FROM fx.note WHERE acct_id = 3) AS notes_left,
       (SELECT acct_id FROM fx.audit WHERE id = 1) AS audit_acct;
-- ON UPDATE CASCADE moves account 4's notes to lease acct:7
BEGIN;
SELECT lockctl.fence('acct:4', fx.t('A4'));
SELECT fx.try($$UPDATE fx.acct SET id = 7 WHERE id = 4$$);
SELECT lockctl.fence('acct:7', fx.t('A7'));
SELECT fx.try($$UPDATE fx.acct SET id = 7 WHERE id = 4$$);
COMMIT;
SELECT id, acct_id FROM fx.note ORDER BY id;

--
-- TRUNCATE fires no row trigger; it is checked all the same.
--
SET ROLE regress_fence_owner;
CREATE TABLE fx.parent (id int PRIMARY KEY);
ALTER TABLE fx.report ADD COLUMN parent_id int REFERENCES fx.parent;
RESET ROLE;
SELECT fx.try($$TRUNCATE fx.report$$);
SELECT fx.try($$TRUNCATE fx.parent CASCADE$$);
-- per-row leases and token columns cannot be checked by TRUNCATE
SELECT fx.try($$TRUNCATE fx.acct CASCADE$$);
SELECT fx.try($$TRUNCATE fx.note$$);
SELECT fx.try($$TRUNCATE fx.ledger$$);
SELECT fx.try($$TRUNCATE fx.ledger_asia$$);
SELECT fx.try($$TRUNCATE ONLY fx.ledger_eu$$);
BEGIN;
SELECT lockctl.fence('nightly-report', fx.t('R'));
SELECT fx.try($$TRUNCATE fx.parent CASCADE$$);
SELECT count(*) AS report_rows FROM fx.report;
ROLLBACK;
SELECT count(*) AS report_rows FROM fx.report;

--
-- What "live" means at the time of the write.
--
-- a fence from an earlier transaction covers nothing
SELECT lockctl.fence('nightly-report', fx.t('R'));
SELECT fx.try($$UPDATE fx.report SET body = 'later'$$);
-- a fence rolled back to a savepoint is gone; one released with it stays
BEGIN;
SAVEPOINT s;
SELECT lockctl.fence('nightly-report', fx.t('R'));
ROLLBACK TO SAVEPOINT s;
SELECT fx.try($$UPDATE fx.report SET body = 'later'$$);
SAVEPOINT s2;
SELECT lockctl.fence('nightly-report', fx.t('R'));
RELEASE SAVEPOINT s2;
SELECT fx.try($$UPDATE fx.report SET body = 'later'$$);
ROLLBACK;
-- another lease's fence does not count
BEGIN;
SELECT lockctl.fence('acct:1', fx.t('A1'));
SELECT fx.try($$UPDATE fx.report SET body = 'later'$$);
ROLLBACK;
-- released after fence(): the writer no longer holds the lease
BEGIN;
SELECT lockctl.fence('nightly-report', fx.t('R'));
SELECT lockctl.release('nightly-report', fx.t('R'));
SELECT fx.try($$UPDATE fx.report SET body = 'later'$$);
-- taken again by this very backend: a new token, which has not fenced
INSERT INTO fx.tok SELECT 'R2', lockctl.acquire('nightly-report', 'worker-b');
SELECT fx.t('R2') > fx.t('R') AS higher;
SELECT fx.try($$UPDATE fx.report SET body = 'later'$$);
SELECT lockctl.fence('nightly-report', fx.t('R2'));
SELECT fx.try($$UPDATE fx.report SET body = 'later'$$);
COMMIT;
-- force-released by an admin after fence()
BEGIN;
SELECT lockctl.fence('nightly-report', fx.t('R2'));
SELECT lockctl.force_release('nightly-report');
SELECT fx.try($$UPDATE fx.report SET body = 'forced'$$);
ROLLBACK;
-- expired after fence(): no one else can have the lease before this
-- transaction ends, so the write is still protected
INSERT INTO fx.tok SELECT 'R3', lockctl.acquire('nightly-report', 'worker-c', '2 s');
BEGIN;
SELECT lockctl.fence('nightly-report', fx.t('R3'));
SET LOCAL statement_timeout = '10s';
DO $$ BEGIN
    WHILE EXISTS (SELECT FROM lockctl.lease('nightly-report')) LOOP
        PERFORM pg_sleep(0.01);
    END LOOP;
END $$;
SELECT count(*) AS live_leases FROM lockctl.lease('nightly-report');
SELECT fx.try($$UPDATE fx.report SET body = 'after expiry'$$);
COMMIT;
SELECT body FROM fx.report;
INSERT INTO fx.tok SELECT 'R4', lockctl.acquire('nightly-report', 'worker-d');

--
-- The token column refuses a write with a lower token than the row's, even
-- when the lease checks pass: here a repair (under the bypass) stamped
-- account 2 with a token above any this server has granted.
--
SET ROLE regress_fence_admin;
SET lockctl.fencing_bypass = on;
UPDATE fx.acct SET token = 9000000000000000000 WHERE id = 2;
RESET lockctl.fencing_bypass;
RESET ROLE;
BEGIN;
SELECT lockctl.fence('acct:2', fx.t('A2'));
SELECT fx.try($$UPDATE fx.acct SET balance = 0 WHERE id = 2$$);
SELECT fx.try($$DELETE FROM fx.acct WHERE id = 2$$);
SELECT fx.try($$INSERT INTO fx.acct VALUES (2, 0) ON CONFLICT (id) DO UPDATE SET balance = 0$$);
ROLLBACK;
SELECT id, balance, token FROM fx.acct WHERE id = 2;

--
-- Another role: it writes under its own fence, and no message shows it a
-- token of another role.
--
GRANT INSERT, UPDATE, DELETE, SELECT ON fx.acct, fx.report TO regress_fence_other;
SET ROLE regress_fence_other;
SELECT fx.try($$UPDATE fx.acct SET balance = 1 WHERE id = 1$$);
INSERT INTO fx.tok SELECT 'B5', lockctl.acquire('acct:5', 'worker-b');
BEGIN;
SELECT lockctl.fence('acct:5', fx.t('B5'));
SELECT fx.try($$INSERT INTO fx.acct VALUES (5, 5)$$);
COMMIT;
SELECT id, token = fx.t('B5') AS by_b5 FROM fx.acct WHERE id = 5;
-- stale against account 2: the detail names the writer's own token only
INSERT INTO fx.tok SELECT 'B2', lockctl.acquire('acct:2', 'worker-b');
SELECT fx.t('B2') IS NULL AS acct2_held_by_owner;
RESET ROLE;
SELECT lockctl.release('acct:2', fx.t('A2'));
SET ROLE regress_fence_other;
DELETE FROM fx.tok WHERE name = 'B2';
INSERT INTO fx.tok SELECT 'B2', lockctl.acquire('acct:2', 'worker-b');
BEGIN;
SELECT lockctl.fence('acct:2', fx.t('B2'));
SELECT fx.try($$UPDATE fx.acct SET balance = 0 WHERE id = 2$$);
ROLLBACK;
RESET ROLE;

--
-- The bypass: explicit, superuser-only, logged and counted.
--
SET ROLE regress_fence_other;
SELECT fx.try($$SET lockctl.fencing_bypass = on$$);
RESET ROLE;
SET ROLE regress_fence_admin;
SET lockctl.fencing_bypass = on;
SET client_min_messages = log;
-- logged once per statement and table; the token column is left as written
UPDATE fx.acct SET balance = 0, token = NULL WHERE id IN (1, 2);
INSERT INTO fx.acct VALUES (8, 8, 8);
TRUNCATE fx.ledger_asia;
RESET client_min_messages;
RESET lockctl.fencing_bypass;
RESET ROLE;
SELECT id, balance, token FROM fx.acct WHERE id IN (1, 2, 8) ORDER BY id;
-- session_replication_role = replica (superusers only): ordinary triggers,
-- this one too, do not fire, as for logical replication's apply
SET session_replication_role = replica;
UPDATE fx.report SET body = 'replicated';
TRUNCATE fx.ledger_asia;
RESET session_replication_role;
SELECT body FROM fx.report;
-- ALTER TABLE ... DISABLE TRIGGER is the owner's, and the view shows it
SET ROLE regress_fence_owner;
ALTER TABLE fx.report DISABLE TRIGGER zz_lockctl_fence;
RESET ROLE;
SELECT table_name, enabled FROM lockctl.fenced_tables WHERE table_name = 'fx.report'::regclass;
SELECT fx.try($$UPDATE fx.report SET body = 'unchecked'$$);
SET ROLE regress_fence_owner;
ALTER TABLE fx.report ENABLE TRIGGER zz_lockctl_fence;
RESET ROLE;
SELECT fx.try($$UPDATE fx.report SET body = 'checked'$$);

--
-- A configuration the table no longer matches fails closed, with a hint;
-- the bypass still lets a repair through.
--
SET ROLE regress_fence_owner;
ALTER TABLE fx.acct RENAME COLUMN token TO tok;
RESET ROLE;
BEGIN;
SELECT lockctl.fence('acct:5', fx.t('B5'));
SELECT fx.try($$UPDATE fx.acct SET balance = 6 WHERE id = 5$$);
ROLLBACK;
SET ROLE regress_fence_admin;
SET lockctl.fencing_bypass = on;
SELECT fx.try($$UPDATE fx.acct SET balance = 6 WHERE id = 5$$);
RESET lockctl.fencing_bypass;
RESET ROLE;
SET ROLE regress_fence_owner;
ALTER TABLE fx.acct RENAME COLUMN tok TO token;
ALTER TABLE fx.acct RENAME COLUMN id TO acct_id;
RESET ROLE;
SELECT fx.try($$UPDATE fx.acct SET balance = 6 WHERE acct_id = 5$$);
SET ROLE regress_fence_owner;
ALTER TABLE fx.acct RENAME COLUMN acct_id TO id;
RESET ROLE;
-- a trigger made by hand with arguments it does not understand
SET ROLE regress_fence_owner;
CREATE TABLE fx.bad (id int);
CREATE TRIGGER zz_lockctl_fence BEFORE INSERT ON fx.bad FOR EACH ROW
    EXECUTE FUNCTION lockctl.fence_trigger('resource');
CREATE TRIGGER after_fence AFTER INSERT ON fx.report FOR EACH ROW
    EXECUTE FUNCTION lockctl.fence_trigger('resource', 'nightly-report');
RESET ROLE;
SELECT fx.try($$INSERT INTO fx.bad VALUES (1)$$);
BEGIN;
SELECT lockctl.fence('nightly-report', fx.t('R4'));
SELECT fx.try($$INSERT INTO fx.report VALUES (3, 'x')$$);
ROLLBACK;
SET ROLE regress_fence_owner;
DROP TRIGGER after_fence ON fx.report;
RESET ROLE;
-- a row whose lease name is NULL cannot be fenced
SET ROLE regress_fence_owner;
CREATE TABLE fx.nullable (id int PRIMARY KEY, k text);
SELECT lockctl.enable_fencing('fx.nullable', resource_expression => $$'k:' || k$$);
RESET ROLE;
SELECT fx.try($$INSERT INTO fx.nullable VALUES (1, NULL)$$);
SELECT fx.try($$INSERT INTO fx.nullable VALUES (1, repeat('x', 199))$$);

-- The trigger keeps its compiled configuration from one statement to the
-- next in a backend; a new configuration in the same session is seen at
-- once (the old one refuses, the new one accepts).
SET ROLE regress_fence_owner;
CREATE TABLE fx.recfg (id int PRIMARY KEY, body text, token bigint);
INSERT INTO fx.recfg VALUES (1, '', NULL);
SELECT lockctl.enable_fencing('fx.recfg', resource_expression => $$'old:' || id$$);
RESET ROLE;
INSERT INTO fx.tok SELECT 'OLD1', lockctl.acquire('old:1', 'worker-a');
INSERT INTO fx.tok SELECT 'NEW1', lockctl.acquire('new:1', 'worker-a');
BEGIN;
SELECT lockctl.fence('old:1', fx.t('OLD1'));
SELECT fx.try($$UPDATE fx.recfg SET body = 'a' WHERE id = 1$$);
SELECT fx.try($$UPDATE fx.recfg SET body = 'b' WHERE id = 1$$);
COMMIT;
SET ROLE regress_fence_owner;
SELECT lockctl.disable_fencing('fx.recfg');
SELECT lockctl.enable_fencing('fx.recfg', token_column => 'token',
                              resource_expression => $$'new:' || id$$);
RESET ROLE;
BEGIN;
SELECT lockctl.fence('old:1', fx.t('OLD1'));
SELECT fx.try($$UPDATE fx.recfg SET body = 'c' WHERE id = 1$$);
SELECT lockctl.fence('new:1', fx.t('NEW1'));
SELECT fx.try($$UPDATE fx.recfg SET body = 'd' WHERE id = 1$$);
COMMIT;
SELECT body, token = fx.t('NEW1') AS by_new1 FROM fx.recfg;
-- the token column renamed between two statements of one transaction
BEGIN;
SELECT lockctl.fence('new:1', fx.t('NEW1'));
UPDATE fx.recfg SET body = 'e' WHERE id = 1;
ALTER TABLE fx.recfg RENAME COLUMN token TO tok;
SELECT fx.try($$UPDATE fx.recfg SET body = 'f' WHERE id = 1$$);
ROLLBACK;
SELECT lockctl.release('old:1', fx.t('OLD1')), lockctl.release('new:1', fx.t('NEW1'));
DROP TABLE fx.recfg;

--
-- The counters.
--
SELECT table_name, resource, resource_expression, token_column, enabled,
       writes_checked > 0 AS checked, refused_unfenced > 0 AS unfenced,
       refused_stale, bypassed > 0 AS bypassed,
       stats_reset IS NOT NULL AS has_reset
  FROM lockctl.fenced_tables ORDER BY table_name::text;
SELECT refused_stale FROM lockctl.fenced_tables WHERE table_name = 'fx.acct'::regclass;

--
-- disable_fencing: the owner's, on the table it was enabled on.
--
SELECT fx.try($$SELECT lockctl.disable_fencing(NULL)$$);
SELECT fx.try($$SELECT lockctl.disable_fencing('fx.ledger_eu')$$);
SELECT fx.try($$SELECT lockctl.disable_fencing('fx.parent')$$);
SET ROLE regress_fence_other;
SELECT fx.try($$SELECT lockctl.disable_fencing('fx.acct')$$);
RESET ROLE;
SET ROLE regress_fence_owner;
SELECT lockctl.disable_fencing('fx.ledger');
SELECT lockctl.disable_fencing('fx.acct');
RESET ROLE;
SELECT fx.try($$UPDATE fx.acct SET balance = 1 WHERE id = 1$$);
SELECT fx.try($$INSERT INTO fx.ledger VALUES ('us', 9, 9)$$);
SELECT count(*) AS clones_left FROM pg_trigger
 WHERE tgfoid = 'lockctl.fence_trigger'::regproc AND tgrelid::regclass::text LIKE 'fx.ledger%';
SELECT table_name FROM lockctl.fenced_tables ORDER BY table_name::text;

-- clean up
SELECT lockctl.force_release(resource) FROM lockctl.leases WHERE owner LIKE 'worker-%' ORDER BY resource;
SET client_min_messages = warning;
DROP SCHEMA fx CASCADE;
DROP ROLE regress_fence_owner;
DROP ROLE regress_fence_other;
DROP ROLE regress_fence_admin;
