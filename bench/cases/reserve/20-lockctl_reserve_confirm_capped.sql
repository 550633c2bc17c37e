-- label: lockctl reserve + confirm, 1000 pools, role capped
-- server: lockctl.max_holds_per_role = 1000000
-- The same sale as 10-, by a role with a cap on its live holds (never
-- reached): the price of the caps' lock and count (src/reserve_caps.c,
-- docs/reservations.md "Limits, honestly"), every client being one role.
\set id random(1, 1000)
SELECT lockctl.confirm(lockctl.reserve('bench_many_' || :id));
