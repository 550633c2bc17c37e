--
-- acquire's notify (a NOTIFY on a channel when the lease ends) and bind
-- => 'session' (the lease lasts as long as the session).  The NOTIFYs
-- themselves, and the ends of sessions, need a second session: they are
-- in t/028_lease_notify.pl; here, the arguments, the view and what a
-- session-bound lease does in its own session.
--
-- alice takes the leases; bob is another role; dave is a member of alice.
--
SET client_min_messages = warning;
CREATE ROLE regress_ln_alice;
CREATE ROLE regress_ln_bob;
CREATE ROLE regress_ln_dave IN ROLE regress_ln_alice;
CREATE TABLE ln_tok (name text PRIMARY KEY, token bigint);
GRANT ALL ON ln_tok TO PUBLIC;

-- try(statement): its result, or its SQLSTATE, message and detail.
CREATE FUNCTION pg_temp.try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    st text; msg text; det text; res text;
BEGIN
    EXECUTE stmt INTO res;
    RETURN 'ok: ' || coalesce(res, 'NULL');
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
                            det = PG_EXCEPTION_DETAIL;
    RETURN st || ': ' || msg || coalesce(' | ' || nullif(det, ''), '');
END $$;

-- Bad input: an empty channel, one longer than NAMEDATALEN - 1 bytes, a
-- bind that is neither 'none' nor 'session', a NULL bind.  Nothing is
-- granted.
SELECT pg_temp.try($$SELECT lockctl.acquire('ln', 'o', notify => '')$$);
SELECT pg_temp.try($$SELECT lockctl.acquire('ln', 'o', notify => repeat('c', 64))$$);
SELECT pg_temp.try($$SELECT lockctl.acquire_shared('ln', 'o', notify => repeat('é', 32))$$);
SELECT pg_temp.try($$SELECT lockctl.acquire('ln', 'o', bind => 'Session')$$);
SELECT pg_temp.try($$SELECT lockctl.acquire('ln', 'o', bind => '')$$);
SELECT pg_temp.try($$SELECT lockctl.acquire('ln', 'o', bind => NULL)$$);
SELECT pg_temp.try($$SELECT lockctl.acquire_shared('ln', 'o', bind => 'transaction')$$);
SELECT count(*) AS none_granted FROM lockctl.leases WHERE resource = 'ln';

-- The longest channel (63 bytes), a NULL channel (no NOTIFY), bind 'none'.
SET ROLE regress_ln_alice;
INSERT INTO ln_tok SELECT 'long', lockctl.acquire('ln-long', 'o', '1 min', notify => repeat('c', 63));
INSERT INTO ln_tok SELECT 'plain', lockctl.acquire('ln-plain', 'o', '1 min', notify => NULL, bind => 'none');
SELECT resource, length(notify) AS channel_length, session_pid IS NULL AS unbound, ended
  FROM lockctl.lease_options ORDER BY resource;

-- A session-bound lease: no expiry (its ttl does not count), shown with
-- this session's pid; renew and fence's extend leave it so; watch finds
-- it live.
INSERT INTO ln_tok SELECT 'B', lockctl.acquire('ln-bound', 'o', '1 ms', notify => 'Ln Ends', bind => 'session');
SELECT pg_sleep(0.02);
SELECT l.expires_at, o.notify, o.session_pid = pg_backend_pid() AS this_session,
       o.token = t.token AS token_shown
  FROM lockctl.leases AS l
  JOIN lockctl.lease_options AS o USING (resource)
  JOIN ln_tok AS t ON t.name = 'B'
 WHERE l.resource = 'ln-bound';
SELECT lockctl.renew('ln-bound', token, '1 s') AS renewed FROM ln_tok WHERE name = 'B';
BEGIN;
SELECT lockctl.fence('ln-bound', token, extend => '1 s') FROM ln_tok WHERE name = 'B';
COMMIT;
SELECT expires_at FROM lockctl.leases WHERE resource = 'ln-bound';
SELECT lockctl.watch('ln-bound', token, '0') AS watch FROM ln_tok WHERE name = 'B';
-- Asked again by the same owner: the same token, still bound, and a new
-- channel replaces the old one.
SELECT lockctl.acquire('ln-bound', 'o', '1 min', notify => 'ln_other') = token AS same_token
  FROM ln_tok WHERE name = 'B';
SELECT notify, session_pid = pg_backend_pid() AS still_bound
  FROM lockctl.lease_options WHERE resource = 'ln-bound';
-- Another owner does not get it, however long ago its ttl ran out.
SELECT lockctl.acquire('ln-bound', 'other', '1 min') AS other_owner;

-- Counted and shared leases can be bound too.
INSERT INTO ln_tok SELECT 'C', lockctl.acquire('ln-counted', 'o', '1 ms', permits => 2, bind => 'session');
INSERT INTO ln_tok SELECT 'S', lockctl.acquire_shared('ln-shared', 'o', '1 ms', bind => 'session');
SELECT pg_sleep(0.02);
SELECT resource, mode, expires_at FROM lockctl.leases
 WHERE resource IN ('ln-counted', 'ln-shared') ORDER BY resource;
SELECT lockctl.renew('ln-counted', token, '1 s') AS renewed FROM ln_tok WHERE name = 'C';
RESET ROLE;

-- bob sees the bindings of this database, but neither token nor channel.
SET ROLE regress_ln_bob;
SELECT resource, token, acquired_by, notify, session_pid IS NOT NULL AS bound
  FROM lockctl.lease_options ORDER BY resource;
RESET ROLE;
-- dave, a member of alice, sees them.
SET ROLE regress_ln_dave;
SELECT resource, token IS NOT NULL AS token_shown, notify
  FROM lockctl.lease_options ORDER BY resource;
RESET ROLE;

-- release still ends a bound lease (its end is 'released'), and its
-- notice waits for the worker's NOTIFY (or is already sent).
SET ROLE regress_ln_alice;
SELECT lockctl.release('ln-bound', token) AS released FROM ln_tok WHERE name = 'B';
SELECT lockctl.watch('ln-bound', token, '0') AS watch FROM ln_tok WHERE name = 'B';
SELECT count(*) AS bound_left FROM lockctl.lease_options
 WHERE resource = 'ln-bound' AND ended IS NULL;
SELECT lockctl.release('ln-counted', token) AS released FROM ln_tok WHERE name = 'C';
SELECT lockctl.release('ln-shared', token) AS released FROM ln_tok WHERE name = 'S';
SELECT lockctl.release('ln-long', token) AS released FROM ln_tok WHERE name = 'long';
SELECT lockctl.release('ln-plain', token) AS released FROM ln_tok WHERE name = 'plain';
SELECT count(*) AS live_options FROM lockctl.lease_options WHERE ended IS NULL;
RESET ROLE;

DROP TABLE ln_tok;
DROP ROLE regress_ln_dave;
DROP ROLE regress_ln_bob;
DROP ROLE regress_ln_alice;

-- DISCARD ALL (how a session pooler hands a server connection to the next
-- client) ends the session's bound leases, as it releases its advisory
-- locks; a lease with a ttl stays.  In a transaction block DISCARD ALL is
-- refused and ends nothing.
SELECT lockctl.acquire('ln-discard-bound', 'o', bind => 'session') IS NOT NULL AS bound_taken;
SELECT lockctl.acquire('ln-discard-ttl', 'o', '1 min') IS NOT NULL AS ttl_taken;
BEGIN;
DISCARD ALL;
ROLLBACK;
SELECT resource FROM lockctl.leases WHERE resource LIKE 'ln-discard-%' ORDER BY resource;
DISCARD ALL;
SELECT resource FROM lockctl.leases WHERE resource LIKE 'ln-discard-%' ORDER BY resource;
SELECT lockctl.force_release('ln-discard-ttl') AS forced;
