
-- ---------------------------------------------------------------------------
-- Leases with fencing tokens (src/lease.c, src/lease_token.c)
-- ---------------------------------------------------------------------------

CREATE FUNCTION lockctl.acquire(resource text, owner text,
                                ttl interval DEFAULT '30 s',
                                wait interval DEFAULT '0',
                                permits integer DEFAULT 1,
                                notify text DEFAULT NULL,
                                bind text DEFAULT 'none')
    RETURNS bigint
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'lockctl_acquire';
COMMENT ON FUNCTION lockctl.acquire(text, text, interval, interval, integer, text, text) IS
    'take the lease on resource for owner, as the session''s role (one of permits holders at once); returns its fencing token, or NULL if not granted within wait; notify: a channel that gets a NOTIFY when the lease ends; bind => ''session'': the lease lasts as long as this session';

CREATE FUNCTION lockctl.acquire_shared(resource text, owner text,
                                       ttl interval DEFAULT '30 s',
                                       wait interval DEFAULT '0',
                                       notify text DEFAULT NULL,
                                       bind text DEFAULT 'none')
    RETURNS bigint
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'lockctl_acquire_shared';
COMMENT ON FUNCTION lockctl.acquire_shared(text, text, interval, interval, text, text) IS
    'take a shared lease on resource for owner, as the session''s role (many shared holders, or one exclusive); returns its fencing token, or NULL if not granted within wait; notify and bind as for acquire';

CREATE FUNCTION lockctl.acquire_all(resources text[], owner text,
                                    ttl interval DEFAULT '30 s',
                                    wait interval DEFAULT '0')
    RETURNS bigint[]
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'lockctl_acquire_all';
COMMENT ON FUNCTION lockctl.acquire_all(text[], text, interval, interval) IS
    'take an exclusive lease on every resource (at most 32) for owner, as the session''s role, or on none; returns their fencing tokens in the order of resources, or NULL if the whole set was not granted within wait';

CREATE FUNCTION lockctl.release_all(resources text[], tokens bigint[])
    RETURNS boolean[]
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'lockctl_release_all';
COMMENT ON FUNCTION lockctl.release_all(text[], bigint[]) IS
    'release each resource''s lease held by the token at the same position, at once; release''s answer for each, in order';

CREATE FUNCTION lockctl.fence_all(resources text[], tokens bigint[],
                                  extend interval DEFAULT NULL)
    RETURNS void
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'lockctl_fence_all';
COMMENT ON FUNCTION lockctl.fence_all(text[], bigint[], interval) IS
    'fence each resource with the token at the same position, taking the fence locks in one global order: two transactions fencing overlapping sets with fence_all never deadlock';

CREATE FUNCTION lockctl.renew(resource text, token bigint,
                              ttl interval DEFAULT '30 s')
    RETURNS timestamptz
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'lockctl_renew';
COMMENT ON FUNCTION lockctl.renew(text, bigint, interval) IS
    'extend the live lease held by token to ttl from now; returns the new expiry; 40001 if the lease was lost or is another role''s';

CREATE FUNCTION lockctl.release(resource text, token bigint)
    RETURNS boolean
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'lockctl_release';
COMMENT ON FUNCTION lockctl.release(text, bigint) IS
    'end the lease held by token and wake the next waiter; false if it was not live and held by token, or is another role''s';

CREATE FUNCTION lockctl.fence(resource text, token bigint,
                              extend interval DEFAULT NULL)
    RETURNS void
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'lockctl_fence';
COMMENT ON FUNCTION lockctl.fence(text, bigint, interval) IS
    'in the transaction that writes protected data: 40001 unless token holds the live lease of the session''s role; then no one else gets the lease until the transaction ends; with extend, also renew it to extend from now';

CREATE FUNCTION lockctl.watch(resource text, token bigint,
                              timeout interval DEFAULT '30 s')
    RETURNS text
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'lockctl_watch';
COMMENT ON FUNCTION lockctl.watch(text, bigint, interval) IS
    'sleep until the lease of token ends and say how (released, force-released, expired, taken over, lost), or live when timeout passes; only for the role that took the lease';

CREATE FUNCTION lockctl.force_release(resource text)
    RETURNS boolean
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'lockctl_force_release';
COMMENT ON FUNCTION lockctl.force_release(text) IS
    'administrative: end the live lease on resource in this database, whoever holds it';

CREATE FUNCTION lockctl.release_role_leases(role regrole)
    RETURNS integer
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'lockctl_release_role_leases';
COMMENT ON FUNCTION lockctl.release_role_leases(regrole) IS
    'administrative: end every lease the role holds, in every database; returns how many were live';

CREATE FUNCTION lockctl.release_database_leases(database name)
    RETURNS integer
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'lockctl_release_database_leases';
COMMENT ON FUNCTION lockctl.release_database_leases(name) IS
    'administrative: end every lease held in the database; returns how many were live';

CREATE FUNCTION lockctl_internal.leases(OUT dbid oid, OUT resource text,
                                   OUT owner text, OUT token bigint,
                                   OUT acquired_at timestamptz,
                                   OUT expires_at timestamptz,
                                   OUT waiters integer, OUT roleid oid,
                                   OUT fenced boolean, OUT mode text,
                                   OUT permits integer, OUT set_id bigint)
    RETURNS SETOF record
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'lockctl_lease_list';
COMMENT ON FUNCTION lockctl_internal.leases() IS
    'lockctl internal, behind the view lockctl.leases: every live lease, in every database; owner and token are NULL unless the caller may act on the lease';

CREATE FUNCTION lockctl.lease(resource text,
                              OUT owner text, OUT token bigint,
                              OUT acquired_at timestamptz,
                              OUT expires_at timestamptz,
                              OUT waiters integer, OUT acquired_by name,
                              OUT fenced boolean)
    RETURNS SETOF record
    LANGUAGE c VOLATILE ROWS 1
    AS 'MODULE_PATHNAME', 'lockctl_lease';
COMMENT ON FUNCTION lockctl.lease(text) IS
    'the live lease on resource in this database: no row when there is none; owner and token are NULL unless the caller may act on the lease';

CREATE FUNCTION lockctl_internal.lease_waiters(OUT dbid oid, OUT resource text,
                                          OUT owner text, OUT pid integer,
                                          OUT queue_position integer,
                                          OUT waiting_since timestamptz,
                                          OUT requested_by oid,
                                          OUT set_id bigint)
    RETURNS SETOF record
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'lockctl_lease_waiter_list';
COMMENT ON FUNCTION lockctl_internal.lease_waiters() IS
    'lockctl internal, behind the view lockctl.lease_waiters';

CREATE FUNCTION lockctl_internal.lease_stats(OUT live integer, OUT waiting integer,
                                    OUT slots_used integer,
                                    OUT max_leases integer,
                                    OUT grants bigint, OUT regrants bigint,
                                    OUT renewals bigint, OUT releases bigint,
                                    OUT force_releases bigint,
                                    OUT expiries bigint, OUT conflicts bigint,
                                    OUT waits bigint, OUT timeouts bigint,
                                    OUT fences bigint,
                                    OUT fence_failures bigint,
                                    OUT table_full bigint,
                                    OUT counted_live integer,
                                    OUT counted_grants bigint,
                                    OUT shared_live integer,
                                    OUT shared_grants bigint,
                                    OUT watching integer,
                                    OUT set_grants bigint)
    RETURNS record
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'lockctl_lease_stats';
COMMENT ON FUNCTION lockctl_internal.lease_stats() IS
    'lockctl internal, behind the view lockctl.lease_stats: lease counters since the server started';

CREATE FUNCTION lockctl_internal.lease_wait_histogram(OUT outcome text,
                                    OUT le double precision,
                                    OUT waits bigint,
                                    OUT sum_seconds double precision)
    RETURNS SETOF record
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'lockctl_lease_wait_histogram';
COMMENT ON FUNCTION lockctl_internal.lease_wait_histogram() IS
    'lockctl internal, behind the view lockctl.lease_wait_histogram: how long waiting acquires waited since the server started';

CREATE VIEW lockctl.leases AS
    SELECT d.datname AS database, l.resource, l.owner, l.token,
           l.acquired_at, l.expires_at, l.waiters,
           pg_catalog.pg_get_userbyid(l.roleid) AS acquired_by, l.fenced,
           l.mode, l.permits, l.set_id
      FROM lockctl_internal.leases() AS l
      LEFT JOIN pg_catalog.pg_database AS d
        ON d.oid OPERATOR(pg_catalog.=) l.dbid;
COMMENT ON VIEW lockctl.leases IS
    'every live lease, in every database; owner and token are shown only to the role that took the lease, roles with its privileges and superusers';

CREATE VIEW lockctl.lease_waiters AS
    SELECT d.datname AS database, w.resource, w.owner, w.pid, w.queue_position,
           w.waiting_since,
           pg_catalog.pg_get_userbyid(w.requested_by) AS requested_by,
           w.set_id
      FROM lockctl_internal.lease_waiters() AS w
      LEFT JOIN pg_catalog.pg_database AS d
        ON d.oid OPERATOR(pg_catalog.=) w.dbid;
COMMENT ON VIEW lockctl.lease_waiters IS
    'every session waiting in lockctl.acquire, in line order per resource; owner is shown only to the waiting role, roles with its privileges and superusers';

CREATE VIEW lockctl.lease_stats AS
    SELECT * FROM lockctl_internal.lease_stats();

-- Per server, like lease_stats: waits of every database.  Cumulative
-- buckets (waits no longer than le seconds; le = Infinity: all of them).
CREATE VIEW lockctl.lease_wait_histogram AS
    SELECT * FROM lockctl_internal.lease_wait_histogram();
COMMENT ON VIEW lockctl.lease_wait_histogram IS
    'lockctl: waits in acquire and acquire_shared since the server started, by outcome, in cumulative buckets of le seconds (Prometheus-style), with their total time; acquires that did not wait are not in it';

GRANT EXECUTE ON FUNCTION lockctl.acquire(text, text, interval, interval, integer, text, text) TO PUBLIC;
GRANT EXECUTE ON FUNCTION lockctl.acquire_shared(text, text, interval, interval, text, text) TO PUBLIC;
GRANT EXECUTE ON FUNCTION lockctl.acquire_all(text[], text, interval, interval) TO PUBLIC;
GRANT EXECUTE ON FUNCTION lockctl.release_all(text[], bigint[]) TO PUBLIC;
GRANT EXECUTE ON FUNCTION lockctl.fence_all(text[], bigint[], interval) TO PUBLIC;
GRANT EXECUTE ON FUNCTION lockctl.renew(text, bigint, interval) TO PUBLIC;
GRANT EXECUTE ON FUNCTION lockctl.release(text, bigint) TO PUBLIC;
GRANT EXECUTE ON FUNCTION lockctl.fence(text, bigint, interval) TO PUBLIC;
GRANT EXECUTE ON FUNCTION lockctl.lease(text) TO PUBLIC;
GRANT EXECUTE ON FUNCTION lockctl.watch(text, bigint, interval) TO PUBLIC;
GRANT SELECT ON lockctl.leases, lockctl.lease_waiters, lockctl.lease_stats TO PUBLIC;
GRANT SELECT ON lockctl.lease_wait_histogram TO PUBLIC;
-- Forcing leases free is administrative: superusers, and roles granted it.
REVOKE EXECUTE ON FUNCTION lockctl.force_release(text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION lockctl.release_role_leases(regrole) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION lockctl.release_database_leases(name) FROM PUBLIC;
