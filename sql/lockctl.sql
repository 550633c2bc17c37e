-- The extension itself: its version, its schema, its settings.
SELECT extname, extversion, extrelocatable, n.nspname AS schema
  FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
 WHERE extname = 'lockctl';
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
