-- label: single-row UPDATE + reservation insert
BEGIN;
UPDATE bench_hot_inventory SET available = available - 1 WHERE id = 1 AND available >= 1;
INSERT INTO bench_hot_reservations (item_id, quantity, expires) VALUES (1, 1, now() + interval '5 minutes');
END;
