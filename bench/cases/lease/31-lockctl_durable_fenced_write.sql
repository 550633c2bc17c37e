-- label: acquire + fenced UPDATE + release, durability on
-- server: lockctl.lease_durability = on
-- 30- with every grant written to WAL and flushed before acquire returns.
\set k random(1, 10000)
SELECT lockctl.acquire('doc' || :k, 'c' || :client_id, '30 s', '10 s') AS token \gset
BEGIN;
SELECT lockctl.fence('doc' || :k, :token);
UPDATE bench_fenced_doc SET body = 'c' || :client_id, token = :token WHERE id = :k;
COMMIT;
SELECT lockctl.release('doc' || :k, :token);
