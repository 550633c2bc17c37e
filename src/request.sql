
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

CREATE TABLE lockctl.request_keys (
    -- text, not name: a name takes 64 bytes in the row and in every
    -- primary-key entry.  Collation "C": keys are compared byte by byte,
    -- whatever the database's collation (cheaper, and locale-independent).
    scope        text COLLATE "C" NOT NULL,
    key          text COLLATE "C" NOT NULL,
    fingerprint  text,
    result       jsonb,
    claimed      timestamp with time zone NOT NULL,
    completed    timestamp with time zone,
    expires      timestamp with time zone NOT NULL,
    -- The top-level transaction that claimed the key: complete_request
    -- accepts only that transaction's claim, subtransactions included.
    claim_xact   xid8 NOT NULL,
    -- key first: keys differ where scopes (mostly one role) are equal, so a
    -- comparison in the index is mostly one column's, not two.
    CONSTRAINT request_keys_pkey PRIMARY KEY (key, scope)
)
-- room on each page for the row's update by complete_request, which then
-- stays on the page (HOT) and adds no index entries
WITH (fillfactor = 90);

COMMENT ON TABLE lockctl.request_keys IS 'lockctl: claimed request keys (write through lockctl.claim_request and complete_request only)';

-- The purge: a pass costs what is due, not what is kept.
CREATE INDEX request_keys_expires_idx ON lockctl.request_keys (expires);

SELECT pg_catalog.pg_extension_config_dump('lockctl.request_keys', '');

REVOKE ALL ON lockctl.request_keys FROM PUBLIC;

-- Behind the view lockctl.request_stats: a view's functions are called
-- with the caller's privileges, so this one is granted to PUBLIC.
CREATE FUNCTION lockctl_internal.request_stats(
        OUT claims bigint, OUT repeats bigint, OUT waits bigint,
        OUT timeouts bigint, OUT conflicts bigint)
    RETURNS SETOF record
    AS 'MODULE_PATHNAME', 'lockctl_request_stats'
    LANGUAGE C VOLATILE;

-- ---------------------------------------------------------------------------
-- lockctl.claim_request(key, ttl, fingerprint, wait, scope): in the
-- transaction that has the effect.  NULL: this transaction holds the claim,
-- go ahead.  Otherwise the result stored by the request that did it ('{}'
-- if it stored none).  In C (src/request.c): it checks its arguments, locks
-- the key, then runs, as the extension's owner (what SECURITY DEFINER would
-- do) and with every name schema-qualified:
--     INSERT INTO lockctl.request_keys ... ON CONFLICT ON CONSTRAINT
--         request_keys_pkey DO UPDATE ... WHERE k.expires <= now()
-- (a key past its ttl is free again, purged or not), and for a key in use
-- reads its row: claimed by this transaction (NULL again), by another with
-- the same fingerprint (its result), or with another one (22023).
-- ---------------------------------------------------------------------------
CREATE FUNCTION lockctl.claim_request(key text,
                                      ttl interval DEFAULT '24:00:00'::interval,
                                      fingerprint text DEFAULT NULL,
                                      wait interval DEFAULT NULL,
                                      scope name DEFAULT NULL)
    RETURNS jsonb
    AS 'MODULE_PATHNAME', 'lockctl_claim_request'
    LANGUAGE C VOLATILE;

-- ---------------------------------------------------------------------------
-- lockctl.complete_request(key, result, scope): store the result that
-- duplicates of the request get, in the transaction that claimed it.  In
-- C, as claim_request: an UPDATE of the key's row where claim_xact is this
-- transaction (55000 when none is).
-- ---------------------------------------------------------------------------
CREATE FUNCTION lockctl.complete_request(key text, result jsonb DEFAULT '{}'::jsonb,
                                         scope name DEFAULT NULL)
    RETURNS void
    AS 'MODULE_PATHNAME', 'lockctl_complete_request'
    LANGUAGE C VOLATILE;

-- ---------------------------------------------------------------------------
-- lockctl_internal.purge_requests(batch_size): delete up to batch_size keys past
-- their ttl, oldest first; the expiry worker calls it.  Returns how many.
-- ---------------------------------------------------------------------------
CREATE FUNCTION lockctl_internal.purge_requests(batch_size integer DEFAULT 1000)
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
            MESSAGE = 'batch_size of lockctl_internal.purge_requests must not be null';
    ELSIF batch_size < 1 OR batch_size > lockctl_internal.max_batch() THEN
        RAISE EXCEPTION USING ERRCODE = 'numeric_value_out_of_range',
            MESSAGE = format('batch_size of lockctl_internal.purge_requests is out of range: %s', batch_size),
            DETAIL = format('It must be between 1 and %s.', lockctl_internal.max_batch());
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
    SELECT k.scope::pg_catalog.name AS scope,
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
      FROM lockctl_internal.request_stats() AS s;

COMMENT ON FUNCTION lockctl.claim_request(text, interval, text, interval, name) IS 'lockctl: claim a request key in the transaction that has the effect; NULL means go ahead, else the stored result';
COMMENT ON FUNCTION lockctl.complete_request(text, jsonb, name) IS 'lockctl: store the result that duplicates of a claimed request get';
COMMENT ON FUNCTION lockctl_internal.purge_requests(integer) IS 'lockctl internal: delete request keys past their ttl (the expiry worker calls it)';
COMMENT ON FUNCTION lockctl_internal.request_stats() IS 'lockctl internal, behind the view lockctl.request_stats: the request counters of this database';
COMMENT ON VIEW lockctl.requests IS 'lockctl: request keys of roles whose privileges the caller has';
COMMENT ON VIEW lockctl.request_stats IS 'lockctl: this database''s request counters since the server started';

REVOKE ALL ON FUNCTION lockctl_internal.purge_requests(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION lockctl.claim_request(text, interval, text, interval, name) TO PUBLIC;
GRANT EXECUTE ON FUNCTION lockctl.complete_request(text, jsonb, name) TO PUBLIC;
GRANT EXECUTE ON FUNCTION lockctl_internal.request_stats() TO PUBLIC;
GRANT SELECT ON lockctl.requests, lockctl.request_stats TO PUBLIC;
