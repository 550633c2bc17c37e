-- label: one confirmed row: INSERT of a finished sale into a copy of lockctl.reservations (a bound)
-- Not a product path either: a sale at the cost of one row of lockctl's
-- shape, written already confirmed (so it enters the primary key only, as
-- the write floor's row does): what a design that wrote nothing but the
-- final row could reach.
INSERT INTO bench_hot_holds (pool_id, slot, quantity, status, created, expires, finished)
VALUES (1, 0, 1, 'confirmed', now(), now() + interval '5 minutes', now());
