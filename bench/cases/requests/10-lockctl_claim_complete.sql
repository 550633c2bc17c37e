-- label: lockctl claim_request + payment + complete_request
\set id random(1, 1000000000000)
BEGIN;
SELECT lockctl.claim_request('bench-' || :id);
INSERT INTO bench_payments VALUES ('bench-' || :id, 100);
SELECT lockctl.complete_request('bench-' || :id, '{"status": 201}');
COMMIT;
