-- lockctl 1.0 -> 1.1: ALTER EXTENSION lockctl UPDATE TO '1.1'
--
-- Every change that 1.1 makes to installed objects is made here as well as
-- in src/*.sql (which build lockctl--1.1.sql), so that an updated database
-- ends with the same catalog as a fresh install; t/ checks that.

\echo Use "ALTER EXTENSION lockctl UPDATE TO '1.1'" to load this file. \quit

-- ---------------------------------------------------------------------------
-- Internals move to their own schema (issue 13): schema lockctl keeps the
-- public API only.  See src/lockctl.sql on the privileges of
-- lockctl_internal.  Functions are moved, not re-created, so that their
-- oids (and whatever depends on them: the views, grants a DBA made) stay.
-- ---------------------------------------------------------------------------
CREATE SCHEMA lockctl_internal;
REVOKE ALL ON SCHEMA lockctl_internal FROM PUBLIC;
COMMENT ON SCHEMA lockctl_internal IS 'lockctl internals: helpers of the lockctl functions and the functions behind its views; not for direct use';

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
REVOKE ALL ON FUNCTION lockctl_internal.name_max_bytes() FROM PUBLIC;
REVOKE ALL ON FUNCTION lockctl_internal.max_batch() FROM PUBLIC;

-- The limits of reservations, each defined once (src/reserve.sql).
CREATE FUNCTION lockctl_internal.max_units() RETURNS bigint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN 1000000000000000::bigint;
COMMENT ON FUNCTION lockctl_internal.max_units() IS 'lockctl internal: the largest capacity of a pool and quantity of a hold';

CREATE FUNCTION lockctl_internal.max_slots() RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN 1024;
COMMENT ON FUNCTION lockctl_internal.max_slots() IS 'lockctl internal: the most slots a pool can be split over';

CREATE FUNCTION lockctl_internal.min_hold_ttl() RETURNS interval
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN '1 millisecond'::interval;
COMMENT ON FUNCTION lockctl_internal.min_hold_ttl() IS 'lockctl internal: the shortest time to live of a hold';

CREATE FUNCTION lockctl_internal.max_hold_ttl() RETURNS interval
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN '365 days'::interval;
COMMENT ON FUNCTION lockctl_internal.max_hold_ttl() IS 'lockctl internal: the longest time to live of a hold';

REVOKE ALL ON FUNCTION lockctl_internal.max_units() FROM PUBLIC;
REVOKE ALL ON FUNCTION lockctl_internal.max_slots() FROM PUBLIC;
REVOKE ALL ON FUNCTION lockctl_internal.min_hold_ttl() FROM PUBLIC;
REVOKE ALL ON FUNCTION lockctl_internal.max_hold_ttl() FROM PUBLIC;

-- The helpers of the reservation functions and the worker's functions.
ALTER FUNCTION lockctl.auto_slots(bigint) SET SCHEMA lockctl_internal;
ALTER FUNCTION lockctl.rebalance(bigint, integer, bigint) SET SCHEMA lockctl_internal;
ALTER FUNCTION lockctl.check_resource(text, text) SET SCHEMA lockctl_internal;
ALTER FUNCTION lockctl.check_capacity(text, bigint) SET SCHEMA lockctl_internal;
ALTER FUNCTION lockctl.check_slots(text, integer) SET SCHEMA lockctl_internal;
ALTER FUNCTION lockctl.keyed_hold(bigint, text, text, bigint) SET SCHEMA lockctl_internal;
ALTER FUNCTION lockctl.lock_pool(text) SET SCHEMA lockctl_internal;
ALTER FUNCTION lockctl.reshape_pool(text, bigint, text, bigint, integer, boolean) SET SCHEMA lockctl_internal;
ALTER FUNCTION lockctl.hold_state(text, bigint, text[]) SET SCHEMA lockctl_internal;
ALTER FUNCTION lockctl.expire_holds(integer) SET SCHEMA lockctl_internal;
ALTER FUNCTION lockctl.purge_holds(interval, integer) SET SCHEMA lockctl_internal;

-- The functions behind the views: one naming scheme, the view's own name.
ALTER FUNCTION lockctl.lease_list() SET SCHEMA lockctl_internal;
ALTER FUNCTION lockctl_internal.lease_list() RENAME TO leases;
-- (lease_waiter_list is replaced below: its row type changes.)
ALTER FUNCTION lockctl.lease_stats() SET SCHEMA lockctl_internal;
ALTER FUNCTION lockctl.versioned_tables_stats() SET SCHEMA lockctl_internal;
ALTER FUNCTION lockctl_internal.versioned_tables_stats() RENAME TO versioned_tables;
-- The view named its function without an alias, and a view keeps the name
-- its function had as the alias: made again, it reads as a fresh install.
CREATE OR REPLACE VIEW lockctl.versioned_tables AS
    SELECT table_name, version_column, mode, enabled,
           checked_updates, conflicts, blind_writes, inserts, stats_reset
      FROM lockctl_internal.versioned_tables();
ALTER FUNCTION lockctl.worker_status() SET SCHEMA lockctl_internal;
ALTER FUNCTION lockctl_internal.worker_status() RENAME TO workers;

COMMENT ON FUNCTION lockctl_internal.leases() IS
    'lockctl internal, behind the view lockctl.leases: every live lease, in every database; owner and token are NULL unless the caller may act on the lease';
COMMENT ON FUNCTION lockctl_internal.lease_stats() IS
    'lockctl internal, behind the view lockctl.lease_stats: lease counters since the server started';
COMMENT ON FUNCTION lockctl_internal.versioned_tables() IS
    'lockctl internal, behind the view lockctl.versioned_tables';
COMMENT ON FUNCTION lockctl_internal.workers() IS
    'lockctl internal, behind the view lockctl.workers';

-- ---------------------------------------------------------------------------
-- Leases belong to roles (issue 15): only the role that took a lease, or a
-- role with its privileges, may renew, release or fence it or see its token
-- and owner; administrative release of every lease of a role or database;
-- lockctl.lease_waiters names the waiting role.  The same objects as
-- src/lease.sql.
-- ---------------------------------------------------------------------------
COMMENT ON FUNCTION lockctl.acquire(text, text, interval, interval) IS
    'take the lease on resource for owner, as the session''s role; returns its fencing token, or NULL if not granted within wait';
COMMENT ON FUNCTION lockctl.renew(text, bigint, interval) IS
    'extend the live lease held by token to ttl from now; returns the new expiry; 40001 if the lease was lost or is another role''s';
COMMENT ON FUNCTION lockctl.release(text, bigint) IS
    'end the lease held by token and wake the next waiter; false if it was not live and held by token, or is another role''s';
COMMENT ON FUNCTION lockctl.fence(text, bigint) IS
    'in the transaction that writes protected data: 40001 unless token holds the live lease of the session''s role; then no one else gets the lease until the transaction ends';
COMMENT ON FUNCTION lockctl.lease(text) IS
    'the live lease on resource in this database: no row when there is none; owner and token are NULL unless the caller may act on the lease';
COMMENT ON VIEW lockctl.leases IS
    'every live lease, in every database; owner and token are shown only to the role that took the lease, roles with its privileges and superusers';

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
REVOKE EXECUTE ON FUNCTION lockctl.release_role_leases(regrole) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION lockctl.release_database_leases(name) FROM PUBLIC;

DROP VIEW lockctl.lease_waiters;
DROP FUNCTION lockctl.lease_waiter_list();
CREATE FUNCTION lockctl_internal.lease_waiters(OUT dbid oid, OUT resource text,
                                          OUT owner text, OUT pid integer,
                                          OUT queue_position integer,
                                          OUT waiting_since timestamptz,
                                          OUT requested_by oid)
    RETURNS SETOF record
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'lockctl_lease_waiter_list';
COMMENT ON FUNCTION lockctl_internal.lease_waiters() IS
    'lockctl internal, behind the view lockctl.lease_waiters';
CREATE VIEW lockctl.lease_waiters AS
    SELECT d.datname AS database, w.resource, w.owner, w.pid, w.queue_position,
           w.waiting_since,
           pg_catalog.pg_get_userbyid(w.requested_by) AS requested_by
      FROM lockctl_internal.lease_waiters() AS w
      LEFT JOIN pg_catalog.pg_database AS d
        ON d.oid OPERATOR(pg_catalog.=) w.dbid;
COMMENT ON VIEW lockctl.lease_waiters IS
    'every session waiting in lockctl.acquire, in line order per resource; owner is shown only to the waiting role, roles with its privileges and superusers';
GRANT SELECT ON lockctl.lease_waiters TO PUBLIC;

-- Function bodies that name the moved functions, or the limits.
CREATE OR REPLACE FUNCTION lockctl_internal.rebalance(pool bigint, start integer, need bigint)
    RETURNS integer
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_variable
DECLARE
    v_slots integer;
    v_spare bigint;
    v_target integer;
BEGIN
    IF pool IS NULL OR start IS NULL OR need IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed',
            MESSAGE = 'arguments of lockctl_internal.rebalance must not be null';
    ELSIF start < 0 OR need < 0 THEN
        RAISE EXCEPTION USING ERRCODE = 'numeric_value_out_of_range',
            MESSAGE = format('arguments of lockctl_internal.rebalance are out of range: start %s, need %s',
                             start, need),
            DETAIL = 'Neither may be negative.';
    END IF;
    -- Every slot row of the pool, in slot order.  While they are ours the
    -- pool's capacity and slot count cannot change either: whoever changes
    -- them locks every slot row first.
    PERFORM FROM lockctl.pool_slots AS s WHERE s.pool_id = pool ORDER BY s.slot FOR UPDATE;
    SELECT p.slots, p.capacity - sum(s.held + s.confirmed) INTO v_slots, v_spare
      FROM lockctl.pools AS p JOIN lockctl.pool_slots AS s ON s.pool_id = p.id
     WHERE p.id = pool
     GROUP BY p.slots, p.capacity;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'undefined_object',
            MESSAGE = format('pool with id %s does not exist', pool);
    END IF;
    IF v_spare < need THEN
        RETURN NULL;
    END IF;
    v_spare := v_spare - need;
    v_target := start % v_slots;
    UPDATE lockctl.pool_slots AS s
       SET capacity = s.held + s.confirmed
                      + CASE WHEN s.slot = v_target THEN need ELSE 0 END
                      + CASE WHEN s.slot < v_slots
                             THEN v_spare / v_slots
                                  + CASE WHEN s.slot < v_spare % v_slots THEN 1 ELSE 0 END
                             ELSE 0 END
     WHERE s.pool_id = pool;
    RETURN v_target;
END;
$fn$;

CREATE OR REPLACE FUNCTION lockctl_internal.check_resource(fn text, resource text) RETURNS text
    LANGUAGE plpgsql IMMUTABLE
AS $fn$
BEGIN
    -- Called by hand without a function name: name itself.
    fn := coalesce('lockctl.' || fn, 'lockctl_internal.check_resource');
    IF resource IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed',
            MESSAGE = format('resource of %s must not be null', fn);
    ELSIF octet_length(resource) = 0 THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('resource of %s must not be empty', fn);
    ELSIF octet_length(resource) > lockctl_internal.name_max_bytes() THEN
        RAISE EXCEPTION USING ERRCODE = 'name_too_long',
            MESSAGE = format('resource of %s is too long', fn),
            DETAIL = format('It is %s bytes long; the limit is %s bytes.',
                            octet_length(resource), lockctl_internal.name_max_bytes());
    END IF;
    RETURN resource;
END;
$fn$;

CREATE OR REPLACE FUNCTION lockctl_internal.check_capacity(fn text, capacity bigint) RETURNS bigint
    LANGUAGE plpgsql IMMUTABLE
AS $fn$
BEGIN
    -- Called by hand without a function name: name itself.
    fn := coalesce('lockctl.' || fn, 'lockctl_internal.check_capacity');
    IF capacity IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed',
            MESSAGE = format('capacity of %s must not be null', fn);
    ELSIF capacity < 0 OR capacity > lockctl_internal.max_units() THEN
        RAISE EXCEPTION USING ERRCODE = 'numeric_value_out_of_range',
            MESSAGE = format('capacity of %s is out of range: %s', fn, capacity),
            DETAIL = format('It must be between 0 and %s.', lockctl_internal.max_units());
    END IF;
    RETURN capacity;
END;
$fn$;

CREATE OR REPLACE FUNCTION lockctl_internal.check_slots(fn text, slots integer) RETURNS integer
    LANGUAGE plpgsql IMMUTABLE
AS $fn$
BEGIN
    -- Called by hand without a function name: name itself.
    fn := coalesce('lockctl.' || fn, 'lockctl_internal.check_slots');
    IF slots < 1 OR slots > lockctl_internal.max_slots() THEN
        RAISE EXCEPTION USING ERRCODE = 'numeric_value_out_of_range',
            MESSAGE = format('slots of %s is out of range: %s', fn, slots),
            DETAIL = format('It must be between 1 and %s, or null for an automatic count.',
                            lockctl_internal.max_slots());
    END IF;
    RETURN slots;
END;
$fn$;

CREATE OR REPLACE FUNCTION lockctl.create_pool(resource text, capacity bigint, slots integer DEFAULT NULL)
    RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_variable
DECLARE
    v_resource text := lockctl_internal.check_resource('create_pool', resource);
    v_slots integer;
    v_pool bigint;
BEGIN
    PERFORM lockctl_internal.check_capacity('create_pool', capacity);
    v_slots := coalesce(lockctl_internal.check_slots('create_pool', slots), lockctl_internal.auto_slots(capacity));

    INSERT INTO lockctl.pools AS p (resource, capacity, slots, auto_slots)
    VALUES (v_resource, capacity, v_slots, slots IS NULL)
    ON CONFLICT ON CONSTRAINT pools_resource_key DO NOTHING
    RETURNING p.id INTO v_pool;
    IF v_pool IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'duplicate_object',
            MESSAGE = format('pool "%s" already exists', v_resource);
    END IF;

    -- Slot i gets capacity / n units, the first capacity % n one more.
    INSERT INTO lockctl.pool_slots (pool_id, slot, capacity)
    SELECT v_pool, i, capacity / v_slots + CASE WHEN i < capacity % v_slots THEN 1 ELSE 0 END
      FROM generate_series(0, v_slots - 1) AS i;
END;
$fn$;

CREATE OR REPLACE FUNCTION lockctl_internal.reshape_pool(fn text, pool bigint, resource text,
                                     capacity bigint, nslots integer, auto boolean)
    RETURNS void
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_variable
DECLARE
    v_held bigint;
    v_confirmed bigint;
BEGIN
    -- Slot rows are made here for this pool id: it must be a pool (nothing
    -- else ties slots to pools, see lockctl.pool_slots).
    PERFORM FROM lockctl.pools AS p WHERE p.id = pool FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'undefined_object',
            MESSAGE = format('pool with id %s does not exist', pool);
    END IF;
    INSERT INTO lockctl.pool_slots (pool_id, slot, capacity)
    SELECT pool, i, 0 FROM generate_series(0, nslots - 1) AS i
    ON CONFLICT ON CONSTRAINT pool_slots_pkey DO NOTHING;
    UPDATE lockctl.pools AS p
       SET capacity = capacity, slots = nslots, auto_slots = auto
     WHERE p.id = pool;
    -- rebalance counts what is taken from locked rows: NULL if the new
    -- capacity is below it (and the error undoes the changes above).
    IF lockctl_internal.rebalance(pool, 0, 0) IS NULL THEN
        SELECT sum(s.held), sum(s.confirmed) INTO v_held, v_confirmed
          FROM lockctl.pool_slots AS s WHERE s.pool_id = pool;
        RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = format('capacity of pool "%s" cannot be set below what is taken', resource),
            DETAIL = format('Asked for %s; %s units are held and %s confirmed.',
                            capacity, v_held, v_confirmed),
            HINT = 'Wait for holds to finish, or cancel some, and try again.';
    END IF;
END;
$fn$;

CREATE OR REPLACE FUNCTION lockctl.set_capacity(resource text, capacity bigint)
    RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_variable
DECLARE
    v_resource text := lockctl_internal.check_resource('set_capacity', resource);
    v_pool bigint;
    v_slots integer;
    v_auto boolean;
BEGIN
    PERFORM lockctl_internal.check_capacity('set_capacity', capacity);
    v_pool := lockctl_internal.lock_pool(v_resource);
    SELECT p.slots, p.auto_slots INTO v_slots, v_auto FROM lockctl.pools AS p WHERE p.id = v_pool;
    IF v_auto THEN
        v_slots := lockctl_internal.auto_slots(capacity);
    END IF;
    PERFORM lockctl_internal.reshape_pool('set_capacity', v_pool, v_resource, capacity, v_slots, v_auto);
END;
$fn$;

CREATE OR REPLACE FUNCTION lockctl.set_slots(resource text, slots integer)
    RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_variable
DECLARE
    v_resource text := lockctl_internal.check_resource('set_slots', resource);
    v_pool bigint;
    v_capacity bigint;
BEGIN
    PERFORM lockctl_internal.check_slots('set_slots', slots);
    v_pool := lockctl_internal.lock_pool(v_resource);
    SELECT p.capacity INTO v_capacity FROM lockctl.pools AS p WHERE p.id = v_pool;
    PERFORM lockctl_internal.reshape_pool('set_slots', v_pool, v_resource, v_capacity,
                                 coalesce(slots, lockctl_internal.auto_slots(v_capacity)), slots IS NULL);
END;
$fn$;

CREATE OR REPLACE FUNCTION lockctl.drop_pool(resource text)
    RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_variable
DECLARE
    v_pool bigint := lockctl_internal.lock_pool(lockctl_internal.check_resource('drop_pool', resource));
BEGIN
    DELETE FROM lockctl.reservations AS r WHERE r.pool_id = v_pool;
    DELETE FROM lockctl.pool_slots AS s WHERE s.pool_id = v_pool;
    DELETE FROM lockctl.pools AS p WHERE p.id = v_pool;
END;
$fn$;

CREATE OR REPLACE FUNCTION lockctl.reserve(resource text, quantity bigint DEFAULT 1,
                                holder text DEFAULT NULL,
                                ttl interval DEFAULT '00:05:00'::interval,
                                idempotency_key text DEFAULT NULL)
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    SET plan_cache_mode = force_generic_plan
AS $fn$
#variable_conflict use_column
DECLARE
    v_resource text := resource;
    v_pool bigint;
    v_slots integer;
    v_start integer;
    v_slot integer;
    v_id bigint;
    v_now timestamp with time zone;
    v_quantity bigint := quantity;
    v_holder text := holder;
    v_ttl interval := ttl;
    v_key text := idempotency_key;
    v_role name;
    v_cap integer;
BEGIN
    -- The checks of lockctl_internal.check_resource, inline: this is the hot path.
    IF v_resource IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed',
            MESSAGE = 'resource of lockctl.reserve must not be null';
    ELSIF octet_length(v_resource) = 0 THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'resource of lockctl.reserve must not be empty';
    ELSIF octet_length(v_resource) > lockctl_internal.name_max_bytes() THEN
        RAISE EXCEPTION USING ERRCODE = 'name_too_long',
            MESSAGE = 'resource of lockctl.reserve is too long',
            DETAIL = format('It is %s bytes long; the limit is %s bytes.',
                            octet_length(v_resource), lockctl_internal.name_max_bytes());
    END IF;
    IF v_quantity IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed',
            MESSAGE = 'quantity of lockctl.reserve must not be null';
    ELSIF v_quantity < 1 OR v_quantity > lockctl_internal.max_units() THEN
        RAISE EXCEPTION USING ERRCODE = 'numeric_value_out_of_range',
            MESSAGE = format('quantity of lockctl.reserve is out of range: %s', v_quantity),
            DETAIL = format('It must be between 1 and %s.', lockctl_internal.max_units());
    END IF;
    IF octet_length(v_holder) = 0 THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'holder of lockctl.reserve must not be empty',
            HINT = 'Pass NULL for a hold without a holder.';
    ELSIF octet_length(v_holder) > lockctl_internal.name_max_bytes() THEN
        RAISE EXCEPTION USING ERRCODE = 'name_too_long',
            MESSAGE = 'holder of lockctl.reserve is too long',
            DETAIL = format('It is %s bytes long; the limit is %s bytes.',
                            octet_length(v_holder), lockctl_internal.name_max_bytes());
    END IF;
    IF v_ttl IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed',
            MESSAGE = 'ttl of lockctl.reserve must not be null';
    ELSIF v_ttl < lockctl_internal.min_hold_ttl() OR v_ttl > lockctl_internal.max_hold_ttl() THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('ttl of lockctl.reserve is out of range: "%s"', v_ttl),
            DETAIL = format('It must be between "%s" and "%s".',
                            lockctl_internal.min_hold_ttl(), lockctl_internal.max_hold_ttl());
    END IF;
    IF v_key IS NOT NULL THEN
        IF octet_length(v_key) = 0 THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = 'idempotency_key of lockctl.reserve must not be empty';
        ELSIF octet_length(v_key) > lockctl_internal.name_max_bytes() THEN
            RAISE EXCEPTION USING ERRCODE = 'name_too_long',
                MESSAGE = 'idempotency_key of lockctl.reserve is too long',
                DETAIL = format('It is %s bytes long; the limit is %s bytes.',
                                octet_length(v_key), lockctl_internal.name_max_bytes());
        END IF;
    END IF;

    SELECT p.id, p.slots INTO v_pool, v_slots FROM lockctl.pools AS p WHERE p.resource = v_resource;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'undefined_object',
            MESSAGE = format('pool "%s" does not exist', v_resource);
    END IF;

    -- A retry with the same key gets the hold the first call made.
    IF v_key IS NOT NULL THEN
        v_id := lockctl_internal.keyed_hold(v_pool, v_resource, v_key, v_quantity);
        IF v_id IS NOT NULL THEN
            RETURN v_id;
        END IF;
    END IF;

    -- The role's caps, counted up to the cap (reservations_role_idx): a
    -- check costs at most the cap, nothing when the setting is 0.  Two
    -- concurrent calls of one role may both pass at cap - 1.
    v_role := lockctl_internal.acting_role();
    v_cap := current_setting('lockctl.max_holds_per_role')::integer;
    IF v_cap > 0 AND (SELECT count(*) FROM (SELECT FROM lockctl.reservations AS r
                                             WHERE r.taken_by = v_role AND r.status = 'held'
                                             LIMIT v_cap) AS x) >= v_cap THEN
        RAISE EXCEPTION USING ERRCODE = 'configuration_limit_exceeded',
            MESSAGE = format('role "%s" has too many live holds', v_role),
            DETAIL = format('It has %s live holds in this database, the most lockctl.max_holds_per_role allows.', v_cap),
            HINT = 'Confirm or cancel holds first, or ask an administrator to raise "lockctl.max_holds_per_role".';
    END IF;
    v_cap := current_setting('lockctl.max_kept_holds_per_role')::integer;
    IF v_cap > 0 AND (SELECT count(*) FROM (SELECT FROM lockctl.reservations AS r
                                             WHERE r.taken_by = v_role
                                               AND r.status = ANY (ARRAY['cancelled', 'expired']::lockctl.hold_status[])
                                             LIMIT v_cap) AS x) >= v_cap THEN
        RAISE EXCEPTION USING ERRCODE = 'configuration_limit_exceeded',
            MESSAGE = format('role "%s" has too many finished holds kept', v_role),
            DETAIL = format('It has %s cancelled or expired holds in this database that are not purged yet, the most lockctl.max_kept_holds_per_role allows.', v_cap),
            HINT = 'They are purged after "lockctl.retention"; an administrator may raise "lockctl.max_kept_holds_per_role" or lower "lockctl.retention".';
    END IF;

    v_start := pg_backend_pid() % v_slots;

    -- 1. fast path: a slot no one else is using, from our own one upwards,
    -- then from the first one up to ours.  A row locked and then found to
    -- have too few units stays locked until the end of the transaction, so
    -- the attempt runs in a subtransaction that is rolled back when it
    -- fails: this call never waits while it holds a slot lock out of
    -- order, which is what keeps reserve free of deadlocks.
    BEGIN
        UPDATE lockctl.pool_slots AS s
           SET held = s.held + v_quantity, holds_taken = s.holds_taken + 1
         WHERE s.pool_id = v_pool
           AND s.slot = (SELECT x.slot FROM lockctl.pool_slots AS x
                          WHERE x.pool_id = v_pool AND x.slot >= v_start AND x.slot < v_slots
                            AND x.capacity - x.held - x.confirmed >= v_quantity
                          ORDER BY x.slot LIMIT 1 FOR UPDATE SKIP LOCKED)
        RETURNING s.slot INTO v_slot;
        IF v_slot IS NULL AND v_start > 0 THEN
            UPDATE lockctl.pool_slots AS s
               SET held = s.held + v_quantity, holds_taken = s.holds_taken + 1
             WHERE s.pool_id = v_pool
               AND s.slot = (SELECT x.slot FROM lockctl.pool_slots AS x
                              WHERE x.pool_id = v_pool AND x.slot < v_start
                                AND x.capacity - x.held - x.confirmed >= v_quantity
                              ORDER BY x.slot LIMIT 1 FOR UPDATE SKIP LOCKED)
            RETURNING s.slot INTO v_slot;
        END IF;
        IF v_slot IS NULL THEN
            RAISE EXCEPTION USING ERRCODE = 'LCKC1';
        END IF;
    EXCEPTION WHEN SQLSTATE 'LCKC1' THEN
        v_slot := NULL;
    END;

    -- 2. middle path: every slot with enough is busy; wait for the nearest,
    -- holding no other.  The free units are checked again once the lock is
    -- ours; if they are gone, the subtransaction gives the lock back.
    IF v_slot IS NULL THEN
        BEGIN
            UPDATE lockctl.pool_slots AS s
               SET held = s.held + v_quantity, holds_taken = s.holds_taken + 1
             WHERE s.pool_id = v_pool
               AND s.capacity - s.held - s.confirmed >= v_quantity
               AND s.slot = (SELECT x.slot FROM lockctl.pool_slots AS x
                              WHERE x.pool_id = v_pool AND x.slot < v_slots
                                AND x.capacity - x.held - x.confirmed >= v_quantity
                              ORDER BY (x.slot - v_start + v_slots) % v_slots LIMIT 1)
            RETURNING s.slot INTO v_slot;
            IF v_slot IS NULL THEN
                RAISE EXCEPTION USING ERRCODE = 'LCKC1';
            END IF;
        EXCEPTION WHEN SQLSTATE 'LCKC1' THEN
            v_slot := NULL;
        END;
    END IF;

    -- 3. slow path: no single slot has enough.  Lock them all, in order,
    -- and count exactly.  Sold out, the subtransaction is rolled back and
    -- with it every slot lock: other calls on the pool (and the expiry
    -- worker) must not wait for this transaction to end.
    IF v_slot IS NULL THEN
        BEGIN
            PERFORM FROM lockctl.pool_slots AS s WHERE s.pool_id = v_pool ORDER BY s.slot FOR UPDATE;
            IF NOT FOUND THEN
                RAISE EXCEPTION USING ERRCODE = 'undefined_object',
                    MESSAGE = format('pool "%s" does not exist', v_resource),
                    DETAIL = 'It was dropped while this call waited for it.';
            END IF;
            -- The slot count may have changed while we waited, and set_slots
            -- may have added slot rows that the statement above, with its
            -- older snapshot, did not see.  rebalance locks again: every row
            -- of the pool is then ours (no new one can appear, set_slots
            -- needs our locks first), so its count is exact; it moves the
            -- free units so that one slot has ours, and we take them from it.
            v_slot := lockctl_internal.rebalance(v_pool, v_start, v_quantity);
            IF v_slot IS NULL THEN
                RAISE EXCEPTION USING ERRCODE = 'LCKC1';
            END IF;
            UPDATE lockctl.pool_slots AS s
               SET held = s.held + v_quantity, holds_taken = s.holds_taken + 1
             WHERE s.pool_id = v_pool AND s.slot = v_slot;
        EXCEPTION WHEN SQLSTATE 'LCKC1' THEN
            RETURN NULL;
        END;
    END IF;

    v_now := clock_timestamp();
    IF v_key IS NULL THEN
        INSERT INTO lockctl.reservations AS r
               (pool_id, slot, quantity, holder, taken_by, created, expires)
        VALUES (v_pool, v_slot, v_quantity, v_holder, v_role, v_now, v_now + v_ttl)
        RETURNING r.id INTO v_id;
        RETURN v_id;
    END IF;

    INSERT INTO lockctl.reservations AS r
           (pool_id, slot, quantity, holder, taken_by, created, expires, idempotency_key)
    VALUES (v_pool, v_slot, v_quantity, v_holder, v_role, v_now, v_now + v_ttl, v_key)
    ON CONFLICT (pool_id, taken_by, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING r.id INTO v_id;
    IF v_id IS NOT NULL THEN
        RETURN v_id;
    END IF;

    -- A concurrent call with the same key committed first: give back the
    -- units and return its hold.
    UPDATE lockctl.pool_slots AS s
       SET held = s.held - v_quantity, holds_taken = s.holds_taken - 1
     WHERE s.pool_id = v_pool AND s.slot = v_slot;
    v_id := lockctl_internal.keyed_hold(v_pool, v_resource, v_key, v_quantity);
    IF v_id IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'serialization_failure',
            MESSAGE = format('could not serialize reserve with idempotency key "%s" on pool "%s"',
                             v_key, v_resource),
            DETAIL = 'A concurrent transaction took a hold with the same key after this transaction''s snapshot.',
            HINT = 'Retry the transaction.';
    END IF;
    RETURN v_id;
END;
$fn$;

CREATE OR REPLACE FUNCTION lockctl.confirm(id bigint)
    RETURNS boolean
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    SET plan_cache_mode = force_generic_plan
AS $fn$
#variable_conflict use_variable
DECLARE
    v_now timestamp with time zone := clock_timestamp();
    v_pool bigint;
    v_slot integer;
    v_q bigint;
BEGIN
    IF id IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed',
            MESSAGE = 'id of lockctl.confirm must not be null';
    END IF;
    -- "finished IS NULL" means held (a CHECK constraint says so), and unlike
    -- "status = 'held'" it does not let the planner pick the worker's
    -- partial index of all live holds over the primary key.  A row that
    -- fails may_act_for is never locked: another role cannot make anyone
    -- wait on a hold that is not its own.
    UPDATE lockctl.reservations AS r
       SET status = 'confirmed', finished = v_now
     WHERE r.id = id AND r.finished IS NULL AND r.expires > v_now
       AND lockctl_internal.may_act_for(r.taken_by)
    RETURNING r.pool_id, r.slot, r.quantity INTO v_pool, v_slot, v_q;
    IF NOT FOUND THEN
        PERFORM lockctl_internal.hold_state('confirm', id, ARRAY['confirmed']);
        RETURN false;
    END IF;
    UPDATE lockctl.pool_slots AS s
       SET held = s.held - v_q, confirmed = s.confirmed + v_q,
           holds_confirmed = s.holds_confirmed + 1
     WHERE s.pool_id = v_pool AND s.slot = v_slot;
    RETURN true;
END;
$fn$;

CREATE OR REPLACE FUNCTION lockctl.cancel(id bigint)
    RETURNS boolean
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    SET plan_cache_mode = force_generic_plan
AS $fn$
#variable_conflict use_variable
DECLARE
    v_pool bigint;
    v_slot integer;
    v_q bigint;
BEGIN
    IF id IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed',
            MESSAGE = 'id of lockctl.cancel must not be null';
    END IF;
    UPDATE lockctl.reservations AS r
       SET status = 'cancelled', finished = clock_timestamp()
     WHERE r.id = id AND r.finished IS NULL
       AND lockctl_internal.may_act_for(r.taken_by)
    RETURNING r.pool_id, r.slot, r.quantity INTO v_pool, v_slot, v_q;
    IF NOT FOUND THEN
        PERFORM lockctl_internal.hold_state('cancel', id, ARRAY['cancelled', 'expired']);
        RETURN false;
    END IF;
    UPDATE lockctl.pool_slots AS s
       SET held = s.held - v_q, holds_cancelled = s.holds_cancelled + 1
     WHERE s.pool_id = v_pool AND s.slot = v_slot;
    RETURN true;
END;
$fn$;

CREATE OR REPLACE FUNCTION lockctl.extend(id bigint, ttl interval)
    RETURNS timestamp with time zone
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    SET plan_cache_mode = force_generic_plan
AS $fn$
#variable_conflict use_variable
DECLARE
    v_now timestamp with time zone := clock_timestamp();
    v_expires timestamp with time zone;
BEGIN
    IF id IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed',
            MESSAGE = 'id of lockctl.extend must not be null';
    END IF;
    IF ttl IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed',
            MESSAGE = 'ttl of lockctl.extend must not be null';
    ELSIF ttl < lockctl_internal.min_hold_ttl() OR ttl > lockctl_internal.max_hold_ttl() THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('ttl of lockctl.extend is out of range: "%s"', ttl),
            DETAIL = format('It must be between "%s" and "%s".',
                            lockctl_internal.min_hold_ttl(), lockctl_internal.max_hold_ttl());
    END IF;
    UPDATE lockctl.reservations AS r
       SET expires = v_now + ttl
     WHERE r.id = id AND r.finished IS NULL AND r.expires > v_now
       AND lockctl_internal.may_act_for(r.taken_by)
    RETURNING r.expires INTO v_expires;
    IF NOT FOUND THEN
        PERFORM lockctl_internal.hold_state('extend', id, ARRAY[]::text[]);
    END IF;
    RETURN v_expires;
END;
$fn$;

CREATE OR REPLACE FUNCTION lockctl.available(resource text)
    RETURNS bigint
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_variable
DECLARE
    v_resource text := lockctl_internal.check_resource('available', resource);
    v_free bigint;
BEGIN
    SELECT sum(s.capacity - s.held - s.confirmed) INTO v_free
      FROM lockctl.pools AS p JOIN lockctl.pool_slots AS s ON s.pool_id = p.id
     WHERE p.resource = v_resource;
    IF v_free IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'undefined_object',
            MESSAGE = format('pool "%s" does not exist', v_resource);
    END IF;
    RETURN v_free;
END;
$fn$;

CREATE OR REPLACE FUNCTION lockctl_internal.expire_holds(batch_size integer)
    RETURNS integer
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_variable
DECLARE
    v_now timestamp with time zone := clock_timestamp();
    v_ids bigint[];
    v_pools bigint[];
    v_slots integer[];
    v_qs bigint[];
BEGIN
    IF batch_size IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed',
            MESSAGE = 'batch_size of lockctl_internal.expire_holds must not be null';
    ELSIF batch_size < 1 OR batch_size > lockctl_internal.max_batch() THEN
        RAISE EXCEPTION USING ERRCODE = 'numeric_value_out_of_range',
            MESSAGE = format('batch_size of lockctl_internal.expire_holds is out of range: %s', batch_size),
            DETAIL = format('It must be between 1 and %s.', lockctl_internal.max_batch());
    END IF;

    -- The hold and its slot are locked together, each with SKIP LOCKED:
    -- LIMIT counts only the holds whose two rows were both free.  (The
    -- slots are locked in expiry order, not in slot order: never waiting,
    -- this cannot deadlock.)
    WITH due AS (
        SELECT r.id FROM lockctl.reservations AS r
          JOIN lockctl.pool_slots AS s ON s.pool_id = r.pool_id AND s.slot = r.slot
         WHERE r.status = 'held' AND r.expires <= v_now
         ORDER BY r.expires
         LIMIT batch_size
           FOR UPDATE OF r, s SKIP LOCKED
    ), done AS (
        UPDATE lockctl.reservations AS r
           SET status = 'expired', finished = v_now
          FROM due
         WHERE r.id = due.id
        RETURNING r.id, r.pool_id, r.slot, r.quantity
    )
    SELECT array_agg(done.id ORDER BY done.id), array_agg(done.pool_id ORDER BY done.id),
           array_agg(done.slot ORDER BY done.id), array_agg(done.quantity ORDER BY done.id)
      INTO v_ids, v_pools, v_slots, v_qs
      FROM done;
    IF v_ids IS NULL THEN
        RETURN 0;
    END IF;

    -- Give the units back; the slot rows are ours already.
    UPDATE lockctl.pool_slots AS s
       SET held = s.held - g.q, holds_expired = s.holds_expired + g.n
      FROM (SELECT u.p, u.s, sum(u.q) AS q, count(*) AS n
              FROM unnest(v_pools, v_slots, v_qs) AS u(p, s, q)
             GROUP BY u.p, u.s) AS g
     WHERE s.pool_id = g.p AND s.slot = g.s;

    PERFORM pg_notify('lockctl_expired', u.id::text) FROM unnest(v_ids) AS u(id);
    RETURN cardinality(v_ids);
END;
$fn$;

CREATE OR REPLACE FUNCTION lockctl_internal.purge_holds(retention interval, batch_size integer)
    RETURNS integer
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_variable
DECLARE
    v_before timestamp with time zone;
    v_n integer;
BEGIN
    IF retention IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed',
            MESSAGE = 'retention of lockctl_internal.purge_holds must not be null';
    ELSIF retention < '0'::interval THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('retention of lockctl_internal.purge_holds is out of range: "%s"', retention),
            DETAIL = 'It must not be negative.';
    END IF;
    IF batch_size IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed',
            MESSAGE = 'batch_size of lockctl_internal.purge_holds must not be null';
    ELSIF batch_size < 1 OR batch_size > lockctl_internal.max_batch() THEN
        RAISE EXCEPTION USING ERRCODE = 'numeric_value_out_of_range',
            MESSAGE = format('batch_size of lockctl_internal.purge_holds is out of range: %s', batch_size),
            DETAIL = format('It must be between 1 and %s.', lockctl_internal.max_batch());
    END IF;
    v_before := now() - retention;

    WITH old AS (
        SELECT r.id FROM lockctl.reservations AS r
         WHERE r.status = ANY (ARRAY['cancelled', 'expired']::lockctl.hold_status[])
           AND r.finished < v_before
         ORDER BY r.finished
         LIMIT batch_size
           FOR UPDATE SKIP LOCKED
    )
    DELETE FROM lockctl.reservations AS r USING old WHERE r.id = old.id;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    RETURN v_n;
END;
$fn$;

COMMENT ON FUNCTION lockctl_internal.expire_holds(integer) IS 'lockctl internal: expire up to batch_size due holds (the expiry worker''s pass)';
COMMENT ON FUNCTION lockctl_internal.purge_holds(interval, integer) IS 'lockctl internal: delete up to batch_size holds finished more than retention ago';

-- The pools' CHECK constraints read the limits from their functions.
ALTER TABLE lockctl.pools DROP CONSTRAINT pools_resource_check;
ALTER TABLE lockctl.pools ADD CONSTRAINT pools_resource_check
        CHECK (pg_catalog.octet_length(resource) OPERATOR(pg_catalog.>=) 1
               AND pg_catalog.octet_length(resource) OPERATOR(pg_catalog.<=) lockctl_internal.name_max_bytes());
ALTER TABLE lockctl.pools DROP CONSTRAINT pools_slots_check;
ALTER TABLE lockctl.pools ADD CONSTRAINT pools_slots_check
        CHECK (slots OPERATOR(pg_catalog.>=) 1 AND slots OPERATOR(pg_catalog.<=) lockctl_internal.max_slots());

-- Idempotent requests (new in 1.1): the same objects as src/request.sql.

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
    scope        name NOT NULL,
    key          text NOT NULL,
    fingerprint  text,
    result       jsonb,
    claimed      timestamp with time zone NOT NULL,
    completed    timestamp with time zone,
    expires      timestamp with time zone NOT NULL,
    -- The top-level transaction that claimed the key: complete_request
    -- accepts only that transaction's claim, subtransactions included.
    claim_xact   xid8 NOT NULL,
    CONSTRAINT request_keys_pkey PRIMARY KEY (scope, key)
);

COMMENT ON TABLE lockctl.request_keys IS 'lockctl: claimed request keys (write through lockctl.claim_request and complete_request only)';

-- The purge: a pass costs what is due, not what is kept.
CREATE INDEX request_keys_expires_idx ON lockctl.request_keys (expires);

SELECT pg_catalog.pg_extension_config_dump('lockctl.request_keys', '');

REVOKE ALL ON lockctl.request_keys FROM PUBLIC;

CREATE FUNCTION lockctl_internal.request_begin(key text, wait interval, scope name)
    RETURNS name
    AS 'MODULE_PATHNAME', 'lockctl_request_begin'
    LANGUAGE C VOLATILE;

CREATE FUNCTION lockctl_internal.request_scope(scope name)
    RETURNS name
    AS 'MODULE_PATHNAME', 'lockctl_request_scope'
    LANGUAGE C STABLE;

CREATE FUNCTION lockctl_internal.request_note(what text)
    RETURNS void
    AS 'MODULE_PATHNAME', 'lockctl_request_note'
    LANGUAGE C VOLATILE STRICT;

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
-- if it stored none).
-- ---------------------------------------------------------------------------
CREATE FUNCTION lockctl.claim_request(key text,
                                      ttl interval DEFAULT '24:00:00'::interval,
                                      fingerprint text DEFAULT NULL,
                                      wait interval DEFAULT NULL,
                                      scope name DEFAULT NULL)
    RETURNS jsonb
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    SET plan_cache_mode = force_generic_plan
AS $fn$
#variable_conflict use_variable
DECLARE
    v_scope name;
    v_now timestamp with time zone := now();
    v_new boolean;
    r record;
BEGIN
    IF ttl IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed',
            MESSAGE = 'ttl of lockctl.claim_request must not be null';
    ELSIF ttl < '1 millisecond'::interval OR ttl > '3650 days'::interval
          OR v_now + ttl <= v_now THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('ttl of lockctl.claim_request is out of range: "%s"', ttl),
            DETAIL = 'It must be between 1 millisecond and 3650 days.';
    END IF;
    IF octet_length(fingerprint) > lockctl_internal.name_max_bytes() THEN
        RAISE EXCEPTION USING ERRCODE = 'name_too_long',
            MESSAGE = 'fingerprint of lockctl.claim_request is too long',
            DETAIL = format('It is %s bytes long; the limit is %s bytes.',
                            octet_length(fingerprint), lockctl_internal.name_max_bytes()),
            HINT = 'Pass a hash of the request''s parameters, not the parameters.';
    END IF;

    -- Checks key, wait and scope, then waits for any transaction working
    -- on the same key.
    v_scope := lockctl_internal.request_begin(key, wait, scope);

    -- A key past its ttl is free again, purged or not.
    INSERT INTO lockctl.request_keys AS k
           (scope, key, fingerprint, claimed, expires, claim_xact)
    VALUES (v_scope, key, fingerprint, v_now, v_now + ttl, pg_current_xact_id())
    ON CONFLICT ON CONSTRAINT request_keys_pkey DO UPDATE
       SET fingerprint = excluded.fingerprint, result = NULL,
           claimed = excluded.claimed, completed = NULL,
           expires = excluded.expires, claim_xact = excluded.claim_xact
     WHERE k.expires <= v_now
    RETURNING true INTO v_new;
    IF v_new THEN
        PERFORM lockctl_internal.request_note('claim');
        RETURN NULL;
    END IF;

    SELECT k.fingerprint, k.result, k.claim_xact INTO r
      FROM lockctl.request_keys AS k
     WHERE k.scope = v_scope AND k.key = key;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'lockctl.claim_request: the row of request "%" vanished', key;
    END IF;
    IF r.claim_xact = pg_current_xact_id() THEN
        -- claimed earlier in this same transaction: it still holds it
        RETURN NULL;
    END IF;
    IF r.fingerprint IS DISTINCT FROM fingerprint THEN
        PERFORM lockctl_internal.request_note('conflict');
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('request "%s" was first made with other parameters', key),
            DETAIL = format('Its first use had fingerprint %s; this call has %s.',
                            coalesce(quote_literal(r.fingerprint), 'NULL'),
                            coalesce(quote_literal(fingerprint), 'NULL')),
            HINT = 'A key names one request: use a new key for a different request.';
    END IF;
    PERFORM lockctl_internal.request_note('repeat');
    RETURN coalesce(r.result, '{}'::jsonb);
END;
$fn$;

-- ---------------------------------------------------------------------------
-- lockctl.complete_request(key, result, scope): store the result that
-- duplicates of the request get, in the transaction that claimed it.
-- ---------------------------------------------------------------------------
CREATE FUNCTION lockctl.complete_request(key text, result jsonb DEFAULT '{}'::jsonb,
                                         scope name DEFAULT NULL)
    RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    SET plan_cache_mode = force_generic_plan
AS $fn$
#variable_conflict use_variable
DECLARE
    v_scope name := lockctl_internal.request_scope(scope);
BEGIN
    IF key IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed',
            MESSAGE = 'key of lockctl.complete_request must not be null';
    END IF;
    IF result IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed',
            MESSAGE = 'result of lockctl.complete_request must not be null',
            HINT = 'Pass ''{}'' for a request with nothing to replay.';
    END IF;
    UPDATE lockctl.request_keys AS k
       SET result = result, completed = clock_timestamp()
     WHERE k.scope = v_scope AND k.key = key
       AND k.claim_xact = pg_current_xact_id_if_assigned();
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = format('request "%s" was not claimed in this transaction', key),
            HINT = 'Call lockctl.claim_request(key) first, in the same transaction, and complete the request only when it returned NULL.';
    END IF;
END;
$fn$;

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
    SELECT k.scope,
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
COMMENT ON FUNCTION lockctl_internal.request_begin(text, interval, name) IS 'lockctl internal: check a claim''s arguments and lock its key';
COMMENT ON FUNCTION lockctl_internal.request_scope(name) IS 'lockctl internal: the role whose request keys a call uses';
COMMENT ON FUNCTION lockctl_internal.request_note(text) IS 'lockctl internal: count a claim, a repeat or a conflict';
COMMENT ON FUNCTION lockctl_internal.request_stats() IS 'lockctl internal, behind the view lockctl.request_stats: the request counters of this database';
COMMENT ON VIEW lockctl.requests IS 'lockctl: request keys of roles whose privileges the caller has';
COMMENT ON VIEW lockctl.request_stats IS 'lockctl: this database''s request counters since the server started';

REVOKE ALL ON FUNCTION lockctl_internal.request_begin(text, interval, name) FROM PUBLIC;
REVOKE ALL ON FUNCTION lockctl_internal.request_scope(name) FROM PUBLIC;
REVOKE ALL ON FUNCTION lockctl_internal.request_note(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION lockctl_internal.purge_requests(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION lockctl.claim_request(text, interval, text, interval, name) TO PUBLIC;
GRANT EXECUTE ON FUNCTION lockctl.complete_request(text, jsonb, name) TO PUBLIC;
GRANT EXECUTE ON FUNCTION lockctl_internal.request_stats() TO PUBLIC;
GRANT SELECT ON lockctl.requests, lockctl.request_stats TO PUBLIC;

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

-- ---------------------------------------------------------------------------
-- Fencing tokens and hold ids across every way a cluster moves (issue 22):
-- the high-water mark of each database, token_state, raise_token_floor,
-- era-tagged hold ids.  As in src/lease_token.sql and src/reserve.sql.
-- ---------------------------------------------------------------------------

-- era << 48 | epoch << 28 | timeline; never set: nothing issued yet;
-- -1: tokens of lockctl 1.0, never marked (set by the 1.0 -> 1.1 update).
CREATE SEQUENCE lockctl.token_mark MINVALUE -1 START WITH 0 NO CYCLE;
-- the system identifier of the cluster that wrote the mark
CREATE SEQUENCE lockctl.token_mark_sysid MINVALUE 0 START WITH 0 NO CYCLE;
COMMENT ON SEQUENCE lockctl.token_mark IS
    'lockctl: high-water mark of the fencing tokens and hold ids issued in this database (written by lockctl only)';
COMMENT ON SEQUENCE lockctl.token_mark_sysid IS
    'lockctl: system identifier of the cluster that wrote lockctl.token_mark (written by lockctl only)';
SELECT pg_catalog.pg_extension_config_dump('lockctl.token_mark', '');
SELECT pg_catalog.pg_extension_config_dump('lockctl.token_mark_sysid', '');
REVOKE ALL ON SEQUENCE lockctl.token_mark, lockctl.token_mark_sysid FROM PUBLIC;

CREATE FUNCTION lockctl.token_state(OUT timeline integer, OUT era integer,
                                    OUT epoch bigint, OUT next_token bigint,
                                    OUT mark bigint, OUT mark_current boolean,
                                    OUT from_pg_upgrade boolean)
    RETURNS record
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'lockctl_token_state';
COMMENT ON FUNCTION lockctl.token_state() IS
    'where fencing tokens stand: timeline, era and epoch of this server, the lowest token it can issue next, and this database''s high-water mark';

CREATE FUNCTION lockctl.raise_token_floor(token bigint)
    RETURNS bigint
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'lockctl_raise_token_floor';
COMMENT ON FUNCTION lockctl.raise_token_floor(bigint) IS
    'administrative: state that no fencing token above token was issued in this database; every later token is above it; returns the lowest token that can be issued next';

-- Internal: nextval(seq) with the server's era in bits 48 to 62, the
-- default of lockctl.reservations.id.
CREATE FUNCTION lockctl_internal.era_nextval(seq pg_catalog.regclass)
    RETURNS bigint
    LANGUAGE c VOLATILE STRICT
    AS 'MODULE_PATHNAME', 'lockctl_era_nextval';
COMMENT ON FUNCTION lockctl_internal.era_nextval(pg_catalog.regclass) IS
    'lockctl: nextval(seq) tagged with the era of the server, so that no id is handed out twice across a failover';

GRANT EXECUTE ON FUNCTION lockctl.token_state() TO PUBLIC;
REVOKE ALL ON FUNCTION lockctl.raise_token_floor(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION lockctl_internal.era_nextval(pg_catalog.regclass) FROM PUBLIC;

-- The tokens this database saw under lockctl 1.0 were never marked: -1 says
-- so (in a cluster made by pg_upgrade, grants wait for raise_token_floor).
SELECT pg_catalog.setval('lockctl.token_mark', -1, true);

-- Hold ids from now on carry the era (ids of 1.0 are below every one of them).
ALTER TABLE lockctl.reservations
    ALTER COLUMN id SET DEFAULT lockctl_internal.era_nextval('lockctl.hold_id_seq'::pg_catalog.regclass);

-- ---------------------------------------------------------------------------
-- Roles cannot interfere (issue 15), reservations and the worker: a hold
-- and its idempotency key belong to the role that took it; caps on a
-- role's holds; expiry that no lock stalls; lockctl.workers says what
-- holds a worker back.  The same objects as src/reserve.sql and
-- src/worker.sql.
-- ---------------------------------------------------------------------------
CREATE FUNCTION lockctl_internal.acting_role() RETURNS name
    LANGUAGE c STABLE
    AS 'MODULE_PATHNAME', 'lockctl_acting_role';
COMMENT ON FUNCTION lockctl_internal.acting_role() IS 'lockctl internal: the role a call acts for (SET ROLE''s, else the session user)';

CREATE FUNCTION lockctl_internal.may_act_for(owner name) RETURNS boolean
    LANGUAGE c STABLE
    AS 'MODULE_PATHNAME', 'lockctl_may_act_for';
COMMENT ON FUNCTION lockctl_internal.may_act_for(name) IS 'lockctl internal: whether the role a call acts for has the privileges of role owner';

REVOKE ALL ON FUNCTION lockctl_internal.acting_role() FROM PUBLIC;
REVOKE ALL ON FUNCTION lockctl_internal.may_act_for(name) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION lockctl_internal.may_act_for(name) TO PUBLIC;

-- The role that took a hold: one definition, in C.  Holds taken at 1.0
-- keep the taken_by they were given, which is the same role.
ALTER TABLE lockctl.reservations ALTER COLUMN taken_by SET DEFAULT lockctl_internal.acting_role();

-- Idempotency keys per role; every existing key stays unique, as it was
-- unique per pool.
DROP INDEX lockctl.reservations_idempotency_idx;
CREATE UNIQUE INDEX reservations_idempotency_idx ON lockctl.reservations (pool_id, taken_by, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- The caps on a role's live and finished holds (lockctl.max_holds_per_role,
-- lockctl.max_kept_holds_per_role): reserve counts here, up to the cap.
-- Confirmed holds are left out: they are never purged, and their number is
-- bounded by the pools' capacities.
CREATE INDEX reservations_role_idx ON lockctl.reservations (taken_by, status)
    WHERE status OPERATOR(pg_catalog.<>) 'confirmed';

CREATE OR REPLACE FUNCTION lockctl_internal.keyed_hold(pool bigint, resource text, idempotency_key text,
                                   quantity bigint)
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_variable
DECLARE
    v_id bigint;
    v_q bigint;
BEGIN
    SELECT r.id, r.quantity INTO v_id, v_q FROM lockctl.reservations AS r
     WHERE r.pool_id = pool AND r.taken_by = lockctl_internal.acting_role()
       AND r.idempotency_key = idempotency_key;
    IF v_q <> quantity THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('idempotency key "%s" was used for another quantity on pool "%s"',
                             idempotency_key, resource),
            DETAIL = format('Hold %s has quantity %s; this call asked for %s.', v_id, v_q, quantity);
    END IF;
    RETURN v_id;
END;
$fn$;

-- A hold is another role's, or (of another era) was lost in a failover or
-- a restore: hold_state says which.
CREATE OR REPLACE FUNCTION lockctl_internal.hold_state(action text, id bigint, ok_status text[]) RETURNS text
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_variable
DECLARE
    v_status text;
    v_expires timestamp with time zone;
    v_finished timestamp with time zone;
BEGIN
    SELECT r.status::text, r.expires, r.finished INTO v_status, v_expires, v_finished
      FROM lockctl.reservations AS r
     WHERE r.id = id AND lockctl_internal.may_act_for(r.taken_by);
    IF NOT FOUND THEN
        -- Ids carry the era of the server that took them (lockctl_internal.era_nextval):
        -- one of another era was taken on a line of history this server
        -- does not continue, and is never handed out here.
        IF id >= 281474976710656 AND (id >> 48) IS DISTINCT FROM (SELECT t.era FROM lockctl.token_state() AS t) THEN
            RAISE EXCEPTION USING ERRCODE = 'undefined_object',
                MESSAGE = format('hold %s does not exist', id),
                DETAIL = format('It was taken in era %s, and this server is in era %s: it was lost in a failover or a restore, or its pool was dropped, or it finished and was purged.',
                                id >> 48, (SELECT t.era FROM lockctl.token_state() AS t)),
                HINT = 'Take a new hold with lockctl.reserve.';
        END IF;
        RAISE EXCEPTION USING ERRCODE = 'undefined_object',
            MESSAGE = format('hold %s does not exist', id),
            DETAIL = 'It was never taken, or its pool was dropped, or it finished and was purged, or it is another role''s.';
    END IF;
    IF v_status = ANY (ok_status) THEN
        RETURN v_status;
    END IF;
    IF v_status = 'held' AND v_expires <= clock_timestamp() OR v_status = 'expired' THEN
        RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = format('cannot %s hold %s: it has expired', action, id),
            DETAIL = format('It expired at %s.', v_expires),
            HINT = 'Take a new hold with lockctl.reserve.';
    ELSIF v_status = 'cancelled' THEN
        RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = format('cannot %s hold %s: it was cancelled', action, id),
            DETAIL = format('It was cancelled at %s.', v_finished),
            HINT = 'Take a new hold with lockctl.reserve.';
    ELSIF v_status = 'confirmed' THEN
        RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = format('cannot %s hold %s: it is confirmed', action, id),
            DETAIL = format('It was confirmed at %s.', v_finished);
    END IF;
    -- Live after all: it changed under us (a concurrent transaction).
    RAISE EXCEPTION USING ERRCODE = 'serialization_failure',
        MESSAGE = format('could not %s hold %s because of a concurrent change', action, id),
        HINT = 'Retry the transaction.';
END;
$fn$;

CREATE OR REPLACE VIEW lockctl.holds WITH (security_barrier) AS
    SELECT r.id,
           p.resource,
           r.quantity,
           CASE WHEN a.mine THEN r.holder END AS holder,
           r.taken_by,
           r.status::text AS status,
           r.created,
           r.expires,
           r.finished,
           CASE WHEN a.mine THEN r.idempotency_key END AS idempotency_key
      FROM lockctl.reservations AS r
      JOIN lockctl.pools AS p ON p.id OPERATOR(pg_catalog.=) r.pool_id
     CROSS JOIN LATERAL (SELECT lockctl_internal.may_act_for(r.taken_by) AS mine) AS a
     WHERE a.mine
        OR pg_catalog.pg_has_role('pg_read_all_stats'::pg_catalog.name, 'USAGE');

COMMENT ON VIEW lockctl.holds IS 'lockctl: holds, live and finished (until purged), taken by roles whose privileges the caller has (every hold for pg_read_all_stats, without holder and key)';

CREATE FUNCTION lockctl_internal.worker_waiting_on(datid oid) RETURNS text
    LANGUAGE c STRICT VOLATILE PARALLEL RESTRICTED
    AS 'MODULE_PATHNAME', 'lockctl_worker_waiting_on';
COMMENT ON FUNCTION lockctl_internal.worker_waiting_on(oid) IS
    'lockctl internal, behind the column waiting_on of the view lockctl.workers';

CREATE OR REPLACE VIEW lockctl.workers AS
    SELECT w.datid, w.datname, w.pid, w.state, w.started, w.last_run,
           w.holds_expired, w.holds_purged, w.errors,
           w.last_error, w.last_error_at,
           lockctl_internal.worker_waiting_on(w.datid) AS waiting_on
      FROM lockctl_internal.workers() AS w;

COMMENT ON VIEW lockctl.workers IS
    'lockctl expiry workers: one row per database served, with last pass, holds expired and purged, the last error, and what holds it back';
REVOKE ALL ON FUNCTION lockctl_internal.worker_waiting_on(oid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION lockctl_internal.worker_waiting_on(oid) TO PUBLIC;

-- ---------------------------------------------------------------------
-- Version checks that understand the statement (1.1)
-- ---------------------------------------------------------------------

-- The counters of stale matches and checked DELETEs.  A function's OUT
-- columns cannot change in place: the view and its function are made
-- again, as a fresh install makes them.
DROP VIEW lockctl.versioned_tables;
DROP FUNCTION lockctl_internal.versioned_tables();
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
CREATE VIEW lockctl.versioned_tables AS
    SELECT table_name, version_column, mode, enabled,
           checked_updates, conflicts, stale_matches, blind_writes,
           checked_deletes, inserts, stats_reset
      FROM lockctl_internal.versioned_tables();
GRANT SELECT ON lockctl.versioned_tables TO PUBLIC;

-- DELETE is part of the contract now: the version trigger of every table
-- versioned under 1.0 (BEFORE INSERT OR UPDATE) fires on DELETE as well,
-- with the same name, arguments and enabled state.  Partitions get the
-- change from their partitioned table.
DO $upgrade$
DECLARE
    t record;
BEGIN
    FOR t IN
        SELECT tg.tgname, tg.tgenabled, tg.tgrelid::pg_catalog.regclass AS tbl,
               pg_catalog.encode(tg.tgargs, 'escape') AS args
          FROM pg_catalog.pg_trigger AS tg
         WHERE tg.tgfoid OPERATOR(pg_catalog.=) 'lockctl.version_trigger()'::pg_catalog.regprocedure
           AND tg.tgparentid OPERATOR(pg_catalog.=) 0
           AND tg.tgnargs OPERATOR(pg_catalog.=) 2
           -- BEFORE INSERT OR UPDATE FOR EACH ROW, without DELETE
           AND tg.tgtype OPERATOR(pg_catalog.=) 23
    LOOP
        EXECUTE pg_catalog.format(
            'CREATE OR REPLACE TRIGGER %I BEFORE INSERT OR UPDATE OR DELETE ON %s '
            'FOR EACH ROW EXECUTE FUNCTION lockctl.version_trigger(%L, %L)',
            t.tgname, t.tbl,
            pg_catalog.split_part(t.args, E'\\000', 1),
            pg_catalog.split_part(t.args, E'\\000', 2));
        IF t.tgenabled OPERATOR(pg_catalog.<>) 'O' THEN
            EXECUTE pg_catalog.format('ALTER TABLE %s %s TRIGGER %I', t.tbl,
                CASE t.tgenabled WHEN 'D' THEN 'DISABLE'
                                 WHEN 'A' THEN 'ENABLE ALWAYS'
                                 ELSE 'ENABLE REPLICA' END,
                t.tgname);
        END IF;
    END LOOP;
END
$upgrade$;

-- ---------------------------------------------------------------------------
-- Leases II (issue 17): counted leases (acquire's permits), shared leases,
-- fence's extend, watch, and the kind and permits of every lease in the
-- views.
-- ---------------------------------------------------------------------------
DROP FUNCTION lockctl.acquire(text, text, interval, interval);
CREATE FUNCTION lockctl.acquire(resource text, owner text,
                                ttl interval DEFAULT '30 s',
                                wait interval DEFAULT '0',
                                permits integer DEFAULT 1)
    RETURNS bigint
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'lockctl_acquire';
COMMENT ON FUNCTION lockctl.acquire(text, text, interval, interval, integer) IS
    'take the lease on resource for owner, as the session''s role (one of permits holders at once); returns its fencing token, or NULL if not granted within wait';
GRANT EXECUTE ON FUNCTION lockctl.acquire(text, text, interval, interval, integer) TO PUBLIC;

CREATE FUNCTION lockctl.acquire_shared(resource text, owner text,
                                       ttl interval DEFAULT '30 s',
                                       wait interval DEFAULT '0')
    RETURNS bigint
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'lockctl_acquire_shared';
COMMENT ON FUNCTION lockctl.acquire_shared(text, text, interval, interval) IS
    'take a shared lease on resource for owner, as the session''s role (many shared holders, or one exclusive); returns its fencing token, or NULL if not granted within wait';
GRANT EXECUTE ON FUNCTION lockctl.acquire_shared(text, text, interval, interval) TO PUBLIC;

DROP FUNCTION lockctl.fence(text, bigint);
CREATE FUNCTION lockctl.fence(resource text, token bigint,
                              extend interval DEFAULT NULL)
    RETURNS void
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'lockctl_fence';
COMMENT ON FUNCTION lockctl.fence(text, bigint, interval) IS
    'in the transaction that writes protected data: 40001 unless token holds the live lease of the session''s role; then no one else gets the lease until the transaction ends; with extend, also renew it to extend from now';
GRANT EXECUTE ON FUNCTION lockctl.fence(text, bigint, interval) TO PUBLIC;

DROP VIEW lockctl.leases;
DROP FUNCTION lockctl_internal.leases();
CREATE FUNCTION lockctl_internal.leases(OUT dbid oid, OUT resource text,
                                   OUT owner text, OUT token bigint,
                                   OUT acquired_at timestamptz,
                                   OUT expires_at timestamptz,
                                   OUT waiters integer, OUT roleid oid,
                                   OUT fenced boolean, OUT mode text,
                                   OUT permits integer)
    RETURNS SETOF record
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'lockctl_lease_list';
COMMENT ON FUNCTION lockctl_internal.leases() IS
    'lockctl internal, behind the view lockctl.leases: every live lease, in every database; owner and token are NULL unless the caller may act on the lease';
CREATE VIEW lockctl.leases AS
    SELECT d.datname AS database, l.resource, l.owner, l.token,
           l.acquired_at, l.expires_at, l.waiters,
           pg_catalog.pg_get_userbyid(l.roleid) AS acquired_by, l.fenced,
           l.mode, l.permits
      FROM lockctl_internal.leases() AS l
      LEFT JOIN pg_catalog.pg_database AS d
        ON d.oid OPERATOR(pg_catalog.=) l.dbid;
COMMENT ON VIEW lockctl.leases IS
    'every live lease, in every database; owner and token are shown only to the role that took the lease, roles with its privileges and superusers';
GRANT SELECT ON lockctl.leases TO PUBLIC;

DROP VIEW lockctl.lease_stats;
DROP FUNCTION lockctl_internal.lease_stats();
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
                                    OUT watching integer)
    RETURNS record
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'lockctl_lease_stats';
COMMENT ON FUNCTION lockctl_internal.lease_stats() IS
    'lockctl internal, behind the view lockctl.lease_stats: lease counters since the server started';
CREATE VIEW lockctl.lease_stats AS
    SELECT * FROM lockctl_internal.lease_stats();
GRANT SELECT ON lockctl.lease_stats TO PUBLIC;

CREATE FUNCTION lockctl.watch(resource text, token bigint,
                              timeout interval DEFAULT '30 s')
    RETURNS text
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'lockctl_watch';
COMMENT ON FUNCTION lockctl.watch(text, bigint, interval) IS
    'sleep until the lease of token ends and say how (released, force-released, expired, taken over, lost), or live when timeout passes; only for the role that took the lease';
GRANT EXECUTE ON FUNCTION lockctl.watch(text, bigint, interval) TO PUBLIC;
