-- label: acquire + release, lease_durability = on
-- server: lockctl.lease_durability = on
-- The same cycle as 20-, with every grant written to WAL and flushed before
-- acquire returns (no standby here: no synchronous replication wait).
\set k random(1, 100000)
SELECT lockctl.acquire('r' || :k, 'c' || :client_id, '30 s', '10 s') AS token \gset
SELECT lockctl.release('r' || :k, :token);
