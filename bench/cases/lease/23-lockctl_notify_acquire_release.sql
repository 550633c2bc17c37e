-- label: lockctl.acquire(notify => channel) + lockctl.release
\set k random(1, 100000)
SELECT lockctl.acquire('n' || :k, 'c' || :client_id, '30 s', '10 s', notify => 'bench_lease_ends') AS token \gset
SELECT lockctl.release('n' || :k, :token);
