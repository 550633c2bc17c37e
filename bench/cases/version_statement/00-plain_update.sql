-- label: plain UPDATE
\set id random(1, 100000)
UPDATE bench_vstmt_plain SET balance = balance + 1 WHERE id = :id;
