-- Statement-aware version checks against the plain UPDATE: three tables of
-- 100000 rows with the same content, one plain, two versioned (one per
-- checked form, so that each case reads the versions only it writes).
DROP TABLE IF EXISTS bench_vorm_plain, bench_vorm_where, bench_vorm_orm;
CREATE TABLE bench_vorm_plain (id int PRIMARY KEY, balance bigint NOT NULL,
                               payload text NOT NULL, version bigint NOT NULL DEFAULT 1);
CREATE TABLE bench_vorm_where (LIKE bench_vorm_plain INCLUDING ALL);
CREATE TABLE bench_vorm_orm (LIKE bench_vorm_plain INCLUDING ALL);
INSERT INTO bench_vorm_plain SELECT g, 0, repeat('x', 80) FROM generate_series(1, 100000) g;
INSERT INTO bench_vorm_where SELECT * FROM bench_vorm_plain;
INSERT INTO bench_vorm_orm SELECT * FROM bench_vorm_plain;
SELECT lockctl.enable_versioning('bench_vorm_where');
SELECT lockctl.enable_versioning('bench_vorm_orm');
VACUUM ANALYZE bench_vorm_plain, bench_vorm_where, bench_vorm_orm;
