-- label: lockctl reserve + confirm, one hot pool
SELECT lockctl.confirm(lockctl.reserve('bench_hot'));
