-- The extension itself: its version, its schema, its settings.
SELECT extname, extversion = a.default_version AS is_default_version,
       extrelocatable, n.nspname AS schema
  FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
  JOIN pg_available_extensions a ON a.name = e.extname
 WHERE extname = 'lockctl';

-- Two schemas: the public API in lockctl, the internals in
-- lockctl_internal, which PUBLIC cannot even name.
SELECT n.nspname, has_schema_privilege('public', n.oid, 'USAGE') AS public_usage
  FROM pg_depend d JOIN pg_namespace n ON n.oid = d.objid
 WHERE d.classid = 'pg_namespace'::regclass
   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'lockctl')
UNION ALL
SELECT nspname, has_schema_privilege('public', oid, 'USAGE')
  FROM pg_namespace WHERE nspname = 'lockctl'
ORDER BY 1;

-- Every function of the extension, and whether PUBLIC may execute it.
SELECT p.pronamespace::regnamespace AS schema,
       p.oid::regprocedure AS function,
       has_function_privilege('public', p.oid, 'EXECUTE') AS public_execute
  FROM pg_proc p
 WHERE p.pronamespace IN ('lockctl'::regnamespace, 'lockctl_internal'::regnamespace)
 ORDER BY 1, p.oid::regprocedure::text;
SELECT lockctl.library_version() = extversion AS library_matches
  FROM pg_extension WHERE extname = 'lockctl';

-- Every setting is visible, with its context.
SELECT name, setting, unit, context FROM lockctl.settings ORDER BY name;

-- The prefix is reserved: a misspelt setting is refused.
SET lockctl.no_such_setting = 1;
-- Postmaster settings cannot change in a session.
SET lockctl.max_leases = 10;
-- Reload settings cannot change in a session either.
SET lockctl.expiry_interval = '1s';
-- Out-of-range values are refused, before they reach the configuration.
ALTER SYSTEM SET lockctl.expiry_interval = 0;
ALTER SYSTEM SET lockctl.retention = -2;

-- Loading the library again is harmless once it is preloaded.
LOAD 'lockctl';
SELECT lockctl.library_version() IS NOT NULL AS loaded;
