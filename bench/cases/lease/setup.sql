-- Lease benchmarks: the table a table-kept lease lives in (the way
-- table-based lock libraries do it), and the table the fenced write updates.
DROP TABLE IF EXISTS bench_table_lease;
CREATE TABLE bench_table_lease (
    resource   text PRIMARY KEY,
    owner      text NOT NULL,
    lock_until timestamptz NOT NULL
);
DROP TABLE IF EXISTS bench_fenced_doc;
CREATE TABLE bench_fenced_doc (id int PRIMARY KEY, body text, token bigint);
INSERT INTO bench_fenced_doc SELECT i, '', 0 FROM generate_series(1, 10000) i;
VACUUM ANALYZE bench_table_lease, bench_fenced_doc;
