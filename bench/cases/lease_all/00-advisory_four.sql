-- label: four pg_advisory_lock in one round trip + four unlocks in one
\set k random(0, 24999)
SELECT pg_advisory_lock(4 * :k), pg_advisory_lock(4 * :k + 1), pg_advisory_lock(4 * :k + 2), pg_advisory_lock(4 * :k + 3);
SELECT pg_advisory_unlock(4 * :k), pg_advisory_unlock(4 * :k + 1), pg_advisory_unlock(4 * :k + 2), pg_advisory_unlock(4 * :k + 3);
