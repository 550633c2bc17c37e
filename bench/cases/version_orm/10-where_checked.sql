-- label: read, then UPDATE ... WHERE id = $1 AND version = $n (the version check)
-- The version compared in WHERE, the database bumps it (SQLAlchemy's
-- server-side recipe): classified as checked when the statement starts.
\set id :client_id * 3000 + random(1, 3000)
SELECT balance, version FROM bench_vorm_where WHERE id = :id \gset
UPDATE bench_vorm_where SET balance = :balance + 1 WHERE id = :id AND version = :version;
