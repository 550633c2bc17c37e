-- lockctl install script, assembled by the Makefile from src/*.sql:
-- this file first, then one fragment per concept (the Makefile's SQL_PARTS).
--
-- Two schemas: lockctl holds the public API (what users call and read:
-- \df lockctl.* is the reference); lockctl_internal holds what only the
-- public functions and the views call.  PUBLIC has no USAGE on
-- lockctl_internal, so no role but a superuser can name anything in it.
-- Helpers there also have EXECUTE revoked from PUBLIC; the functions behind
-- the views keep it, because a view calls its functions with the
-- privileges of the role that reads the view (PostgreSQL checks EXECUTE
-- for the reader), which it can do without USAGE on the schema.  The
-- function behind view lockctl.X is lockctl_internal.X().
--
-- Secure-script habits: the control file fixes schema lockctl, every name
-- used is qualified, nothing is CREATE OR REPLACE'd, and SECURITY DEFINER
-- functions pin their search_path.

\echo Use "CREATE EXTENSION lockctl" to load this file. \quit

-- The first C function: creating it loads the library, so CREATE EXTENSION
-- fails right here, with a message saying what to set, on a server that was
-- started without lockctl in shared_preload_libraries.
CREATE FUNCTION lockctl.library_version() RETURNS text
    LANGUAGE c STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'lockctl_library_version';

COMMENT ON SCHEMA lockctl IS 'lockctl: version-checked updates, fenced leases and expiring reservations';

CREATE SCHEMA lockctl_internal;
REVOKE ALL ON SCHEMA lockctl_internal FROM PUBLIC;
COMMENT ON SCHEMA lockctl_internal IS 'lockctl internals: helpers of the lockctl functions and the functions behind its views; not for direct use';

-- The longest resource, owner, holder or idempotency key, in bytes: the C
-- constant LOCKCTL_NAME_MAXLEN, so that the SQL functions check names
-- against the same limit.  IMMUTABLE: plans fold it into a constant.
CREATE FUNCTION lockctl_internal.name_max_bytes() RETURNS integer
    LANGUAGE c IMMUTABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'lockctl_name_max_bytes';
COMMENT ON FUNCTION lockctl_internal.name_max_bytes() IS
    'lockctl internal: the longest resource, owner, holder or idempotency key, in bytes';

-- The most rows the worker's batches (expire_holds, purge_holds,
-- purge_requests) handle in one call.
CREATE FUNCTION lockctl_internal.max_batch() RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN 1000000;
COMMENT ON FUNCTION lockctl_internal.max_batch() IS
    'lockctl internal: the most rows expire_holds, purge_holds and purge_requests handle in one call';

-- The settings, as the server sees them now.
CREATE VIEW lockctl.settings AS
    SELECT s.name, s.setting, s.unit, s.context, s.short_desc
      FROM pg_catalog.pg_settings AS s
     WHERE s.name OPERATOR(pg_catalog.~~) 'lockctl.%';

GRANT USAGE ON SCHEMA lockctl TO PUBLIC;
GRANT SELECT ON lockctl.settings TO PUBLIC;
GRANT EXECUTE ON FUNCTION lockctl.library_version() TO PUBLIC;
REVOKE ALL ON FUNCTION lockctl_internal.name_max_bytes() FROM PUBLIC;
REVOKE ALL ON FUNCTION lockctl_internal.max_batch() FROM PUBLIC;
