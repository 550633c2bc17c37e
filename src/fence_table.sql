
-- ---------------------------------------------------------------------------
-- Fenced tables: the storage checks the token (src/fence_table.c)
-- ---------------------------------------------------------------------------

-- The trigger.  Its arguments are (key, value) pairs: 'resource' or
-- 'resource_expression', and optionally 'token_column';
-- lockctl.enable_fencing() creates it.  Calling it directly fails.
CREATE FUNCTION lockctl.fence_trigger() RETURNS trigger
    LANGUAGE c
    AS 'MODULE_PATHNAME', 'lockctl_fence_trigger';
COMMENT ON FUNCTION lockctl.fence_trigger() IS
    'the trigger of a fenced table: refuses a write not fenced by the live token; created by lockctl.enable_fencing()';

-- Not STRICT: every argument but tbl may be NULL, and a NULL tbl is an
-- error with SQLSTATE 22004, not a silent no-op.
CREATE FUNCTION lockctl.enable_fencing(
        tbl pg_catalog.regclass,
        resource pg_catalog.text DEFAULT NULL,
        token_column pg_catalog.name DEFAULT NULL,
        resource_expression pg_catalog.text DEFAULT NULL)
    RETURNS void
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'lockctl_enable_fencing';
COMMENT ON FUNCTION lockctl.enable_fencing(pg_catalog.regclass, pg_catalog.text, pg_catalog.name, pg_catalog.text) IS
    'make tbl refuse every write (40001) not made in a transaction that fenced the row''s lease with its live token; with token_column, also any write with a lower token than the row records';

CREATE FUNCTION lockctl.disable_fencing(tbl pg_catalog.regclass)
    RETURNS void
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'lockctl_disable_fencing';
COMMENT ON FUNCTION lockctl.disable_fencing(pg_catalog.regclass) IS
    'take fencing off tbl (and its partitions)';

CREATE FUNCTION lockctl_internal.fenced_tables(
        OUT table_name pg_catalog.regclass,
        OUT resource pg_catalog.text,
        OUT resource_expression pg_catalog.text,
        OUT token_column pg_catalog.name,
        OUT enabled pg_catalog.bool,
        OUT writes_checked pg_catalog.int8,
        OUT refused_unfenced pg_catalog.int8,
        OUT refused_stale pg_catalog.int8,
        OUT bypassed pg_catalog.int8,
        OUT stats_reset pg_catalog.timestamptz)
    RETURNS SETOF record
    LANGUAGE c VOLATILE STRICT
    AS 'MODULE_PATHNAME', 'lockctl_fenced_tables';
COMMENT ON FUNCTION lockctl_internal.fenced_tables() IS
    'lockctl internal, behind the view lockctl.fenced_tables';

-- Every table fencing is enabled on in this database, with counters that
-- count what the trigger decided, committed or not, since the server
-- started (or fencing was enabled).
CREATE VIEW lockctl.fenced_tables AS
    SELECT table_name, resource, resource_expression, token_column, enabled,
           writes_checked, refused_unfenced, refused_stale, bypassed,
           stats_reset
      FROM lockctl_internal.fenced_tables();
COMMENT ON VIEW lockctl.fenced_tables IS
    'every fenced table of this database: how it is fenced, and the writes checked, refused for want of a live fence, refused as stale, and bypassed';

GRANT EXECUTE ON FUNCTION lockctl.fence_trigger() TO PUBLIC;
GRANT EXECUTE ON FUNCTION lockctl.enable_fencing(pg_catalog.regclass, pg_catalog.text, pg_catalog.name, pg_catalog.text) TO PUBLIC;
GRANT EXECUTE ON FUNCTION lockctl.disable_fencing(pg_catalog.regclass) TO PUBLIC;
GRANT SELECT ON lockctl.fenced_tables TO PUBLIC;
