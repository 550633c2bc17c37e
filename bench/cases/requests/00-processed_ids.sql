-- label: INSERT ... ON CONFLICT DO NOTHING into processed ids + payment
\set id random(1, 1000000000000)
BEGIN;
INSERT INTO bench_processed VALUES ('bench-' || :id) ON CONFLICT DO NOTHING;
INSERT INTO bench_payments VALUES ('bench-' || :id, 100);
COMMIT;
