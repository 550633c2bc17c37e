-- lockctl install script, assembled by the Makefile from src/*.sql:
-- this file first, then one fragment per concept.
--
-- Secure-script habits: every object is created in schema lockctl (the
-- control file fixes it), every name used is qualified, nothing is
-- CREATE OR REPLACE'd, and SECURITY DEFINER functions pin their search_path.

\echo Use "CREATE EXTENSION lockctl" to load this file. \quit

-- The first C function: creating it loads the library, so CREATE EXTENSION
-- fails right here, with a message saying what to set, on a server that was
-- started without lockctl in shared_preload_libraries.
CREATE FUNCTION lockctl.library_version() RETURNS text
    LANGUAGE c STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'lockctl_library_version';

COMMENT ON SCHEMA lockctl IS 'lockctl: version-checked updates, fenced leases and expiring reservations';

-- What only lockctl's own functions and views call (src/request.sql,
-- src/fence_table.sql): no USAGE for PUBLIC.  Created here, in the first
-- fragment, so that every concept's fragment can use it.
CREATE SCHEMA lockctl_internal;
REVOKE ALL ON SCHEMA lockctl_internal FROM PUBLIC;
COMMENT ON SCHEMA lockctl_internal IS 'lockctl internals: helpers of the lockctl functions and the functions behind its views; not for direct use';

-- The settings, as the server sees them now.
CREATE VIEW lockctl.settings AS
    SELECT s.name, s.setting, s.unit, s.context, s.short_desc
      FROM pg_catalog.pg_settings AS s
     WHERE s.name OPERATOR(pg_catalog.~~) 'lockctl.%';

GRANT USAGE ON SCHEMA lockctl TO PUBLIC;
GRANT SELECT ON lockctl.settings TO PUBLIC;
GRANT EXECUTE ON FUNCTION lockctl.library_version() TO PUBLIC;
