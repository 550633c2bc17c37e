-- The peers users would otherwise pick: a lease kept in an ordinary table
-- (as table-based lock libraries do) and a single-row inventory.
DROP TABLE IF EXISTS bench_table_lease, bench_inventory, bench_inventory_holds;
CREATE TABLE bench_table_lease (
    resource   text PRIMARY KEY,
    owner      text NOT NULL,
    lock_until timestamptz NOT NULL
);
CREATE TABLE bench_inventory (id int PRIMARY KEY, available bigint NOT NULL CHECK (available >= 0));
INSERT INTO bench_inventory VALUES (1, 1000000000);
