-- Three hot pools with stock that does not run out during a run: three
-- single reserves in one transaction against one cart of the same three.
SELECT lockctl.drop_pool(resource) FROM lockctl.pools
 WHERE resource IN ('bench_cart_a', 'bench_cart_b', 'bench_cart_c');
SELECT lockctl.create_pool('bench_cart_a', 1000000000000);
SELECT lockctl.create_pool('bench_cart_b', 1000000000000);
SELECT lockctl.create_pool('bench_cart_c', 1000000000000);
-- lockctl's tables analyzed as the baseline's are (and as autovacuum does
-- in production): without statistics, the generic plans of reserve's slot
-- look-up sort every slot row of the pool instead of reading the first.
VACUUM ANALYZE lockctl.pools, lockctl.pool_slots, lockctl.reservations;
