-- label: lockctl.acquire_all of 4 + lockctl.release_all
\set k random(0, 24999)
SELECT lockctl.acquire_all(ARRAY['q' || 4 * :k, 'q' || 4 * :k + 1, 'q' || 4 * :k + 2, 'q' || 4 * :k + 3], 'c' || :client_id, '30 s', '10 s') AS toks \gset
SELECT lockctl.release_all(ARRAY['q' || 4 * :k, 'q' || 4 * :k + 1, 'q' || 4 * :k + 2, 'q' || 4 * :k + 3], :toks);
