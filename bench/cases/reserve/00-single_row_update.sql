-- label: single-row UPDATE + reservation insert, 1000 items
\set id random(1, 1000)
BEGIN;
UPDATE bench_many_inventory SET available = available - 1 WHERE id = :id AND available >= 1;
INSERT INTO bench_many_reservations (item_id, quantity, expires) VALUES (:id, 1, now() + interval '5 minutes');
END;
