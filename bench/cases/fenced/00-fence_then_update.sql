-- label: acquire + fence, UPDATE (table not fenced) + release
-- The writer fences and stamps the token itself; nothing stops one that
-- forgets.
\set k random(1, 10000)
SELECT lockctl.acquire('doc:' || :k, 'c' || :client_id, '30 s', '10 s') AS token \gset
BEGIN;
SELECT lockctl.fence('doc:' || :k, :token);
UPDATE bench_fence_plain SET body = 'c' || :client_id, token = :token WHERE id = :k;
COMMIT;
SELECT lockctl.release('doc:' || :k, :token);
