-- label: the hold row alone: INSERT of a live hold into a copy of lockctl.reservations (a bound)
-- Not a product path: the one write every reserve makes, whatever the
-- design of the pool's counts (slot rows, or the escrow in shared memory
-- issue 21 proposes), with the table's own indexes and CHECK, through the
-- executor, alone in its transaction.  A sale (reserve + confirm) writes
-- this row and more (the row without the executor, which costs it less
-- CPU than this INSERT), so this ratio to the write floor bounds the sale's
-- (bench/README.md, "What bounds a sale").
INSERT INTO bench_hot_holds (pool_id, slot, quantity, created, expires)
VALUES (1, 0, 1, now(), now() + interval '5 minutes');
