--
-- Idempotent requests: claim_request, complete_request, the views, and
-- every bad input.  Concurrent duplicates are specs/request_*.spec; crash
-- recovery is t/032_request_crash.pl.
--
SET client_min_messages = warning;
CREATE TABLE payments (id serial PRIMARY KEY, request text, amount int);
-- Counters are the server's since it started: compare with a baseline.
CREATE TEMP TABLE stats0 AS SELECT * FROM lockctl.request_stats;

-- The first claim goes ahead (NULL), does its effect and stores a result.
BEGIN;
SELECT lockctl.claim_request('pay-1', fingerprint => 'h1') IS NULL AS go_ahead;
INSERT INTO payments (request, amount) VALUES ('pay-1', 100);
SELECT lockctl.complete_request('pay-1', '{"status": 201, "payment": 1}');
-- Asking again in the same transaction: it still holds the claim.
SELECT lockctl.claim_request('pay-1', fingerprint => 'h1') IS NULL AS still_mine;
COMMIT;

-- A duplicate gets the stored result and does nothing.
SELECT lockctl.claim_request('pay-1', fingerprint => 'h1') AS replay;
SELECT count(*) AS payments FROM payments WHERE request = 'pay-1';

-- A claim that rolls back leaves nothing: the retry goes ahead.
BEGIN;
SELECT lockctl.claim_request('pay-2') IS NULL AS go_ahead;
INSERT INTO payments (request, amount) VALUES ('pay-2', 50);
ROLLBACK;
SELECT key FROM lockctl.requests WHERE key = 'pay-2';
BEGIN;
SELECT lockctl.claim_request('pay-2') IS NULL AS go_ahead_again;
INSERT INTO payments (request, amount) VALUES ('pay-2', 50);
COMMIT;
-- Committed without complete_request: duplicates get an empty object.
SELECT lockctl.claim_request('pay-2') AS replay_without_result;

-- The same key with other parameters is refused, and changes nothing.
SELECT lockctl.claim_request('pay-1', fingerprint => 'h2');
SELECT lockctl.claim_request('pay-1');
SELECT key, state, fingerprint, result FROM lockctl.requests ORDER BY key;

-- A savepoint rolled back after a claim in it: the claim goes with it.
BEGIN;
SAVEPOINT s;
SELECT lockctl.claim_request('pay-3') IS NULL AS go_ahead;
ROLLBACK TO s;
SELECT lockctl.claim_request('pay-3') IS NULL AS go_ahead_after_savepoint;
SELECT lockctl.complete_request('pay-3', '{"ok": true}');
COMMIT;
SELECT lockctl.claim_request('pay-3') AS replay;

-- A key past its ttl is free again, whether or not it was purged.
BEGIN;
SELECT lockctl.claim_request('short', '1 millisecond') IS NULL AS go_ahead;
COMMIT;
SELECT pg_sleep(0.01);
SELECT lockctl.claim_request('short', '1 hour') IS NULL AS expired_key_free_again;
SELECT state FROM lockctl.requests WHERE key = 'short';

-- complete_request outside the claiming transaction is refused.
SELECT lockctl.complete_request('pay-1', '{"status": 500}');
SELECT lockctl.complete_request('never-claimed', '{}');
SELECT result FROM lockctl.requests WHERE key = 'pay-1';

-- The counters: first claims, replays, conflicts.
SELECT s.claims - b.claims AS claims, s.repeats - b.repeats AS repeats,
       s.waits - b.waits AS waits, s.timeouts - b.timeouts AS timeouts,
       s.conflicts - b.conflicts AS conflicts
  FROM lockctl.request_stats AS s, stats0 AS b;

-- Purge: only keys past their ttl go, oldest first, in batches.  The keys
-- fall due inside the transaction that purges them, so that the expiry
-- worker (which purges due keys too, skipping locked ones) cannot take
-- them first.
BEGIN;
SELECT lockctl.claim_request('old-' || g, '1 hour') FROM generate_series(1, 3) g;
COMMIT;
BEGIN;
UPDATE lockctl.request_keys SET expires = now() - interval '1 second' WHERE key LIKE 'old-%';
SELECT lockctl_internal.purge_requests(2) AS purged, lockctl_internal.purge_requests(10) AS purged_next;
COMMIT;
SELECT count(*) AS expired_left FROM lockctl.requests WHERE state = 'expired';
SELECT count(*) AS live_kept FROM lockctl.requests;

-- Bad input: a clear error with its SQLSTATE, and nothing changes.
\set VERBOSITY sqlstate
SELECT lockctl.claim_request(NULL);
SELECT lockctl.claim_request('');
SELECT lockctl.claim_request(repeat('k', 201));
SELECT lockctl.claim_request('x', NULL);
SELECT lockctl.claim_request('x', '0');
SELECT lockctl.claim_request('x', '-1 hour');
SELECT lockctl.claim_request('x', '3651 days');
SELECT lockctl.claim_request('x', '-1 month');
SELECT lockctl.claim_request('x', fingerprint => repeat('f', 201));
SELECT lockctl.claim_request('x', wait => '-1 second');
SELECT lockctl.claim_request('x', scope => 'no_such_role_at_all');
SELECT lockctl.complete_request(NULL, '{}');
SELECT lockctl.complete_request('x', NULL);
SELECT lockctl_internal.purge_requests(NULL);
SELECT lockctl_internal.purge_requests(0);
\set VERBOSITY default
SELECT count(*) AS nothing_claimed_by_bad_calls FROM lockctl.requests WHERE key = 'x';


-- Keys belong to a role.  bob's 'pay-1' is not alice's; bob cannot use or
-- see alice's keys unless he has her privileges (dave, a member of alice).
CREATE ROLE regress_req_alice;
CREATE ROLE regress_req_bob;
CREATE ROLE regress_req_dave IN ROLE regress_req_alice;
SET ROLE regress_req_alice;
BEGIN;
SELECT lockctl.claim_request('order-9', fingerprint => 'a') IS NULL AS alice_goes_ahead;
SELECT lockctl.complete_request('order-9', '{"by": "alice"}');
COMMIT;
SET ROLE regress_req_bob;
SELECT lockctl.claim_request('order-9') IS NULL AS bob_has_his_own_key;
SELECT scope, key FROM lockctl.requests ORDER BY key;
SELECT lockctl.claim_request('order-9', scope => 'regress_req_alice');
SELECT lockctl.complete_request('order-9', '{}', scope => 'regress_req_alice');
SET ROLE regress_req_dave;
SELECT lockctl.claim_request('order-9', fingerprint => 'a', scope => 'regress_req_alice') AS dave_sees_alices_result;
SELECT scope, key, result FROM lockctl.requests ORDER BY scope, key;
-- Nobody but the functions writes the table or calls the internals.
SELECT * FROM lockctl.request_keys;
DELETE FROM lockctl.request_keys;
SELECT lockctl_internal.purge_requests(10);
RESET ROLE;
SELECT scope, key FROM lockctl.requests WHERE scope::text LIKE 'regress_req_%' ORDER BY scope, key;
DELETE FROM lockctl.request_keys WHERE scope::text LIKE 'regress_req_%';
DROP ROLE regress_req_alice, regress_req_bob, regress_req_dave;

DROP TABLE payments;
