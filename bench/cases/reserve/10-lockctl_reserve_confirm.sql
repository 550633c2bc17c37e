-- label: lockctl reserve + confirm, 1000 pools
\set id random(1, 1000)
SELECT lockctl.confirm(lockctl.reserve('bench_many_' || :id));
