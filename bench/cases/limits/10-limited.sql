-- label: reserve + confirm, the same pool with max_per_holder
\set h random(1, 100000)
SELECT lockctl.confirm(lockctl.reserve('bench_limited', 1, 'customer-' || :h));
