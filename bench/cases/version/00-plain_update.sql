-- label: read, then plain UPDATE
-- Read-modify-write without a check.  Each client works on its own 3000
-- rows, so no run ever conflicts and all scripts touch the same row set.
\set id :client_id * 3000 + random(1, 3000)
SELECT balance FROM bench_version_plain WHERE id = :id \gset
UPDATE bench_version_plain SET balance = :balance + 1 WHERE id = :id;
