-- One hot pool without a per-holder limit and the same with one (never
-- reached during a run), customers chosen at random among 100000.
SELECT lockctl.drop_pool(resource) FROM lockctl.pools
 WHERE resource IN ('bench_unlimited', 'bench_limited');
SELECT lockctl.create_pool('bench_unlimited', 1000000000000);
SELECT lockctl.create_pool('bench_limited', 1000000000000, NULL, 1000000000);
-- lockctl's tables analyzed as the baseline's are (and as autovacuum does
-- in production): without statistics, the generic plans of reserve's slot
-- look-up sort every slot row of the pool instead of reading the first.
VACUUM ANALYZE lockctl.pools, lockctl.pool_slots, lockctl.reservations;
