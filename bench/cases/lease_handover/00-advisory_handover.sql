-- label: pg_advisory_lock hand-over, one hot key
SELECT pg_advisory_lock(42);
SELECT pg_advisory_unlock(42);
