-- The expiry worker's SQL surface: the view, the wake function, the filter
-- setting.  Its behaviour in time is tested in TAP (t/040-t/043).

-- The view's shape.
SELECT column_name, data_type
  FROM information_schema.columns
 WHERE table_schema = 'lockctl' AND table_name = 'workers'
 ORDER BY ordinal_position;

-- The wake function works for its owner, at commit; nothing on rollback.
SELECT lockctl.wake_expiry_worker();
BEGIN;
SELECT lockctl.wake_expiry_worker();
ROLLBACK;

-- lockctl.worker_databases is a server-wide (sighup) list of names: SET is
-- refused, and a malformed list is refused by ALTER SYSTEM too.
SET lockctl.worker_databases = 'a';
ALTER SYSTEM SET lockctl.worker_databases = '"unterminated';
SHOW lockctl.worker_databases;

-- Privileges: anyone reads the view; only the owner and those granted wake.
CREATE ROLE regress_worker_app;
SET ROLE regress_worker_app;
SELECT count(*) >= 0 AS readable FROM lockctl.workers;
SELECT lockctl.wake_expiry_worker();
RESET ROLE;
DROP ROLE regress_worker_app;
