-- label: reserve + confirm, hot pool without a limit
\set h random(1, 100000)
SELECT lockctl.confirm(lockctl.reserve('bench_unlimited', 1, 'customer-' || :h));
