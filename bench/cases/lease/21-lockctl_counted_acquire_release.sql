-- label: lockctl.acquire(permits => 3) + lockctl.release
\set k random(1, 100000)
SELECT lockctl.acquire('s' || :k, 'c' || :client_id, '30 s', '10 s', permits => 3) AS token \gset
SELECT lockctl.release('s' || :k, :token);
