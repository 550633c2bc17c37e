-- Many pools: 1000 items, each a row in an inventory table for the
-- single-row approach and a lockctl pool, with stock that lasts the run.
DROP TABLE IF EXISTS bench_many_inventory, bench_many_reservations;
CREATE TABLE bench_many_inventory (
    id integer PRIMARY KEY,
    available bigint NOT NULL CHECK (available >= 0)
);
INSERT INTO bench_many_inventory SELECT i, 1000000000 FROM generate_series(1, 1000) i;
CREATE TABLE bench_many_reservations (
    id bigserial PRIMARY KEY,
    item_id integer NOT NULL,
    quantity bigint NOT NULL,
    holder text,
    status text NOT NULL DEFAULT 'held',
    created timestamptz NOT NULL DEFAULT now(),
    expires timestamptz NOT NULL
);
CREATE INDEX ON bench_many_reservations (expires) WHERE status = 'held';
SELECT count(lockctl.drop_pool(resource)) FROM lockctl.pools WHERE resource LIKE 'bench_many_%';
SELECT count(lockctl.create_pool('bench_many_' || i, 1000000000)) FROM generate_series(1, 1000) i;
VACUUM ANALYZE bench_many_inventory, bench_many_reservations;
-- lockctl's tables analyzed as the baseline's are (and as autovacuum does
-- in production): without statistics, the generic plans of reserve's slot
-- look-up sort every slot row of the pool instead of reading the first.
VACUUM ANALYZE lockctl.pools, lockctl.pool_slots, lockctl.reservations;
