--
-- lockctl.watch: how a lease ended, for the role that took it.  The waits
-- woken by another session (release, force-release, expiry, take-over,
-- cancel, statement_timeout, an era change, a restart) are in
-- t/027_lease_watch.pl; here, what needs no second session.
--
-- alice takes the leases; bob is another role (he must learn nothing, not
-- even whether a token was right); dave is a member of alice.
--
SET client_min_messages = warning;
CREATE ROLE regress_lw_alice;
CREATE ROLE regress_lw_bob;
CREATE ROLE regress_lw_dave IN ROLE regress_lw_alice;
CREATE TABLE lw_tok (name text PRIMARY KEY, token bigint);
GRANT ALL ON lw_tok TO PUBLIC;

-- try(statement): its result, or its SQLSTATE, message and detail, with
-- the tokens of lw_tok written by name.
CREATE FUNCTION pg_temp.try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    st text; msg text; det text; r record; res text;
BEGIN
    EXECUTE stmt INTO res;
    RETURN 'ok: ' || coalesce(res, 'NULL');
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
                            det = PG_EXCEPTION_DETAIL;
    FOR r IN SELECT name, token FROM lw_tok ORDER BY name LOOP
        msg := replace(msg, r.token::text, r.name);
        det := replace(det, r.token::text, r.name);
    END LOOP;
    RETURN st || ': ' || msg || coalesce(' | ' || nullif(det, ''), '');
END $$;

SET ROLE regress_lw_alice;
-- A live lease: 'live' when the timeout passes (at once with 0).
INSERT INTO lw_tok SELECT 'A', lockctl.acquire('w', 'a', '1 min');
SELECT lockctl.watch('w', token, '0') AS at_once FROM lw_tok WHERE name = 'A';
SELECT lockctl.watch('w', token, '20 ms') AS after_20ms FROM lw_tok WHERE name = 'A';
-- The end of a lease is remembered: a watch that comes late says how.
SELECT lockctl.release('w', token) AS released FROM lw_tok WHERE name = 'A';
SELECT lockctl.watch('w', token, '1 s') AS how FROM lw_tok WHERE name = 'A';
-- ... and keeps saying it, whatever comes after on the resource.
INSERT INTO lw_tok SELECT 'B', lockctl.acquire('w', 'b', '1 min');
SELECT lockctl.watch('w', token, '0') AS still FROM lw_tok WHERE name = 'A';
-- Expiry: the watch sleeps until the lease runs out, then says so (no
-- sleep here: watch waits for it).
INSERT INTO lw_tok SELECT 'C', lockctl.acquire('x', 'c', '10 ms');
SELECT lockctl.watch('x', token, '10 s') AS how FROM lw_tok WHERE name = 'C';
-- A new grant after an expiry nobody waited for: still 'expired' (a
-- take-over is a hand-over to a waiter, t/027).
INSERT INTO lw_tok SELECT 'D', lockctl.acquire('x', 'd', '1 min');
SELECT lockctl.watch('x', token, '0') AS how FROM lw_tok WHERE name = 'C';
-- Counted and shared holders, each on its own.
INSERT INTO lw_tok SELECT 'P', lockctl.acquire('sem', 'p', '1 min', permits => 2);
INSERT INTO lw_tok SELECT 'Q', lockctl.acquire('sem', 'q', '10 ms', permits => 2);
SELECT lockctl.watch('sem', token, '0') AS how FROM lw_tok WHERE name = 'P';
SELECT lockctl.watch('sem', token, '10 s') AS how FROM lw_tok WHERE name = 'Q';
SELECT lockctl.release('sem', token) AS released FROM lw_tok WHERE name = 'P';
SELECT lockctl.watch('sem', token, '0') AS how FROM lw_tok WHERE name = 'P';
SELECT lockctl.watch('sem', token, '0') AS how FROM lw_tok WHERE name = 'Q';
INSERT INTO lw_tok SELECT 'S', lockctl.acquire_shared('rw', 's', '1 min');
-- In a read-only transaction too (watch changes nothing).
BEGIN READ ONLY;
SELECT lockctl.watch('rw', token, '0') AS read_only FROM lw_tok WHERE name = 'S';
COMMIT;
RESET ROLE;

-- force_release of an exclusive lease and of a shared holder.
SELECT lockctl.force_release('w') AS forced;
SELECT lockctl.force_release('rw') AS forced;
SET ROLE regress_lw_alice;
SELECT lockctl.watch('w', token, '1 s') AS how FROM lw_tok WHERE name = 'B';
SELECT lockctl.watch('rw', token, '0') AS how FROM lw_tok WHERE name = 'S';

-- A token that never held the lease: stale (40001), as for renew.
SELECT pg_temp.try($$SELECT lockctl.watch('w', 12345, '0')$$);
SELECT pg_temp.try($$SELECT lockctl.watch('nothing', 12345, '0')$$);
-- The token of another resource is not the token of this one, live or
-- ended.
SELECT pg_temp.try($$SELECT lockctl.watch('other', (SELECT token FROM lw_tok WHERE name = 'D'), '0')$$);
SELECT pg_temp.try($$SELECT lockctl.watch('other', (SELECT token FROM lw_tok WHERE name = 'A'), '0')$$);
RESET ROLE;

-- Only the role that took the lease, and roles with its privileges, may
-- watch it: to any other role a live lease, an ended one and a token never
-- granted all look the same (renew's error; no token in the detail).
SET ROLE regress_lw_bob;
SELECT pg_temp.try($$SELECT lockctl.watch('x', (SELECT token FROM lw_tok WHERE name = 'D'), '0')$$) AS live_lease;
SELECT pg_temp.try($$SELECT lockctl.watch('w', (SELECT token FROM lw_tok WHERE name = 'A'), '0')$$) AS ended_lease;
SELECT pg_temp.try($$SELECT lockctl.watch('x', 12345, '0')$$) AS never_granted;
SELECT pg_temp.try($$SELECT lockctl.renew('x', (SELECT token FROM lw_tok WHERE name = 'D'))$$) AS renew_says;
RESET ROLE;
SET ROLE regress_lw_dave;
SELECT lockctl.watch('x', token, '0') AS member_may FROM lw_tok WHERE name = 'D';
SELECT lockctl.watch('w', token, '0') AS member_may FROM lw_tok WHERE name = 'A';
RESET ROLE;

-- Bad input: NULLs, out of range, names.
SELECT pg_temp.try($$SELECT lockctl.watch(NULL, 1, '0')$$);
SELECT pg_temp.try($$SELECT lockctl.watch('w', NULL, '0')$$);
SELECT pg_temp.try($$SELECT lockctl.watch('w', 1, NULL)$$);
SELECT pg_temp.try($$SELECT lockctl.watch('w', 0, '0')$$);
SELECT pg_temp.try($$SELECT lockctl.watch('w', -5, '0')$$);
SELECT pg_temp.try($$SELECT lockctl.watch('', 1, '0')$$);
SELECT pg_temp.try($$SELECT lockctl.watch(repeat('r', 201), 1, '0')$$);
SELECT pg_temp.try($$SELECT lockctl.watch('w', 1, '-1 s')$$);
SELECT pg_temp.try($$SELECT lockctl.watch('w', 1, '1 day 1 s')$$);
SELECT pg_temp.try($$SELECT lockctl.watch('w', 1, '1000000 years')$$);
-- the default timeout
SELECT pg_get_function_arguments('lockctl.watch(text,bigint,interval)'::regprocedure);

-- Clean up.
SELECT resource, lockctl.force_release(resource) FROM lockctl.leases
 WHERE database = current_database() GROUP BY resource ORDER BY resource;
DROP TABLE lw_tok;
DROP ROLE regress_lw_alice;
DROP ROLE regress_lw_bob;
DROP ROLE regress_lw_dave;
