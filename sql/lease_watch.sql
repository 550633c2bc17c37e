-- lockctl.watch: how a lease ended, for the role that took it.  The waits
-- (woken by release, force-release, expiry, take-over) are in
-- t/062_lease_watch.pl; here, what needs no second session.
CREATE TEMP TABLE tok (name text PRIMARY KEY, token bigint);
GRANT SELECT ON tok TO PUBLIC;

CREATE FUNCTION pg_temp.try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    st text; msg text; det text; r record;
BEGIN
    EXECUTE stmt;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
                            det = PG_EXCEPTION_DETAIL;
    FOR r IN SELECT name, token FROM tok ORDER BY name LOOP
        msg := replace(msg, r.token::text, r.name);
        det := replace(det, r.token::text, r.name);
    END LOOP;
    RETURN st || ': ' || msg || coalesce(' | ' || nullif(det, ''), '');
END $$;

-- A live lease: 'live' when the timeout passes (at once with 0).
INSERT INTO tok SELECT 'A', lockctl.acquire('w', 'a', '1 min');
SELECT lockctl.watch('w', token, '0') AS at_once FROM tok WHERE name = 'A';
SELECT lockctl.watch('w', token, '50 ms') AS after_50ms FROM tok WHERE name = 'A';
-- The end of a lease is remembered: a watch that comes late says how.
SELECT lockctl.release('w', token) AS released FROM tok WHERE name = 'A';
SELECT lockctl.watch('w', token, '1 s') AS how FROM tok WHERE name = 'A';
INSERT INTO tok SELECT 'B', lockctl.acquire('w', 'b', '1 min');
SELECT lockctl.force_release('w') AS forced;
SELECT lockctl.watch('w', token, '1 s') AS how FROM tok WHERE name = 'B';
INSERT INTO tok SELECT 'C', lockctl.acquire('w', 'c', '1 s');
SELECT pg_sleep(1.1);
SELECT lockctl.watch('w', token, '1 s') AS how FROM tok WHERE name = 'C';
INSERT INTO tok SELECT 'D', lockctl.acquire('w', 'd', '1 min');
SELECT lockctl.watch('w', token, '1 s') AS how FROM tok WHERE name = 'C';
-- counted and shared holders too.
INSERT INTO tok SELECT 'P', lockctl.acquire('sem', 'p', '1 min', permits => 2);
SELECT lockctl.watch('sem', token, '0') AS how FROM tok WHERE name = 'P';
SELECT lockctl.release('sem', token) AS released FROM tok WHERE name = 'P';
SELECT lockctl.watch('sem', token, '0') AS how FROM tok WHERE name = 'P';
INSERT INTO tok SELECT 'S', lockctl.acquire_shared('rw', 's', '1 min');
SELECT lockctl.force_release('rw') AS forced;
SELECT lockctl.watch('rw', token, '0') AS how FROM tok WHERE name = 'S';

-- A token that never held the lease: stale (40001), as for renew.
SELECT pg_temp.try($$SELECT lockctl.watch('w', 12345, '0')$$);
SELECT pg_temp.try($$SELECT lockctl.watch('nothing', 12345, '0')$$);
-- The token of another resource is not the token of this one.
SELECT pg_temp.try($$SELECT lockctl.watch('other', (SELECT token FROM tok WHERE name = 'D'), '0')$$);

-- Only the role that took the lease, and roles with its privileges, may
-- watch it: to any other role it looks stale, with the same message, and
-- an ended lease says nothing either.
CREATE ROLE watch_other;
CREATE ROLE watch_member;
DO $$BEGIN EXECUTE format('GRANT %I TO watch_member', current_user); END$$;
SET ROLE watch_other;
SELECT pg_temp.try($$SELECT lockctl.watch('w', (SELECT token FROM tok WHERE name = 'D'), '0')$$);
SELECT pg_temp.try($$SELECT lockctl.watch('w', (SELECT token FROM tok WHERE name = 'A'), '0')$$);
RESET ROLE;
SET ROLE watch_member;
SELECT lockctl.watch('w', token, '0') AS member_may FROM tok WHERE name = 'D';
RESET ROLE;
DROP ROLE watch_other;
DROP ROLE watch_member;

-- Bad input.
SELECT pg_temp.try($$SELECT lockctl.watch(NULL, 1, '0')$$);
SELECT pg_temp.try($$SELECT lockctl.watch('w', NULL, '0')$$);
SELECT pg_temp.try($$SELECT lockctl.watch('w', 1, NULL)$$);
SELECT pg_temp.try($$SELECT lockctl.watch('w', 0, '0')$$);
SELECT pg_temp.try($$SELECT lockctl.watch('', 1, '0')$$);
SELECT pg_temp.try($$SELECT lockctl.watch('w', 1, '-1 s')$$);
SELECT pg_temp.try($$SELECT lockctl.watch('w', 1, '2 days')$$);

-- Clean up.
SELECT resource, lockctl.force_release(resource) FROM lockctl.leases
 WHERE database = current_database() GROUP BY resource ORDER BY resource;
