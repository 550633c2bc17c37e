-- label: lockctl.acquire_shared + lockctl.release
\set k random(1, 100000)
SELECT lockctl.acquire_shared('h' || :k, 'c' || :client_id, '30 s', '10 s') AS token \gset
SELECT lockctl.release('h' || :k, :token);
