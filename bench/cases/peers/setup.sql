-- The floor, and the single-row inventory users would otherwise pick.
-- (pg_advisory_lock and the table-kept lease are peers in group lease;
-- the single-row inventory with a reservation insert is in hotpool.)
DROP TABLE IF EXISTS bench_inventory;
CREATE TABLE bench_inventory (id int PRIMARY KEY, available bigint NOT NULL CHECK (available >= 0));
INSERT INTO bench_inventory VALUES (1, 1000000000);
