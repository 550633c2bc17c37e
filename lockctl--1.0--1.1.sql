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

-- ---------------------------------------------------------------------------
-- Internal: check the time to live of a hold (NULL, out of range), argument
-- arg of function fn: reserve, reserve_cart, extend, extend_cart and
-- wait_for (whose argument is offer_ttl) raise the same errors.
-- ---------------------------------------------------------------------------
CREATE FUNCTION lockctl_internal.check_hold_ttl(fn text, ttl interval, arg text DEFAULT 'ttl')
    RETURNS interval
    LANGUAGE plpgsql IMMUTABLE
AS $fn$
BEGIN
    -- Called by hand without a function name: name itself.
    fn := coalesce('lockctl.' || fn, 'lockctl_internal.check_hold_ttl');
    IF ttl IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed',
            MESSAGE = format('%s of %s must not be null', arg, fn);
    ELSIF ttl < lockctl_internal.min_hold_ttl() OR ttl > lockctl_internal.max_hold_ttl() THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('%s of %s is out of range: "%s"', arg, fn, ttl),
            DETAIL = format('It must be between "%s" and "%s".',
                            lockctl_internal.min_hold_ttl(), lockctl_internal.max_hold_ttl());
    END IF;
    RETURN ttl;
END;
$fn$;
COMMENT ON FUNCTION lockctl_internal.check_hold_ttl(text, interval, text) IS 'lockctl internal: check the time to live of a hold';

REVOKE ALL ON FUNCTION lockctl_internal.max_units() FROM PUBLIC;
REVOKE ALL ON FUNCTION lockctl_internal.max_slots() FROM PUBLIC;
REVOKE ALL ON FUNCTION lockctl_internal.min_hold_ttl() FROM PUBLIC;
REVOKE ALL ON FUNCTION lockctl_internal.max_hold_ttl() FROM PUBLIC;
REVOKE ALL ON FUNCTION lockctl_internal.check_hold_ttl(text, interval, text) FROM PUBLIC;

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
                                          OUT requested_by oid,
                                          OUT set_id bigint)
    RETURNS SETOF record
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'lockctl_lease_waiter_list';
COMMENT ON FUNCTION lockctl_internal.lease_waiters() IS
    'lockctl internal, behind the view lockctl.lease_waiters';
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
    -- New slot rows get the pool's per-holder limit and waitlist flag
    -- (src/reserve_limits.sql, src/reserve_waitlist.sql).
    INSERT INTO lockctl.pool_slots (pool_id, slot, capacity, max_per_holder, waitlist)
    SELECT pool, i, 0, (SELECT p.max_per_holder FROM lockctl.pools AS p WHERE p.id = pool),
           EXISTS (SELECT FROM lockctl.waitlist_entries AS w
                    WHERE w.pool_id = pool AND w.status = 'waiting')
      FROM generate_series(0, nslots - 1) AS i
    ON CONFLICT ON CONSTRAINT pool_slots_pkey DO NOTHING;
    UPDATE lockctl.pools AS p
       SET capacity = capacity, slots = nslots, auto_slots = auto
     WHERE p.id = pool;
    -- Units kept for the waitlist are free again (every slot row is the
    -- caller's; it serves the queue next, src/reserve_waitlist.sql).
    UPDATE lockctl.pool_slots AS s SET held = s.held - s.kept, kept = 0
     WHERE s.pool_id = pool AND s.kept > 0;
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
    -- Units added go to the waitlist first (src/reserve_waitlist.sql).
    PERFORM lockctl_internal.serve_waitlist(v_pool, NULL, 'all');
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
    -- What the slots kept for a waitlist goes to it first (src/reserve_waitlist.sql).
    PERFORM lockctl_internal.serve_waitlist(v_pool, NULL, 'all');
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
    DELETE FROM lockctl.holder_units AS h WHERE h.pool_id = v_pool;
    DELETE FROM lockctl.waitlist_entries AS w WHERE w.pool_id = v_pool;
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
    v_max bigint;
    v_role name;
    v_taken record;
    v_found record;
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
    -- check_hold_ttl's test, inline (this is the hot path: a PERFORM of it
    -- cost a statement and a nested PL/pgSQL call per sale); it raises.
    IF v_ttl IS NULL OR v_ttl < lockctl_internal.min_hold_ttl() OR v_ttl > lockctl_internal.max_hold_ttl() THEN
        PERFORM lockctl_internal.check_hold_ttl('reserve', v_ttl);
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

    -- Directly when it can be (src/reserve_pool.c), else by the statement.
    v_found := lockctl_internal.pool_of(v_resource);
    IF v_found.looked THEN
        v_pool := v_found.id;
        v_slots := v_found.slots;
    ELSE
        SELECT p.id, p.slots INTO v_pool, v_slots FROM lockctl.pools AS p WHERE p.resource = v_resource;
    END IF;
    IF v_pool IS NULL THEN
        -- A calendar (src/reserve_calendar.sql) is sold by time range.
        IF EXISTS (SELECT FROM lockctl.calendars AS c WHERE c.resource = v_resource) THEN
            RAISE EXCEPTION USING ERRCODE = 'wrong_object_type',
                MESSAGE = format('"%s" is a calendar, not a pool', v_resource),
                HINT = 'Take a time range of a calendar with lockctl.reserve_range.';
        END IF;
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

    -- The role's caps, counted up to the cap (reservations_role_idx; the
    -- role's cart items and waitlist entries count too,
    -- src/reserve_cart.sql): a check costs at most the cap, nothing when
    -- both settings are 0.  Exact under concurrency: a second transaction
    -- of the role waits for the first to end (src/reserve_caps.c).
    v_role := lockctl_internal.acting_role();
    IF current_setting('lockctl.max_holds_per_role')::integer > 0
       OR current_setting('lockctl.max_kept_holds_per_role')::integer > 0 THEN
        PERFORM lockctl_internal.check_role_caps(v_role, 1);
    END IF;

    v_start := pg_backend_pid() % v_slots;

    -- 1. fast path: a slot no one else is using, from our own one upwards,
    -- then from the first one up to ours.  Taken directly when it can be
    -- (src/reserve_slot.c: no lock on a slot it does not take, no
    -- subtransaction); by the statements below when take_slot did not
    -- look.  There, a row locked and then found to have too few units
    -- stays locked until the end of the transaction, so the attempt runs
    -- in a subtransaction that is rolled back when it fails: this call
    -- never waits while it holds a slot lock out of order, which is what
    -- keeps reserve free of deadlocks.
    v_taken := lockctl_internal.take_slot(v_pool, v_start, v_slots, v_quantity);
    v_slot := v_taken.slot;
    v_max := v_taken.max_per_holder;
    IF v_slot IS NULL AND NOT v_taken.looked THEN
        BEGIN
            UPDATE lockctl.pool_slots AS s
               SET held = s.held + v_quantity, holds_taken = s.holds_taken + 1
             WHERE s.pool_id = v_pool
               AND s.slot = (SELECT x.slot FROM lockctl.pool_slots AS x
                              WHERE x.pool_id = v_pool AND x.slot >= v_start AND x.slot < v_slots
                                AND x.capacity - x.held - x.confirmed >= v_quantity
                              ORDER BY x.slot LIMIT 1 FOR UPDATE SKIP LOCKED)
            RETURNING s.slot, s.max_per_holder INTO v_slot, v_max;
            IF v_slot IS NULL AND v_start > 0 THEN
                UPDATE lockctl.pool_slots AS s
                   SET held = s.held + v_quantity, holds_taken = s.holds_taken + 1
                 WHERE s.pool_id = v_pool
                   AND s.slot = (SELECT x.slot FROM lockctl.pool_slots AS x
                                  WHERE x.pool_id = v_pool AND x.slot < v_start
                                    AND x.capacity - x.held - x.confirmed >= v_quantity
                                  ORDER BY x.slot LIMIT 1 FOR UPDATE SKIP LOCKED)
                RETURNING s.slot, s.max_per_holder INTO v_slot, v_max;
            END IF;
            IF v_slot IS NULL THEN
                RAISE EXCEPTION USING ERRCODE = 'LCKC1';
            END IF;
        EXCEPTION WHEN SQLSTATE 'LCKC1' THEN
            v_slot := NULL;
        END;
    END IF;

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
            RETURNING s.slot, s.max_per_holder INTO v_slot, v_max;
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
             WHERE s.pool_id = v_pool AND s.slot = v_slot
            RETURNING s.max_per_holder INTO v_max;
        EXCEPTION WHEN SQLSTATE 'LCKC1' THEN
            RETURN NULL;
        END;
    END IF;

    -- A per-holder limit (src/reserve_limits.sql), read from the slot row
    -- this call holds, so it is exact.  No limit: nothing to do.
    IF v_max IS NOT NULL THEN
        PERFORM lockctl_internal.charge_holder(v_pool, v_resource, v_holder, v_quantity, v_max);
    END IF;

    v_now := clock_timestamp();
    IF v_key IS NULL THEN
        -- Directly when it can be (src/reserve_hold.c), else by the statement.
        v_id := lockctl_internal.insert_hold(v_pool, v_slot, v_quantity, v_holder, v_role,
                                             v_now, v_now + v_ttl);
        IF v_id IS NULL THEN
            INSERT INTO lockctl.reservations AS r
                   (pool_id, slot, quantity, holder, taken_by, created, expires)
            VALUES (v_pool, v_slot, v_quantity, v_holder, v_role, v_now, v_now + v_ttl)
            RETURNING r.id INTO v_id;
        END IF;
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
    IF v_max IS NOT NULL THEN
        PERFORM lockctl_internal.charge_holder(v_pool, v_resource, v_holder, -v_quantity, v_max);
    END IF;
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
    v_done record;
BEGIN
    IF id IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed',
            MESSAGE = 'id of lockctl.confirm must not be null';
    END IF;
    -- Directly when it can be (src/reserve_hold.c), else by the statement.
    v_done := lockctl_internal.confirm_hold(id, v_now);
    IF v_done.looked THEN
        v_pool := v_done.pool_id;
        v_slot := v_done.slot;
        v_q := v_done.quantity;
    ELSE
        -- "finished IS NULL" means held (a CHECK constraint says so), and
        -- unlike "status = 'held'" it does not let the planner pick the
        -- worker's partial index of all live holds over the primary key.
        -- A row that fails may_act_for is never locked: another role
        -- cannot make anyone wait on a hold that is not its own.
        UPDATE lockctl.reservations AS r
           SET status = 'confirmed', finished = v_now
         WHERE r.id = id AND r.finished IS NULL AND r.expires > v_now
           AND lockctl_internal.may_act_for(r.taken_by)
        RETURNING r.pool_id, r.slot, r.quantity INTO v_pool, v_slot, v_q;
    END IF;
    -- pool_id is NOT NULL: no pool, no hold matched.
    IF v_pool IS NULL THEN
        -- A calendar's range hold (src/reserve_calendar.sql): the same ids.
        -- The test of lockctl_internal.is_range_hold, inline: that SQL
        -- function is planned again in every transaction that calls it.
        IF EXISTS (SELECT FROM lockctl.range_reservations AS g WHERE g.id = id) THEN
            RETURN lockctl_internal.confirm_range(id);
        END IF;
        PERFORM lockctl_internal.hold_state('confirm', id, ARRAY['confirmed']);
        RETURN false;
    END IF;
    -- Directly when it can be (src/reserve_slot.c), else by the statement.
    IF NOT lockctl_internal.confirm_slot(v_pool, v_slot, v_q) THEN
        UPDATE lockctl.pool_slots AS s
           SET held = s.held - v_q, confirmed = s.confirmed + v_q,
               holds_confirmed = s.holds_confirmed + 1
         WHERE s.pool_id = v_pool AND s.slot = v_slot;
    END IF;
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
    v_holder text;
    v_max bigint;
    v_waitlist boolean;
BEGIN
    IF id IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed',
            MESSAGE = 'id of lockctl.cancel must not be null';
    END IF;
    UPDATE lockctl.reservations AS r
       SET status = 'cancelled', finished = clock_timestamp()
     WHERE r.id = id AND r.finished IS NULL
       AND lockctl_internal.may_act_for(r.taken_by)
    RETURNING r.pool_id, r.slot, r.quantity, r.holder INTO v_pool, v_slot, v_q, v_holder;
    IF NOT FOUND THEN
        -- A calendar's range hold (src/reserve_calendar.sql): the same ids.
        IF EXISTS (SELECT FROM lockctl.range_reservations AS g WHERE g.id = id) THEN
            RETURN lockctl_internal.cancel_range(id);
        END IF;
        PERFORM lockctl_internal.hold_state('cancel', id, ARRAY['cancelled', 'expired']);
        RETURN false;
    END IF;
    UPDATE lockctl.pool_slots AS s
       SET held = s.held - v_q, holds_cancelled = s.holds_cancelled + 1
     WHERE s.pool_id = v_pool AND s.slot = v_slot
    RETURNING s.max_per_holder, s.waitlist INTO v_max, v_waitlist;
    IF v_max IS NOT NULL THEN
        PERFORM lockctl_internal.charge_holder(v_pool, NULL, v_holder, -v_q, v_max);
    END IF;
    -- A waitlist (src/reserve_waitlist.sql) gets the units in this transaction.
    IF v_waitlist THEN
        PERFORM lockctl_internal.serve_waitlist(v_pool, v_slot, 'own');
    END IF;
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
    PERFORM lockctl_internal.check_hold_ttl('extend', ttl);
    UPDATE lockctl.reservations AS r
       SET expires = v_now + ttl
     WHERE r.id = id AND r.finished IS NULL AND r.expires > v_now
       AND lockctl_internal.may_act_for(r.taken_by)
    RETURNING r.expires INTO v_expires;
    IF NOT FOUND THEN
        -- A calendar's range hold (src/reserve_calendar.sql): the same ids.
        IF EXISTS (SELECT FROM lockctl.range_reservations AS g WHERE g.id = id) THEN
            RETURN lockctl_internal.extend_range(id, ttl);
        END IF;
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

-- ---------------------------------------------------------------------------
-- Internal: give the units of finished holds back to their pools.  Element
-- i is a hold of quantities[i] units in slot (pools[i], slots[i]) held by
-- holders[i]: they leave held (counted in holds_cancelled or
-- holds_expired, by `counter`), leave the holders' counts
-- (src/reserve_limits.sql), and go to the heads of the pools' waitlists
-- (src/reserve_waitlist.sql) with serve_returned's `mode` ('own' or
-- 'worker'; NULL: the caller serves the waitlists itself).  The caller
-- holds every slot row named (and, for the worker, the holders' count
-- rows).  Used by expire_holds, and for carts by finish_cart_units
-- (cancel_cart, expire_due_carts).
-- ---------------------------------------------------------------------------
CREATE FUNCTION lockctl_internal.restock(pools bigint[], slots integer[], quantities bigint[],
                                         holders text[], counter text, mode text)
    RETURNS void
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_variable
BEGIN
    IF counter IS NULL OR counter NOT IN ('cancelled', 'expired') THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('counter of lockctl_internal.restock is not cancelled or expired: "%s"', counter);
    END IF;
    UPDATE lockctl.pool_slots AS s
       SET held = s.held - g.q,
           holds_cancelled = s.holds_cancelled + CASE WHEN counter = 'cancelled' THEN g.n ELSE 0 END,
           holds_expired = s.holds_expired + CASE WHEN counter = 'expired' THEN g.n ELSE 0 END
      FROM (SELECT u.p, u.s, sum(u.q) AS q, count(*) AS n
              FROM unnest(pools, slots, quantities) AS u(p, s, q)
             GROUP BY u.p, u.s) AS g
     WHERE s.pool_id = g.p AND s.slot = g.s;
    PERFORM lockctl_internal.uncharge_holders(pools, holders, quantities);
    IF mode IS NOT NULL THEN
        PERFORM lockctl_internal.serve_returned(pools, slots, mode);
    END IF;
END;
$fn$;
COMMENT ON FUNCTION lockctl_internal.restock(bigint[], integer[], bigint[], text[], text, text) IS 'lockctl internal: give the units of finished holds back to their pools, holders'' counts and waitlists';
REVOKE ALL ON FUNCTION lockctl_internal.restock(bigint[], integer[], bigint[], text[], text, text) FROM PUBLIC;

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
    v_holders text[];
    v_carts bigint[];
    v_ranges bigint[];
BEGIN
    IF batch_size IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed',
            MESSAGE = 'batch_size of lockctl_internal.expire_holds must not be null';
    ELSIF batch_size < 1 OR batch_size > lockctl_internal.max_batch() THEN
        RAISE EXCEPTION USING ERRCODE = 'numeric_value_out_of_range',
            MESSAGE = format('batch_size of lockctl_internal.expire_holds is out of range: %s', batch_size),
            DETAIL = format('It must be between 1 and %s.', lockctl_internal.max_batch());
    END IF;

    -- Carts (src/reserve_cart.sql) expire in the same batches, each whole,
    -- by the same rule: a cart is taken only when its row, the slot row of
    -- every item and its holder's counts were all free (SKIP LOCKED).
    v_carts := lockctl_internal.expire_due_carts(batch_size);
    -- Range holds of calendars (src/reserve_calendar.sql) too.
    v_ranges := lockctl_internal.expire_due_ranges(batch_size);

    -- The hold and its slot are locked together, each with SKIP LOCKED:
    -- LIMIT counts only the holds whose two rows were both free.  (The
    -- slots are locked in expiry order, not in slot order: never waiting,
    -- this cannot deadlock.)  On a pool with a per-holder limit
    -- (src/reserve_limits.sql) the holder's count row is a third row to
    -- lock, with SKIP LOCKED as well: a hold whose count another
    -- transaction has locked is left for a later pass.
    WITH due AS (
        SELECT r.id FROM lockctl.reservations AS r
          JOIN lockctl.pool_slots AS s ON s.pool_id = r.pool_id AND s.slot = r.slot
         WHERE r.status = 'held' AND r.expires <= v_now
           AND (s.max_per_holder IS NULL OR r.holder IS NULL
                OR EXISTS (SELECT FROM lockctl.holder_units AS h
                            WHERE h.pool_id = r.pool_id AND h.holder = r.holder
                              FOR UPDATE SKIP LOCKED)
                OR NOT EXISTS (SELECT FROM lockctl.holder_units AS h
                                WHERE h.pool_id = r.pool_id AND h.holder = r.holder))
         ORDER BY r.expires
         LIMIT batch_size
           FOR UPDATE OF r, s SKIP LOCKED
    ), done AS (
        UPDATE lockctl.reservations AS r
           SET status = 'expired', finished = v_now
          FROM due
         WHERE r.id = due.id
        RETURNING r.id, r.pool_id, r.slot, r.quantity, r.holder
    )
    SELECT array_agg(done.id ORDER BY done.id), array_agg(done.pool_id ORDER BY done.id),
           array_agg(done.slot ORDER BY done.id), array_agg(done.quantity ORDER BY done.id),
           array_agg(done.holder ORDER BY done.id)
      INTO v_ids, v_pools, v_slots, v_qs, v_holders
      FROM done;

    IF v_ids IS NOT NULL THEN
        -- Give the units back; the slot rows are ours already, and so are
        -- the holders' count rows.  Waitlists (src/reserve_waitlist.sql):
        -- the units that came back go to the heads of their pools' queues,
        -- never waiting.
        PERFORM lockctl_internal.restock(v_pools, v_slots, v_qs, v_holders, 'expired', 'worker');
        PERFORM pg_notify('lockctl_expired', u.id::text) FROM unnest(v_ids) AS u(id);
    END IF;
    -- Any queue left behind (units a busy pool could not offer at once,
    -- capacity added, expired carts): pools whose slots are all free now.
    PERFORM lockctl_internal.serve_waitlists();

    RETURN coalesce(cardinality(v_ids), 0) + coalesce(cardinality(v_carts), 0)
           + coalesce(cardinality(v_ranges), 0);
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
    -- Carts and waitlist entries (src/reserve_cart.sql,
    -- src/reserve_waitlist.sql) are purged in the same batches.
    RETURN v_n + lockctl_internal.purge_carts(retention, batch_size)
           + lockctl_internal.purge_waitlist(retention, batch_size)
           + lockctl_internal.purge_ranges(retention, batch_size);
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
    -- text, not name: a name takes 64 bytes in the row and in every
    -- primary-key entry.  Collation "C": keys are compared byte by byte,
    -- whatever the database's collation (cheaper, and locale-independent).
    scope        text COLLATE "C" NOT NULL,
    key          text COLLATE "C" NOT NULL,
    fingerprint  text,
    result       jsonb,
    claimed      timestamp with time zone NOT NULL,
    completed    timestamp with time zone,
    expires      timestamp with time zone NOT NULL,
    -- The top-level transaction that claimed the key: complete_request
    -- accepts only that transaction's claim, subtransactions included.
    claim_xact   xid8 NOT NULL,
    -- key first: keys differ where scopes (mostly one role) are equal, so a
    -- comparison in the index is mostly one column's, not two.
    CONSTRAINT request_keys_pkey PRIMARY KEY (key, scope)
)
-- room on each page for the row's update by complete_request, which then
-- stays on the page (HOT) and adds no index entries
WITH (fillfactor = 90);

COMMENT ON TABLE lockctl.request_keys IS 'lockctl: claimed request keys (write through lockctl.claim_request and complete_request only)';

-- The purge: a pass costs what is due, not what is kept.
CREATE INDEX request_keys_expires_idx ON lockctl.request_keys (expires);

SELECT pg_catalog.pg_extension_config_dump('lockctl.request_keys', '');

REVOKE ALL ON lockctl.request_keys FROM PUBLIC;

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
-- if it stored none).  In C (src/request.c): it checks its arguments, locks
-- the key, then runs, as the extension's owner (what SECURITY DEFINER would
-- do) and with every name schema-qualified:
--     INSERT INTO lockctl.request_keys ... ON CONFLICT ON CONSTRAINT
--         request_keys_pkey DO UPDATE ... WHERE k.expires <= now()
-- (a key past its ttl is free again, purged or not), and for a key in use
-- reads its row: claimed by this transaction (NULL again), by another with
-- the same fingerprint (its result), or with another one (22023).
-- ---------------------------------------------------------------------------
CREATE FUNCTION lockctl.claim_request(key text,
                                      ttl interval DEFAULT '24:00:00'::interval,
                                      fingerprint text DEFAULT NULL,
                                      wait interval DEFAULT NULL,
                                      scope name DEFAULT NULL)
    RETURNS jsonb
    AS 'MODULE_PATHNAME', 'lockctl_claim_request'
    LANGUAGE C VOLATILE;

-- ---------------------------------------------------------------------------
-- lockctl.complete_request(key, result, scope): store the result that
-- duplicates of the request get, in the transaction that claimed it.  In
-- C, as claim_request: an UPDATE of the key's row where claim_xact is this
-- transaction (55000 when none is).
-- ---------------------------------------------------------------------------
CREATE FUNCTION lockctl.complete_request(key text, result jsonb DEFAULT '{}'::jsonb,
                                         scope name DEFAULT NULL)
    RETURNS void
    AS 'MODULE_PATHNAME', 'lockctl_complete_request'
    LANGUAGE C VOLATILE;

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
    SELECT k.scope::pg_catalog.name AS scope,
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
COMMENT ON FUNCTION lockctl_internal.request_stats() IS 'lockctl internal, behind the view lockctl.request_stats: the request counters of this database';
COMMENT ON VIEW lockctl.requests IS 'lockctl: request keys of roles whose privileges the caller has';
COMMENT ON VIEW lockctl.request_stats IS 'lockctl: this database''s request counters since the server started';

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
                                permits integer DEFAULT 1,
                                notify text DEFAULT NULL,
                                bind text DEFAULT 'none')
    RETURNS bigint
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'lockctl_acquire';
COMMENT ON FUNCTION lockctl.acquire(text, text, interval, interval, integer, text, text) IS
    'take the lease on resource for owner, as the session''s role (one of permits holders at once); returns its fencing token, or NULL if not granted within wait; notify: a channel that gets a NOTIFY when the lease ends; bind => ''session'': the lease lasts as long as this session';
GRANT EXECUTE ON FUNCTION lockctl.acquire(text, text, interval, interval, integer, text, text) TO PUBLIC;

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
GRANT EXECUTE ON FUNCTION lockctl.acquire_shared(text, text, interval, interval, text, text) TO PUBLIC;

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
                                   OUT permits integer, OUT set_id bigint)
    RETURNS SETOF record
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'lockctl_lease_list';
COMMENT ON FUNCTION lockctl_internal.leases() IS
    'lockctl internal, behind the view lockctl.leases: every live lease, in every database; owner and token are NULL unless the caller may act on the lease';
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
                                    OUT watching integer,
                                    OUT set_grants bigint)
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

-- Sets of leases (issue 17): acquire_all and release_all, and the set of
-- each lease and waiter in the views (their columns above).
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
GRANT EXECUTE ON FUNCTION lockctl.acquire_all(text[], text, interval, interval) TO PUBLIC;
GRANT EXECUTE ON FUNCTION lockctl.release_all(text[], bigint[]) TO PUBLIC;
GRANT EXECUTE ON FUNCTION lockctl.fence_all(text[], bigint[], interval) TO PUBLIC;

-- ---------------------------------------------------------------------------
-- A lease's NOTIFY channel and session binding (src/lease_notify.c,
-- src/lease_session.c)
-- ---------------------------------------------------------------------------

CREATE FUNCTION lockctl_internal.lease_options(OUT resource text,
                                               OUT token bigint,
                                               OUT roleid oid,
                                               OUT notify text,
                                               OUT session_pid integer,
                                               OUT ended text)
    RETURNS SETOF record
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'lockctl_lease_options';
COMMENT ON FUNCTION lockctl_internal.lease_options() IS
    'lockctl internal, behind the view lockctl.lease_options';

CREATE VIEW lockctl.lease_options AS
    SELECT o.resource, o.token,
           pg_catalog.pg_get_userbyid(o.roleid) AS acquired_by,
           o.notify, o.session_pid, o.ended
      FROM lockctl_internal.lease_options() AS o;
COMMENT ON VIEW lockctl.lease_options IS
    'the leases of this database acquired with notify or bind => ''session'' (ended: how a lease ended whose NOTIFY is not sent yet); token and notify are shown only to the role that took the lease, roles with its privileges and superusers';
GRANT SELECT ON lockctl.lease_options TO PUBLIC;

-- ---------------------------------------------------------------------------
-- Carts, per-holder limits, partial confirm and waitlists (issue 18).
-- ---------------------------------------------------------------------------

-- Per-holder limits (new in 1.1): the limit on pools and its copy on slot
-- rows; waitlists (new in 1.1): the flag on slot rows (src/reserve.sql).
ALTER TABLE lockctl.pools ADD COLUMN max_per_holder bigint;
ALTER TABLE lockctl.pool_slots ADD COLUMN max_per_holder bigint;
-- Added without a default and then filled, so that no "missing value" is
-- stored for it (a fresh install has none; the catalogs must be equal).
ALTER TABLE lockctl.pool_slots ADD COLUMN waitlist boolean;
UPDATE lockctl.pool_slots SET waitlist = false;
ALTER TABLE lockctl.pool_slots ALTER COLUMN waitlist SET DEFAULT false,
                               ALTER COLUMN waitlist SET NOT NULL;
ALTER TABLE lockctl.pool_slots ADD COLUMN kept bigint;
UPDATE lockctl.pool_slots SET kept = 0;
ALTER TABLE lockctl.pool_slots ALTER COLUMN kept SET DEFAULT 0,
                               ALTER COLUMN kept SET NOT NULL;
CREATE INDEX pool_slots_kept_idx ON lockctl.pool_slots (pool_id)
    WHERE kept OPERATOR(pg_catalog.>) 0;
CREATE OR REPLACE VIEW lockctl.pool_status AS
    SELECT p.resource,
           p.capacity,
           t.held,
           t.confirmed,
           t.available,
           p.slots,
           p.auto_slots,
           t.holds_taken,
           t.holds_confirmed,
           t.holds_cancelled,
           t.holds_expired,
           p.created,
           p.max_per_holder,
           t.kept_for_waitlist
      FROM lockctl.pools AS p,
           LATERAL (SELECT pg_catalog.sum(s.held OPERATOR(pg_catalog.-) s.kept)::bigint AS held,
                           pg_catalog.sum(s.confirmed)::bigint AS confirmed,
                           pg_catalog.sum(s.capacity OPERATOR(pg_catalog.-) s.held
                                          OPERATOR(pg_catalog.-) s.confirmed)::bigint AS available,
                           pg_catalog.sum(s.holds_taken)::bigint AS holds_taken,
                           pg_catalog.sum(s.holds_confirmed)::bigint AS holds_confirmed,
                           pg_catalog.sum(s.holds_cancelled)::bigint AS holds_cancelled,
                           pg_catalog.sum(s.holds_expired)::bigint AS holds_expired,
                           pg_catalog.sum(s.kept)::bigint AS kept_for_waitlist
                      FROM lockctl.pool_slots AS s
                     WHERE s.pool_id OPERATOR(pg_catalog.=) p.id) AS t;

-- Carts (new in 1.1): the same objects as src/reserve_cart.sql.
-- ---------------------------------------------------------------------------
-- Carts: several pools held as one thing (one id, one expiry, all or
-- nothing).  docs/reservations.md, "Carts", has the design; in short:
--
--   lockctl.carts       one row per cart: who took it, its state and expiry.
--                       Its id comes from the holds' sequence, era-tagged
--                       as hold ids are (lockctl_internal.era_nextval), so
--                       a cart id is never also a hold id, nor handed out
--                       twice across a failover.
--   lockctl.cart_items  one row per pool of a cart: the slot its units came
--                       from and how many.  Items that name the same pool
--                       are merged into one row.
--
-- The units of a cart are counted in the pools' slots (held, confirmed)
-- like those of any hold, and each item counts as one hold in the slots'
-- holds_* counters, so available() and pool_status include carts.
--
-- Lock order (the same as reserve's, extended over pools):
--   slot rows in (pool id, slot) order -> cart row.
-- reserve_cart first tries every pool with SKIP LOCKED, waiting for
-- nothing; if that fails it gives back all it took and takes its pools in
-- pool id order, whatever the order of the items, in each pool with
-- reserve's three paths: it never waits on a slot of a pool while it holds
-- a slot of a pool with a higher id.  Two carts, or a cart and single
-- reserves, therefore never deadlock.
-- confirm_cart and cancel_cart lock the cart row first, then its slots in
-- (pool id, slot) order, then its holders' counts.  The expiry worker
-- never waits (src/reserve.sql, expire_holds): it takes a due cart only
-- when the cart row, the slot row of every item and the holder's count
-- rows are all free (SKIP LOCKED), and leaves the others for a later pass.
--
-- Authority (README.md, "Privileges"): a cart belongs to the role that
-- took it (taken_by, lockctl_internal.acting_role(), as for holds); only
-- that role and roles with its privileges (lockctl_internal.may_act_for)
-- may confirm, cancel or extend it, and to every other role it does not
-- exist (the test is in the UPDATE's WHERE clause: another role's cart is
-- never locked).  Idempotency keys of carts are scoped per role.  Each
-- item of a cart counts as one hold in the role's caps
-- (lockctl.max_holds_per_role, lockctl.max_kept_holds_per_role).
-- ---------------------------------------------------------------------------

-- The most items a cart may list: a cart locks one slot per pool until its
-- transaction ends, and a checkout rarely has more.
CREATE FUNCTION lockctl_internal.max_cart_items() RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN 100;
COMMENT ON FUNCTION lockctl_internal.max_cart_items() IS 'lockctl internal: the most items a cart may list';
REVOKE ALL ON FUNCTION lockctl_internal.max_cart_items() FROM PUBLIC;

CREATE TABLE lockctl.carts (
    id               bigint NOT NULL DEFAULT lockctl_internal.era_nextval('lockctl.hold_id_seq'::pg_catalog.regclass),
    holder           text,
    taken_by         name NOT NULL DEFAULT lockctl_internal.acting_role(),
    status           lockctl.hold_status NOT NULL DEFAULT 'held',
    created          timestamp with time zone NOT NULL,
    expires          timestamp with time zone NOT NULL,
    finished         timestamp with time zone,
    idempotency_key  text,
    CONSTRAINT carts_pkey PRIMARY KEY (id),
    CONSTRAINT carts_state_check
        CHECK ((status OPERATOR(pg_catalog.=) 'held') OPERATOR(pg_catalog.=) (finished IS NULL))
);
COMMENT ON TABLE lockctl.carts IS 'lockctl: carts, holds on several pools at once (write through lockctl.reserve_cart and friends only)';

-- No foreign keys, as for reservations: only the functions below write
-- these rows, and they keep them together.
CREATE TABLE lockctl.cart_items (
    cart_id   bigint NOT NULL,
    pool_id   bigint NOT NULL,
    slot      integer NOT NULL,
    quantity  bigint NOT NULL,
    CONSTRAINT cart_items_pkey PRIMARY KEY (cart_id, pool_id),
    CONSTRAINT cart_items_quantity_check CHECK (quantity OPERATOR(pg_catalog.>) 0)
);
COMMENT ON TABLE lockctl.cart_items IS 'lockctl: the pools of each cart, with the units taken from each';

-- The worker's scan, the purge and the idempotency lookup, as for holds.
CREATE INDEX carts_due_idx ON lockctl.carts (expires)
    WHERE status OPERATOR(pg_catalog.=) 'held';
CREATE INDEX carts_finished_idx ON lockctl.carts (finished)
    WHERE status OPERATOR(pg_catalog.=) ANY (ARRAY['cancelled', 'expired']::lockctl.hold_status[]);
CREATE UNIQUE INDEX carts_idempotency_idx ON lockctl.carts (taken_by, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- The role caps (check_role_caps), as reservations_role_idx for holds.
CREATE INDEX carts_role_idx ON lockctl.carts (taken_by, status)
    WHERE status OPERATOR(pg_catalog.<>) 'confirmed';

SELECT pg_catalog.pg_extension_config_dump('lockctl.carts', '');
SELECT pg_catalog.pg_extension_config_dump('lockctl.cart_items', '');
REVOKE ALL ON lockctl.carts, lockctl.cart_items FROM PUBLIC;

-- ---------------------------------------------------------------------------
-- Internal: may `role` take `adding` more holds?  53400 when it is at one
-- of its caps: lockctl.max_holds_per_role (its live holds, the items of its
-- live carts and its waiting waitlist entries) or
-- lockctl.max_kept_holds_per_role (its cancelled and expired holds and
-- cart items not purged yet).  Exact under concurrency: when a cap is set,
-- it takes a lock on (database, role) held until the transaction ends and
-- counts with the latest snapshot (src/reserve_caps.c).  Each count stops
-- at the cap (reservations_role_idx, carts_role_idx,
-- waitlist_entries_role_idx), so a check costs at most the cap.  reserve
-- calls it only when a cap is set.
-- ---------------------------------------------------------------------------
CREATE FUNCTION lockctl_internal.check_role_caps(role name, adding integer)
    RETURNS void
    LANGUAGE C VOLATILE
    AS 'MODULE_PATHNAME', 'lockctl_check_role_caps';
COMMENT ON FUNCTION lockctl_internal.check_role_caps(name, integer) IS 'lockctl internal: raise 53400 when a role may not take more holds (lockctl.max_holds_per_role, lockctl.max_kept_holds_per_role)';
REVOKE ALL ON FUNCTION lockctl_internal.check_role_caps(name, integer) FROM PUBLIC;

-- ---------------------------------------------------------------------------
-- Internal: take `quantity` units of pool `pool` (split over `nslots`
-- slots) into one slot, by reserve's three paths (src/reserve.sql): a free
-- slot with SKIP LOCKED from `start` on, then a wait for the nearest slot
-- with enough, then every slot of the pool in slot order with a
-- rebalance.  Returns the slot and the pool's per-holder limit read from
-- it, or a NULL slot (nothing taken, no lock kept) when the pool has fewer
-- than `quantity` free units.  It never waits while it holds a slot of
-- this pool out of order.
-- ---------------------------------------------------------------------------
CREATE FUNCTION lockctl_internal.take_units(pool bigint, nslots integer, quantity bigint, start integer,
                                            OUT got_slot integer, OUT max_per_holder bigint)
    RETURNS record
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
    SET plan_cache_mode = force_generic_plan
AS $fn$
#variable_conflict use_variable
BEGIN
    IF pool IS NULL OR nslots IS NULL OR quantity IS NULL OR start IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed',
            MESSAGE = 'arguments of lockctl_internal.take_units must not be null';
    ELSIF nslots < 1 OR quantity < 1 OR start < 0 THEN
        RAISE EXCEPTION USING ERRCODE = 'numeric_value_out_of_range',
            MESSAGE = 'arguments of lockctl_internal.take_units are out of range';
    END IF;
    start := start % nslots;
    -- 1. a slot no one else is using; a row found short stays locked, so
    -- the attempt is a subtransaction that gives it back.
    -- From `start` upwards, then from the first slot up to it: each an
    -- index range in slot order, as reserve does (one expression over
    -- every slot would read them all).
    BEGIN
        UPDATE lockctl.pool_slots AS s
           SET held = s.held + quantity, holds_taken = s.holds_taken + 1
         WHERE s.pool_id = pool
           AND s.slot = (SELECT x.slot FROM lockctl.pool_slots AS x
                          WHERE x.pool_id = pool AND x.slot >= start AND x.slot < nslots
                            AND x.capacity - x.held - x.confirmed >= quantity
                          ORDER BY x.slot LIMIT 1
                            FOR UPDATE SKIP LOCKED)
        RETURNING s.slot, s.max_per_holder INTO got_slot, max_per_holder;
        IF got_slot IS NULL AND start > 0 THEN
            UPDATE lockctl.pool_slots AS s
               SET held = s.held + quantity, holds_taken = s.holds_taken + 1
             WHERE s.pool_id = pool
               AND s.slot = (SELECT x.slot FROM lockctl.pool_slots AS x
                              WHERE x.pool_id = pool AND x.slot < start
                                AND x.capacity - x.held - x.confirmed >= quantity
                              ORDER BY x.slot LIMIT 1
                                FOR UPDATE SKIP LOCKED)
            RETURNING s.slot, s.max_per_holder INTO got_slot, max_per_holder;
        END IF;
        IF got_slot IS NULL THEN
            RAISE EXCEPTION USING ERRCODE = 'LCKC1';
        END IF;
        RETURN;
    EXCEPTION WHEN SQLSTATE 'LCKC1' THEN
        NULL;
    END;
    -- 2. wait for the nearest slot that has enough, holding none other of
    -- this pool.
    BEGIN
        UPDATE lockctl.pool_slots AS s
           SET held = s.held + quantity, holds_taken = s.holds_taken + 1
         WHERE s.pool_id = pool
           AND s.capacity - s.held - s.confirmed >= quantity
           AND s.slot = (SELECT x.slot FROM lockctl.pool_slots AS x
                          WHERE x.pool_id = pool AND x.slot < nslots
                            AND x.capacity - x.held - x.confirmed >= quantity
                          ORDER BY (x.slot - start + nslots) % nslots LIMIT 1)
        RETURNING s.slot, s.max_per_holder INTO got_slot, max_per_holder;
        IF got_slot IS NULL THEN
            RAISE EXCEPTION USING ERRCODE = 'LCKC1';
        END IF;
        RETURN;
    EXCEPTION WHEN SQLSTATE 'LCKC1' THEN
        NULL;
    END;
    -- 3. no single slot has enough: every slot in order, counted exactly.
    got_slot := lockctl_internal.rebalance(pool, start, quantity);
    IF got_slot IS NOT NULL THEN
        UPDATE lockctl.pool_slots AS s
           SET held = s.held + quantity, holds_taken = s.holds_taken + 1
         WHERE s.pool_id = pool AND s.slot = got_slot
        RETURNING s.max_per_holder INTO max_per_holder;
    END IF;
END;
$fn$;
COMMENT ON FUNCTION lockctl_internal.take_units(bigint, integer, bigint, integer) IS 'lockctl internal: take units of a pool into one slot, as reserve does, and read its per-holder limit';
REVOKE ALL ON FUNCTION lockctl_internal.take_units(bigint, integer, bigint, integer) FROM PUBLIC;

-- ---------------------------------------------------------------------------
-- Internal: the items of a cart argument, checked and merged: one row per
-- pool, in pool id order, with the summed quantity and the positions (from
-- 1) of the items that named it.  Errors name the item.
-- ---------------------------------------------------------------------------
CREATE FUNCTION lockctl_internal.cart_items(items jsonb,
        OUT pool_id bigint, OUT nslots integer, OUT resource text, OUT quantity bigint,
        OUT positions integer[])
    RETURNS SETOF record
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_variable
DECLARE
    v_item jsonb;
    v_n integer;
    v_resource text;
    v_q numeric;
    v_pools bigint[] := ARRAY[]::bigint[];
    v_slots integer[] := ARRAY[]::integer[];
    v_names text[] := ARRAY[]::text[];
    v_qs bigint[] := ARRAY[]::bigint[];
    v_pos integer[] := ARRAY[]::integer[];
    v_pool bigint;
    v_nslots integer;
    v_found record;
BEGIN
    IF items IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed',
            MESSAGE = 'items of lockctl.reserve_cart must not be null';
    ELSIF jsonb_typeof(items) <> 'array' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'items of lockctl.reserve_cart must be a JSON array',
            HINT = 'Pass [{"resource": "seats", "quantity": 2}, ...].';
    ELSIF jsonb_array_length(items) = 0 THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'items of lockctl.reserve_cart must not be empty';
    ELSIF jsonb_array_length(items) > lockctl_internal.max_cart_items() THEN
        RAISE EXCEPTION USING ERRCODE = 'program_limit_exceeded',
            MESSAGE = 'too many items for lockctl.reserve_cart',
            DETAIL = format('There are %s; the limit is %s.', jsonb_array_length(items),
                            lockctl_internal.max_cart_items());
    END IF;
    FOR v_item, v_n IN SELECT e.v, e.n::integer FROM jsonb_array_elements(items) WITH ORDINALITY AS e(v, n) LOOP
        IF jsonb_typeof(v_item) <> 'object' OR (v_item - 'resource' - 'quantity') <> '{}'::jsonb THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = format('item %s of lockctl.reserve_cart is not {"resource": ..., "quantity": ...}', v_n),
                DETAIL = format('It is %s.', left(v_item::text, 200));
        END IF;
        IF jsonb_typeof(v_item -> 'resource') IS DISTINCT FROM 'string' THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = format('resource of item %s of lockctl.reserve_cart must be a string', v_n);
        END IF;
        v_resource := v_item ->> 'resource';
        IF octet_length(v_resource) = 0 THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = format('resource of item %s of lockctl.reserve_cart must not be empty', v_n);
        ELSIF octet_length(v_resource) > lockctl_internal.name_max_bytes() THEN
            RAISE EXCEPTION USING ERRCODE = 'name_too_long',
                MESSAGE = format('resource of item %s of lockctl.reserve_cart is too long', v_n),
                DETAIL = format('It is %s bytes long; the limit is %s bytes.',
                                octet_length(v_resource), lockctl_internal.name_max_bytes());
        END IF;
        -- quantity: a whole number, 1 when left out.
        IF NOT v_item ? 'quantity' THEN
            v_q := 1;
        ELSIF jsonb_typeof(v_item -> 'quantity') <> 'number' THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = format('quantity of item %s of lockctl.reserve_cart must be a number', v_n);
        ELSE
            v_q := (v_item ->> 'quantity')::numeric;
        END IF;
        IF v_q <> trunc(v_q) OR v_q < 1 OR v_q > lockctl_internal.max_units() THEN
            RAISE EXCEPTION USING ERRCODE = 'numeric_value_out_of_range',
                MESSAGE = format('quantity of item %s of lockctl.reserve_cart is out of range: %s', v_n, v_q),
                DETAIL = format('It must be a whole number between 1 and %s.', lockctl_internal.max_units());
        END IF;
        -- Directly when it can be (src/reserve_pool.c), else by the statement.
        v_found := lockctl_internal.pool_of(v_resource);
        IF v_found.looked THEN
            v_pool := v_found.id;
            v_nslots := v_found.slots;
        ELSE
            SELECT p.id, p.slots INTO v_pool, v_nslots FROM lockctl.pools AS p WHERE p.resource = v_resource;
        END IF;
        IF v_pool IS NULL THEN
            RAISE EXCEPTION USING ERRCODE = 'undefined_object',
                MESSAGE = format('pool "%s" does not exist', v_resource),
                DETAIL = format('Item %s of the cart names it.', v_n);
        END IF;
        v_pools := v_pools || v_pool;
        v_slots := v_slots || v_nslots;
        v_names := v_names || v_resource;
        v_qs := v_qs || v_q::bigint;
        v_pos := v_pos || v_n;
    END LOOP;
    FOR pool_id, nslots, resource, quantity, positions IN
        SELECT u.p, min(u.s), min(u.r), sum(u.q), array_agg(u.n ORDER BY u.n)
          FROM unnest(v_pools, v_slots, v_names, v_qs, v_pos) AS u(p, s, r, q, n)
         GROUP BY u.p ORDER BY u.p
    LOOP
        IF quantity > lockctl_internal.max_units() THEN
            RAISE EXCEPTION USING ERRCODE = 'numeric_value_out_of_range',
                MESSAGE = format('quantity of pool "%s" in lockctl.reserve_cart is out of range: %s',
                                 resource, quantity),
                DETAIL = format('Items %s name it; together they must be at most %s.',
                                array_to_string(positions, ', '), lockctl_internal.max_units());
        END IF;
        RETURN NEXT;
    END LOOP;
END;
$fn$;
COMMENT ON FUNCTION lockctl_internal.cart_items(jsonb) IS 'lockctl internal: check a cart''s items and merge them by pool';
REVOKE ALL ON FUNCTION lockctl_internal.cart_items(jsonb) FROM PUBLIC;

-- ---------------------------------------------------------------------------
-- Internal: the same, without the executor (src/reserve_cart.c), for
-- reserve_cart: the four arrays when every item is plain and names a pool
-- looked up there; all NULL otherwise (then cart_items raises the error,
-- or merges the items itself).  The bounds are passed in, defined once.
-- ---------------------------------------------------------------------------
CREATE FUNCTION lockctl_internal.cart_plain_items(items jsonb, max_items integer, max_units bigint,
        OUT pools bigint[], OUT nslots integer[], OUT names text[], OUT quantities bigint[])
    RETURNS record
    AS 'MODULE_PATHNAME', 'lockctl_cart_plain_items'
    LANGUAGE C STABLE;
COMMENT ON FUNCTION lockctl_internal.cart_plain_items(jsonb, integer, bigint) IS 'lockctl internal: a cart''s items checked and merged by pool, or NULLs for cart_items to decide';
REVOKE ALL ON FUNCTION lockctl_internal.cart_plain_items(jsonb, integer, bigint) FROM PUBLIC;

-- ---------------------------------------------------------------------------
-- Internal: the cart that idempotency_key made for the role this call acts
-- for, or
-- NULL if none is visible; 22023 if it holds other pools or quantities
-- than `wanted` (pool id, quantity pairs).
-- ---------------------------------------------------------------------------
CREATE FUNCTION lockctl_internal.keyed_cart(idempotency_key text, pools bigint[], quantities bigint[])
    RETURNS bigint
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_variable
DECLARE
    v_id bigint;
BEGIN
    SELECT c.id INTO v_id FROM lockctl.carts AS c
     WHERE c.taken_by = lockctl_internal.acting_role() AND c.idempotency_key = idempotency_key;
    IF v_id IS NULL THEN
        RETURN NULL;
    END IF;
    IF EXISTS (SELECT i.pool_id, i.quantity FROM lockctl.cart_items AS i WHERE i.cart_id = v_id
               EXCEPT SELECT u.p, u.q FROM unnest(pools, quantities) AS u(p, q))
       OR EXISTS (SELECT u.p, u.q FROM unnest(pools, quantities) AS u(p, q)
                  EXCEPT SELECT i.pool_id, i.quantity FROM lockctl.cart_items AS i WHERE i.cart_id = v_id)
    THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('idempotency key "%s" was used for another cart', idempotency_key),
            DETAIL = format('Cart %s holds other pools or quantities than this call asked for.', v_id);
    END IF;
    RETURN v_id;
END;
$fn$;
COMMENT ON FUNCTION lockctl_internal.keyed_cart(text, bigint[], bigint[]) IS 'lockctl internal: the cart an idempotency key made for the role a call acts for';
REVOKE ALL ON FUNCTION lockctl_internal.keyed_cart(text, bigint[], bigint[]) FROM PUBLIC;

-- ---------------------------------------------------------------------------
-- lockctl.reserve_cart(items, holder, ttl, idempotency_key): hold every
-- item of the cart, or none.  items is a JSON array of
-- {"resource": name, "quantity": n} (quantity 1 when left out; items that
-- name the same pool add up).  Returns the cart's id, or NULL when some
-- pool has too few free units: then nothing is held, and a NOTICE (SQLSTATE
-- 01LC1) names the item (the items, when several name that pool), the
-- pool, and what is free.
--
-- Two ways, cheapest first (docs/reservations.md, "Carts"):
--   1. fast: reserve's fast path (a free slot, SKIP LOCKED) for every pool,
--      one UPDATE each, then one INSERT of the items, all in a single
--      subtransaction.  Nothing waits there; if some pool has no such
--      slot, the subtransaction gives back everything taken (the cart row
--      too) and:
--   2. pool by pool in pool id order with reserve's three paths
--      (take_units), which may wait, each in its own subtransaction.
-- The items are checked and merged in C (cart_plain_items); only when one
-- is wrong does cart_items go through them one by one, for the error.
-- ---------------------------------------------------------------------------
CREATE FUNCTION lockctl.reserve_cart(items jsonb, holder text DEFAULT NULL,
                                     ttl interval DEFAULT '00:05:00'::interval,
                                     idempotency_key text DEFAULT NULL)
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    SET plan_cache_mode = force_generic_plan
AS $fn$
#variable_conflict use_column
DECLARE
    v_items jsonb := items;
    v_holder text := holder;
    v_ttl interval := ttl;
    v_key text := idempotency_key;
    v_pools bigint[];
    v_nslots integer[];
    v_names text[];
    v_qs bigint[];
    v_plain record;
    v_slots integer[] := ARRAY[]::integer[];
    v_start integer := pg_backend_pid();
    v_slot integer;
    v_max bigint;
    v_taken record;
    v_maxes bigint[] := ARRAY[]::bigint[];
    v_id bigint;
    v_now timestamp with time zone;
    v_fast boolean := true;
    v_failed integer;
    v_free bigint;
    v_pos text;
BEGIN
    IF octet_length(v_holder) = 0 THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'holder of lockctl.reserve_cart must not be empty',
            HINT = 'Pass NULL for a cart without a holder.';
    ELSIF octet_length(v_holder) > lockctl_internal.name_max_bytes() THEN
        RAISE EXCEPTION USING ERRCODE = 'name_too_long',
            MESSAGE = 'holder of lockctl.reserve_cart is too long',
            DETAIL = format('It is %s bytes long; the limit is %s bytes.',
                            octet_length(v_holder), lockctl_internal.name_max_bytes());
    END IF;
    -- check_hold_ttl's test, inline (this is the hot path); it raises.
    IF v_ttl IS NULL OR v_ttl < lockctl_internal.min_hold_ttl() OR v_ttl > lockctl_internal.max_hold_ttl() THEN
        PERFORM lockctl_internal.check_hold_ttl('reserve_cart', v_ttl);
    END IF;
    IF octet_length(v_key) = 0 THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'idempotency_key of lockctl.reserve_cart must not be empty';
    ELSIF octet_length(v_key) > lockctl_internal.name_max_bytes() THEN
        RAISE EXCEPTION USING ERRCODE = 'name_too_long',
            MESSAGE = 'idempotency_key of lockctl.reserve_cart is too long',
            DETAIL = format('It is %s bytes long; the limit is %s bytes.',
                            octet_length(v_key), lockctl_internal.name_max_bytes());
    END IF;

    -- The items, checked, looked up and merged by pool in pool id order
    -- (src/reserve_cart.c).  When one is wrong, or its pool could not be
    -- looked up there, cart_items goes through them one by one: it raises
    -- the error of the first wrong item, or gives the same merge.
    v_plain := lockctl_internal.cart_plain_items(v_items, lockctl_internal.max_cart_items(),
                                                 lockctl_internal.max_units());
    v_pools := v_plain.pools;
    v_nslots := v_plain.nslots;
    v_names := v_plain.names;
    v_qs := v_plain.quantities;
    IF v_pools IS NULL THEN
        SELECT array_agg(c.pool_id ORDER BY c.pool_id), array_agg(c.nslots ORDER BY c.pool_id),
               array_agg(c.resource ORDER BY c.pool_id), array_agg(c.quantity ORDER BY c.pool_id)
          INTO v_pools, v_nslots, v_names, v_qs
          FROM lockctl_internal.cart_items(v_items) AS c;
    END IF;

    -- A retry with the same key gets the cart the first call made.
    IF v_key IS NOT NULL THEN
        v_id := lockctl_internal.keyed_cart(v_key, v_pools, v_qs);
        IF v_id IS NOT NULL THEN
            RETURN v_id;
        END IF;
    END IF;

    -- The role's caps: each item (pool) counts as one hold.
    IF current_setting('lockctl.max_holds_per_role')::integer > 0
       OR current_setting('lockctl.max_kept_holds_per_role')::integer > 0 THEN
        PERFORM lockctl_internal.check_role_caps(lockctl_internal.acting_role(), cardinality(v_pools));
    END IF;

    -- 1. fast.  All or nothing: a subtransaction, rolled back (cart row,
    -- items, slot locks) when some pool has no free slot at hand.  The
    -- cart row comes first: a concurrent call with the same key waits
    -- here, before it holds any slot.
    v_now := clock_timestamp();
    BEGIN
        IF v_key IS NULL THEN
            INSERT INTO lockctl.carts AS c (holder, created, expires)
            VALUES (v_holder, v_now, v_now + v_ttl)
            RETURNING c.id INTO v_id;
        ELSE
            INSERT INTO lockctl.carts AS c (holder, created, expires, idempotency_key)
            VALUES (v_holder, v_now, v_now + v_ttl, v_key)
            ON CONFLICT (taken_by, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
            RETURNING c.id INTO v_id;
        END IF;
        IF v_id IS NOT NULL THEN
            -- Pool by pool in pool id order (the order does not matter
            -- here, nothing waits): reserve's fast path, the first free
            -- slot with enough from this backend's own one up, then from
            -- the first one up to it, each an index range; one UPDATE per
            -- pool, whose plan is the primary key's whatever the sizes.
            -- Directly when it can be (src/reserve_slot.c, as reserve).
            FOR i IN 1 .. cardinality(v_pools) LOOP
                v_taken := lockctl_internal.take_slot(v_pools[i], v_start % v_nslots[i],
                                                      v_nslots[i], v_qs[i]);
                v_slot := v_taken.slot;
                v_max := v_taken.max_per_holder;
                IF v_slot IS NULL AND NOT v_taken.looked THEN
                    UPDATE lockctl.pool_slots AS s
                       SET held = s.held + v_qs[i], holds_taken = s.holds_taken + 1
                     WHERE s.pool_id = v_pools[i]
                       AND s.slot = coalesce(
                           (SELECT x.slot FROM lockctl.pool_slots AS x
                             WHERE x.pool_id = v_pools[i] AND x.slot >= v_start % v_nslots[i]
                               AND x.slot < v_nslots[i]
                               AND x.capacity - x.held - x.confirmed >= v_qs[i]
                             ORDER BY x.slot LIMIT 1 FOR UPDATE SKIP LOCKED),
                           (SELECT x.slot FROM lockctl.pool_slots AS x
                             WHERE x.pool_id = v_pools[i] AND x.slot < v_start % v_nslots[i]
                               AND x.capacity - x.held - x.confirmed >= v_qs[i]
                             ORDER BY x.slot LIMIT 1 FOR UPDATE SKIP LOCKED))
                    RETURNING s.slot, s.max_per_holder INTO v_slot, v_max;
                END IF;
                IF v_slot IS NULL THEN
                    RAISE EXCEPTION USING ERRCODE = 'LCKC1';
                END IF;
                v_slots[i] := v_slot;
                v_maxes[i] := v_max;
            END LOOP;
            INSERT INTO lockctl.cart_items (cart_id, pool_id, slot, quantity)
            SELECT v_id, u.p, u.s, u.q FROM unnest(v_pools, v_slots, v_qs) AS u(p, s, q);
            -- Per-holder limits (src/reserve_limits.sql), once every slot
            -- is ours: holder rows come after slot rows, in pool order.
            FOR i IN 1 .. cardinality(v_pools) LOOP
                IF v_maxes[i] IS NOT NULL THEN
                    PERFORM lockctl_internal.charge_holder(v_pools[i], v_names[i], v_holder, v_qs[i], v_maxes[i]);
                END IF;
            END LOOP;
        END IF;
    EXCEPTION WHEN SQLSTATE 'LCKC1' THEN
        v_fast := false;
        v_id := NULL;
        v_maxes := ARRAY[]::bigint[];
    END;

    -- 2. pool by pool, in pool id order, waiting where reserve would.
    IF NOT v_fast THEN
        v_now := clock_timestamp();
        BEGIN
            IF v_key IS NULL THEN
                INSERT INTO lockctl.carts AS c (holder, created, expires)
                VALUES (v_holder, v_now, v_now + v_ttl)
                RETURNING c.id INTO v_id;
            ELSE
                INSERT INTO lockctl.carts AS c (holder, created, expires, idempotency_key)
                VALUES (v_holder, v_now, v_now + v_ttl, v_key)
                ON CONFLICT (taken_by, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
                RETURNING c.id INTO v_id;
            END IF;
            IF v_id IS NOT NULL THEN
                FOR i IN 1 .. cardinality(v_pools) LOOP
                    SELECT t.got_slot, t.max_per_holder INTO v_slot, v_max
                      FROM lockctl_internal.take_units(v_pools[i], v_nslots[i], v_qs[i], v_start) AS t;
                    IF v_slot IS NULL THEN
                        v_failed := i;
                        -- Exact: take_units ended with every slot of it locked.
                        SELECT sum(s.capacity - s.held - s.confirmed) INTO v_free
                          FROM lockctl.pool_slots AS s WHERE s.pool_id = v_pools[i];
                        RAISE EXCEPTION USING ERRCODE = 'LCKC2';
                    END IF;
                    INSERT INTO lockctl.cart_items (cart_id, pool_id, slot, quantity)
                    VALUES (v_id, v_pools[i], v_slot, v_qs[i]);
                    v_maxes := v_maxes || v_max;
                END LOOP;
                FOR i IN 1 .. cardinality(v_pools) LOOP
                    IF v_maxes[i] IS NOT NULL THEN
                        PERFORM lockctl_internal.charge_holder(v_pools[i], v_names[i], v_holder, v_qs[i], v_maxes[i]);
                    END IF;
                END LOOP;
            END IF;
        EXCEPTION WHEN SQLSTATE 'LCKC2' THEN
            -- Which items named the pool, for the notice.
            SELECT CASE WHEN cardinality(c.positions) > 1 THEN 'items ' ELSE 'item ' END
                   || array_to_string(c.positions, ', ')
              INTO v_pos
              FROM lockctl_internal.cart_items(v_items) AS c
             WHERE c.pool_id = v_pools[v_failed];
            RAISE NOTICE USING ERRCODE = '01LC1',
                MESSAGE = format('cart not reserved: pool "%s" has %s units free, the cart asks for %s (%s)',
                                 v_names[v_failed], v_free, v_qs[v_failed], v_pos),
                DETAIL = 'Nothing was held.';
            RETURN NULL;
        END;
    END IF;
    IF v_id IS NOT NULL THEN
        RETURN v_id;
    END IF;

    -- A concurrent call with the same key committed first: its cart.
    v_id := lockctl_internal.keyed_cart(v_key, v_pools, v_qs);
    IF v_id IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'serialization_failure',
            MESSAGE = format('could not serialize reserve_cart with idempotency key "%s"', v_key),
            DETAIL = 'A concurrent transaction took a cart with the same key after this transaction''s snapshot.',
            HINT = 'Retry the transaction.';
    END IF;
    RETURN v_id;
END;
$fn$;

-- ---------------------------------------------------------------------------
-- Internal: explain why cart `id` could not be confirmed, cancelled or
-- extended by the role this call acts for.  Returns its status when that is not an
-- error for `action`.  A cart of a role whose privileges the caller lacks
-- does not exist, with the same error as one that never did.
-- ---------------------------------------------------------------------------
CREATE FUNCTION lockctl_internal.cart_state(action text, id bigint, ok_status text[]) RETURNS text
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_variable
DECLARE
    v_status text;
    v_expires timestamp with time zone;
    v_finished timestamp with time zone;
BEGIN
    SELECT c.status::text, c.expires, c.finished INTO v_status, v_expires, v_finished
      FROM lockctl.carts AS c WHERE c.id = id AND lockctl_internal.may_act_for(c.taken_by);
    IF NOT FOUND THEN
        -- Era-tagged ids, as hold_state explains them (src/reserve.sql).
        IF id >= 281474976710656 AND (id >> 48) IS DISTINCT FROM (SELECT t.era FROM lockctl.token_state() AS t) THEN
            RAISE EXCEPTION USING ERRCODE = 'undefined_object',
                MESSAGE = format('cart %s does not exist', id),
                DETAIL = format('It was taken in era %s, and this server is in era %s: it was lost in a failover or a restore, or it finished and was purged.',
                                id >> 48, (SELECT t.era FROM lockctl.token_state() AS t)),
                HINT = 'Take a new cart with lockctl.reserve_cart.';
        END IF;
        RAISE EXCEPTION USING ERRCODE = 'undefined_object',
            MESSAGE = format('cart %s does not exist', id),
            DETAIL = 'It was never taken, or it finished and was purged, or it is another role''s.';
    END IF;
    IF v_status = ANY (ok_status) THEN
        RETURN v_status;
    END IF;
    IF v_status = 'held' AND v_expires <= clock_timestamp() OR v_status = 'expired' THEN
        RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = format('cannot %s cart %s: it has expired', action, id),
            DETAIL = format('It expired at %s.', v_expires),
            HINT = 'Take a new cart with lockctl.reserve_cart.';
    ELSIF v_status = 'cancelled' THEN
        RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = format('cannot %s cart %s: it was cancelled', action, id),
            DETAIL = format('It was cancelled at %s.', v_finished),
            HINT = 'Take a new cart with lockctl.reserve_cart.';
    ELSIF v_status = 'confirmed' THEN
        RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = format('cannot %s cart %s: it is confirmed', action, id),
            DETAIL = format('It was confirmed at %s.', v_finished);
    END IF;
    RAISE EXCEPTION USING ERRCODE = 'serialization_failure',
        MESSAGE = format('could not %s cart %s because of a concurrent change', action, id),
        HINT = 'Retry the transaction.';
END;
$fn$;
COMMENT ON FUNCTION lockctl_internal.cart_state(text, bigint, text[]) IS 'lockctl internal: explain why a cart cannot be confirmed, cancelled or extended';
REVOKE ALL ON FUNCTION lockctl_internal.cart_state(text, bigint, text[]) FROM PUBLIC;

-- ---------------------------------------------------------------------------
-- Internal: move the units of cart `id` (whose row the caller has locked)
-- out of held: into confirmed, or back to the pool.  Slots are locked in
-- (pool id, slot) order.  `counter` is the holds_* counter to count each
-- item in: 'confirmed', 'cancelled' or 'expired'.  For 'expired' (the
-- worker) every slot and holder's count row is the caller's already, and
-- the waitlists are served by the caller, never waiting.
-- ---------------------------------------------------------------------------
CREATE FUNCTION lockctl_internal.finish_cart_units(ids bigint[], counter text)
    RETURNS void
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
    SET plan_cache_mode = force_generic_plan
AS $fn$
#variable_conflict use_variable
BEGIN
    PERFORM FROM lockctl.cart_items AS i
      JOIN lockctl.pool_slots AS s ON s.pool_id = i.pool_id AND s.slot = i.slot
     WHERE i.cart_id = ANY (ids)
     ORDER BY s.pool_id, s.slot
       FOR UPDATE OF s;
    IF counter = 'confirmed' THEN
        UPDATE lockctl.pool_slots AS s
           SET held = s.held - g.q, confirmed = s.confirmed + g.q,
               holds_confirmed = s.holds_confirmed + g.n
          FROM (SELECT i.pool_id, i.slot, sum(i.quantity) AS q, count(*) AS n
                  FROM lockctl.cart_items AS i WHERE i.cart_id = ANY (ids)
                 GROUP BY i.pool_id, i.slot) AS g
         WHERE s.pool_id = g.pool_id AND s.slot = g.slot;
        RETURN;
    END IF;
    -- Given back: to the pools, the holders' counts and, for cancelled
    -- units, the waitlists first (restock, src/reserve.sql).
    PERFORM lockctl_internal.restock(array_agg(i.pool_id), array_agg(i.slot), array_agg(i.quantity),
                                     array_agg(c.holder), counter,
                                     CASE WHEN counter = 'cancelled' THEN 'own' END)
       FROM lockctl.cart_items AS i JOIN lockctl.carts AS c ON c.id = i.cart_id
      WHERE i.cart_id = ANY (ids);
END;
$fn$;
COMMENT ON FUNCTION lockctl_internal.finish_cart_units(bigint[], text) IS 'lockctl internal: move the units of finished carts out of held';
REVOKE ALL ON FUNCTION lockctl_internal.finish_cart_units(bigint[], text) FROM PUBLIC;

-- ---------------------------------------------------------------------------
-- lockctl.confirm_cart(id): make every item of a live cart permanent.
-- Returns true, or false if it was confirmed already (a safe retry); 55000
-- if it expired or was cancelled; 42704 if it does not exist or belongs to
-- a role whose privileges the caller lacks.
-- ---------------------------------------------------------------------------
CREATE FUNCTION lockctl.confirm_cart(id bigint)
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
            MESSAGE = 'id of lockctl.confirm_cart must not be null';
    END IF;
    -- The role check is in the WHERE clause: a cart the caller may not act
    -- on is never locked (nor waited for).
    UPDATE lockctl.carts AS c
       SET status = 'confirmed', finished = v_now
     WHERE c.id = id AND c.finished IS NULL AND c.expires > v_now
       AND lockctl_internal.may_act_for(c.taken_by);
    IF NOT FOUND THEN
        PERFORM lockctl_internal.cart_state('confirm', id, ARRAY['confirmed']);
        RETURN false;
    END IF;
    -- finish_cart_units(.., 'confirmed'), inline: one UPDATE per item (one
    -- slot row each: items are merged by pool), in (pool id, slot) order,
    -- so each slot row is locked by the update that writes it, in the
    -- order every writer follows, with no locking pass before.  An item of
    -- a dropped pool has no slot row left: nothing to update.
    FOR v_pool, v_slot, v_q IN
        SELECT i.pool_id, i.slot, i.quantity FROM lockctl.cart_items AS i
         WHERE i.cart_id = id ORDER BY i.pool_id, i.slot
    LOOP
        -- Directly when it can be (src/reserve_slot.c), else by the statement.
        IF NOT lockctl_internal.confirm_slot(v_pool, v_slot, v_q) THEN
            UPDATE lockctl.pool_slots AS s
               SET held = s.held - v_q, confirmed = s.confirmed + v_q,
                   holds_confirmed = s.holds_confirmed + 1
             WHERE s.pool_id = v_pool AND s.slot = v_slot;
        END IF;
    END LOOP;
    RETURN true;
END;
$fn$;

-- ---------------------------------------------------------------------------
-- lockctl.cancel_cart(id): end a live cart and give all its units back.
-- Returns true, or false if it had already been cancelled or expired;
-- 55000 for a confirmed cart; 42704 as for confirm_cart.
-- ---------------------------------------------------------------------------
CREATE FUNCTION lockctl.cancel_cart(id bigint)
    RETURNS boolean
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    SET plan_cache_mode = force_generic_plan
AS $fn$
#variable_conflict use_variable
BEGIN
    IF id IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed',
            MESSAGE = 'id of lockctl.cancel_cart must not be null';
    END IF;
    UPDATE lockctl.carts AS c
       SET status = 'cancelled', finished = clock_timestamp()
     WHERE c.id = id AND c.finished IS NULL
       AND lockctl_internal.may_act_for(c.taken_by);
    IF NOT FOUND THEN
        PERFORM lockctl_internal.cart_state('cancel', id, ARRAY['cancelled', 'expired']);
        RETURN false;
    END IF;
    PERFORM lockctl_internal.finish_cart_units(ARRAY[id], 'cancelled');
    RETURN true;
END;
$fn$;

-- ---------------------------------------------------------------------------
-- lockctl.extend_cart(id, ttl): a live cart now expires ttl from now, every
-- item together.  Returns the new expiry; 55000 if it expired, was
-- cancelled or is confirmed; 42704 as for confirm_cart.
-- ---------------------------------------------------------------------------
CREATE FUNCTION lockctl.extend_cart(id bigint, ttl interval)
    RETURNS timestamp with time zone
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_variable
DECLARE
    v_now timestamp with time zone := clock_timestamp();
    v_expires timestamp with time zone;
BEGIN
    IF id IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed',
            MESSAGE = 'id of lockctl.extend_cart must not be null';
    END IF;
    PERFORM lockctl_internal.check_hold_ttl('extend_cart', ttl);
    UPDATE lockctl.carts AS c
       SET expires = v_now + ttl
     WHERE c.id = id AND c.finished IS NULL AND c.expires > v_now
       AND lockctl_internal.may_act_for(c.taken_by)
    RETURNING c.expires INTO v_expires;
    IF NOT FOUND THEN
        PERFORM lockctl_internal.cart_state('extend', id, ARRAY[]::text[]);
    END IF;
    RETURN v_expires;
END;
$fn$;

-- ---------------------------------------------------------------------------
-- Internal: expire up to batch_size due carts, oldest first, each whole:
-- mark them expired, give their units back (to the pools and to the
-- holders' counts) and NOTIFY lockctl_expired with each id; their ids (NULL
-- if none).  It never waits for another transaction: a cart is taken only
-- when its row, the slot row of every item and every holder's count row
-- it needs were all free (SKIP LOCKED); one of them locked (a confirm,
-- cancel or extend in flight, a reserve on the same slot in a transaction
-- left open, a prepared transaction), the cart is left for a later pass,
-- and the batch is filled from the carts behind it.  The rows of a cart
-- left stay locked by this transaction until it ends (the worker's
-- batches are short).  Never waiting, it cannot deadlock.  Waitlists are
-- the caller's to serve (serve_waitlists).
-- ---------------------------------------------------------------------------
CREATE FUNCTION lockctl_internal.expire_due_carts(batch_size integer)
    RETURNS bigint[]
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_variable
DECLARE
    v_now timestamp with time zone := clock_timestamp();
    v_seen bigint[] := ARRAY[]::bigint[];
    v_cand bigint[];
    v_ok bigint[];
    v_ids bigint[] := ARRAY[]::bigint[];
    v_sp bigint[];
    v_ss integer[];
    v_hp bigint[];
    v_hh text[];
BEGIN
    LOOP
        -- Due carts not looked at yet whose rows are free.
        SELECT array_agg(x.id) INTO v_cand
          FROM (SELECT c.id FROM lockctl.carts AS c
                 WHERE c.status = 'held' AND c.expires <= v_now
                   AND c.id <> ALL (v_seen)
                 ORDER BY c.expires
                 LIMIT batch_size - cardinality(v_ids)
                   FOR UPDATE SKIP LOCKED) AS x;
        EXIT WHEN v_cand IS NULL;
        v_seen := v_seen || v_cand;
        -- Their slot rows and holders' count rows: whichever are free.
        SELECT array_agg(x.pool_id), array_agg(x.slot) INTO v_sp, v_ss
          FROM (SELECT s.pool_id, s.slot FROM lockctl.pool_slots AS s
                 WHERE (s.pool_id, s.slot) IN (SELECT i.pool_id, i.slot FROM lockctl.cart_items AS i
                                                WHERE i.cart_id = ANY (v_cand))
                   FOR UPDATE SKIP LOCKED) AS x;
        SELECT array_agg(x.pool_id), array_agg(x.holder) INTO v_hp, v_hh
          FROM (SELECT h.pool_id, h.holder FROM lockctl.holder_units AS h
                 WHERE (h.pool_id, h.holder) IN (SELECT i.pool_id, c.holder
                                                   FROM lockctl.cart_items AS i
                                                   JOIN lockctl.carts AS c ON c.id = i.cart_id
                                                  WHERE i.cart_id = ANY (v_cand))
                   FOR UPDATE SKIP LOCKED) AS x;
        -- The carts of which every row needed is ours.
        SELECT array_agg(c.id) INTO v_ok
          FROM lockctl.carts AS c
         WHERE c.id = ANY (v_cand)
           AND NOT EXISTS (SELECT FROM lockctl.cart_items AS i
                            WHERE i.cart_id = c.id
                              AND (i.pool_id, i.slot) NOT IN (SELECT u.p, u.s FROM unnest(v_sp, v_ss) AS u(p, s))
                              -- (an item of a dropped pool has no slot row)
                              AND EXISTS (SELECT FROM lockctl.pool_slots AS s
                                           WHERE s.pool_id = i.pool_id AND s.slot = i.slot))
           AND NOT EXISTS (SELECT FROM lockctl.cart_items AS i
                             JOIN lockctl.holder_units AS h ON h.pool_id = i.pool_id AND h.holder = c.holder
                            WHERE i.cart_id = c.id
                              AND (h.pool_id, h.holder) NOT IN (SELECT u.p, u.h FROM unnest(v_hp, v_hh) AS u(p, h)));
        IF v_ok IS NOT NULL THEN
            UPDATE lockctl.carts AS c SET status = 'expired', finished = v_now
             WHERE c.id = ANY (v_ok);
            v_ids := v_ids || v_ok;
        END IF;
        EXIT WHEN cardinality(v_ids) >= batch_size;
    END LOOP;
    IF cardinality(v_ids) = 0 THEN
        RETURN NULL;
    END IF;
    PERFORM lockctl_internal.finish_cart_units(v_ids, 'expired');
    PERFORM pg_notify('lockctl_expired', u.id::text) FROM unnest(v_ids) AS u(id);
    RETURN v_ids;
END;
$fn$;
COMMENT ON FUNCTION lockctl_internal.expire_due_carts(integer) IS 'lockctl internal: expire due carts whose rows are free, never waiting';
REVOKE ALL ON FUNCTION lockctl_internal.expire_due_carts(integer) FROM PUBLIC;

-- ---------------------------------------------------------------------------
-- lockctl_internal.expire_carts(batch_size): up to batch_size due carts,
-- oldest first, each with all its items in this one transaction, never
-- waiting (expire_due_carts), then the waitlists; NOTIFY lockctl_expired
-- with each cart's id (never also a hold's id).  The worker's expire_holds
-- does the same within its batches.  Returns how many.
-- ---------------------------------------------------------------------------
CREATE FUNCTION lockctl_internal.expire_carts(batch_size integer)
    RETURNS integer
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_variable
DECLARE
    v_ids bigint[];
BEGIN
    IF batch_size IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed',
            MESSAGE = 'batch_size of lockctl_internal.expire_carts must not be null';
    ELSIF batch_size < 1 OR batch_size > lockctl_internal.max_batch() THEN
        RAISE EXCEPTION USING ERRCODE = 'numeric_value_out_of_range',
            MESSAGE = format('batch_size of lockctl_internal.expire_carts is out of range: %s', batch_size),
            DETAIL = format('It must be between 1 and %s.', lockctl_internal.max_batch());
    END IF;
    v_ids := lockctl_internal.expire_due_carts(batch_size);
    PERFORM lockctl_internal.serve_waitlists();
    RETURN coalesce(cardinality(v_ids), 0);
END;
$fn$;

-- ---------------------------------------------------------------------------
-- lockctl_internal.purge_carts(retention, batch_size): delete up to
-- batch_size carts (with their items) cancelled or expired more than
-- retention ago; never confirmed ones.  Called by purge_holds.
-- ---------------------------------------------------------------------------
CREATE FUNCTION lockctl_internal.purge_carts(retention interval, batch_size integer)
    RETURNS integer
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_variable
DECLARE
    v_ids bigint[];
BEGIN
    IF retention IS NULL OR batch_size IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed',
            MESSAGE = 'arguments of lockctl_internal.purge_carts must not be null';
    ELSIF retention < '0'::interval OR batch_size < 1 OR batch_size > lockctl_internal.max_batch() THEN
        RAISE EXCEPTION USING ERRCODE = 'numeric_value_out_of_range',
            MESSAGE = format('arguments of lockctl_internal.purge_carts are out of range: "%s", %s',
                             retention, batch_size);
    END IF;
    WITH old AS (
        SELECT c.id FROM lockctl.carts AS c
         WHERE c.status = ANY (ARRAY['cancelled', 'expired']::lockctl.hold_status[])
           AND c.finished < now() - retention
         ORDER BY c.finished
         LIMIT batch_size
           FOR UPDATE SKIP LOCKED
    ), gone AS (
        DELETE FROM lockctl.carts AS c USING old WHERE c.id = old.id RETURNING c.id
    )
    SELECT array_agg(gone.id) INTO v_ids FROM gone;
    IF v_ids IS NULL THEN
        RETURN 0;
    END IF;
    DELETE FROM lockctl.cart_items AS i WHERE i.cart_id = ANY (v_ids);
    RETURN cardinality(v_ids);
END;
$fn$;

-- ---------------------------------------------------------------------------
-- The view: one row per item of every cart the caller may see, as
-- lockctl.holds shows holds: carts of roles whose privileges it has (the
-- very carts it may confirm, cancel and extend; superusers: all), and for
-- members of pg_read_all_stats every cart, but not the holder or the
-- idempotency key of another role's.
-- ---------------------------------------------------------------------------
CREATE VIEW lockctl.cart_holds WITH (security_barrier) AS
    SELECT c.id,
           p.resource,
           i.quantity,
           CASE WHEN a.mine THEN c.holder END AS holder,
           c.taken_by,
           c.status::text AS status,
           c.created,
           c.expires,
           c.finished,
           CASE WHEN a.mine THEN c.idempotency_key END AS idempotency_key
      FROM lockctl.carts AS c
      JOIN lockctl.cart_items AS i ON i.cart_id OPERATOR(pg_catalog.=) c.id
      JOIN lockctl.pools AS p ON p.id OPERATOR(pg_catalog.=) i.pool_id
     CROSS JOIN LATERAL (SELECT lockctl_internal.may_act_for(c.taken_by) AS mine) AS a
     WHERE a.mine
        OR pg_catalog.pg_has_role('pg_read_all_stats'::pg_catalog.name, 'USAGE');
COMMENT ON VIEW lockctl.cart_holds IS 'lockctl: the items of carts, live and finished (until purged), taken by roles whose privileges the caller has (every cart for pg_read_all_stats, without holder and key)';

COMMENT ON FUNCTION lockctl.reserve_cart(jsonb, text, interval, text) IS 'lockctl: hold several pools at once, all or nothing; NULL when some pool has too few units';
COMMENT ON FUNCTION lockctl.confirm_cart(bigint) IS 'lockctl: make every item of a live cart permanent';
COMMENT ON FUNCTION lockctl.cancel_cart(bigint) IS 'lockctl: end a cart and give all its units back';
COMMENT ON FUNCTION lockctl.extend_cart(bigint, interval) IS 'lockctl: a live cart now expires ttl from now';
COMMENT ON FUNCTION lockctl_internal.expire_carts(integer) IS 'lockctl internal: expire up to batch_size due carts';
COMMENT ON FUNCTION lockctl_internal.purge_carts(interval, integer) IS 'lockctl internal: delete up to batch_size carts finished more than retention ago (called by purge_holds)';

-- Anyone may take, confirm, cancel and extend carts (their own, per the
-- role checks inside); expiring and purging is the worker's.
REVOKE ALL ON FUNCTION lockctl.reserve_cart(jsonb, text, interval, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION lockctl.confirm_cart(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION lockctl.cancel_cart(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION lockctl.extend_cart(bigint, interval) FROM PUBLIC;
REVOKE ALL ON FUNCTION lockctl_internal.expire_carts(integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION lockctl_internal.purge_carts(interval, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION lockctl.reserve_cart(jsonb, text, interval, text) TO PUBLIC;
GRANT EXECUTE ON FUNCTION lockctl.confirm_cart(bigint) TO PUBLIC;
GRANT EXECUTE ON FUNCTION lockctl.cancel_cart(bigint) TO PUBLIC;
GRANT EXECUTE ON FUNCTION lockctl.extend_cart(bigint, interval) TO PUBLIC;
GRANT SELECT ON lockctl.cart_holds TO PUBLIC;

-- Per-holder limits (new in 1.1): the same objects as src/reserve_limits.sql.
-- ---------------------------------------------------------------------------
-- Per-holder limits: at most max_per_holder units of a pool held plus
-- confirmed by one holder (the holder text of reserve and reserve_cart).
-- docs/reservations.md, "Per-holder limits", has the design; in short:
--
--   lockctl.pools.max_per_holder       the limit; NULL: none.
--   lockctl.pool_slots.max_per_holder  a copy on every slot row.  reserve
--                                      reads it from the slot row it has
--                                      locked (RETURNING), so it costs no
--                                      query, and a concurrent change of the
--                                      limit (which locks every slot row) is
--                                      seen exactly.
--   lockctl.holder_units               one row per (limited pool, holder):
--                                      the units the holder has held and
--                                      confirmed.  Rows exist only for
--                                      pools with a limit.
--
-- Lock order: slot rows, then holder_units rows in (pool, holder) order.
-- Every writer of a pool's holder_units rows holds a slot row of that pool
-- (reserve, reserve_cart, cancel, cancel_cart, the worker) or all of them
-- (set_max_per_holder, drop_pool), so a count is never rebuilt under a
-- writer.  A pool without a limit never touches holder_units.
-- ---------------------------------------------------------------------------

-- A holder's units are never negative.  Said by the column's type rather
-- than by a CHECK on the table: PostgreSQL rebuilds a table's CHECK
-- expressions from their stored text in every statement that writes it
-- (about 14,000 instructions for this one, a sixth of what the limit
-- costs a sale), while a domain's are kept ready in the type cache.
CREATE DOMAIN lockctl_internal.unit_count AS bigint
    CONSTRAINT unit_count_check CHECK (VALUE OPERATOR(pg_catalog.>=) 0);

CREATE TABLE lockctl.holder_units (
    pool_id  bigint NOT NULL,
    holder   text NOT NULL,
    units    lockctl_internal.unit_count NOT NULL,
    CONSTRAINT holder_units_pkey PRIMARY KEY (pool_id, holder)
);
COMMENT ON TABLE lockctl.holder_units IS 'lockctl: units held and confirmed per holder, for pools with a per-holder limit';
SELECT pg_catalog.pg_extension_config_dump('lockctl.holder_units', '');
REVOKE ALL ON lockctl.holder_units FROM PUBLIC;

-- ---------------------------------------------------------------------------
-- Internal: add delta (> 0) units to holder's count on pool `pool` without
-- the executor, and return the new count; NULL, having changed nothing,
-- when the caller's INSERT ... ON CONFLICT must do it (a row being changed
-- by a transaction in progress, REPEATABLE READ, a table not as installed:
-- src/reserve_holder.c).  The caller checks the limit on the count.
-- ---------------------------------------------------------------------------
CREATE FUNCTION lockctl_internal.charge_holder_units(pool bigint, holder text, delta bigint)
    RETURNS bigint
    AS 'MODULE_PATHNAME', 'lockctl_charge_holder_units'
    LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION lockctl_internal.charge_holder_units(bigint, text, bigint) IS 'lockctl internal: add units to a holder''s count directly (NULL: do it with the statement)';
REVOKE ALL ON FUNCTION lockctl_internal.charge_holder_units(bigint, text, bigint) FROM PUBLIC;

-- ---------------------------------------------------------------------------
-- Internal: add delta units to holder's count on pool `pool` (resource is
-- its name, for the errors), whose limit is max.  A positive delta past
-- the limit raises 53400 (and the caller's statement is undone); a NULL
-- holder cannot take units of a limited pool (22004).  A negative delta
-- gives units back (nothing for a NULL holder).  The caller holds a slot
-- row of the pool.
-- ---------------------------------------------------------------------------
CREATE FUNCTION lockctl_internal.charge_holder(pool bigint, resource text, holder text,
                                               delta bigint, max bigint)
    RETURNS void
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
    SET plan_cache_mode = force_generic_plan
AS $fn$
#variable_conflict use_variable
DECLARE
    v_units bigint;
BEGIN
    IF delta <= 0 THEN
        UPDATE lockctl.holder_units AS h SET units = h.units + delta
         WHERE h.pool_id = pool AND h.holder = holder;
        RETURN;
    END IF;
    IF holder IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed',
            MESSAGE = format('holder must not be null on pool "%s"', resource),
            DETAIL = format('The pool limits the units of each holder to %s.', max),
            HINT = 'Pass the customer, account or cart the limit is for as holder.';
    END IF;
    -- Directly when it can (src/reserve_holder.c), else the statement.
    v_units := lockctl_internal.charge_holder_units(pool, holder, delta);
    IF v_units IS NULL THEN
        INSERT INTO lockctl.holder_units AS h (pool_id, holder, units)
        VALUES (pool, holder, delta)
        ON CONFLICT ON CONSTRAINT holder_units_pkey DO UPDATE SET units = h.units + EXCLUDED.units
        RETURNING h.units INTO v_units;
    END IF;
    IF v_units > max THEN
        RAISE EXCEPTION USING ERRCODE = 'configuration_limit_exceeded',
            MESSAGE = format('holder "%s" would have more than %s units of pool "%s"', holder, max, resource),
            DETAIL = format('It holds or has confirmed %s; this call asks for %s more.', v_units - delta, delta),
            HINT = 'The limit is the pool''s max_per_holder (lockctl.set_max_per_holder).';
    END IF;
END;
$fn$;
COMMENT ON FUNCTION lockctl_internal.charge_holder(bigint, text, text, bigint, bigint) IS 'lockctl internal: count units against a holder''s limit on a pool';
REVOKE ALL ON FUNCTION lockctl_internal.charge_holder(bigint, text, text, bigint, bigint) FROM PUBLIC;

-- ---------------------------------------------------------------------------
-- Internal: give units back to the holders' counts, for a batch of
-- finished holds (pool ids, holders, quantities, element by element).
-- Rows are locked in (pool, holder) order; pools without a limit have no
-- rows, so their holds change nothing.
-- ---------------------------------------------------------------------------
CREATE FUNCTION lockctl_internal.uncharge_holders(pools bigint[], holders text[], quantities bigint[])
    RETURNS void
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_variable
BEGIN
    PERFORM FROM lockctl.holder_units AS h
     WHERE (h.pool_id, h.holder) IN (SELECT u.p, u.h FROM unnest(pools, holders) AS u(p, h))
     ORDER BY h.pool_id, h.holder
       FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    UPDATE lockctl.holder_units AS h
       SET units = h.units - g.q
      FROM (SELECT u.p, u.h, sum(u.q) AS q FROM unnest(pools, holders, quantities) AS u(p, h, q)
             GROUP BY u.p, u.h) AS g
     WHERE h.pool_id = g.p AND h.holder = g.h;
END;
$fn$;
COMMENT ON FUNCTION lockctl_internal.uncharge_holders(bigint[], text[], bigint[]) IS 'lockctl internal: give the units of finished holds back to their holders'' counts';
REVOKE ALL ON FUNCTION lockctl_internal.uncharge_holders(bigint[], text[], bigint[]) FROM PUBLIC;

-- ---------------------------------------------------------------------------
-- lockctl.set_max_per_holder(resource, max_per_holder): at most this many
-- units held plus confirmed per holder; NULL: no limit.  Counts what each
-- holder has now; holders already past a lowered limit keep what they
-- have and take nothing more until they are below it.  Waits for the
-- transactions that are taking units from the pool.
-- ---------------------------------------------------------------------------
CREATE FUNCTION lockctl.set_max_per_holder(resource text, max_per_holder bigint)
    RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_variable
DECLARE
    v_resource text := lockctl_internal.check_resource('set_max_per_holder', resource);
    v_pool bigint;
BEGIN
    IF max_per_holder < 1 OR max_per_holder > lockctl_internal.max_units() THEN
        RAISE EXCEPTION USING ERRCODE = 'numeric_value_out_of_range',
            MESSAGE = format('max_per_holder of lockctl.set_max_per_holder is out of range: %s', max_per_holder),
            DETAIL = format('It must be between 1 and %s, or null for no limit.', lockctl_internal.max_units());
    END IF;
    v_pool := lockctl_internal.lock_pool(v_resource);
    UPDATE lockctl.pools AS p SET max_per_holder = max_per_holder WHERE p.id = v_pool;
    UPDATE lockctl.pool_slots AS s SET max_per_holder = max_per_holder WHERE s.pool_id = v_pool;
    DELETE FROM lockctl.holder_units AS h WHERE h.pool_id = v_pool;
    IF max_per_holder IS NOT NULL THEN
        INSERT INTO lockctl.holder_units (pool_id, holder, units)
        SELECT v_pool, x.holder, sum(x.quantity)
          FROM (SELECT r.holder, r.quantity FROM lockctl.reservations AS r
                 WHERE r.pool_id = v_pool AND r.holder IS NOT NULL
                   AND r.status = ANY (ARRAY['held', 'confirmed']::lockctl.hold_status[])
                UNION ALL
                SELECT c.holder, i.quantity FROM lockctl.cart_items AS i
                  JOIN lockctl.carts AS c ON c.id = i.cart_id
                 WHERE i.pool_id = v_pool AND c.holder IS NOT NULL
                   AND c.status = ANY (ARRAY['held', 'confirmed']::lockctl.hold_status[])) AS x
         GROUP BY x.holder;
    END IF;
END;
$fn$;

-- ---------------------------------------------------------------------------
-- lockctl.create_pool(resource, capacity, slots, max_per_holder): a new
-- pool with a per-holder limit (the three-argument create_pool makes one
-- without).  slots NULL: automatic.
-- ---------------------------------------------------------------------------
CREATE FUNCTION lockctl.create_pool(resource text, capacity bigint, slots integer, max_per_holder bigint)
    RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    PERFORM lockctl.create_pool(resource, capacity, slots);
    PERFORM lockctl.set_max_per_holder(resource, max_per_holder);
END;
$fn$;

COMMENT ON FUNCTION lockctl.set_max_per_holder(text, bigint) IS 'lockctl: limit the units one holder may hold and confirm on a pool (NULL: no limit)';
COMMENT ON FUNCTION lockctl.create_pool(text, bigint, integer, bigint) IS 'lockctl: create a reservation pool with a per-holder limit';
REVOKE ALL ON FUNCTION lockctl.set_max_per_holder(text, bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION lockctl.create_pool(text, bigint, integer, bigint) FROM PUBLIC;

-- Partial confirm (new in 1.1): the same objects as src/reserve_partial.sql.
-- ---------------------------------------------------------------------------
-- Partial confirm: lockctl.confirm(id, quantity) confirms part of a live
-- hold and gives the rest back to the pool at once (and to the holder's
-- count on a pool with a per-holder limit, src/reserve_limits.sql; to the
-- head of a waitlist, src/reserve_waitlist.sql).  The
-- hold's quantity becomes what was confirmed, so the pools' confirmed
-- units stay the sum over confirmed holds.
--
-- Lock order as confirm's: the hold, then its slot, then the holder's
-- count.  Authority (README.md, "Privileges"): only the role that took the
-- hold and roles with its privileges (lockctl_internal.may_act_for, as
-- confirm); to any other role the hold does not exist.
-- ---------------------------------------------------------------------------
CREATE FUNCTION lockctl.confirm(id bigint, quantity bigint)
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
    v_old bigint;
    v_holder text;
    v_status text;
    v_max bigint;
    v_waitlist boolean;
BEGIN
    IF id IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed',
            MESSAGE = 'id of lockctl.confirm must not be null';
    ELSIF quantity IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed',
            MESSAGE = 'quantity of lockctl.confirm must not be null';
    ELSIF quantity < 1 OR quantity > lockctl_internal.max_units() THEN
        RAISE EXCEPTION USING ERRCODE = 'numeric_value_out_of_range',
            MESSAGE = format('quantity of lockctl.confirm is out of range: %s', quantity),
            DETAIL = format('It must be between 1 and %s.', lockctl_internal.max_units());
    END IF;
    -- The role check is in the WHERE clause: a hold the caller may not act
    -- on is never locked.
    SELECT r.pool_id, r.slot, r.quantity, r.holder INTO v_pool, v_slot, v_old, v_holder
      FROM lockctl.reservations AS r
     WHERE r.id = id AND r.finished IS NULL AND r.expires > v_now
       AND lockctl_internal.may_act_for(r.taken_by)
       FOR UPDATE;
    IF NOT FOUND THEN
        -- A calendar's range hold (src/reserve_calendar.sql) holds one unit.
        IF EXISTS (SELECT FROM lockctl.range_reservations AS g WHERE g.id = id) THEN
            IF quantity = 1 THEN
                RETURN lockctl_internal.confirm_range(id);
            END IF;
            PERFORM lockctl_internal.range_hold_state('confirm', id, ARRAY['held']);
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = format('cannot confirm %s units of hold %s: it holds 1', quantity, id),
                HINT = 'A range hold is one unit of its calendar: confirm it with lockctl.confirm(id).';
        END IF;
        SELECT r.status::text, r.quantity INTO v_status, v_old FROM lockctl.reservations AS r
         WHERE r.id = id AND lockctl_internal.may_act_for(r.taken_by);
        -- Confirmed with this quantity already: a safe retry.
        IF v_status = 'confirmed' AND v_old = quantity THEN
            RETURN false;
        END IF;
        -- Otherwise the error confirm(id) gives (another role's hold, or
        -- one of another era, does not exist).
        PERFORM lockctl_internal.hold_state('confirm', id, ARRAY[]::text[]);
        RETURN false;
    END IF;
    IF quantity > v_old THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('cannot confirm %s units of hold %s: it holds %s', quantity, id, v_old),
            HINT = 'Confirm at most what the hold holds, and take a new hold for more.';
    END IF;
    UPDATE lockctl.reservations AS r
       SET status = 'confirmed', finished = v_now, quantity = quantity
     WHERE r.id = id;
    UPDATE lockctl.pool_slots AS s
       SET held = s.held - v_old, confirmed = s.confirmed + quantity,
           holds_confirmed = s.holds_confirmed + 1
     WHERE s.pool_id = v_pool AND s.slot = v_slot
    RETURNING s.max_per_holder, s.waitlist INTO v_max, v_waitlist;
    IF v_max IS NOT NULL AND quantity < v_old THEN
        PERFORM lockctl_internal.charge_holder(v_pool, NULL, v_holder, quantity - v_old, v_max);
    END IF;
    -- The rest goes to a waitlist first (src/reserve_waitlist.sql).
    IF v_waitlist AND quantity < v_old THEN
        PERFORM lockctl_internal.serve_waitlist(v_pool, v_slot, 'own');
    END IF;
    RETURN true;
END;
$fn$;

COMMENT ON FUNCTION lockctl.confirm(bigint, bigint) IS 'lockctl: confirm part of a live hold and give the rest back';
REVOKE ALL ON FUNCTION lockctl.confirm(bigint, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION lockctl.confirm(bigint, bigint) TO PUBLIC;

-- Waitlists (new in 1.1): the same objects as src/reserve_waitlist.sql.
-- ---------------------------------------------------------------------------
-- Waitlists: a FIFO queue per pool; units that come back go to the head of
-- the queue as an offer (a hold with the entry's offer_ttl) in the very
-- transaction that gives them back, so no walk-in can take them first.
-- docs/reservations.md, "Waitlists", has the design; in short:
--
--   lockctl.waitlist_entries  one row per entry: waiting, offered (with the
--                             offer's hold id) or left.  Position is the
--                             order of ids among the waiting.
--   lockctl.pool_slots.waitlist
--                             true on every slot row of a pool that has had
--                             a waiting entry since the slot last found the
--                             queue empty.  Whoever gives units back reads
--                             it in the RETURNING of the slot update it
--                             makes anyway: pools without a queue pay
--                             nothing.
--
-- Who serves the queue, and how it takes units (serve_waitlist's mode):
--   'own'    cancel, cancel_cart and partial confirm hold the slot rows the
--            units came back to: the head is served from one of those if
--            it fits, else from every slot of the pool locked with NOWAIT
--            (never waiting while holding a slot out of order); if a slot
--            is busy, the caller's slots keep their free units for the
--            queue (pool_slots.kept, counted in held, so no walk-in takes
--            them) and the worker's next pass serves it.
--   'all'    set_capacity and wait_for hold every slot row of the pool.
--   'worker' the expiry worker (expire_holds), which never waits for
--            another transaction (docs/worker.md): as 'own' for the slots
--            its expired holds gave units back to, else every slot of the
--            pool locked with NOWAIT; the head entry locked with NOWAIT;
--            a pool with a per-holder limit only with every slot locked
--            (then nobody else can be writing the pool's holder counts,
--            src/reserve_limits.sql, so the charge cannot wait).  Anything
--            busy: the units that came back are kept, as for 'own', and
--            the pool is left for the next pass, which finds it through
--            pool_slots_kept_idx.
-- Units kept for the queue serve its head first; whoever holds every
-- slot of the pool (the worker's pass, set_capacity, set_slots, wait_for)
-- frees them when the head does not fit, so they are never kept longer
-- than it takes to serve the queue or find it cannot be served.
-- The queue is strictly FIFO: serving stops at the first head whose
-- quantity is not free (units left over stay free for anyone).
--
-- Authority (README.md, "Privileges"): an entry, and the offer made for
-- it, belong to the role that called wait_for (taken_by,
-- lockctl_internal.acting_role()), whoever's transaction makes the offer;
-- to other roles an entry does not exist, and lockctl.waitlist shows them
-- neither its holder nor its key.  A waiting entry counts as a live hold
-- in the role's cap (lockctl.max_holds_per_role); an offer is a hold.
-- ---------------------------------------------------------------------------

CREATE TYPE lockctl.wait_status AS ENUM ('waiting', 'offered', 'left');
COMMENT ON TYPE lockctl.wait_status IS 'lockctl: the state of a waitlist entry';

CREATE TABLE lockctl.waitlist_entries (
    id               bigint NOT NULL DEFAULT lockctl_internal.era_nextval('lockctl.hold_id_seq'::pg_catalog.regclass),
    pool_id          bigint NOT NULL,
    quantity         bigint NOT NULL,
    holder           text,
    taken_by         name NOT NULL DEFAULT lockctl_internal.acting_role(),
    offer_ttl        interval NOT NULL,
    status           lockctl.wait_status NOT NULL DEFAULT 'waiting',
    created          timestamp with time zone NOT NULL,
    finished         timestamp with time zone,
    hold_id          bigint,
    idempotency_key  text,
    CONSTRAINT waitlist_entries_pkey PRIMARY KEY (id),
    CONSTRAINT waitlist_entries_state_check
        CHECK (quantity OPERATOR(pg_catalog.>) 0
               AND (status OPERATOR(pg_catalog.=) 'waiting') OPERATOR(pg_catalog.=) (finished IS NULL)
               AND (status OPERATOR(pg_catalog.=) 'offered') OPERATOR(pg_catalog.=) (hold_id IS NOT NULL))
);
COMMENT ON TABLE lockctl.waitlist_entries IS 'lockctl: waitlist entries of pools (write through lockctl.wait_for and friends only)';

-- The queue of each pool, head first; the purge; the idempotency lookup.
CREATE INDEX waitlist_entries_queue_idx ON lockctl.waitlist_entries (pool_id, id)
    WHERE status OPERATOR(pg_catalog.=) 'waiting';
CREATE INDEX waitlist_entries_finished_idx ON lockctl.waitlist_entries (finished)
    WHERE status OPERATOR(pg_catalog.<>) 'waiting';
CREATE UNIQUE INDEX waitlist_entries_idempotency_idx ON lockctl.waitlist_entries (taken_by, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- The role cap (lockctl_internal.check_role_caps).
CREATE INDEX waitlist_entries_role_idx ON lockctl.waitlist_entries (taken_by)
    WHERE status OPERATOR(pg_catalog.=) 'waiting';

SELECT pg_catalog.pg_extension_config_dump('lockctl.waitlist_entries', '');
REVOKE ALL ON lockctl.waitlist_entries FROM PUBLIC;

-- ---------------------------------------------------------------------------
-- Internal: offer units of pool `pool` to the head(s) of its queue, in
-- this transaction (see the header for `mode`; `slot` is the slot row the
-- caller holds for 'own', or NULL).  Each offer is a hold of the entry's
-- quantity for its offer_ttl, taken by the entry's role, announced with
-- NOTIFY lockctl_offer and the hold's id.  Returns how many it offered.
-- ---------------------------------------------------------------------------
CREATE FUNCTION lockctl_internal.serve_waitlist(pool bigint, slot integer, mode text)
    RETURNS integer
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_variable
DECLARE
    v_entry bigint;
    v_q bigint;
    v_holder text;
    v_role name;
    v_ttl interval;
    v_target integer;
    v_max bigint;
    v_hold bigint;
    v_now timestamp with time zone;
    v_n integer := 0;
    v_all boolean := mode = 'all';
    v_worker boolean := mode = 'worker';
BEGIN
    IF mode IS NULL OR mode NOT IN ('own', 'all', 'worker') THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('mode of lockctl_internal.serve_waitlist is not own, all or worker: "%s"', mode);
    END IF;
    IF v_worker AND slot IS NULL THEN
        -- The worker's catch-up holds no slot of the pool: all of them, or
        -- the pool is left for the next pass.
        BEGIN
            PERFORM FROM lockctl.pool_slots AS s WHERE s.pool_id = pool ORDER BY s.slot FOR UPDATE NOWAIT;
        EXCEPTION WHEN lock_not_available THEN
            RETURN v_n;
        END;
        v_all := true;
    END IF;
    LOOP
        -- The head.  The worker never waits for it (an entry being left).
        IF v_worker THEN
            BEGIN
                SELECT w.id, w.quantity, w.holder, w.taken_by, w.offer_ttl
                  INTO v_entry, v_q, v_holder, v_role, v_ttl
                  FROM lockctl.waitlist_entries AS w
                 WHERE w.pool_id = pool AND w.status = 'waiting'
                 ORDER BY w.id LIMIT 1
                   FOR UPDATE NOWAIT;
            EXCEPTION WHEN lock_not_available THEN
                EXIT;           -- busy: keep (below)
            END;
        ELSE
            SELECT w.id, w.quantity, w.holder, w.taken_by, w.offer_ttl
              INTO v_entry, v_q, v_holder, v_role, v_ttl
              FROM lockctl.waitlist_entries AS w
             WHERE w.pool_id = pool AND w.status = 'waiting'
             ORDER BY w.id LIMIT 1
               FOR UPDATE;
        END IF;
        IF NOT FOUND THEN
            -- A head locked by a concurrent server is skipped after the
            -- wait: look again with a new snapshot before calling it empty.
            IF NOT v_worker AND EXISTS (SELECT FROM lockctl.waitlist_entries AS w
                                         WHERE w.pool_id = pool AND w.status = 'waiting') THEN
                CONTINUE;
            END IF;
            -- Empty: the slot rows we hold need not call us again, and
            -- what they kept for the queue is free.  (Units kept on slots
            -- we do not hold: the worker's catch-up frees them.)
            UPDATE lockctl.pool_slots AS s SET waitlist = false, held = s.held - s.kept, kept = 0
             WHERE s.pool_id = pool AND (s.waitlist OR s.kept > 0) AND (v_all OR s.slot = slot);
            RETURN v_n;
        END IF;

        v_target := NULL;
        IF slot IS NOT NULL AND NOT v_all THEN
            -- Our slot's free units and those it kept for the queue.
            SELECT s.slot, s.max_per_holder INTO v_target, v_max FROM lockctl.pool_slots AS s
             WHERE s.pool_id = pool AND s.slot = slot
               AND s.capacity - s.held + s.kept - s.confirmed >= v_q;
            -- The worker charges a holder's count only with every slot.
            IF v_worker AND v_max IS NOT NULL THEN
                v_target := NULL;
            END IF;
        END IF;
        IF v_target IS NULL AND NOT v_all THEN
            BEGIN
                PERFORM FROM lockctl.pool_slots AS s WHERE s.pool_id = pool ORDER BY s.slot FOR UPDATE NOWAIT;
                v_all := true;
            EXCEPTION WHEN lock_not_available THEN
                EXIT;           -- busy: keep (below)
            END;
        END IF;
        -- Units kept for the queue, on the slots we hold, serve its head.
        UPDATE lockctl.pool_slots AS s SET held = s.held - s.kept, kept = 0
         WHERE s.pool_id = pool AND s.kept > 0 AND (v_all OR s.slot = v_target);
        IF v_target IS NULL THEN
            v_target := lockctl_internal.rebalance(pool, coalesce(slot, 0), v_q);
            IF v_target IS NULL THEN
                RETURN v_n;     -- the head does not fit: FIFO, stop here
            END IF;
        END IF;

        SELECT s.max_per_holder INTO v_max FROM lockctl.pool_slots AS s
         WHERE s.pool_id = pool AND s.slot = v_target;
        v_now := clock_timestamp();
        IF v_max IS NOT NULL THEN
            -- An entry whose holder is now at its limit leaves the queue.
            BEGIN
                PERFORM lockctl_internal.charge_holder(pool, NULL, v_holder, v_q, v_max);
            EXCEPTION WHEN configuration_limit_exceeded OR null_value_not_allowed THEN
                UPDATE lockctl.waitlist_entries AS w SET status = 'left', finished = v_now
                 WHERE w.id = v_entry;
                CONTINUE;
            END;
        END IF;
        UPDATE lockctl.pool_slots AS s
           SET held = s.held + v_q, holds_taken = s.holds_taken + 1
         WHERE s.pool_id = pool AND s.slot = v_target;
        INSERT INTO lockctl.reservations AS r (pool_id, slot, quantity, holder, taken_by, created, expires)
        VALUES (pool, v_target, v_q, v_holder, v_role, v_now, v_now + v_ttl)
        RETURNING r.id INTO v_hold;
        UPDATE lockctl.waitlist_entries AS w
           SET status = 'offered', finished = v_now, hold_id = v_hold
         WHERE w.id = v_entry;
        PERFORM pg_notify('lockctl_offer', v_hold::text);
        v_n := v_n + 1;
    END LOOP;
    -- Busy (a slot of the pool, or for the worker the head entry): our
    -- slot keeps its free units, those that came back among them, for
    -- the queue (counted in held: no walk-in can take them), and the
    -- worker's next pass serves it.
    UPDATE lockctl.pool_slots AS s
       SET kept = s.kept + (s.capacity - s.held - s.confirmed), held = s.capacity - s.confirmed
     WHERE s.pool_id = pool AND s.slot = slot AND s.capacity - s.held - s.confirmed > 0;
    RETURN v_n;
END;
$fn$;
COMMENT ON FUNCTION lockctl_internal.serve_waitlist(bigint, integer, text) IS 'lockctl internal: offer returned units to the head of a pool''s waitlist';
REVOKE ALL ON FUNCTION lockctl_internal.serve_waitlist(bigint, integer, text) FROM PUBLIC;

-- ---------------------------------------------------------------------------
-- Internal: serve the queues of the pools (ids) whose slot rows
-- (pools[i], slots[i]) the caller holds and that are flagged; mode 'own'
-- (a user's call) or 'worker' (the expiry worker, never waiting).
-- ---------------------------------------------------------------------------
CREATE FUNCTION lockctl_internal.serve_returned(pools bigint[], slots integer[], mode text)
    RETURNS integer
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_variable
DECLARE
    v_n integer := 0;
    v_pool bigint;
    v_slot integer;
    v_others integer[];
    v_moved bigint;
BEGIN
    FOR v_pool, v_slot, v_others IN
        SELECT g.pool_id, g.by_free[1], g.by_free[2:]
          FROM (SELECT s.pool_id,
                       array_agg(s.slot ORDER BY s.capacity - s.held + s.kept - s.confirmed DESC, s.slot) AS by_free
                  FROM lockctl.pool_slots AS s
                 WHERE (s.pool_id, s.slot) IN (SELECT u.p, u.s FROM unnest(pools, slots) AS u(p, s))
                   AND s.waitlist
                 GROUP BY s.pool_id) AS g
         ORDER BY g.pool_id
    LOOP
        -- Units that came back to several slots of the pool (and units
        -- those kept for the queue) are gathered on one of them (all
        -- ours), the one with the most, so that they serve the head
        -- together or are kept for it together.
        IF cardinality(v_others) > 0 THEN
            SELECT sum(s.capacity - s.held + s.kept - s.confirmed) INTO v_moved
              FROM lockctl.pool_slots AS s
             WHERE s.pool_id = v_pool AND s.slot = ANY (v_others);
            IF v_moved > 0 THEN
                UPDATE lockctl.pool_slots AS s
                   SET capacity = s.held - s.kept + s.confirmed, held = s.held - s.kept, kept = 0
                 WHERE s.pool_id = v_pool AND s.slot = ANY (v_others)
                   AND s.capacity > s.held - s.kept + s.confirmed;
                UPDATE lockctl.pool_slots AS s
                   SET capacity = s.capacity + v_moved
                 WHERE s.pool_id = v_pool AND s.slot = v_slot;
            END IF;
        END IF;
        v_n := v_n + lockctl_internal.serve_waitlist(v_pool, v_slot, mode);
    END LOOP;
    RETURN v_n;
END;
$fn$;
COMMENT ON FUNCTION lockctl_internal.serve_returned(bigint[], integer[], text) IS 'lockctl internal: serve the waitlists of pools whose units came back to slots the caller holds';
REVOKE ALL ON FUNCTION lockctl_internal.serve_returned(bigint[], integer[], text) FROM PUBLIC;

-- ---------------------------------------------------------------------------
-- Internal: the worker's catch-up, after each expiry batch: every pool
-- whose head fits in its free units (as this snapshot sees them) is
-- served, pools in id order, never waiting: a pool whose slots or head
-- another transaction has locked is left for the next pass.  Returns how
-- many offers it made.
-- ---------------------------------------------------------------------------
CREATE FUNCTION lockctl_internal.serve_waitlists()
    RETURNS integer
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_n integer := 0;
    v_pool bigint;
BEGIN
    FOR v_pool IN
        SELECT h.pool_id
          FROM (SELECT DISTINCT ON (w.pool_id) w.pool_id, w.quantity
                  FROM lockctl.waitlist_entries AS w WHERE w.status = 'waiting'
                 ORDER BY w.pool_id, w.id) AS h
         WHERE h.quantity <= (SELECT sum(s.capacity - s.held + s.kept - s.confirmed)
                                FROM lockctl.pool_slots AS s WHERE s.pool_id = h.pool_id)
        UNION
        -- Units kept for a queue (a busy pool, or one that has emptied
        -- since): its head gets them, or they are free again.
        SELECT s.pool_id FROM lockctl.pool_slots AS s WHERE s.kept > 0
        ORDER BY 1
    LOOP
        v_n := v_n + lockctl_internal.serve_waitlist(v_pool, NULL, 'worker');
    END LOOP;
    RETURN v_n;
END;
$fn$;
COMMENT ON FUNCTION lockctl_internal.serve_waitlists() IS 'lockctl internal: serve every waitlist whose head fits (the worker''s catch-up)';
REVOKE ALL ON FUNCTION lockctl_internal.serve_waitlists() FROM PUBLIC;

-- ---------------------------------------------------------------------------
-- lockctl.wait_for(resource, quantity, holder, offer_ttl, idempotency_key):
-- join the pool's queue.  Returns the entry's id.  When quantity units
-- are free and the entry is at the head (at once, if they are free now),
-- it becomes a hold of offer_ttl (NOTIFY lockctl_offer, the hold's id;
-- lockctl.waitlist shows it), to confirm like any hold.
-- ---------------------------------------------------------------------------
CREATE FUNCTION lockctl.wait_for(resource text, quantity bigint DEFAULT 1,
                                 holder text DEFAULT NULL,
                                 offer_ttl interval DEFAULT '00:05:00'::interval,
                                 idempotency_key text DEFAULT NULL)
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_column
DECLARE
    v_resource text := lockctl_internal.check_resource('wait_for', resource);
    v_quantity bigint := quantity;
    v_holder text := holder;
    v_ttl interval := offer_ttl;
    v_key text := idempotency_key;
    v_pool bigint;
    v_id bigint;
    v_q bigint;
BEGIN
    IF v_quantity IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed',
            MESSAGE = 'quantity of lockctl.wait_for must not be null';
    ELSIF v_quantity < 1 OR v_quantity > lockctl_internal.max_units() THEN
        RAISE EXCEPTION USING ERRCODE = 'numeric_value_out_of_range',
            MESSAGE = format('quantity of lockctl.wait_for is out of range: %s', v_quantity),
            DETAIL = format('It must be between 1 and %s.', lockctl_internal.max_units());
    END IF;
    IF octet_length(v_holder) = 0 THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'holder of lockctl.wait_for must not be empty',
            HINT = 'Pass NULL for an entry without a holder.';
    ELSIF octet_length(v_holder) > lockctl_internal.name_max_bytes() THEN
        RAISE EXCEPTION USING ERRCODE = 'name_too_long',
            MESSAGE = 'holder of lockctl.wait_for is too long',
            DETAIL = format('It is %s bytes long; the limit is %s bytes.',
                            octet_length(v_holder), lockctl_internal.name_max_bytes());
    END IF;
    PERFORM lockctl_internal.check_hold_ttl('wait_for', v_ttl, 'offer_ttl');
    IF octet_length(v_key) = 0 THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'idempotency_key of lockctl.wait_for must not be empty';
    ELSIF octet_length(v_key) > lockctl_internal.name_max_bytes() THEN
        RAISE EXCEPTION USING ERRCODE = 'name_too_long',
            MESSAGE = 'idempotency_key of lockctl.wait_for is too long',
            DETAIL = format('It is %s bytes long; the limit is %s bytes.',
                            octet_length(v_key), lockctl_internal.name_max_bytes());
    END IF;
    SELECT p.id INTO v_pool FROM lockctl.pools AS p WHERE p.resource = v_resource;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'undefined_object',
            MESSAGE = format('pool "%s" does not exist', v_resource);
    END IF;

    -- A retry with the same key (this role's) is the same entry.
    IF v_key IS NOT NULL THEN
        SELECT w.id, w.quantity INTO v_id, v_q FROM lockctl.waitlist_entries AS w
         WHERE w.taken_by = lockctl_internal.acting_role() AND w.idempotency_key = v_key;
        IF FOUND THEN
            IF v_q <> v_quantity OR (SELECT w.pool_id FROM lockctl.waitlist_entries AS w WHERE w.id = v_id) <> v_pool THEN
                RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                    MESSAGE = format('idempotency key "%s" was used for another waitlist entry', v_key),
                    DETAIL = format('Entry %s is for another pool or quantity.', v_id);
            END IF;
            RETURN v_id;
        END IF;
    END IF;

    -- The role's cap: a waiting entry counts as a live hold.
    IF current_setting('lockctl.max_holds_per_role')::integer > 0
       OR current_setting('lockctl.max_kept_holds_per_role')::integer > 0 THEN
        PERFORM lockctl_internal.check_role_caps(lockctl_internal.acting_role(), 1);
    END IF;

    -- Every slot row of the pool, in order: from now on whoever gives
    -- units back to any of them serves the queue.
    PERFORM FROM lockctl.pool_slots AS s WHERE s.pool_id = v_pool ORDER BY s.slot FOR UPDATE;
    UPDATE lockctl.pool_slots AS s SET waitlist = true WHERE s.pool_id = v_pool AND NOT s.waitlist;
    INSERT INTO lockctl.waitlist_entries AS w (pool_id, quantity, holder, offer_ttl, created, idempotency_key)
    VALUES (v_pool, v_quantity, v_holder, v_ttl, clock_timestamp(), v_key)
    ON CONFLICT (taken_by, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING w.id INTO v_id;
    IF v_id IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'serialization_failure',
            MESSAGE = format('could not serialize wait_for with idempotency key "%s"', v_key),
            DETAIL = 'A concurrent transaction used the same key.',
            HINT = 'Retry the transaction.';
    END IF;
    -- Units free now, and nobody ahead: the offer at once.
    PERFORM lockctl_internal.serve_waitlist(v_pool, NULL, 'all');
    RETURN v_id;
END;
$fn$;

-- ---------------------------------------------------------------------------
-- lockctl.leave_waitlist(id): leave the queue.  true, or false if the
-- entry was offered or had left already; 42704 if it does not exist or
-- belongs to a role whose privileges the caller lacks.
-- ---------------------------------------------------------------------------
CREATE FUNCTION lockctl.leave_waitlist(id bigint)
    RETURNS boolean
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_variable
BEGIN
    IF id IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed',
            MESSAGE = 'id of lockctl.leave_waitlist must not be null';
    END IF;
    UPDATE lockctl.waitlist_entries AS w SET status = 'left', finished = clock_timestamp()
     WHERE w.id = id AND w.status = 'waiting' AND lockctl_internal.may_act_for(w.taken_by);
    IF FOUND THEN
        RETURN true;
    END IF;
    PERFORM FROM lockctl.waitlist_entries AS w WHERE w.id = id AND lockctl_internal.may_act_for(w.taken_by);
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'undefined_object',
            MESSAGE = format('waitlist entry %s does not exist', id),
            DETAIL = 'It was never made, or its pool was dropped, or it finished and was purged, or it is another role''s.';
    END IF;
    RETURN false;
END;
$fn$;

-- ---------------------------------------------------------------------------
-- lockctl_internal.purge_waitlist(retention, batch_size): delete up to
-- batch_size entries offered or left more than retention ago.  Called by
-- purge_holds.
-- ---------------------------------------------------------------------------
CREATE FUNCTION lockctl_internal.purge_waitlist(retention interval, batch_size integer)
    RETURNS integer
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_variable
DECLARE
    v_n integer;
BEGIN
    IF retention IS NULL OR batch_size IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed',
            MESSAGE = 'arguments of lockctl_internal.purge_waitlist must not be null';
    ELSIF retention < '0'::interval OR batch_size < 1 OR batch_size > lockctl_internal.max_batch() THEN
        RAISE EXCEPTION USING ERRCODE = 'numeric_value_out_of_range',
            MESSAGE = format('arguments of lockctl_internal.purge_waitlist are out of range: "%s", %s',
                             retention, batch_size);
    END IF;
    WITH old AS (
        SELECT w.id FROM lockctl.waitlist_entries AS w
         WHERE w.status <> 'waiting' AND w.finished < now() - retention
         ORDER BY w.finished
         LIMIT batch_size
           FOR UPDATE SKIP LOCKED
    )
    DELETE FROM lockctl.waitlist_entries AS w USING old WHERE w.id = old.id;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    RETURN v_n;
END;
$fn$;

-- ---------------------------------------------------------------------------
-- The view: entries of roles whose privileges the caller has (every entry
-- for pg_read_all_stats, without another role's holder and key), with the
-- position of each waiting
-- entry in its pool's queue (1: the head), counted over every entry.
-- ---------------------------------------------------------------------------
CREATE VIEW lockctl.waitlist WITH (security_barrier) AS
    SELECT q.id,
           p.resource,
           q.quantity,
           CASE WHEN a.mine THEN q.holder END AS holder,
           q.taken_by,
           q.status::text AS status,
           q.position,
           q.created,
           q.finished,
           q.hold_id AS offer_hold_id,
           CASE WHEN a.mine THEN q.idempotency_key END AS idempotency_key
      FROM (SELECT w.*,
                   CASE WHEN w.status OPERATOR(pg_catalog.=) 'waiting'
                        THEN pg_catalog.row_number() OVER (PARTITION BY w.pool_id, w.status OPERATOR(pg_catalog.=) 'waiting'
                                                           ORDER BY w.id) END AS position
              FROM lockctl.waitlist_entries AS w) AS q
      JOIN lockctl.pools AS p ON p.id OPERATOR(pg_catalog.=) q.pool_id
     CROSS JOIN LATERAL (SELECT lockctl_internal.may_act_for(q.taken_by) AS mine) AS a
     WHERE a.mine
        OR pg_catalog.pg_has_role('pg_read_all_stats'::pg_catalog.name, 'USAGE');
COMMENT ON VIEW lockctl.waitlist IS 'lockctl: waitlist entries with their positions, of roles whose privileges the caller has (every entry for pg_read_all_stats, without holder and key)';

COMMENT ON FUNCTION lockctl.wait_for(text, bigint, text, interval, text) IS 'lockctl: join a pool''s waitlist; freed units come to the head as an offer hold';
COMMENT ON FUNCTION lockctl.leave_waitlist(bigint) IS 'lockctl: leave a pool''s waitlist';
COMMENT ON FUNCTION lockctl_internal.purge_waitlist(interval, integer) IS 'lockctl internal: delete up to batch_size waitlist entries finished more than retention ago (called by purge_holds)';

REVOKE ALL ON FUNCTION lockctl.wait_for(text, bigint, text, interval, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION lockctl.leave_waitlist(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION lockctl_internal.purge_waitlist(interval, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION lockctl.wait_for(text, bigint, text, interval, text) TO PUBLIC;
GRANT EXECUTE ON FUNCTION lockctl.leave_waitlist(bigint) TO PUBLIC;
GRANT SELECT ON lockctl.waitlist TO PUBLIC;

-- ---------------------------------------------------------------------------
-- Latency histograms for dashboards (issue 20): lease wait times from a
-- histogram in shared memory, hold lifetimes from the kept holds.
-- ---------------------------------------------------------------------------
CREATE FUNCTION lockctl_internal.lease_wait_histogram(OUT outcome text,
                                    OUT le double precision,
                                    OUT waits bigint,
                                    OUT sum_seconds double precision)
    RETURNS SETOF record
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'lockctl_lease_wait_histogram';
COMMENT ON FUNCTION lockctl_internal.lease_wait_histogram() IS
    'lockctl internal, behind the view lockctl.lease_wait_histogram: how long waiting acquires waited since the server started';

-- Per server, like lease_stats: waits of every database.  Cumulative
-- buckets (waits no longer than le seconds; le = Infinity: all of them).
CREATE VIEW lockctl.lease_wait_histogram AS
    SELECT * FROM lockctl_internal.lease_wait_histogram();
COMMENT ON VIEW lockctl.lease_wait_histogram IS
    'lockctl: waits in acquire and acquire_shared since the server started, by outcome, in cumulative buckets of le seconds (Prometheus-style), with their total time; acquires that did not wait are not in it';

GRANT SELECT ON lockctl.lease_wait_histogram TO PUBLIC;

-- How long finished holds lasted (finished - created), per status, in
-- cumulative buckets of le seconds (Prometheus-style), over the holds
-- lockctl.holds shows the caller: those still kept (confirmed ones for
-- ever, cancelled and expired ones until lockctl.retention purges them).
-- A distribution of what is kept, not a counter since some start: the
-- purge makes its cancelled and expired counts go down.  Holds finish in
-- PL/pgSQL (confirm, cancel, the worker's expire_holds), where a counter
-- in shared memory could not be fed without C on those paths; the rows are
-- already there.  Each hold is counted once, in the smallest bucket that
-- takes it, and the window adds the buckets up.
CREATE VIEW lockctl.hold_lifetime_histogram AS
    WITH bounds (le) AS (
        VALUES (1::pg_catalog.float8), (5), (10), (30), (60), (300), (600),
               (1800), (3600), (86400), ('Infinity')
    ), finished AS (
        SELECT h.status,
               EXTRACT(epoch FROM h.finished OPERATOR(pg_catalog.-) h.created)::pg_catalog.float8 AS seconds
          FROM lockctl.holds AS h
         WHERE h.finished IS NOT NULL
    ), counts AS (
        SELECT f.status, b.le, pg_catalog.count(*) AS n,
               pg_catalog.sum(f.seconds) AS seconds
          FROM finished AS f
         CROSS JOIN LATERAL (SELECT pg_catalog.min(bounds.le) AS le FROM bounds
                              WHERE bounds.le OPERATOR(pg_catalog.>=) f.seconds) AS b
         GROUP BY f.status, b.le
    )
    SELECT s.status, b.le,
           (pg_catalog.sum(COALESCE(c.n, 0)) OVER (PARTITION BY s.status ORDER BY b.le))::pg_catalog.int8 AS holds,
           COALESCE(pg_catalog.sum(c.seconds) OVER (PARTITION BY s.status), 0) AS sum_seconds
      FROM (VALUES (1, 'confirmed'), (2, 'cancelled'), (3, 'expired')) AS s (ord, status)
     CROSS JOIN bounds AS b
      LEFT JOIN counts AS c
        ON c.status OPERATOR(pg_catalog.=) s.status AND c.le OPERATOR(pg_catalog.=) b.le
     ORDER BY s.ord, b.le;

COMMENT ON VIEW lockctl.hold_lifetime_histogram IS 'lockctl: how long the kept finished holds lasted (finished - created), by status, in cumulative buckets of le seconds (Prometheus-style), over the holds lockctl.holds shows the caller; a distribution of the holds kept, not a counter (the purge removes cancelled and expired ones)';
GRANT SELECT ON lockctl.hold_lifetime_histogram TO PUBLIC;

-- Calendars (new in 1.1): the same objects as src/reserve_calendar.sql.
-- ---------------------------------------------------------------------------
-- Calendars: pools sold by time range (rooms, appointments, rental cars).
-- A range hold takes one unit of a calendar for a range of time, expires
-- like any hold, and is confirmed, cancelled and extended with the same
-- lockctl.confirm, cancel and extend (its id comes from the holds'
-- sequence, era-tagged: never also a hold's, a cart's or an entry's id).
-- docs/reservations.md, "Calendars", has the design; in short:
--
--   lockctl.calendars           one row per calendar: name, capacity (the
--                               number of identical units: rooms, cars).
--                               Written only by create_calendar and
--                               drop_calendar; capacity never changes.
--   lockctl.range_reservations  one row per range hold.  Ranges are '[)'
--                               (start included, end excluded), finite and
--                               not empty (a CHECK).
--
-- The guarantee: at every instant, at most `capacity` held and confirmed
-- holds of a calendar cover it, under any concurrency.
--   capacity 1: the exclusion constraint range_reservations_no_overlap
--               (GiST, calendar && calendar, during && during, over live
--               holds of lane 0) refuses an overlap; every such hold has
--               lane 0.  reserve_range inserts with ON CONFLICT
--               DO NOTHING: an overlapping insert in flight is waited for
--               (as a unique index waits), no subtransaction, no lock on
--               the calendar row.  Holds of other ranges never wait.
--   capacity k > 1: reserve_range locks the calendar row (FOR NO KEY
--               UPDATE) and counts the holds that cover each instant of
--               the range (through range_reservations_lanes_idx); each
--               hold has its own lane (its id, never 0), so the
--               constraint never applies to it.  Holds of one such
--               calendar are taken one transaction at a time.
-- drop_calendar against reserve_range: reserve_range takes ROW EXCLUSIVE
-- on lockctl.range_reservations before it looks the calendar up, and
-- drop_calendar SHARE ROW EXCLUSIVE before it deletes: a hold taken in
-- flight is committed before the drop deletes it, or its taker finds the
-- calendar gone.  (A FOR KEY SHARE on the calendar row, what a foreign key
-- does, cost a third of the throughput at 8 clients: every taker makes a
-- new multixact on the same row.)  The worker's functions take that lock
-- with NOWAIT and leave their pass to the next one if a drop is in flight.
-- Lock order: the table lock, the calendar row (capacity k > 1), hold rows.
-- confirm, cancel and extend lock only the hold; the worker takes due holds
-- with SKIP LOCKED.
--
-- Authority (README.md, "Privileges"), as for holds: a range hold belongs
-- to the role that took it (taken_by); only that role and roles with its
-- privileges may confirm, cancel or extend it, to others it does not exist
-- (42704); idempotency keys are per (calendar, role); range holds count in
-- lockctl.max_holds_per_role and lockctl.max_kept_holds_per_role.
-- ---------------------------------------------------------------------------

-- The most units a calendar has (identical rooms, cars).
CREATE FUNCTION lockctl_internal.max_calendar_capacity() RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN 100000;
COMMENT ON FUNCTION lockctl_internal.max_calendar_capacity() IS 'lockctl internal: the largest capacity of a calendar';
REVOKE ALL ON FUNCTION lockctl_internal.max_calendar_capacity() FROM PUBLIC;

CREATE SEQUENCE lockctl.calendar_id_seq;

CREATE TABLE lockctl.calendars (
    id          bigint NOT NULL DEFAULT pg_catalog.nextval('lockctl.calendar_id_seq'::pg_catalog.regclass),
    resource    text NOT NULL,
    capacity    integer NOT NULL,
    created     timestamp with time zone NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT calendars_pkey PRIMARY KEY (id),
    CONSTRAINT calendars_resource_key UNIQUE (resource),
    CONSTRAINT calendars_resource_check
        CHECK (pg_catalog.octet_length(resource) OPERATOR(pg_catalog.>=) 1
               AND pg_catalog.octet_length(resource) OPERATOR(pg_catalog.<=) lockctl_internal.name_max_bytes()),
    CONSTRAINT calendars_capacity_check
        CHECK (capacity OPERATOR(pg_catalog.>=) 1
               AND capacity OPERATOR(pg_catalog.<=) lockctl_internal.max_calendar_capacity())
);
ALTER SEQUENCE lockctl.calendar_id_seq OWNED BY lockctl.calendars.id;
COMMENT ON TABLE lockctl.calendars IS 'lockctl: calendars, pools sold by time range (write through lockctl.create_calendar and drop_calendar only)';

-- In C (src/reserve_calendar.c): range_reservations_state_check whole:
-- the range is '[)', not empty and finite at both ends, and finished is
-- set exactly when the hold is over.
CREATE FUNCTION lockctl_internal.is_range_hold_row(lockctl.hold_status, timestamp with time zone, pg_catalog.tstzrange)
    RETURNS boolean
    AS 'MODULE_PATHNAME', 'lockctl_is_range_hold_row'
    LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION lockctl_internal.is_range_hold_row(lockctl.hold_status, timestamp with time zone, pg_catalog.tstzrange) IS 'lockctl internal: range_reservations_state_check (finished set exactly when a range hold is over, its range bounded)';
REVOKE ALL ON FUNCTION lockctl_internal.is_range_hold_row(lockctl.hold_status, timestamp with time zone, pg_catalog.tstzrange) FROM PUBLIC;

-- calendar_id is not a foreign key, as reservations.pool_id is not: the
-- functions keep holds and calendars together (see drop_calendar against
-- reserve_range above).
CREATE TABLE lockctl.range_reservations (
    id               bigint NOT NULL DEFAULT lockctl_internal.era_nextval('lockctl.hold_id_seq'::pg_catalog.regclass),
    calendar_id      bigint NOT NULL,
    during           pg_catalog.tstzrange NOT NULL,
    -- 0 on a calendar of capacity 1 (the exclusion constraint applies);
    -- the hold's own id on a larger one (it never does).
    lane             bigint NOT NULL,
    holder           text,
    taken_by         name NOT NULL DEFAULT lockctl_internal.acting_role(),
    status           lockctl.hold_status NOT NULL DEFAULT 'held',
    created          timestamp with time zone NOT NULL,
    expires          timestamp with time zone NOT NULL,
    finished         timestamp with time zone,
    idempotency_key  text,
    CONSTRAINT range_reservations_pkey PRIMARY KEY (id),
    -- What the accounting relies on: finished set exactly when the hold is
    -- over; a range that starts and ends at a finite time, start included,
    -- end excluded (so that two ranges meet without overlapping).  One C
    -- call (is_range_hold_row): every statement that writes the table
    -- parses its CHECKs again from their stored text, and the same test
    -- spelt in SQL, (status = 'held') = (finished IS NULL) AND NOT
    -- isempty(during) AND lower_inc(during) AND ..., cost each
    -- reserve_range and confirm about 65,000 instructions more.
    CONSTRAINT range_reservations_state_check
        CHECK (lockctl_internal.is_range_hold_row(status, finished, during)),
    -- The guarantee for calendars of capacity 1, and the index of the
    -- overlap queries on their holds (lane 0); range_reservations_lanes_idx
    -- below is the other calendars' (lane <> 0).  Ranges as keys so that no
    -- btree_gist is needed.  The lane is a predicate, not a third key:
    -- with every live hold in one index under three keys, reserve_range +
    -- confirm cost 10 % more instructions (bench/README.md).
    CONSTRAINT range_reservations_no_overlap
        EXCLUDE USING gist (pg_catalog.int8range(calendar_id, calendar_id, '[]') WITH OPERATOR(pg_catalog.&&),
                            during WITH OPERATOR(pg_catalog.&&))
        WHERE (status OPERATOR(pg_catalog.=) ANY (ARRAY['held', 'confirmed']::lockctl.hold_status[])
               AND lane OPERATOR(pg_catalog.=) 0)
);
-- The live holds of calendars of capacity k > 1, each on its own lane:
-- what range_peak and available_ranges search for them.
CREATE INDEX range_reservations_lanes_idx ON lockctl.range_reservations
    USING gist (pg_catalog.int8range(calendar_id, calendar_id, '[]'), during)
    WHERE status OPERATOR(pg_catalog.=) ANY (ARRAY['held', 'confirmed']::lockctl.hold_status[])
      AND lane OPERATOR(pg_catalog.<>) 0;
COMMENT ON TABLE lockctl.range_reservations IS 'lockctl: range holds on calendars (write through lockctl.reserve_range and friends only)';

-- As for lockctl.reservations: the worker's scan, the idempotency lookup,
-- the role caps, the purge.
CREATE INDEX range_reservations_due_idx ON lockctl.range_reservations (expires)
    WHERE status OPERATOR(pg_catalog.=) 'held';
CREATE UNIQUE INDEX range_reservations_idempotency_idx
    ON lockctl.range_reservations (calendar_id, taken_by, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX range_reservations_role_idx ON lockctl.range_reservations (taken_by, status)
    WHERE status OPERATOR(pg_catalog.<>) 'confirmed';
CREATE INDEX range_reservations_finished_idx ON lockctl.range_reservations (finished)
    WHERE status OPERATOR(pg_catalog.=) ANY (ARRAY['cancelled', 'expired']::lockctl.hold_status[]);

SELECT pg_catalog.pg_extension_config_dump('lockctl.calendars', '');
SELECT pg_catalog.pg_extension_config_dump('lockctl.calendar_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('lockctl.range_reservations', '');

REVOKE ALL ON lockctl.calendars, lockctl.range_reservations FROM PUBLIC;
REVOKE ALL ON SEQUENCE lockctl.calendar_id_seq FROM PUBLIC;

-- ---------------------------------------------------------------------------
-- Internal: check a range argument `arg` of function fn: not NULL, not
-- empty, finite at both ends, start included and end excluded ('[)').
-- ---------------------------------------------------------------------------
CREATE FUNCTION lockctl_internal.check_range(fn text, arg text, during pg_catalog.tstzrange)
    RETURNS pg_catalog.tstzrange
    LANGUAGE plpgsql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    fn := coalesce('lockctl.' || fn, 'lockctl_internal.check_range');
    arg := coalesce(arg, 'during');
    IF during IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed',
            MESSAGE = format('%s of %s must not be null', arg, fn);
    ELSIF isempty(during) THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('%s of %s must not be empty', arg, fn),
            DETAIL = 'Its start must be before its end.';
    ELSIF lower_inf(during) OR upper_inf(during)
          OR NOT isfinite(lower(during)) OR NOT isfinite(upper(during)) THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('%s of %s must be bounded: %s', arg, fn, during),
            DETAIL = 'Both its start and its end must be finite times.';
    ELSIF NOT lower_inc(during) OR upper_inc(during) THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('%s of %s must include its start and exclude its end: %s', arg, fn, during),
            HINT = 'Write it as tstzrange(start, end) or ''[start, end)''.';
    END IF;
    RETURN during;
END;
$fn$;
COMMENT ON FUNCTION lockctl_internal.check_range(text, text, pg_catalog.tstzrange) IS 'lockctl internal: check a time range argument';
REVOKE ALL ON FUNCTION lockctl_internal.check_range(text, text, pg_catalog.tstzrange) FROM PUBLIC;

-- ---------------------------------------------------------------------------
-- lockctl.create_calendar(resource, capacity): a new calendar of capacity
-- identical units (1: one room).  Its name may not be a pool's either.
-- ---------------------------------------------------------------------------
CREATE FUNCTION lockctl.create_calendar(resource text, capacity integer DEFAULT 1)
    RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_variable
DECLARE
    v_resource text := lockctl_internal.check_resource('create_calendar', resource);
    v_id bigint;
BEGIN
    IF capacity IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed',
            MESSAGE = 'capacity of lockctl.create_calendar must not be null';
    ELSIF capacity < 1 OR capacity > lockctl_internal.max_calendar_capacity() THEN
        RAISE EXCEPTION USING ERRCODE = 'numeric_value_out_of_range',
            MESSAGE = format('capacity of lockctl.create_calendar is out of range: %s', capacity),
            DETAIL = format('It must be between 1 and %s.', lockctl_internal.max_calendar_capacity());
    END IF;
    -- One name, one thing: no pool of that name may appear meanwhile
    -- (create_pool takes ROW EXCLUSIVE on lockctl.pools).
    LOCK TABLE lockctl.pools IN SHARE ROW EXCLUSIVE MODE;
    IF EXISTS (SELECT FROM lockctl.pools AS p WHERE p.resource = v_resource) THEN
        RAISE EXCEPTION USING ERRCODE = 'duplicate_object',
            MESSAGE = format('pool "%s" already exists', v_resource),
            DETAIL = 'A calendar cannot have the name of a pool.';
    END IF;
    INSERT INTO lockctl.calendars AS c (resource, capacity)
    VALUES (v_resource, capacity)
    ON CONFLICT ON CONSTRAINT calendars_resource_key DO NOTHING
    RETURNING c.id INTO v_id;
    IF v_id IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'duplicate_object',
            MESSAGE = format('calendar "%s" already exists', v_resource);
    END IF;
END;
$fn$;

-- ---------------------------------------------------------------------------
-- lockctl.drop_calendar(resource): drop a calendar with all its holds,
-- live ones included.  Waits for transactions that are taking holds on it.
-- ---------------------------------------------------------------------------
CREATE FUNCTION lockctl.drop_calendar(resource text)
    RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_variable
DECLARE
    v_resource text := lockctl_internal.check_resource('drop_calendar', resource);
    v_id bigint;
BEGIN
    -- Waits for the transactions that are taking (or confirming,
    -- cancelling, extending) range holds, on any calendar, and keeps new
    -- ones out until this transaction ends: the holds below are all there
    -- is, and a reserve_range that waited finds the calendar gone.
    LOCK TABLE lockctl.range_reservations IN SHARE ROW EXCLUSIVE MODE;
    SELECT c.id INTO v_id FROM lockctl.calendars AS c WHERE c.resource = v_resource FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'undefined_object',
            MESSAGE = format('calendar "%s" does not exist', v_resource);
    END IF;
    DELETE FROM lockctl.range_reservations AS r WHERE r.calendar_id = v_id;
    DELETE FROM lockctl.calendars AS c WHERE c.id = v_id;
END;
$fn$;

-- ---------------------------------------------------------------------------
-- Internal: the most live (held or confirmed) holds of calendar `calendar`
-- that cover one instant of `during`.  Holds ending when another starts do
-- not overlap ('[)' ranges): at an instant where both happen they add 0.
-- For calendars of capacity k > 1 only: it counts the holds off lane 0.
-- ---------------------------------------------------------------------------
CREATE FUNCTION lockctl_internal.range_peak(calendar bigint, during pg_catalog.tstzrange)
    RETURNS bigint
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    SET plan_cache_mode = force_generic_plan
BEGIN ATOMIC
    SELECT coalesce(max(x.n), 0)::bigint
      FROM (SELECT sum(sum(e.d)) OVER (ORDER BY e.t) AS n
              FROM (SELECT CASE WHEN u.edge = 1 THEN GREATEST(lower(r.during), lower(range_peak.during))
                                ELSE LEAST(upper(r.during), upper(range_peak.during)) END AS t,
                           u.edge AS d
                      FROM lockctl.range_reservations AS r
                     CROSS JOIN (VALUES (1), (-1)) AS u (edge)
                     WHERE int8range(r.calendar_id, r.calendar_id, '[]') && int8range(range_peak.calendar, range_peak.calendar, '[]')
                       AND r.during && range_peak.during
                       AND r.lane <> 0
                       AND r.status = ANY (ARRAY['held', 'confirmed']::lockctl.hold_status[])) AS e
             GROUP BY e.t) AS x;
END;
COMMENT ON FUNCTION lockctl_internal.range_peak(bigint, pg_catalog.tstzrange) IS 'lockctl internal: the most live holds of a calendar over one instant of a range';
REVOKE ALL ON FUNCTION lockctl_internal.range_peak(bigint, pg_catalog.tstzrange) FROM PUBLIC;

-- ---------------------------------------------------------------------------
-- lockctl.reserve_range(resource, during, holder, ttl, idempotency_key):
-- hold one unit of calendar `resource` for the time range `during`, for
-- ttl.  Returns the hold's id, or NULL when the calendar is full at some
-- instant of the range (capacity live holds cover it).  Confirm, cancel and
-- extend it with lockctl.confirm, cancel and extend.  A retry with the same
-- key returns the same hold; the same key with another range is 22023.
-- In C (src/reserve_calendar.c): it tests its arguments (when one is
-- wrong, check_resource, check_range and check_hold_ttl say which), then,
-- as the extension's owner (what SECURITY DEFINER would do), in a
-- restricted security context and with every name schema-qualified:
--   LOCK TABLE lockctl.range_reservations IN ROW EXCLUSIVE MODE (before the
--       calendar is looked up: see drop_calendar against reserve_range);
--   the calendar's id and capacity (42809 for a pool, 42704 for nothing);
--   capacity k > 1: the calendar row FOR NO KEY UPDATE;
--   with a key: the hold the key made for this role, if any (22023 if for
--       another range);
--   check_role_caps when a cap is set; era_nextval('lockctl.hold_id_seq');
--   capacity k > 1: NULL when range_peak reaches the capacity;
--   INSERT INTO lockctl.range_reservations ... ON CONFLICT DO NOTHING: no
--       target, so the exclusion constraint (capacity 1) and the
--       idempotency index are both arbiters, and an overlapping hold in
--       flight is waited for (if it commits, this one is not taken);
--   not taken, with a key: the hold a concurrent call with that key made.
-- ---------------------------------------------------------------------------
CREATE FUNCTION lockctl.reserve_range(resource text, during pg_catalog.tstzrange,
                                      holder text DEFAULT NULL,
                                      ttl interval DEFAULT '00:05:00'::interval,
                                      idempotency_key text DEFAULT NULL)
    RETURNS bigint
    AS 'MODULE_PATHNAME', 'lockctl_reserve_range'
    LANGUAGE C VOLATILE;

-- ---------------------------------------------------------------------------
-- Internal: explain why range hold `id` could not be confirmed, cancelled
-- or extended (as hold_state for holds).  Another role's range hold, or
-- none, is reported by hold_state itself: exactly as a missing hold.
-- ---------------------------------------------------------------------------
CREATE FUNCTION lockctl_internal.range_hold_state(action text, id bigint, ok_status text[]) RETURNS text
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
      FROM lockctl.range_reservations AS r
     WHERE r.id = id AND lockctl_internal.may_act_for(r.taken_by);
    IF NOT FOUND THEN
        RETURN lockctl_internal.hold_state(action, id, ok_status);
    END IF;
    IF v_status = ANY (ok_status) THEN
        RETURN v_status;
    END IF;
    IF v_status = 'held' AND v_expires <= clock_timestamp() OR v_status = 'expired' THEN
        RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = format('cannot %s hold %s: it has expired', action, id),
            DETAIL = format('It expired at %s.', v_expires),
            HINT = 'Take a new hold with lockctl.reserve_range.';
    ELSIF v_status = 'cancelled' THEN
        RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = format('cannot %s hold %s: it was cancelled', action, id),
            DETAIL = format('It was cancelled at %s.', v_finished),
            HINT = 'Take a new hold with lockctl.reserve_range.';
    ELSIF v_status = 'confirmed' THEN
        RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = format('cannot %s hold %s: it is confirmed', action, id),
            DETAIL = format('It was confirmed at %s.', v_finished);
    END IF;
    RAISE EXCEPTION USING ERRCODE = 'serialization_failure',
        MESSAGE = format('could not %s hold %s because of a concurrent change', action, id),
        HINT = 'Retry the transaction.';
END;
$fn$;

-- Internal: whether id is a range hold's (of whichever role): where
-- lockctl.confirm, cancel and extend turn when id is no hold of a pool.
CREATE FUNCTION lockctl_internal.is_range_hold(id bigint) RETURNS boolean
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT EXISTS (SELECT FROM lockctl.range_reservations AS r WHERE r.id = is_range_hold.id);
END;

-- ---------------------------------------------------------------------------
-- Internal: lockctl.confirm, cancel and extend for a range hold (their
-- answers and errors; called by them, which check id and ttl).
-- ---------------------------------------------------------------------------
CREATE FUNCTION lockctl_internal.confirm_range(id bigint)
    RETURNS boolean
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_variable
DECLARE
    v_now timestamp with time zone := clock_timestamp();
BEGIN
    UPDATE lockctl.range_reservations AS r
       SET status = 'confirmed', finished = v_now
     WHERE r.id = id AND r.finished IS NULL AND r.expires > v_now
       AND lockctl_internal.may_act_for(r.taken_by);
    IF NOT FOUND THEN
        PERFORM lockctl_internal.range_hold_state('confirm', id, ARRAY['confirmed']);
        RETURN false;
    END IF;
    RETURN true;
END;
$fn$;

CREATE FUNCTION lockctl_internal.cancel_range(id bigint)
    RETURNS boolean
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_variable
BEGIN
    UPDATE lockctl.range_reservations AS r
       SET status = 'cancelled', finished = clock_timestamp()
     WHERE r.id = id AND r.finished IS NULL
       AND lockctl_internal.may_act_for(r.taken_by);
    IF NOT FOUND THEN
        PERFORM lockctl_internal.range_hold_state('cancel', id, ARRAY['cancelled', 'expired']);
        RETURN false;
    END IF;
    RETURN true;
END;
$fn$;

CREATE FUNCTION lockctl_internal.extend_range(id bigint, ttl interval)
    RETURNS timestamp with time zone
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_variable
DECLARE
    v_now timestamp with time zone := clock_timestamp();
    v_expires timestamp with time zone;
BEGIN
    UPDATE lockctl.range_reservations AS r
       SET expires = v_now + ttl
     WHERE r.id = id AND r.finished IS NULL AND r.expires > v_now
       AND lockctl_internal.may_act_for(r.taken_by)
    RETURNING r.expires INTO v_expires;
    IF NOT FOUND THEN
        PERFORM lockctl_internal.range_hold_state('extend', id, ARRAY[]::text[]);
    END IF;
    RETURN v_expires;
END;
$fn$;

-- ---------------------------------------------------------------------------
-- lockctl.available_ranges(resource, within): the free parts of `within`
-- on a calendar, as this transaction's snapshot sees them: maximal ranges
-- in which `available` units (at least 1, the same all along) are neither
-- held nor confirmed, in time order.  On a calendar of capacity 1, the
-- gaps between its holds.  Holds past their expiry count until the worker
-- expires them.
-- ---------------------------------------------------------------------------
CREATE FUNCTION lockctl.available_ranges(resource text, within pg_catalog.tstzrange)
    RETURNS TABLE (during pg_catalog.tstzrange, available integer)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_column
DECLARE
    v_resource text := lockctl_internal.check_resource('available_ranges', resource);
    v_within tstzrange := lockctl_internal.check_range('available_ranges', 'within', within);
    v_cal bigint;
    v_capacity integer;
BEGIN
    SELECT c.id, c.capacity INTO v_cal, v_capacity
      FROM lockctl.calendars AS c WHERE c.resource = v_resource;
    IF NOT FOUND THEN
        IF EXISTS (SELECT FROM lockctl.pools AS p WHERE p.resource = v_resource) THEN
            RAISE EXCEPTION USING ERRCODE = 'wrong_object_type',
                MESSAGE = format('"%s" is a pool, not a calendar', v_resource),
                HINT = 'The free units of a pool are lockctl.available.';
        END IF;
        RAISE EXCEPTION USING ERRCODE = 'undefined_object',
            MESSAGE = format('calendar "%s" does not exist', v_resource);
    END IF;
    -- A sweep: +1 where a live hold starts, -1 where it ends (clipped to
    -- the window), the count after each instant, and the pieces between
    -- consecutive instants; pieces with free units, merged with their
    -- neighbour when it has as many.  The live holds: those of lane 0
    -- (capacity 1) and the others, each part through its own partial index.
    RETURN QUERY
    WITH ev (t, d) AS (
        SELECT CASE WHEN u.edge = 1 THEN GREATEST(lower(r.during), lower(v_within))
                    ELSE LEAST(upper(r.during), upper(v_within)) END,
               u.edge
          FROM (SELECT h.during FROM lockctl.range_reservations AS h
                 WHERE int8range(h.calendar_id, h.calendar_id, '[]') && int8range(v_cal, v_cal, '[]')
                   AND h.during && v_within
                   AND h.lane = 0
                   AND h.status = ANY (ARRAY['held', 'confirmed']::lockctl.hold_status[])
                UNION ALL
                SELECT h.during FROM lockctl.range_reservations AS h
                 WHERE int8range(h.calendar_id, h.calendar_id, '[]') && int8range(v_cal, v_cal, '[]')
                   AND h.during && v_within
                   AND h.lane <> 0
                   AND h.status = ANY (ARRAY['held', 'confirmed']::lockctl.hold_status[])) AS r
         CROSS JOIN (VALUES (1), (-1)) AS u (edge)
        UNION ALL
        VALUES (lower(v_within), 0), (upper(v_within), 0)
    ), pts AS (
        SELECT ev.t, sum(sum(ev.d)) OVER (ORDER BY ev.t) AS n FROM ev GROUP BY ev.t
    ), pieces AS (
        SELECT pts.t AS lo, lead(pts.t) OVER (ORDER BY pts.t) AS hi, v_capacity - pts.n AS a FROM pts
    ), free AS (
        SELECT p.lo, p.hi, p.a,
               CASE WHEN lag(p.hi) OVER (ORDER BY p.lo) = p.lo AND lag(p.a) OVER (ORDER BY p.lo) = p.a
                    THEN 0 ELSE 1 END AS brk
          FROM pieces AS p WHERE p.hi IS NOT NULL AND p.a > 0
    ), grp AS (
        SELECT f.lo, f.hi, f.a, sum(f.brk) OVER (ORDER BY f.lo) AS g FROM free AS f
    )
    SELECT tstzrange(min(g.lo), max(g.hi)), g.a::integer
      FROM grp AS g GROUP BY g.g, g.a ORDER BY min(g.lo);
END;
$fn$;

-- ---------------------------------------------------------------------------
-- The worker's part (called by lockctl_internal.expire_holds and
-- purge_holds, src/reserve.sql): expire up to batch_size due range holds
-- without waiting (SKIP LOCKED), NOTIFY lockctl_expired with each id, and
-- return their ids; purge up to batch_size finished ones kept longer than
-- retention.  Neither waits for a drop_calendar in flight (the table lock
-- with NOWAIT): that pass does nothing with range holds.
-- ---------------------------------------------------------------------------
CREATE FUNCTION lockctl_internal.expire_due_ranges(batch_size integer)
    RETURNS bigint[]
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_variable
DECLARE
    v_now timestamp with time zone := clock_timestamp();
    v_ids bigint[];
BEGIN
    -- Never wait: a drop_calendar in flight holds the table; next pass.
    BEGIN
        LOCK TABLE lockctl.range_reservations IN ROW EXCLUSIVE MODE NOWAIT;
    EXCEPTION WHEN lock_not_available THEN
        RETURN NULL;
    END;
    WITH due AS (
        SELECT r.id FROM lockctl.range_reservations AS r
         WHERE r.status = 'held' AND r.expires <= v_now
         ORDER BY r.expires
         LIMIT batch_size
           FOR UPDATE SKIP LOCKED
    ), done AS (
        UPDATE lockctl.range_reservations AS r
           SET status = 'expired', finished = v_now
          FROM due WHERE r.id = due.id
        RETURNING r.id
    )
    SELECT array_agg(done.id ORDER BY done.id) INTO v_ids FROM done;
    PERFORM pg_notify('lockctl_expired', u.id::text) FROM unnest(v_ids) AS u(id);
    RETURN v_ids;
END;
$fn$;

CREATE FUNCTION lockctl_internal.purge_ranges(retention interval, batch_size integer)
    RETURNS integer
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_variable
DECLARE
    v_n integer;
BEGIN
    BEGIN
        LOCK TABLE lockctl.range_reservations IN ROW EXCLUSIVE MODE NOWAIT;
    EXCEPTION WHEN lock_not_available THEN
        RETURN 0;
    END;
    WITH old AS (
        SELECT r.id FROM lockctl.range_reservations AS r
         WHERE r.status = ANY (ARRAY['cancelled', 'expired']::lockctl.hold_status[])
           AND r.finished < now() - retention
         ORDER BY r.finished
         LIMIT batch_size
           FOR UPDATE SKIP LOCKED
    )
    DELETE FROM lockctl.range_reservations AS r USING old WHERE r.id = old.id;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    RETURN v_n;
END;
$fn$;

-- ---------------------------------------------------------------------------
-- Views: every calendar with its live holds; range holds, as lockctl.holds
-- shows holds (the caller's and those of roles whose privileges it has;
-- every one for pg_read_all_stats, without another role's holder and key).
-- ---------------------------------------------------------------------------
CREATE VIEW lockctl.calendar_status AS
    SELECT c.resource,
           c.capacity,
           t.held,
           t.confirmed,
           c.created
      FROM lockctl.calendars AS c,
           LATERAL (SELECT pg_catalog.count(*) FILTER (WHERE r.status OPERATOR(pg_catalog.=) 'held') AS held,
                           pg_catalog.count(*) FILTER (WHERE r.status OPERATOR(pg_catalog.=) 'confirmed') AS confirmed
                      FROM lockctl.range_reservations AS r
                     WHERE r.calendar_id OPERATOR(pg_catalog.=) c.id) AS t;
COMMENT ON VIEW lockctl.calendar_status IS 'lockctl: every calendar with its capacity and its range holds held and confirmed';

CREATE VIEW lockctl.calendar_holds WITH (security_barrier) AS
    SELECT r.id,
           c.resource,
           r.during,
           CASE WHEN a.mine THEN r.holder END AS holder,
           r.taken_by,
           r.status::text AS status,
           r.created,
           r.expires,
           r.finished,
           CASE WHEN a.mine THEN r.idempotency_key END AS idempotency_key
      FROM lockctl.range_reservations AS r
      JOIN lockctl.calendars AS c ON c.id OPERATOR(pg_catalog.=) r.calendar_id
     CROSS JOIN LATERAL (SELECT lockctl_internal.may_act_for(r.taken_by) AS mine) AS a
     WHERE a.mine
        OR pg_catalog.pg_has_role('pg_read_all_stats'::pg_catalog.name, 'USAGE');
COMMENT ON VIEW lockctl.calendar_holds IS 'lockctl: range holds on calendars, live and finished (until purged), taken by roles whose privileges the caller has (every one for pg_read_all_stats, without holder and key)';

COMMENT ON FUNCTION lockctl.create_calendar(text, integer) IS 'lockctl: create a calendar, a pool sold by time range, of capacity identical units';
COMMENT ON FUNCTION lockctl.drop_calendar(text) IS 'lockctl: drop a calendar and all its range holds';
COMMENT ON FUNCTION lockctl.reserve_range(text, pg_catalog.tstzrange, text, interval, text) IS 'lockctl: hold one unit of a calendar for a time range; NULL when it is full at some instant of the range';
COMMENT ON FUNCTION lockctl.available_ranges(text, pg_catalog.tstzrange) IS 'lockctl: the free parts of a time range on a calendar, with the units free in each';
COMMENT ON FUNCTION lockctl_internal.range_hold_state(text, bigint, text[]) IS 'lockctl internal: explain why a range hold cannot be confirmed, cancelled or extended';
COMMENT ON FUNCTION lockctl_internal.is_range_hold(bigint) IS 'lockctl internal: whether an id is a range hold''s';
COMMENT ON FUNCTION lockctl_internal.confirm_range(bigint) IS 'lockctl internal: lockctl.confirm for a range hold';
COMMENT ON FUNCTION lockctl_internal.cancel_range(bigint) IS 'lockctl internal: lockctl.cancel for a range hold';
COMMENT ON FUNCTION lockctl_internal.extend_range(bigint, interval) IS 'lockctl internal: lockctl.extend for a range hold';
COMMENT ON FUNCTION lockctl_internal.expire_due_ranges(integer) IS 'lockctl internal: expire up to batch_size due range holds (the expiry worker''s pass)';
COMMENT ON FUNCTION lockctl_internal.purge_ranges(interval, integer) IS 'lockctl internal: delete up to batch_size range holds finished more than retention ago';

-- Privileges: creating and dropping calendars is for administrators;
-- anyone may take range holds and read.
REVOKE ALL ON FUNCTION lockctl.create_calendar(text, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION lockctl.drop_calendar(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION lockctl.reserve_range(text, pg_catalog.tstzrange, text, interval, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION lockctl.available_ranges(text, pg_catalog.tstzrange) FROM PUBLIC;
REVOKE ALL ON FUNCTION lockctl_internal.range_hold_state(text, bigint, text[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION lockctl_internal.is_range_hold(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION lockctl_internal.confirm_range(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION lockctl_internal.cancel_range(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION lockctl_internal.extend_range(bigint, interval) FROM PUBLIC;
REVOKE ALL ON FUNCTION lockctl_internal.expire_due_ranges(integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION lockctl_internal.purge_ranges(interval, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION lockctl.reserve_range(text, pg_catalog.tstzrange, text, interval, text) TO PUBLIC;
GRANT EXECUTE ON FUNCTION lockctl.available_ranges(text, pg_catalog.tstzrange) TO PUBLIC;
GRANT SELECT ON lockctl.calendar_status, lockctl.calendar_holds TO PUBLIC;

-- ---------------------------------------------------------------------------
-- Hot pools (issue 21): the CHECK constraints of lockctl.pool_slots and
-- lockctl.reservations, each one C call instead of SQL that PostgreSQL
-- parsed and planned again in every statement writing the table
-- (src/reserve_checks.c).  The same tests, constraint names and errors; the
-- same objects as src/reserve.sql.  Re-adding them checks every existing
-- row again.
-- ---------------------------------------------------------------------------
CREATE FUNCTION lockctl_internal.is_slot_row(bigint, bigint, bigint, bigint)
    RETURNS boolean
    AS 'MODULE_PATHNAME', 'lockctl_is_slot_row'
    LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION lockctl_internal.is_slot_row(bigint, bigint, bigint, bigint) IS 'lockctl internal: pool_slots_not_oversold (held, confirmed >= 0, held + confirmed <= capacity, 0 <= kept <= held)';
REVOKE ALL ON FUNCTION lockctl_internal.is_slot_row(bigint, bigint, bigint, bigint) FROM PUBLIC;

CREATE FUNCTION lockctl_internal.is_hold_row(bigint, lockctl.hold_status, timestamp with time zone)
    RETURNS boolean
    AS 'MODULE_PATHNAME', 'lockctl_is_hold_row'
    LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION lockctl_internal.is_hold_row(bigint, lockctl.hold_status, timestamp with time zone) IS 'lockctl internal: reservations_state_check (a positive quantity; finished set exactly when a hold is over)';
REVOKE ALL ON FUNCTION lockctl_internal.is_hold_row(bigint, lockctl.hold_status, timestamp with time zone) FROM PUBLIC;

ALTER TABLE lockctl.pool_slots
    DROP CONSTRAINT pool_slots_not_oversold,
    ADD CONSTRAINT pool_slots_not_oversold
        CHECK (lockctl_internal.is_slot_row(held, confirmed, capacity, kept));
ALTER TABLE lockctl.reservations
    DROP CONSTRAINT reservations_state_check,
    ADD CONSTRAINT reservations_state_check
        CHECK (lockctl_internal.is_hold_row(quantity, status, finished));

-- The entry points of holds plan every look-up as an index scan, whatever
-- the statistics (src/reserve.sql, the header); the same settings, in the
-- same order, as the functions' definitions there.
ALTER FUNCTION lockctl.reserve(text, bigint, text, interval, text) SET enable_seqscan = off;
ALTER FUNCTION lockctl.reserve(text, bigint, text, interval, text) SET enable_bitmapscan = off;
ALTER FUNCTION lockctl.confirm(bigint) SET enable_seqscan = off;
ALTER FUNCTION lockctl.confirm(bigint) SET enable_bitmapscan = off;
ALTER FUNCTION lockctl.confirm(bigint, bigint) SET enable_seqscan = off;
ALTER FUNCTION lockctl.confirm(bigint, bigint) SET enable_bitmapscan = off;
ALTER FUNCTION lockctl.cancel(bigint) SET enable_seqscan = off;
ALTER FUNCTION lockctl.cancel(bigint) SET enable_bitmapscan = off;
ALTER FUNCTION lockctl.extend(bigint, interval) SET enable_seqscan = off;
ALTER FUNCTION lockctl.extend(bigint, interval) SET enable_bitmapscan = off;
ALTER FUNCTION lockctl.reserve_cart(jsonb, text, interval, text) SET enable_seqscan = off;
ALTER FUNCTION lockctl.reserve_cart(jsonb, text, interval, text) SET enable_bitmapscan = off;
ALTER FUNCTION lockctl.confirm_cart(bigint) SET enable_seqscan = off;
ALTER FUNCTION lockctl.confirm_cart(bigint) SET enable_bitmapscan = off;
ALTER FUNCTION lockctl.cancel_cart(bigint) SET enable_seqscan = off;
ALTER FUNCTION lockctl.cancel_cart(bigint) SET enable_bitmapscan = off;

-- ---------------------------------------------------------------------------
-- Internal, in C (src/reserve_slot.c): a slot row written without the
-- executor.  take_slot is reserve's fast path: the first slot of the pool
-- from `start` on (then from 0) with quantity units free that no other
-- transaction holds, taken without waiting; no slot and looked = true when
-- there is none (wait for one: the middle path), looked = false when the
-- statement must look (REPEATABLE READ, a table not as installed, ...).
-- confirm_slot moves quantity units of a slot from held to confirmed;
-- false, having changed nothing, when the statement must.
-- ---------------------------------------------------------------------------
CREATE FUNCTION lockctl_internal.take_slot(pool bigint, start integer, slots integer,
                                           quantity bigint, OUT slot integer,
                                           OUT max_per_holder bigint, OUT looked boolean)
    AS 'MODULE_PATHNAME', 'lockctl_take_slot'
    LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION lockctl_internal.take_slot(bigint, integer, integer, bigint) IS 'lockctl internal: take units of a free, unlocked slot of a pool directly (looked = false: do it with the statement)';
REVOKE ALL ON FUNCTION lockctl_internal.take_slot(bigint, integer, integer, bigint) FROM PUBLIC;

CREATE FUNCTION lockctl_internal.confirm_slot(pool bigint, slot integer, quantity bigint)
    RETURNS boolean
    AS 'MODULE_PATHNAME', 'lockctl_confirm_slot'
    LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION lockctl_internal.confirm_slot(bigint, integer, bigint) IS 'lockctl internal: move units of a slot from held to confirmed directly (false: do it with the statement)';
REVOKE ALL ON FUNCTION lockctl_internal.confirm_slot(bigint, integer, bigint) FROM PUBLIC;

-- ---------------------------------------------------------------------------
-- Internal, in C (src/reserve_pool.c): reserve's look-up of its pool by
-- name, through pools_resource_key without the executor.  looked = false
-- when the statement must look (REPEATABLE READ, no SELECT privilege, a
-- table not as installed); looked = true and no id: there is no such pool.
-- ---------------------------------------------------------------------------
CREATE FUNCTION lockctl_internal.pool_of(resource text, OUT id bigint, OUT slots integer,
                                         OUT looked boolean)
    AS 'MODULE_PATHNAME', 'lockctl_pool_of'
    LANGUAGE C STABLE STRICT;
COMMENT ON FUNCTION lockctl_internal.pool_of(text) IS 'lockctl internal: a pool''s id and slot count read directly (looked = false: read them with the statement)';
REVOKE ALL ON FUNCTION lockctl_internal.pool_of(text) FROM PUBLIC;

-- ---------------------------------------------------------------------------
-- Internal, in C (src/reserve_hold.c): a hold's row written without the
-- executor.  insert_hold inserts reserve's live hold (no idempotency key)
-- and returns its id; NULL when the statement must insert it.
-- confirm_hold makes confirm's UPDATE: pool_id, slot and quantity of the
-- hold it confirmed (looked = true), none when no live hold of the
-- caller's matched (looked = true), looked = false, having changed
-- nothing, when the statement must (a concurrent change, REPEATABLE READ,
-- a table not as installed, ...).
-- ---------------------------------------------------------------------------
CREATE FUNCTION lockctl_internal.insert_hold(pool bigint, slot integer, quantity bigint,
                                             holder text, taken_by name,
                                             created timestamp with time zone,
                                             expires timestamp with time zone)
    RETURNS bigint
    AS 'MODULE_PATHNAME', 'lockctl_insert_hold'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION lockctl_internal.insert_hold(bigint, integer, bigint, text, name, timestamp with time zone, timestamp with time zone) IS 'lockctl internal: insert a live hold directly (NULL: insert it with the statement)';
REVOKE ALL ON FUNCTION lockctl_internal.insert_hold(bigint, integer, bigint, text, name, timestamp with time zone, timestamp with time zone) FROM PUBLIC;

CREATE FUNCTION lockctl_internal.confirm_hold(id bigint, at timestamp with time zone,
                                              OUT pool_id bigint, OUT slot integer,
                                              OUT quantity bigint, OUT looked boolean)
    AS 'MODULE_PATHNAME', 'lockctl_confirm_hold'
    LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION lockctl_internal.confirm_hold(bigint, timestamp with time zone) IS 'lockctl internal: confirm a live hold of the caller''s directly (looked = false: do it with the statement)';
REVOKE ALL ON FUNCTION lockctl_internal.confirm_hold(bigint, timestamp with time zone) FROM PUBLIC;

-- ---------------------------------------------------------------------------
-- lockctl.reserve and lockctl.confirm(id) in C (src/reserve_sale.c): the
-- common case through the direct paths, every other handed over, before
-- anything is written, to their PL/pgSQL functions, which stay, renamed,
-- as lockctl_internal.reserve_by_sql and confirm_by_sql (every case by
-- statement, every error).  insert_hold_by_sql and confirm_slot_by_sql do
-- by statement a step that must be, after the first write.
-- ---------------------------------------------------------------------------
ALTER FUNCTION lockctl.reserve(text, bigint, text, interval, text) RENAME TO reserve_by_sql;
ALTER FUNCTION lockctl.reserve_by_sql(text, bigint, text, interval, text) SET SCHEMA lockctl_internal;
ALTER FUNCTION lockctl_internal.reserve_by_sql(text, bigint, text, interval, text) SECURITY INVOKER;
REVOKE ALL ON FUNCTION lockctl_internal.reserve_by_sql(text, bigint, text, interval, text) FROM PUBLIC;
COMMENT ON FUNCTION lockctl_internal.reserve_by_sql(text, bigint, text, interval, text) IS 'lockctl internal: lockctl.reserve by statement (every case, every error)';

ALTER FUNCTION lockctl.confirm(bigint) RENAME TO confirm_by_sql;
ALTER FUNCTION lockctl.confirm_by_sql(bigint) SET SCHEMA lockctl_internal;
ALTER FUNCTION lockctl_internal.confirm_by_sql(bigint) SECURITY INVOKER;
REVOKE ALL ON FUNCTION lockctl_internal.confirm_by_sql(bigint) FROM PUBLIC;
COMMENT ON FUNCTION lockctl_internal.confirm_by_sql(bigint) IS 'lockctl internal: lockctl.confirm by statement (every case, every error)';

CREATE FUNCTION lockctl.reserve(resource text, quantity bigint DEFAULT 1,
                                holder text DEFAULT NULL,
                                ttl interval DEFAULT '00:05:00'::interval,
                                idempotency_key text DEFAULT NULL)
    RETURNS bigint
    LANGUAGE c VOLATILE SECURITY DEFINER
    AS 'MODULE_PATHNAME', 'lockctl_reserve';
COMMENT ON FUNCTION lockctl.reserve(text, bigint, text, interval, text) IS 'lockctl: take a hold on a pool; NULL when not enough is available';
REVOKE ALL ON FUNCTION lockctl.reserve(text, bigint, text, interval, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION lockctl.reserve(text, bigint, text, interval, text) TO PUBLIC;

CREATE FUNCTION lockctl.confirm(id bigint)
    RETURNS boolean
    LANGUAGE c VOLATILE SECURITY DEFINER
    AS 'MODULE_PATHNAME', 'lockctl_confirm';
COMMENT ON FUNCTION lockctl.confirm(bigint) IS 'lockctl: make a live hold permanent';
REVOKE ALL ON FUNCTION lockctl.confirm(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION lockctl.confirm(bigint) TO PUBLIC;

CREATE FUNCTION lockctl_internal.insert_hold_by_sql(pool bigint, slot integer, quantity bigint,
                                                    holder text, taken_by name,
                                                    created timestamp with time zone,
                                                    expires timestamp with time zone)
    RETURNS bigint
    LANGUAGE sql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $fn$
    INSERT INTO lockctl.reservations AS r
           (pool_id, slot, quantity, holder, taken_by, created, expires)
    VALUES ($1, $2, $3, $4, $5, $6, $7)
    RETURNING r.id;
$fn$;
COMMENT ON FUNCTION lockctl_internal.insert_hold_by_sql(bigint, integer, bigint, text, name, timestamp with time zone, timestamp with time zone) IS 'lockctl internal: insert a live hold by statement';
REVOKE ALL ON FUNCTION lockctl_internal.insert_hold_by_sql(bigint, integer, bigint, text, name, timestamp with time zone, timestamp with time zone) FROM PUBLIC;

CREATE FUNCTION lockctl_internal.confirm_slot_by_sql(pool bigint, slot integer, quantity bigint)
    RETURNS void
    LANGUAGE sql VOLATILE
    SET search_path = pg_catalog, pg_temp
    SET enable_seqscan = off
    SET enable_bitmapscan = off
AS $fn$
    UPDATE lockctl.pool_slots AS s
       SET held = s.held - $3, confirmed = s.confirmed + $3,
           holds_confirmed = s.holds_confirmed + 1
     WHERE s.pool_id = $1 AND s.slot = $2;
$fn$;
COMMENT ON FUNCTION lockctl_internal.confirm_slot_by_sql(bigint, integer, bigint) IS 'lockctl internal: move units of a slot from held to confirmed by statement';
REVOKE ALL ON FUNCTION lockctl_internal.confirm_slot_by_sql(bigint, integer, bigint) FROM PUBLIC;

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
