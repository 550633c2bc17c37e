-- A payment transaction, once per request id: the usual processed-ids
-- table with INSERT ... ON CONFLICT DO NOTHING, against lockctl's
-- claim_request + complete_request.  Every transaction is a new request
-- (ids drawn from a range far larger than a run uses), so both sides do
-- the whole work: claim, one payment row, the recorded result.
DROP TABLE IF EXISTS bench_payments, bench_processed;
CREATE TABLE bench_payments (request text NOT NULL, amount int NOT NULL);
CREATE TABLE bench_processed (request text PRIMARY KEY);
-- Both tables start empty, as bench_processed does (a DELETE would leave
-- request_keys' indexes holding every earlier round's entries).
TRUNCATE lockctl.request_keys;
