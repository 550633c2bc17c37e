-- The expiry worker (src/worker.c, launcher.c, expiry_worker.c): its
-- status, and the wake that makes CREATE EXTENSION picked up at once.  It
-- calls lockctl_internal.expire_holds and purge_holds (src/reserve.sql).

-- One row per database that an expiry worker serves, or is being started
-- for, across the cluster.  Counters live in shared memory and restart
-- from zero with the server.
CREATE FUNCTION lockctl_internal.workers(
        OUT datid oid,
        OUT datname name,
        OUT pid integer,
        OUT state text,
        OUT started timestamptz,
        OUT last_run timestamptz,
        OUT holds_expired bigint,
        OUT holds_purged bigint,
        OUT errors bigint,
        OUT last_error text,
        OUT last_error_at timestamptz)
    RETURNS SETOF record
    LANGUAGE c STRICT VOLATILE PARALLEL RESTRICTED
    AS 'MODULE_PATHNAME', 'lockctl_worker_status';
COMMENT ON FUNCTION lockctl_internal.workers() IS
    'lockctl internal, behind the view lockctl.workers';

-- What holds a database's worker back: the lock it waits for and who
-- holds it, or the due holds its last pass had to leave because other
-- transactions have them locked, and whose; NULL when nothing does.
CREATE FUNCTION lockctl_internal.worker_waiting_on(datid oid) RETURNS text
    LANGUAGE c STRICT VOLATILE PARALLEL RESTRICTED
    AS 'MODULE_PATHNAME', 'lockctl_worker_waiting_on';
COMMENT ON FUNCTION lockctl_internal.worker_waiting_on(oid) IS
    'lockctl internal, behind the column waiting_on of the view lockctl.workers';

CREATE VIEW lockctl.workers AS
    SELECT w.datid, w.datname, w.pid, w.state, w.started, w.last_run,
           w.holds_expired, w.holds_purged, w.errors,
           w.last_error, w.last_error_at,
           lockctl_internal.worker_waiting_on(w.datid) AS waiting_on
      FROM lockctl_internal.workers() AS w;

COMMENT ON VIEW lockctl.workers IS
    'lockctl expiry workers: one row per database served, with last pass, holds expired and purged, the last error, and what holds it back';

-- When the calling transaction commits, make this database's expiry
-- worker run a pass at once (starting it if none runs).
CREATE FUNCTION lockctl.wake_expiry_worker() RETURNS void
    LANGUAGE c STRICT VOLATILE PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'lockctl_wake_expiry_worker';

COMMENT ON FUNCTION lockctl.wake_expiry_worker() IS
    'at commit, make this database''s lockctl expiry worker run a pass now, starting it if needed';

-- Behind a view every role reads: EXECUTE stays with PUBLIC (written out,
-- as 1.0 had it, so that an updated database has the same ACL).
REVOKE ALL ON FUNCTION lockctl_internal.workers() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION lockctl_internal.workers() TO PUBLIC;
REVOKE ALL ON FUNCTION lockctl_internal.worker_waiting_on(oid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION lockctl_internal.worker_waiting_on(oid) TO PUBLIC;
GRANT SELECT ON lockctl.workers TO PUBLIC;
REVOKE ALL ON FUNCTION lockctl.wake_expiry_worker() FROM PUBLIC;

-- Last statement of the install script: the worker starts as soon as
-- CREATE EXTENSION commits.
SELECT lockctl.wake_expiry_worker();
