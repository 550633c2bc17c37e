-- lockctl 1.0 -> 1.1: ALTER EXTENSION lockctl UPDATE TO '1.1'
--
-- Every change that 1.1 makes to installed objects is made here as well as
-- in src/*.sql (which build lockctl--1.1.sql), so that an updated database
-- ends with the same catalog as a fresh install; t/ checks that.

\echo Use "ALTER EXTENSION lockctl UPDATE TO '1.1'" to load this file. \quit

-- Idempotent requests (new in 1.1): the same objects as src/request.sql.
-- ---------------------------------------------------------------------------
-- Idempotent requests: one effect per request key.
--
--   lockctl.request_keys   one row per key claimed by a role: written by
--                          claim_request in the transaction that has the
--                          effect, so it commits or rolls back with it.
--
-- claim_request takes a transaction-level lock on (role, key) in
-- PostgreSQL's lock manager first (src/request.c), so a duplicate waits for
-- the transaction in flight and then sees its outcome: the row if it
-- committed, nothing if it rolled back (and then claims the key itself).
-- Under REPEATABLE READ and SERIALIZABLE a duplicate whose snapshot is
-- older than the first one's commit gets 40001 from the INSERT (PostgreSQL
-- refuses ON CONFLICT against a row its snapshot cannot see); its retry
-- sees the row.  Keys are scoped by role, as holds are: the session's role
-- (SET ROLE's, else the session user), or a role whose privileges the
-- caller has, named by scope.
-- ---------------------------------------------------------------------------

CREATE SCHEMA lockctl_internal;
REVOKE ALL ON SCHEMA lockctl_internal FROM PUBLIC;

CREATE TABLE lockctl.request_keys (
    scope        name NOT NULL,
    key          text NOT NULL,
    fingerprint  text,
    result       jsonb,
    claimed      timestamp with time zone NOT NULL,
    completed    timestamp with time zone,
    expires      timestamp with time zone NOT NULL,
    -- The top-level transaction that claimed the key: complete_request
    -- accepts only that transaction's claim, subtransactions included.
    claim_xact   xid8 NOT NULL,
    CONSTRAINT request_keys_pkey PRIMARY KEY (scope, key)
);

COMMENT ON TABLE lockctl.request_keys IS 'lockctl: claimed request keys (write through lockctl.claim_request and complete_request only)';

-- The purge: a pass costs what is due, not what is kept.
CREATE INDEX request_keys_expires_idx ON lockctl.request_keys (expires);

SELECT pg_catalog.pg_extension_config_dump('lockctl.request_keys', '');

REVOKE ALL ON lockctl.request_keys FROM PUBLIC;

CREATE FUNCTION lockctl_internal.request_begin(key text, wait interval, scope name)
    RETURNS name
    AS 'MODULE_PATHNAME', 'lockctl_request_begin'
    LANGUAGE C VOLATILE;

CREATE FUNCTION lockctl_internal.request_scope(scope name)
    RETURNS name
    AS 'MODULE_PATHNAME', 'lockctl_request_scope'
    LANGUAGE C STABLE;

CREATE FUNCTION lockctl_internal.request_note(what text)
    RETURNS void
    AS 'MODULE_PATHNAME', 'lockctl_request_note'
    LANGUAGE C VOLATILE STRICT;

-- Behind the view lockctl.request_stats: a view's functions are called
-- with the caller's privileges, so this one is granted to PUBLIC.
CREATE FUNCTION lockctl.request_counters(
        OUT claims bigint, OUT repeats bigint, OUT waits bigint,
        OUT timeouts bigint, OUT conflicts bigint)
    RETURNS SETOF record
    AS 'MODULE_PATHNAME', 'lockctl_request_stats'
    LANGUAGE C VOLATILE;

-- ---------------------------------------------------------------------------
-- lockctl.claim_request(key, ttl, fingerprint, wait, scope): in the
-- transaction that has the effect.  NULL: this transaction holds the claim,
-- go ahead.  Otherwise the result stored by the request that did it ('{}'
-- if it stored none).
-- ---------------------------------------------------------------------------
CREATE FUNCTION lockctl.claim_request(key text,
                                      ttl interval DEFAULT '24:00:00'::interval,
                                      fingerprint text DEFAULT NULL,
                                      wait interval DEFAULT NULL,
                                      scope name DEFAULT NULL)
    RETURNS jsonb
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    SET plan_cache_mode = force_generic_plan
AS $fn$
#variable_conflict use_variable
DECLARE
    v_scope name;
    v_now timestamp with time zone := now();
    v_new boolean;
    r record;
BEGIN
    IF ttl IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed',
            MESSAGE = 'ttl of lockctl.claim_request must not be null';
    ELSIF ttl < '1 millisecond'::interval OR ttl > '3650 days'::interval
          OR v_now + ttl <= v_now THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('ttl of lockctl.claim_request is out of range: "%s"', ttl),
            DETAIL = 'It must be between 1 millisecond and 3650 days.';
    END IF;
    IF octet_length(fingerprint) > 200 THEN
        RAISE EXCEPTION USING ERRCODE = 'name_too_long',
            MESSAGE = 'fingerprint of lockctl.claim_request is too long',
            DETAIL = format('It is %s bytes long; the limit is 200 bytes.', octet_length(fingerprint)),
            HINT = 'Pass a hash of the request''s parameters, not the parameters.';
    END IF;

    -- Checks key, wait and scope, then waits for any transaction working
    -- on the same key.
    v_scope := lockctl_internal.request_begin(key, wait, scope);

    -- A key past its ttl is free again, purged or not.
    INSERT INTO lockctl.request_keys AS k
           (scope, key, fingerprint, claimed, expires, claim_xact)
    VALUES (v_scope, key, fingerprint, v_now, v_now + ttl, pg_current_xact_id())
    ON CONFLICT ON CONSTRAINT request_keys_pkey DO UPDATE
       SET fingerprint = excluded.fingerprint, result = NULL,
           claimed = excluded.claimed, completed = NULL,
           expires = excluded.expires, claim_xact = excluded.claim_xact
     WHERE k.expires <= v_now
    RETURNING true INTO v_new;
    IF v_new THEN
        PERFORM lockctl_internal.request_note('claim');
        RETURN NULL;
    END IF;

    SELECT k.fingerprint, k.result, k.claim_xact INTO r
      FROM lockctl.request_keys AS k
     WHERE k.scope = v_scope AND k.key = key;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'lockctl.claim_request: the row of request "%" vanished', key;
    END IF;
    IF r.claim_xact = pg_current_xact_id() THEN
        -- claimed earlier in this same transaction: it still holds it
        RETURN NULL;
    END IF;
    IF r.fingerprint IS DISTINCT FROM fingerprint THEN
        PERFORM lockctl_internal.request_note('conflict');
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('request "%s" was first made with other parameters', key),
            DETAIL = format('Its first use had fingerprint %s; this call has %s.',
                            coalesce(quote_literal(r.fingerprint), 'NULL'),
                            coalesce(quote_literal(fingerprint), 'NULL')),
            HINT = 'A key names one request: use a new key for a different request.';
    END IF;
    PERFORM lockctl_internal.request_note('repeat');
    RETURN coalesce(r.result, '{}'::jsonb);
END;
$fn$;

-- ---------------------------------------------------------------------------
-- lockctl.complete_request(key, result, scope): store the result that
-- duplicates of the request get, in the transaction that claimed it.
-- ---------------------------------------------------------------------------
CREATE FUNCTION lockctl.complete_request(key text, result jsonb DEFAULT '{}'::jsonb,
                                         scope name DEFAULT NULL)
    RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    SET plan_cache_mode = force_generic_plan
AS $fn$
#variable_conflict use_variable
DECLARE
    v_scope name := lockctl_internal.request_scope(scope);
BEGIN
    IF key IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed',
            MESSAGE = 'key of lockctl.complete_request must not be null';
    END IF;
    IF result IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed',
            MESSAGE = 'result of lockctl.complete_request must not be null',
            HINT = 'Pass ''{}'' for a request with nothing to replay.';
    END IF;
    UPDATE lockctl.request_keys AS k
       SET result = result, completed = clock_timestamp()
     WHERE k.scope = v_scope AND k.key = key
       AND k.claim_xact = pg_current_xact_id_if_assigned();
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = format('request "%s" was not claimed in this transaction', key),
            HINT = 'Call lockctl.claim_request(key) first, in the same transaction, and complete the request only when it returned NULL.';
    END IF;
END;
$fn$;

-- ---------------------------------------------------------------------------
-- lockctl.purge_requests(batch_size): delete up to batch_size keys past
-- their ttl, oldest first; the expiry worker calls it.  Returns how many.
-- ---------------------------------------------------------------------------
CREATE FUNCTION lockctl.purge_requests(batch_size integer DEFAULT 1000)
    RETURNS integer
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_variable
DECLARE
    v_n integer;
BEGIN
    IF batch_size IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed',
            MESSAGE = 'batch_size of lockctl.purge_requests must not be null';
    ELSIF batch_size < 1 OR batch_size > 1000000 THEN
        RAISE EXCEPTION USING ERRCODE = 'numeric_value_out_of_range',
            MESSAGE = format('batch_size of lockctl.purge_requests is out of range: %s', batch_size),
            DETAIL = 'It must be between 1 and 1000000.';
    END IF;
    -- SKIP LOCKED: a key being claimed again right now is left for later.
    WITH due AS (
        SELECT k.scope, k.key FROM lockctl.request_keys AS k
         WHERE k.expires <= now()
         ORDER BY k.expires
         LIMIT batch_size
         FOR UPDATE SKIP LOCKED)
    DELETE FROM lockctl.request_keys AS k
     USING due
     WHERE k.scope = due.scope AND k.key = due.key;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    RETURN v_n;
END;
$fn$;

CREATE VIEW lockctl.requests WITH (security_barrier) AS
    SELECT k.scope,
           k.key,
           CASE WHEN k.expires OPERATOR(pg_catalog.<=) pg_catalog.now() THEN 'expired'
                WHEN k.completed IS NULL THEN 'claimed'
                ELSE 'completed' END AS state,
           k.fingerprint,
           k.result,
           k.claimed,
           k.completed,
           k.expires
      FROM lockctl.request_keys AS k
     WHERE pg_catalog.pg_has_role(pg_catalog.to_regrole(pg_catalog.quote_ident(k.scope))::pg_catalog.oid,
                                  'USAGE');

CREATE VIEW lockctl.request_stats AS
    SELECT s.claims, s.repeats, s.waits, s.timeouts, s.conflicts
      FROM lockctl.request_counters() AS s;

COMMENT ON FUNCTION lockctl.claim_request(text, interval, text, interval, name) IS 'lockctl: claim a request key in the transaction that has the effect; NULL means go ahead, else the stored result';
COMMENT ON FUNCTION lockctl.complete_request(text, jsonb, name) IS 'lockctl: store the result that duplicates of a claimed request get';
COMMENT ON FUNCTION lockctl.purge_requests(integer) IS 'lockctl: delete request keys past their ttl (the expiry worker calls it)';
COMMENT ON FUNCTION lockctl_internal.request_begin(text, interval, name) IS 'lockctl internal: check a claim''s arguments and lock its key';
COMMENT ON FUNCTION lockctl_internal.request_scope(name) IS 'lockctl internal: the role whose request keys a call uses';
COMMENT ON FUNCTION lockctl_internal.request_note(text) IS 'lockctl internal: count a claim, a repeat or a conflict';
COMMENT ON FUNCTION lockctl.request_counters() IS 'lockctl: the request counters of this database (behind lockctl.request_stats)';
COMMENT ON VIEW lockctl.requests IS 'lockctl: request keys of roles whose privileges the caller has';
COMMENT ON VIEW lockctl.request_stats IS 'lockctl: this database''s request counters since the server started';

REVOKE ALL ON FUNCTION lockctl_internal.request_begin(text, interval, name) FROM PUBLIC;
REVOKE ALL ON FUNCTION lockctl_internal.request_scope(name) FROM PUBLIC;
REVOKE ALL ON FUNCTION lockctl_internal.request_note(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION lockctl.purge_requests(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION lockctl.claim_request(text, interval, text, interval, name) TO PUBLIC;
GRANT EXECUTE ON FUNCTION lockctl.complete_request(text, jsonb, name) TO PUBLIC;
GRANT EXECUTE ON FUNCTION lockctl.request_counters() TO PUBLIC;
GRANT SELECT ON lockctl.requests, lockctl.request_stats TO PUBLIC;
