-- label: read, then plain UPDATE
-- Each client works on its own 3000 rows, so no run ever conflicts, and
-- every case reads the row before it writes, as an ORM does.
\set id :client_id * 3000 + random(1, 3000)
SELECT balance, version FROM bench_vorm_plain WHERE id = :id \gset
UPDATE bench_vorm_plain SET balance = :balance + 1 WHERE id = :id;
