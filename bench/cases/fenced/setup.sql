-- Fenced tables: two tables of 10000 rows with the same content; the same
-- holders write both, under a lease per row ('doc:<id>'), but only
-- bench_fence_rows checks it (and stamps the token column) itself.
DROP TABLE IF EXISTS bench_fence_plain, bench_fence_rows;
CREATE TABLE bench_fence_plain (id int PRIMARY KEY, body text, token bigint);
CREATE TABLE bench_fence_rows (LIKE bench_fence_plain INCLUDING ALL);
INSERT INTO bench_fence_plain SELECT i, '', 0 FROM generate_series(1, 10000) i;
INSERT INTO bench_fence_rows SELECT * FROM bench_fence_plain;
SELECT lockctl.enable_fencing('bench_fence_rows', token_column => 'token',
                              resource_expression => $$'doc:' || id$$);
VACUUM ANALYZE bench_fence_plain, bench_fence_rows;
