
-- ---------------------------------------------------------------------
-- 1. Version-checked updates (src/version_*.c)
-- ---------------------------------------------------------------------

-- The trigger (BEFORE INSERT OR UPDATE OR DELETE FOR EACH ROW).  Its two
-- arguments are the version column and the mode ('strict', 'orm' or
-- 'server'); lockctl.enable_versioning() creates it.  Calling it directly
-- fails.
CREATE FUNCTION lockctl.version_trigger() RETURNS trigger
    LANGUAGE c
    AS 'MODULE_PATHNAME', 'lockctl_version_trigger';

-- Not STRICT: a NULL argument is an error with SQLSTATE 22004, not a
-- silent no-op.
CREATE FUNCTION lockctl.enable_versioning(
        tbl pg_catalog.regclass,
        version_column pg_catalog.name DEFAULT 'version',
        mode pg_catalog.text DEFAULT 'strict')
    RETURNS void
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'lockctl_enable_versioning';

CREATE FUNCTION lockctl.disable_versioning(tbl pg_catalog.regclass)
    RETURNS void
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'lockctl_disable_versioning';

-- Runs with the caller's privileges (not SECURITY DEFINER).
CREATE FUNCTION lockctl.update_versioned(
        tbl pg_catalog.regclass,
        key anyelement,
        expected_version pg_catalog.int8,
        changes pg_catalog.jsonb DEFAULT '{}')
    RETURNS pg_catalog.int8
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'lockctl_update_versioned';

-- The same with a text key: parameters that drivers send untyped (node-postgres
-- sends every parameter so, PREPARE with unknown types) cannot resolve
-- anyelement; as text they are converted to the key column's type.
CREATE FUNCTION lockctl.update_versioned(
        tbl pg_catalog.regclass,
        key pg_catalog.text,
        expected_version pg_catalog.int8,
        changes pg_catalog.jsonb DEFAULT '{}')
    RETURNS pg_catalog.int8
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'lockctl_update_versioned';

-- The rows' check of an UPDATE that lockctl moves from the trigger into
-- the statement's own projection (src/version_direct.c): the version the
-- row stores, or the trigger's error.  Called only from the projections
-- lockctl makes (any other call is refused), by whichever role runs the
-- UPDATE: PUBLIC may execute it, but cannot name it (the schema).
CREATE FUNCTION lockctl_internal.version_next(current_version pg_catalog.int8,
                                              sent_version pg_catalog.int8,
                                              row_ctid pg_catalog.tid)
    RETURNS pg_catalog.int8
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'lockctl_version_next';
COMMENT ON FUNCTION lockctl_internal.version_next(pg_catalog.int8, pg_catalog.int8, pg_catalog.tid) IS
    'lockctl internal: the version an UPDATE checked in its projection stores';
GRANT EXECUTE ON FUNCTION lockctl_internal.version_next(pg_catalog.int8, pg_catalog.int8, pg_catalog.tid) TO PUBLIC;

CREATE FUNCTION lockctl_internal.versioned_tables(
        OUT table_name pg_catalog.regclass,
        OUT version_column pg_catalog.name,
        OUT mode pg_catalog.text,
        OUT enabled pg_catalog.bool,
        OUT checked_updates pg_catalog.int8,
        OUT conflicts pg_catalog.int8,
        OUT blind_writes pg_catalog.int8,
        OUT inserts pg_catalog.int8,
        OUT stats_reset pg_catalog.timestamptz,
        OUT stale_matches pg_catalog.int8,
        OUT checked_deletes pg_catalog.int8)
    RETURNS SETOF record
    LANGUAGE c VOLATILE STRICT
    AS 'MODULE_PATHNAME', 'lockctl_versioned_tables';
COMMENT ON FUNCTION lockctl_internal.versioned_tables() IS
    'lockctl internal, behind the view lockctl.versioned_tables';

-- Every table versioning is enabled on in this database, with counters
-- that count what the trigger decided, committed or not; stale_matches
-- counts the UPDATEs and DELETEs whose version predicate matched no row
-- (the conflicts ORMs detect themselves).
CREATE VIEW lockctl.versioned_tables AS
    SELECT table_name, version_column, mode, enabled,
           checked_updates, conflicts, stale_matches, blind_writes,
           checked_deletes, inserts, stats_reset
      FROM lockctl_internal.versioned_tables();

CREATE FUNCTION lockctl.reset_versioning_stats(tbl pg_catalog.regclass DEFAULT NULL)
    RETURNS void
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'lockctl_reset_versioning_stats';

GRANT EXECUTE ON FUNCTION lockctl.version_trigger() TO PUBLIC;
GRANT EXECUTE ON FUNCTION lockctl.enable_versioning(pg_catalog.regclass, pg_catalog.name, pg_catalog.text) TO PUBLIC;
GRANT EXECUTE ON FUNCTION lockctl.disable_versioning(pg_catalog.regclass) TO PUBLIC;
GRANT EXECUTE ON FUNCTION lockctl.update_versioned(pg_catalog.regclass, anyelement, pg_catalog.int8, pg_catalog.jsonb) TO PUBLIC;
GRANT EXECUTE ON FUNCTION lockctl.update_versioned(pg_catalog.regclass, pg_catalog.text, pg_catalog.int8, pg_catalog.jsonb) TO PUBLIC;
GRANT SELECT ON lockctl.versioned_tables TO PUBLIC;
-- Resetting counters is an administrative act: superusers, or whom they grant.
REVOKE ALL ON FUNCTION lockctl.reset_versioning_stats(pg_catalog.regclass) FROM PUBLIC;
