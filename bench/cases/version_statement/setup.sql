-- The version check alone: one UPDATE statement, plain or through the
-- trigger, on two tables of 100000 rows with the same content.
DROP TABLE IF EXISTS bench_vstmt_plain, bench_vstmt_trig;
CREATE TABLE bench_vstmt_plain (id int PRIMARY KEY, balance bigint NOT NULL,
                                payload text NOT NULL, version bigint NOT NULL DEFAULT 1);
CREATE TABLE bench_vstmt_trig (LIKE bench_vstmt_plain INCLUDING ALL);
INSERT INTO bench_vstmt_plain SELECT g, 0, repeat('x', 80) FROM generate_series(1, 100000) g;
INSERT INTO bench_vstmt_trig SELECT * FROM bench_vstmt_plain;
SELECT lockctl.enable_versioning('bench_vstmt_trig');
VACUUM ANALYZE bench_vstmt_plain, bench_vstmt_trig;
