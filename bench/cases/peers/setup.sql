-- The floors, and the single-row inventory users would otherwise pick.
-- SELECT 1 is the round-trip floor; a one-row INSERT in its own
-- transaction is the write floor: one durable commit (the bench server runs
-- with fsync and synchronous_commit on) that writes one small row, the least
-- any durable sale or write can cost.
-- (pg_advisory_lock and the table-kept lease are peers in group lease;
-- the single-row inventory with a reservation insert is in hotpool.)
DROP TABLE IF EXISTS bench_inventory, bench_write_floor;
CREATE TABLE bench_inventory (id int PRIMARY KEY, available bigint NOT NULL CHECK (available >= 0));
INSERT INTO bench_inventory VALUES (1, 1000000000);
-- A bigserial key, as a hold or an order row has: the least index work a
-- real row brings.
CREATE TABLE bench_write_floor (id bigserial PRIMARY KEY, v integer NOT NULL);
