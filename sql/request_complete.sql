--
-- The claim of a key that has no row inserts it directly
-- (src/request.c, request_claim_fast), and complete_request of the key
-- this backend claimed last updates the row directly
-- (request_complete_fast); anything else takes the SQL path.  Both must
-- store the same thing, and savepoints rolled back must leave what they
-- left before.
--
SET client_min_messages = warning;
-- Completed twice: the last result wins.
BEGIN;
SELECT lockctl.claim_request('rc-1') IS NULL AS go_ahead;
SELECT lockctl.complete_request('rc-1', '{"n": 1}');
SELECT lockctl.complete_request('rc-1', '{"n": 2}');
COMMIT;
SELECT lockctl.claim_request('rc-1') AS replay_last;
-- A completion rolled back with its savepoint: the one before it stays,
-- and a later one is stored.
BEGIN;
SELECT lockctl.claim_request('rc-2') IS NULL AS go_ahead;
SELECT lockctl.complete_request('rc-2', '{"n": 1}');
SAVEPOINT s;
SELECT lockctl.complete_request('rc-2', '{"n": 2}');
ROLLBACK TO s;
SELECT result FROM lockctl.requests WHERE key = 'rc-2';
SELECT lockctl.complete_request('rc-2', '{"n": 3}');
COMMIT;
SELECT lockctl.claim_request('rc-2') AS replay_after_savepoint;
-- The only completion rolled back: committed as claimed, without a result.
BEGIN;
SELECT lockctl.claim_request('rc-3') IS NULL AS go_ahead;
SAVEPOINT s;
SELECT lockctl.complete_request('rc-3', '{"n": 1}');
ROLLBACK TO s;
COMMIT;
SELECT key, state, result FROM lockctl.requests WHERE key = 'rc-3';
-- A claim rolled back with its savepoint cannot be completed.
BEGIN;
SAVEPOINT s;
SELECT lockctl.claim_request('rc-4') IS NULL AS go_ahead;
ROLLBACK TO s;
SELECT lockctl.complete_request('rc-4', '{}');
ROLLBACK;
-- Two keys in one transaction, completed in either order.
BEGIN;
SELECT lockctl.claim_request('rc-5') IS NULL AS a, lockctl.claim_request('rc-6') IS NULL AS b;
SELECT lockctl.complete_request('rc-5', '{"k": 5}');
SELECT lockctl.complete_request('rc-6', '{"k": 6}');
COMMIT;
SELECT key, result FROM lockctl.requests WHERE key IN ('rc-5', 'rc-6') ORDER BY key;
-- The memo is of this transaction only: the next one cannot complete.
SELECT lockctl.complete_request('rc-6', '{"k": 7}');
-- SERIALIZABLE and a large result (stored out of line).
BEGIN ISOLATION LEVEL SERIALIZABLE;
SELECT lockctl.claim_request('rc-7') IS NULL AS go_ahead;
SELECT lockctl.complete_request('rc-7', jsonb_build_object('big', repeat('x', 100000)));
COMMIT;
SELECT octet_length(result->>'big') AS big FROM lockctl.requests WHERE key = 'rc-7';
-- Another role's scope: its own key, completed under its scope.
CREATE ROLE regress_rc_web;
CREATE ROLE regress_rc_pay IN ROLE regress_rc_web;
SET ROLE regress_rc_pay;
BEGIN;
SELECT lockctl.claim_request('rc-8') IS NULL AS own_key;
SELECT lockctl.claim_request('rc-8', scope => 'regress_rc_web') IS NULL AS webs_key;
SELECT lockctl.complete_request('rc-8', '{"by": "pay"}');
SELECT lockctl.complete_request('rc-8', '{"by": "web"}', scope => 'regress_rc_web');
COMMIT;
RESET ROLE;
SELECT scope, key, result FROM lockctl.requests WHERE key = 'rc-8' ORDER BY scope;
-- The same key claimed twice in one statement: the second call finds the
-- first one's row (the SQL path) and goes ahead too.
BEGIN;
SELECT lockctl.claim_request('rc-9') IS NULL AS a, lockctl.claim_request('rc-9') IS NULL AS b;
SELECT lockctl.complete_request('rc-9', '{"k": 9}');
COMMIT;
SELECT key, result FROM lockctl.requests WHERE key = 'rc-9';
-- A table the direct insert does not know takes the SQL path: a column
-- added with a default (the SQL's INSERT fills it), a trigger (it fires).
ALTER TABLE lockctl.request_keys ADD COLUMN regress_note text DEFAULT 'by sql';
SELECT lockctl.claim_request('rc-10') IS NULL AS go_ahead;
SELECT regress_note FROM lockctl.request_keys WHERE key = 'rc-10';
ALTER TABLE lockctl.request_keys DROP COLUMN regress_note;
CREATE TABLE rc_seen (key text);
CREATE FUNCTION rc_seen_fn() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO public.rc_seen VALUES (NEW.key); RETURN NEW; END $$;
CREATE TRIGGER rc_seen BEFORE INSERT ON lockctl.request_keys
    FOR EACH ROW EXECUTE FUNCTION rc_seen_fn();
SELECT lockctl.claim_request('rc-11') IS NULL AS go_ahead;
DROP TRIGGER rc_seen ON lockctl.request_keys;
SELECT lockctl.claim_request('rc-12') IS NULL AS go_ahead;
SELECT key FROM rc_seen;
DROP TABLE rc_seen;
DROP FUNCTION rc_seen_fn();
-- So does a table with an index that is not plain (what the table is
-- like is kept per backend, and worked out again when it changes): the
-- row is in the expression index too; with the index gone, the direct
-- insert again.
CREATE INDEX rc_lower ON lockctl.request_keys (lower(key));
SELECT lockctl.claim_request('rc-15') IS NULL AS go_ahead;
SET enable_seqscan = off;
SELECT key FROM lockctl.request_keys WHERE lower(key) = 'rc-15';
RESET enable_seqscan;
DROP INDEX lockctl.rc_lower;
SELECT lockctl.claim_request('rc-16') IS NULL AS go_ahead;
-- A duplicate meets the row first inserted (the direct insert takes its
-- own back): one row per key.
SELECT lockctl.claim_request('rc-16') AS again;
SELECT count(*) AS rows FROM lockctl.request_keys WHERE key = 'rc-16';
-- A duplicate reads the row directly: a result stored in TOAST (6,400
-- bytes, compressed or out of line) comes back whole; in the claiming
-- transaction the claim is NULL again.
BEGIN;
SELECT lockctl.claim_request('rc-17') IS NULL AS go_ahead;
SELECT lockctl.complete_request('rc-17', jsonb_build_object('pad',
    (SELECT string_agg(md5(i::text), '') FROM generate_series(1, 200) AS i)));
SELECT lockctl.claim_request('rc-17') IS NULL AS own_claim_again;
COMMIT;
SELECT lockctl.claim_request('rc-17') = (SELECT result FROM lockctl.request_keys WHERE key = 'rc-17') AS replayed_whole,
       octet_length(lockctl.claim_request('rc-17')::text) AS replayed_length;
-- REPEATABLE READ takes the SQL path; so does a read-only transaction
-- (refused).
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT lockctl.claim_request('rc-13') IS NULL AS go_ahead;
COMMIT;
BEGIN READ ONLY;
SELECT lockctl.claim_request('rc-14') IS NULL AS go_ahead;
ROLLBACK;
SELECT key, state FROM lockctl.requests WHERE key IN ('rc-10', 'rc-11', 'rc-12', 'rc-13', 'rc-14') ORDER BY key;
-- The indexes agree with the table after all of it.
SET enable_seqscan = off;
SELECT count(*) AS by_index FROM lockctl.request_keys
 WHERE key LIKE 'rc-%' AND (scope, key) IN (SELECT scope, key FROM lockctl.request_keys);
SELECT count(*) AS by_expiry FROM lockctl.request_keys
 WHERE key LIKE 'rc-%' AND expires > '-infinity';
RESET enable_seqscan;
SELECT count(*) AS rows FROM lockctl.request_keys WHERE key LIKE 'rc-%';
DELETE FROM lockctl.request_keys WHERE key LIKE 'rc-%';
DROP ROLE regress_rc_pay, regress_rc_web;
-- Claimed and completed in one statement, and completed twice in one: the
-- row was written by the statement itself, which heap_update refuses to
-- touch, so the update takes the SQL path (whose command sees the row).
BEGIN;
SELECT lockctl.claim_request('rcs-1') IS NULL AS go_ahead,
       lockctl.complete_request('rcs-1', '{"n": 1}');
SELECT lockctl.complete_request('rcs-1', '{"n": 2}'),
       lockctl.complete_request('rcs-1', '{"n": 3}');
SELECT state, result FROM lockctl.requests WHERE key = 'rcs-1';
COMMIT;
SELECT lockctl.claim_request('rcs-1') AS replayed;
DELETE FROM lockctl.request_keys WHERE key = 'rcs-1';
