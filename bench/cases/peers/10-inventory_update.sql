-- label: single-row UPDATE ... WHERE available >= 1
UPDATE bench_inventory SET available = available - 1 WHERE id = 1 AND available >= 1;
