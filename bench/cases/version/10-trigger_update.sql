-- label: read, then UPDATE checked by the trigger
\set id :client_id * 3000 + random(1, 3000)
SELECT balance, version FROM bench_version_trig WHERE id = :id \gset
UPDATE bench_version_trig SET balance = :balance + 1, version = :version WHERE id = :id;
