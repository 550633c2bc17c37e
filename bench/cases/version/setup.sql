-- Version-checked updates: three tables of 100000 rows with the same
-- content, one plain, one versioned (for the trigger and for
-- lockctl.update_versioned()).
DROP TABLE IF EXISTS bench_version_plain, bench_version_trig, bench_version_fn;
CREATE TABLE bench_version_plain (id int PRIMARY KEY, balance bigint NOT NULL,
                                  payload text NOT NULL, version bigint NOT NULL DEFAULT 1);
CREATE TABLE bench_version_trig (LIKE bench_version_plain INCLUDING ALL);
CREATE TABLE bench_version_fn (LIKE bench_version_plain INCLUDING ALL);
INSERT INTO bench_version_plain SELECT g, 0, repeat('x', 80) FROM generate_series(1, 100000) g;
INSERT INTO bench_version_trig SELECT * FROM bench_version_plain;
INSERT INTO bench_version_fn SELECT * FROM bench_version_plain;
SELECT lockctl.enable_versioning('bench_version_trig');
SELECT lockctl.enable_versioning('bench_version_fn');
VACUUM ANALYZE bench_version_plain, bench_version_trig, bench_version_fn;
