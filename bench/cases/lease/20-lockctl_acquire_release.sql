-- label: lockctl.acquire + lockctl.release
\set k random(1, 100000)
SELECT lockctl.acquire('r' || :k, 'c' || :client_id, '30 s', '10 s') AS token \gset
SELECT lockctl.release('r' || :k, :token);
