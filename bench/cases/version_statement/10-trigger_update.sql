-- label: UPDATE through the version trigger
-- "version = version" sends the row's own version, so the check always
-- passes and does the same work as a matching version read by the client
-- (compare, then store version + 1) without a read before it.
\set id random(1, 100000)
UPDATE bench_vstmt_trig SET balance = balance + 1, version = version WHERE id = :id;
