-- label: pg_advisory_lock_shared + pg_advisory_unlock_shared
\set k random(1, 100000)
SELECT pg_advisory_lock_shared(:k);
SELECT pg_advisory_unlock_shared(:k);
