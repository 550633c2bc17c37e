-- One hot item: the single-row approach (an inventory row and a table of
-- reservations) and one lockctl pool, both with stock that does not run out
-- during a run.
DROP TABLE IF EXISTS bench_hot_inventory, bench_hot_reservations, bench_hot_write_floor,
    bench_hot_holds;
CREATE TABLE bench_hot_inventory (
    id integer PRIMARY KEY,
    available bigint NOT NULL CHECK (available >= 0)
);
INSERT INTO bench_hot_inventory VALUES (1, 1000000000000);
-- What an application keeps for each hold, with the index its cleanup job
-- needs: the same shape as lockctl.reservations.
CREATE TABLE bench_hot_reservations (
    id bigserial PRIMARY KEY,
    item_id integer NOT NULL,
    quantity bigint NOT NULL,
    holder text,
    status text NOT NULL DEFAULT 'held',
    created timestamptz NOT NULL DEFAULT now(),
    expires timestamptz NOT NULL
);
CREATE INDEX ON bench_hot_reservations (expires) WHERE status = 'held';
-- The write floor, as group peers measures it (20-write_floor.sql).
CREATE TABLE bench_hot_write_floor (id bigserial PRIMARY KEY, v integer NOT NULL);
-- The bounds (30-, 40-): lockctl's hold table as installed, its indexes,
-- CHECK and defaults included (the id from lockctl's own sequence, as a
-- hold's), so that they follow any change of its shape.
CREATE TABLE bench_hot_holds (LIKE lockctl.reservations INCLUDING ALL);
SELECT lockctl.drop_pool(resource) FROM lockctl.pools WHERE resource = 'bench_hot';
SELECT lockctl.create_pool('bench_hot', 1000000000000);
VACUUM ANALYZE bench_hot_inventory, bench_hot_reservations, bench_hot_write_floor,
    bench_hot_holds;
-- lockctl's tables analyzed as the baseline's are (and as autovacuum does
-- in production): without statistics, the generic plans of reserve's slot
-- look-up sort every slot row of the pool instead of reading the first.
VACUUM ANALYZE lockctl.pools, lockctl.pool_slots, lockctl.reservations;
