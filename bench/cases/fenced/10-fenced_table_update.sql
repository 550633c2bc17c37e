-- label: acquire + fence, UPDATE of a fenced table + release
-- The same, on a table with enable_fencing: the trigger checks the row's
-- lease and stamps the token column.
\set k random(1, 10000)
SELECT lockctl.acquire('doc:' || :k, 'c' || :client_id, '30 s', '10 s') AS token \gset
BEGIN;
SELECT lockctl.fence('doc:' || :k, :token);
UPDATE bench_fence_rows SET body = 'c' || :client_id WHERE id = :k;
COMMIT;
SELECT lockctl.release('doc:' || :k, :token);
