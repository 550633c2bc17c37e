
-- ---------------------------------------------------------------------------
-- Reservations: pools, their slots, and the holds taken on them.
--
-- The whole design, with its trade-offs, is in docs/reservations.md.  In short:
--
--   lockctl.pools         one row per pool: name, capacity, slot count.
--                         Written only by the administrative functions, so
--                         it is never a hot row.
--   lockctl.pool_slots    the pool's capacity split over N rows.  Every hold
--                         is taken from exactly one slot, and the invariant
--                         held + confirmed <= capacity is a CHECK on each
--                         slot, so it holds for the pool (the sum) too.
--                         Pool-level numbers are always sums over slots:
--                         there is no pool-level counter to serialize on.
--   lockctl.reservations  one row per hold.
--
-- Users never write these tables: the functions below are SECURITY DEFINER
-- with a pinned search_path, and reading goes through the views.
--
-- A hold belongs to the role that took it (taken_by: the session's role,
-- lockctl_internal.acting_role()).  confirm, cancel and extend act on it
-- only for that role and roles with its privileges (GRANT web TO payments
-- lets payments confirm web's holds); to any other role a hold is exactly
-- like an id that does not exist, errors included, and it never locks the
-- hold's row (the ownership test is in the UPDATE's WHERE clause, which a
-- row fails before it is locked).  Idempotency keys are per (pool, role).
-- lockctl.max_holds_per_role and lockctl.max_kept_holds_per_role cap a
-- role's live and finished holds (src/reserve.c).
--
-- reserve, confirm, cancel and extend run with plan_cache_mode =
-- force_generic_plan: every statement in them looks rows up by key, so the
-- generic plan is the right one, and left to itself the plan cache may
-- settle on planning every call afresh (custom plans), which on a hot pool
-- cost a tenth of the CPU time.  They (and partial confirm, reserve_cart,
-- confirm_cart and cancel_cart) also run with enable_seqscan and
-- enable_bitmapscan off, for the functions they call too: a session keeps
-- a plan until the table's statistics change, and one made while the
-- tables were small (a new install, statistics taken at a few rows) reads
-- every hold for each confirm, and every slot row of a pool, sorted, for
-- each reserve, as the tables grow: on a flash sale, until the next
-- autovacuum ANALYZE.  Off, every look-up is an index scan whatever the
-- statistics (bench/README.md: 1,225,000 instructions per hot-pool
-- reserve + confirm with plans made at an empty table, 674,000 with the
-- settings; the two settings cost about 5,000 per call each).
--
-- Lock order, to keep the functions free of deadlocks among themselves:
--   pools row (admin functions only) -> slot rows in slot order -> holds.
-- reserve's fast path takes one slot with SKIP LOCKED and never waits; its
-- middle path waits on one slot while holding no other; its slow path
-- takes every slot of the pool in slot order.  Each path runs in a
-- subtransaction that is rolled back when it finds too few units, so a
-- reserve that answers NULL (sold out) leaves no slot locked behind it.
-- confirm and cancel lock the hold first and its slot second: nobody
-- holding a slot ever waits for a hold, except a transaction that mixes
-- several calls, which PostgreSQL's deadlock detector resolves (40P01).
-- expire_holds takes holds and slots with SKIP LOCKED and never waits.
-- ---------------------------------------------------------------------------

-- ---------------------------------------------------------------------------
-- The limits of reservations, each defined once (the name limit is shared
-- with the C functions: lockctl_internal.name_max_bytes(), src/lockctl.sql).
-- IMMUTABLE SQL functions: the planner folds them into constants, in the
-- functions below and in the tables' CHECK constraints alike.
-- ---------------------------------------------------------------------------
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

-- ---------------------------------------------------------------------------
-- Whose a hold is (src/reserve.c).  acting_role(): the role a call acts
-- for, SET ROLE's or else the session user, which SECURITY DEFINER does not
-- hide.  may_act_for(owner): whether that role has owner's privileges.
-- may_act_for is behind the view lockctl.holds, which calls it with the
-- reader's privileges: EXECUTE stays with PUBLIC (it answers only for the
-- caller).
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

CREATE SEQUENCE lockctl.pool_id_seq;

CREATE TABLE lockctl.pools (
    id          bigint NOT NULL DEFAULT pg_catalog.nextval('lockctl.pool_id_seq'::pg_catalog.regclass),
    resource    text NOT NULL,
    capacity    bigint NOT NULL,
    slots       integer NOT NULL,
    auto_slots  boolean NOT NULL DEFAULT true,
    created     timestamp with time zone NOT NULL DEFAULT pg_catalog.now(),
    -- Per-holder limit (src/reserve_limits.sql); NULL: none.
    max_per_holder bigint,
    CONSTRAINT pools_pkey PRIMARY KEY (id),
    CONSTRAINT pools_resource_key UNIQUE (resource),
    CONSTRAINT pools_resource_check
        CHECK (pg_catalog.octet_length(resource) OPERATOR(pg_catalog.>=) 1
               AND pg_catalog.octet_length(resource) OPERATOR(pg_catalog.<=) lockctl_internal.name_max_bytes()),
    CONSTRAINT pools_capacity_check CHECK (capacity OPERATOR(pg_catalog.>=) 0),
    CONSTRAINT pools_slots_check
        CHECK (slots OPERATOR(pg_catalog.>=) 1 AND slots OPERATOR(pg_catalog.<=) lockctl_internal.max_slots())
);
ALTER SEQUENCE lockctl.pool_id_seq OWNED BY lockctl.pools.id;

COMMENT ON TABLE lockctl.pools IS 'lockctl: reservation pools (write through lockctl.create_pool and friends only)';

-- In C (src/reserve_checks.c): pool_slots_not_oversold whole, and
-- reservations_state_check whole (below).
CREATE FUNCTION lockctl_internal.is_slot_row(bigint, bigint, bigint, bigint)
    RETURNS boolean
    AS 'MODULE_PATHNAME', 'lockctl_is_slot_row'
    LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION lockctl_internal.is_slot_row(bigint, bigint, bigint, bigint) IS 'lockctl internal: pool_slots_not_oversold (held, confirmed >= 0, held + confirmed <= capacity, 0 <= kept <= held)';
REVOKE ALL ON FUNCTION lockctl_internal.is_slot_row(bigint, bigint, bigint, bigint) FROM PUBLIC;

-- Slot rows are updated by every reserve, confirm, cancel and expiry: leave
-- room on each page so that those updates stay HOT.
CREATE TABLE lockctl.pool_slots (
    pool_id          bigint NOT NULL,
    slot             integer NOT NULL,
    capacity         bigint NOT NULL,
    held             bigint NOT NULL DEFAULT 0,
    confirmed        bigint NOT NULL DEFAULT 0,
    holds_taken      bigint NOT NULL DEFAULT 0,
    holds_confirmed  bigint NOT NULL DEFAULT 0,
    holds_cancelled  bigint NOT NULL DEFAULT 0,
    holds_expired    bigint NOT NULL DEFAULT 0,
    -- The pool's max_per_holder, copied to every slot row: a reserve reads
    -- it from the slot row it locks, so it sees a concurrent change of the
    -- limit exactly, at no cost (src/reserve_limits.sql).
    max_per_holder   bigint,
    -- Whether the pool may have a waitlist: whoever gives units back to
    -- this slot serves it (src/reserve_waitlist.sql).
    waitlist         boolean NOT NULL DEFAULT false,
    -- Units of held that no hold has: returned while the pool's queue
    -- could not be served at once (a slot it needed was busy), and kept
    -- for its head, so that no walk-in takes them (src/reserve_waitlist.sql).
    kept             bigint NOT NULL DEFAULT 0,
    CONSTRAINT pool_slots_pkey PRIMARY KEY (pool_id, slot),
    -- The invariant, checked at every write of a slot: held, confirmed >=
    -- 0, held + confirmed <= capacity (which also bounds capacity) and
    -- 0 <= kept <= held.  It
    -- is the only CHECK here, and one C call, on purpose: PostgreSQL
    -- rebuilds every CHECK expression of a table from its stored text once
    -- per statement that writes it, and on a hot pool that cost is
    -- measurable (src/reserve_checks.c; docs/reservations.md, "Hot
    -- pools").  Slot numbers and the holds_* counters are only ever
    -- written by the functions below.
    CONSTRAINT pool_slots_not_oversold
        CHECK (lockctl_internal.is_slot_row(held, confirmed, capacity, kept))
    -- No foreign key to pools: a slot row updated twice in one transaction
    -- (reserve, then confirm) fires the key's check query on the second
    -- update, which cost reserve + confirm a fifth of its throughput.  The
    -- functions keep slots and pools together: create_pool and
    -- reshape_pool insert slot rows only for a pool they hold, drop_pool
    -- deletes them.
) WITH (fillfactor = 50);

-- The worker's catch-up finds the slots that keep units for a queue
-- (src/reserve_waitlist.sql); the index is empty but for those.
CREATE INDEX pool_slots_kept_idx ON lockctl.pool_slots (pool_id)
    WHERE kept OPERATOR(pg_catalog.>) 0;

COMMENT ON TABLE lockctl.pool_slots IS 'lockctl: each pool''s capacity split over slots, with the units held and confirmed in each';

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

CREATE FUNCTION lockctl_internal.confirm_slot(pool bigint, slot integer, quantity bigint)
    RETURNS boolean
    AS 'MODULE_PATHNAME', 'lockctl_confirm_slot'
    LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION lockctl_internal.confirm_slot(bigint, integer, bigint) IS 'lockctl internal: move units of a slot from held to confirmed directly (false: do it with the statement)';
REVOKE ALL ON FUNCTION lockctl_internal.confirm_slot(bigint, integer, bigint) FROM PUBLIC;

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

CREATE SEQUENCE lockctl.hold_id_seq;

-- A hold's life: held, then exactly one of the others.  An enum rather
-- than text with a CHECK: the type itself refuses anything else, at no
-- cost per write (see pool_slots_not_oversold on what a CHECK costs).
CREATE TYPE lockctl.hold_status AS ENUM ('held', 'confirmed', 'cancelled', 'expired');

COMMENT ON TYPE lockctl.hold_status IS 'lockctl: the state of a hold';

CREATE FUNCTION lockctl_internal.is_hold_row(bigint, lockctl.hold_status, timestamp with time zone)
    RETURNS boolean
    AS 'MODULE_PATHNAME', 'lockctl_is_hold_row'
    LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION lockctl_internal.is_hold_row(bigint, lockctl.hold_status, timestamp with time zone) IS 'lockctl internal: reservations_state_check (a positive quantity; finished set exactly when a hold is over)';
REVOKE ALL ON FUNCTION lockctl_internal.is_hold_row(bigint, lockctl.hold_status, timestamp with time zone) FROM PUBLIC;

-- pool_id is deliberately not a foreign key: the check would cost an index
-- probe and a row lock per hold on the hottest path there is, and only the
-- functions below (which check the pool) ever write this table.
-- id: the sequence's value tagged with the server's era (src/lease_mark.c),
-- so that a failover that lost commits never hands out an id again: a
-- retried confirm(id) reaches the same hold or none.
CREATE TABLE lockctl.reservations (
    id               bigint NOT NULL DEFAULT lockctl_internal.era_nextval('lockctl.hold_id_seq'::pg_catalog.regclass),
    pool_id          bigint NOT NULL,
    slot             integer NOT NULL,
    quantity         bigint NOT NULL,
    holder           text,
    -- The role that took the hold, and the only one (with the roles that
    -- have its privileges) that may confirm, cancel or extend it: the
    -- session's role (SET ROLE's, else the session user's), which SECURITY
    -- DEFINER does not hide, unlike current_user.  A name, not an oid, so
    -- that a dump restores where oids differ.
    taken_by         name NOT NULL DEFAULT lockctl_internal.acting_role(),
    status           lockctl.hold_status NOT NULL DEFAULT 'held',
    created          timestamp with time zone NOT NULL,
    expires          timestamp with time zone NOT NULL,
    finished         timestamp with time zone,
    idempotency_key  text,
    CONSTRAINT reservations_pkey PRIMARY KEY (id),
    -- One CHECK, for what the accounting relies on (a positive quantity;
    -- finished set exactly when the hold is over), in one C call as
    -- pool_slots_not_oversold.  The lengths of holder and idempotency_key
    -- are checked by reserve, the only writer, with better errors; a CHECK
    -- per column would cost every write.
    CONSTRAINT reservations_state_check
        CHECK (lockctl_internal.is_hold_row(quantity, status, finished))
);
ALTER SEQUENCE lockctl.hold_id_seq OWNED BY lockctl.reservations.id;

COMMENT ON TABLE lockctl.reservations IS 'lockctl: holds on pools (write through lockctl.reserve and friends only)';

-- The worker's scan: only live holds are in it, oldest expiry first, so a
-- pass costs what is due, not what exists.
CREATE INDEX reservations_due_idx ON lockctl.reservations (expires)
    WHERE status OPERATOR(pg_catalog.=) 'held';
-- The idempotency lookup, and the guarantee that one key makes one hold:
-- keys are per role, so that no role can take, or learn of, another's.
CREATE UNIQUE INDEX reservations_idempotency_idx ON lockctl.reservations (pool_id, taken_by, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- The caps on a role's live and finished holds (lockctl.max_holds_per_role,
-- lockctl.max_kept_holds_per_role): reserve counts here, up to the cap.
-- Confirmed holds are left out: they are never purged, and their number is
-- bounded by the pools' capacities.
CREATE INDEX reservations_role_idx ON lockctl.reservations (taken_by, status)
    WHERE status OPERATOR(pg_catalog.<>) 'confirmed';
-- The purge: only finished holds that may be purged are in it.
CREATE INDEX reservations_finished_idx ON lockctl.reservations (finished)
    WHERE status OPERATOR(pg_catalog.=) ANY (ARRAY['cancelled', 'expired']::lockctl.hold_status[]);

SELECT pg_catalog.pg_extension_config_dump('lockctl.pools', '');
SELECT pg_catalog.pg_extension_config_dump('lockctl.pool_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('lockctl.pool_slots', '');
SELECT pg_catalog.pg_extension_config_dump('lockctl.reservations', '');
SELECT pg_catalog.pg_extension_config_dump('lockctl.hold_id_seq', '');

-- Nobody but the functions writes these tables.
REVOKE ALL ON lockctl.pools, lockctl.pool_slots, lockctl.reservations FROM PUBLIC;
REVOKE ALL ON SEQUENCE lockctl.pool_id_seq, lockctl.hold_id_seq FROM PUBLIC;

-- ---------------------------------------------------------------------------
-- Internal: the automatic slot count of a pool of a given capacity.  One
-- slot per 32 units, at least 1 and at most 64: a pool of fewer than 64
-- units has one slot and behaves exactly like a single row; a large pool
-- has enough slots for 64 concurrent buyers to rarely meet.
-- ---------------------------------------------------------------------------
CREATE FUNCTION lockctl_internal.auto_slots(capacity bigint) RETURNS integer
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN pg_catalog.int4(LEAST(64::bigint, GREATEST(1::bigint, capacity OPERATOR(pg_catalog./) 32::bigint)));

COMMENT ON FUNCTION lockctl_internal.auto_slots(bigint) IS 'lockctl: the automatic number of slots for a pool of this capacity';

-- ---------------------------------------------------------------------------
-- Internal: lock every slot row of pool `pool` (in slot order) and spread
-- its free units -- the pool's capacity less what its slots hold and have
-- confirmed -- over its first pools.slots slots, with `need` units set
-- aside on top in slot `start` % pools.slots.  Returns that slot, or NULL
-- (and changes nothing) when fewer than `need` units are free.  Slots at or
-- past pools.slots are retired: they keep what is held and confirmed in
-- them, and no free units.
--
-- It derives the free units itself, from locked rows, and only moves them:
-- no slot's held or confirmed changes, and afterwards the slot capacities
-- add up to the pool's capacity.  So no argument, and no caller (a
-- superuser calling it by hand included), can make it oversell or leak
-- units.  The caller takes the `need` units from the returned slot.
-- ---------------------------------------------------------------------------
CREATE FUNCTION lockctl_internal.rebalance(pool bigint, start integer, need bigint)
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

-- ---------------------------------------------------------------------------
-- Internal: check a resource argument (NULL, empty, too long) for function fn.
-- ---------------------------------------------------------------------------
CREATE FUNCTION lockctl_internal.check_resource(fn text, resource text) RETURNS text
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

-- ---------------------------------------------------------------------------
-- Internal: check a pool capacity argument (NULL, out of range) for function
-- fn.  The bounds are those of the pools table's CHECK.
-- ---------------------------------------------------------------------------
CREATE FUNCTION lockctl_internal.check_capacity(fn text, capacity bigint) RETURNS bigint
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

-- ---------------------------------------------------------------------------
-- Internal: check a slot count argument for function fn: 1 to max_slots(),
-- or NULL for the automatic count.
-- ---------------------------------------------------------------------------
CREATE FUNCTION lockctl_internal.check_slots(fn text, slots integer) RETURNS integer
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

-- ---------------------------------------------------------------------------
-- lockctl.create_pool(resource, capacity, slots): a new pool.  slots NULL
-- (the default) lets lockctl choose and adjust it with the capacity.
-- ---------------------------------------------------------------------------
CREATE FUNCTION lockctl.create_pool(resource text, capacity bigint, slots integer DEFAULT NULL)
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

-- ---------------------------------------------------------------------------
-- Internal: find a pool by name and lock it and all its slot rows (in slot
-- order), for the administrative functions.  Returns the pool's id.
-- ---------------------------------------------------------------------------
CREATE FUNCTION lockctl_internal.lock_pool(resource text) RETURNS bigint
    LANGUAGE plpgsql VOLATILE STRICT
    SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_variable
DECLARE
    v_pool bigint;
BEGIN
    SELECT p.id INTO v_pool FROM lockctl.pools AS p WHERE p.resource = resource FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'undefined_object',
            MESSAGE = format('pool "%s" does not exist', resource);
    END IF;
    PERFORM FROM lockctl.pool_slots AS s WHERE s.pool_id = v_pool ORDER BY s.slot FOR UPDATE;
    RETURN v_pool;
END;
$fn$;

-- ---------------------------------------------------------------------------
-- Internal: give a locked pool a new capacity and slot count, rebalancing
-- its free units over the slots.  Raises 55000 if capacity is below what is
-- held and confirmed.
-- ---------------------------------------------------------------------------
CREATE FUNCTION lockctl_internal.reshape_pool(fn text, pool bigint, resource text,
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

-- ---------------------------------------------------------------------------
-- lockctl.set_capacity(resource, capacity): change a pool's capacity, never
-- below what is held and confirmed (55000).
-- ---------------------------------------------------------------------------
CREATE FUNCTION lockctl.set_capacity(resource text, capacity bigint)
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

-- ---------------------------------------------------------------------------
-- lockctl.set_slots(resource, slots): split a pool over this many slots, or
-- NULL for the automatic count.
-- ---------------------------------------------------------------------------
CREATE FUNCTION lockctl.set_slots(resource text, slots integer)
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

-- ---------------------------------------------------------------------------
-- lockctl.drop_pool(resource): drop a pool with all its holds, live ones
-- included.  Waits for transactions that are taking units from it.
-- ---------------------------------------------------------------------------
CREATE FUNCTION lockctl.drop_pool(resource text)
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

-- ---------------------------------------------------------------------------
-- Internal: the hold that idempotency_key made on pool `pool` for the role
-- this call acts for (resource is the pool's name, for the error), or NULL
-- if none is visible; 22023 if that hold has another quantity than this
-- call asked for.  Another role's key is never seen: keys are per role.
-- ---------------------------------------------------------------------------
CREATE FUNCTION lockctl_internal.keyed_hold(pool bigint, resource text, idempotency_key text,
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

-- ---------------------------------------------------------------------------
-- lockctl.reserve(resource, quantity, holder, ttl, idempotency_key) (in C,
-- src/reserve_sale.c, defined below; lockctl_internal.reserve_by_sql here
-- does every case by statement, and raises every error): take a
-- hold of quantity units for ttl.  Returns its id, or NULL when fewer than
-- quantity units are free in the whole pool.  The hold belongs to the role
-- the call acts for; so does its idempotency key.  53400 when that role is
-- at one of its caps (lockctl.max_holds_per_role,
-- lockctl.max_kept_holds_per_role).
--
-- Three ways to get units, cheapest first (docs/reservations.md, "Hot pools"):
--   1. fast: the first slot from this backend's own one on that has enough
--      free units and that no one else has locked (SKIP LOCKED, no wait);
--   2. middle: wait for the nearest slot that has enough free units;
--   3. slow: lock every slot of the pool in slot order, count the free
--      units exactly, and if they are enough move them around so that the
--      hold fits in one slot (and the rest is spread evenly again).
-- Each runs in a subtransaction that is rolled back when it finds too few
-- units, so that a sold-out answer leaves no slot locked.
-- ---------------------------------------------------------------------------
CREATE FUNCTION lockctl_internal.reserve_by_sql(resource text, quantity bigint DEFAULT 1,
                                               holder text DEFAULT NULL,
                                               ttl interval DEFAULT '00:05:00'::interval,
                                               idempotency_key text DEFAULT NULL)
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
    SET plan_cache_mode = force_generic_plan
    SET enable_seqscan = off
    SET enable_bitmapscan = off
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

-- ---------------------------------------------------------------------------
-- Internal: explain why hold `id` could not be confirmed, cancelled or
-- extended.  Returns its status when that is not an error for `action`.
-- A hold of a role whose privileges the caller lacks is reported exactly
-- as one that does not exist: its state is not the caller's to learn.
-- ---------------------------------------------------------------------------
CREATE FUNCTION lockctl_internal.hold_state(action text, id bigint, ok_status text[]) RETURNS text
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

-- ---------------------------------------------------------------------------
-- lockctl.confirm(id) (in C, src/reserve_sale.c, defined below;
-- lockctl_internal.confirm_by_sql here does every case by statement, and
-- raises every error): make a live hold permanent.  Returns true, or false
-- if it was confirmed already (a safe retry); 55000 if it expired (even if
-- the worker has not got to it yet) or was cancelled.  Only for the role
-- that took it and roles with its privileges (42704 for the others, as for
-- a missing id), like cancel and extend.
-- ---------------------------------------------------------------------------
CREATE FUNCTION lockctl_internal.confirm_by_sql(id bigint)
    RETURNS boolean
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
    SET plan_cache_mode = force_generic_plan
    SET enable_seqscan = off
    SET enable_bitmapscan = off
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

-- ---------------------------------------------------------------------------
-- A sale's two calls in C (src/reserve_sale.c): the common case through
-- the direct paths, every other handed, before anything is written, to
-- reserve_by_sql and confirm_by_sql above.  A step that must be done by
-- statement after the first write is done by these two (and by
-- lockctl_internal.charge_holder, src/reserve_limits.sql): the INSERT of
-- reserve_by_sql's no-key path and confirm_by_sql's UPDATE of the slot.
-- SECURITY DEFINER without SET clauses: the C resolves no name through
-- search_path, and every function it calls sets its own.
-- ---------------------------------------------------------------------------
CREATE FUNCTION lockctl.reserve(resource text, quantity bigint DEFAULT 1,
                                holder text DEFAULT NULL,
                                ttl interval DEFAULT '00:05:00'::interval,
                                idempotency_key text DEFAULT NULL)
    RETURNS bigint
    LANGUAGE c VOLATILE SECURITY DEFINER
    AS 'MODULE_PATHNAME', 'lockctl_reserve';

CREATE FUNCTION lockctl.confirm(id bigint)
    RETURNS boolean
    LANGUAGE c VOLATILE SECURITY DEFINER
    AS 'MODULE_PATHNAME', 'lockctl_confirm';

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

-- ---------------------------------------------------------------------------
-- lockctl.cancel(id): end a live hold and give its units back.  Returns
-- true, or false if it had already been cancelled or expired (the units
-- are back either way); 55000 for a confirmed hold.
-- ---------------------------------------------------------------------------
CREATE FUNCTION lockctl.cancel(id bigint)
    RETURNS boolean
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    SET plan_cache_mode = force_generic_plan
    SET enable_seqscan = off
    SET enable_bitmapscan = off
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

-- ---------------------------------------------------------------------------
-- lockctl.extend(id, ttl): a live hold now expires ttl from now.  Returns
-- the new expiry; 55000 if it expired, was cancelled or is confirmed.
-- ---------------------------------------------------------------------------
CREATE FUNCTION lockctl.extend(id bigint, ttl interval)
    RETURNS timestamp with time zone
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    SET plan_cache_mode = force_generic_plan
    SET enable_seqscan = off
    SET enable_bitmapscan = off
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

-- ---------------------------------------------------------------------------
-- lockctl.available(resource): units neither held nor confirmed, as this
-- transaction's snapshot sees them.
-- ---------------------------------------------------------------------------
CREATE FUNCTION lockctl.available(resource text)
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

-- ---------------------------------------------------------------------------
-- lockctl_internal.expire_holds(batch_size): the expiry worker's pass, one batch, in
-- the caller's transaction.  Expires up to batch_size live holds whose time
-- is up, oldest first; gives their units back; NOTIFY lockctl_expired with
-- each id.  Returns how many it expired.
--
-- It never waits for another transaction: a hold whose row or whose slot
-- row another transaction has locked (a confirm or cancel in flight, a
-- reserve in a transaction left open, a prepared transaction) is skipped
-- (SKIP LOCKED on both), and taken at a later pass, once that transaction
-- is over; the batch is filled from the holds behind it, so that nothing
-- locked stops the expiry of the rest.
-- ---------------------------------------------------------------------------
CREATE FUNCTION lockctl_internal.expire_holds(batch_size integer)
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

-- ---------------------------------------------------------------------------
-- lockctl_internal.purge_holds(retention, batch_size): delete up to batch_size holds
-- that were cancelled or expired more than retention ago.  Confirmed holds
-- are never purged: the pools' confirmed units are their sum.  Returns how
-- many it deleted.
-- ---------------------------------------------------------------------------
CREATE FUNCTION lockctl_internal.purge_holds(retention interval, batch_size integer)
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

-- ---------------------------------------------------------------------------
-- Views: what anyone may read.
-- ---------------------------------------------------------------------------
CREATE VIEW lockctl.pool_status AS
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

COMMENT ON VIEW lockctl.pool_status IS 'lockctl: every pool with its capacity, units held, confirmed and available, and counters of holds';

-- A role sees the holds taken by roles whose privileges it has (its own,
-- those of roles it is a member of with INHERIT; superusers: all), the
-- very holds it may confirm, cancel and extend.  Members of
-- pg_read_all_stats see every hold, for monitoring: that it exists, its
-- pool, quantity, role, state and times, but not the holder or the
-- idempotency key of another role's hold.  security_barrier keeps a
-- caller's own leaky WHERE clauses from seeing the others.
CREATE VIEW lockctl.holds WITH (security_barrier) AS
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

COMMENT ON FUNCTION lockctl_internal.rebalance(bigint, integer, bigint) IS 'lockctl internal: lock a pool''s slots and spread its free units over them';
COMMENT ON FUNCTION lockctl_internal.check_resource(text, text) IS 'lockctl internal: check a resource argument';
COMMENT ON FUNCTION lockctl_internal.check_capacity(text, bigint) IS 'lockctl internal: check a capacity argument';
COMMENT ON FUNCTION lockctl_internal.check_slots(text, integer) IS 'lockctl internal: check a slot count argument';
COMMENT ON FUNCTION lockctl_internal.keyed_hold(bigint, text, text, bigint) IS 'lockctl internal: the hold an idempotency key made on a pool';
COMMENT ON FUNCTION lockctl_internal.lock_pool(text) IS 'lockctl internal: lock a pool and its slots, in order';
COMMENT ON FUNCTION lockctl_internal.reshape_pool(text, bigint, text, bigint, integer, boolean) IS 'lockctl internal: new capacity or slot count for a locked pool';
COMMENT ON FUNCTION lockctl_internal.hold_state(text, bigint, text[]) IS 'lockctl internal: explain why a hold cannot be confirmed, cancelled or extended';
COMMENT ON FUNCTION lockctl.create_pool(text, bigint, integer) IS 'lockctl: create a reservation pool';
COMMENT ON FUNCTION lockctl.set_capacity(text, bigint) IS 'lockctl: change a pool''s capacity, never below what is held and confirmed';
COMMENT ON FUNCTION lockctl.set_slots(text, integer) IS 'lockctl: split a pool over this many slots (NULL: automatic)';
COMMENT ON FUNCTION lockctl.drop_pool(text) IS 'lockctl: drop a pool and all its holds';
COMMENT ON FUNCTION lockctl.reserve(text, bigint, text, interval, text) IS 'lockctl: take a hold on a pool; NULL when not enough is available';
COMMENT ON FUNCTION lockctl.confirm(bigint) IS 'lockctl: make a live hold permanent';
COMMENT ON FUNCTION lockctl_internal.reserve_by_sql(text, bigint, text, interval, text) IS 'lockctl internal: lockctl.reserve by statement (every case, every error)';
COMMENT ON FUNCTION lockctl_internal.confirm_by_sql(bigint) IS 'lockctl internal: lockctl.confirm by statement (every case, every error)';
COMMENT ON FUNCTION lockctl_internal.insert_hold_by_sql(bigint, integer, bigint, text, name, timestamp with time zone, timestamp with time zone) IS 'lockctl internal: insert a live hold by statement';
COMMENT ON FUNCTION lockctl_internal.confirm_slot_by_sql(bigint, integer, bigint) IS 'lockctl internal: move units of a slot from held to confirmed by statement';
COMMENT ON FUNCTION lockctl.cancel(bigint) IS 'lockctl: end a hold and give its units back';
COMMENT ON FUNCTION lockctl.extend(bigint, interval) IS 'lockctl: a live hold now expires ttl from now';
COMMENT ON FUNCTION lockctl.available(text) IS 'lockctl: units of a pool neither held nor confirmed';
COMMENT ON FUNCTION lockctl_internal.expire_holds(integer) IS 'lockctl internal: expire up to batch_size due holds (the expiry worker''s pass)';
COMMENT ON FUNCTION lockctl_internal.purge_holds(interval, integer) IS 'lockctl internal: delete up to batch_size holds finished more than retention ago';

-- ---------------------------------------------------------------------------
-- Privileges (README.md, "Privileges"): anyone may reserve, and confirm,
-- cancel and extend its own holds (and those of roles whose privileges it
-- has), and read; creating, resizing and dropping pools is for superusers
-- and whoever they grant it to; expiring and purging is the worker's.
-- ---------------------------------------------------------------------------
REVOKE ALL ON FUNCTION lockctl_internal.auto_slots(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION lockctl_internal.rebalance(bigint, integer, bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION lockctl_internal.check_resource(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION lockctl_internal.check_capacity(text, bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION lockctl_internal.check_slots(text, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION lockctl_internal.keyed_hold(bigint, text, text, bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION lockctl_internal.lock_pool(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION lockctl_internal.reshape_pool(text, bigint, text, bigint, integer, boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION lockctl_internal.hold_state(text, bigint, text[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION lockctl_internal.reserve_by_sql(text, bigint, text, interval, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION lockctl_internal.confirm_by_sql(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION lockctl_internal.insert_hold_by_sql(bigint, integer, bigint, text, name, timestamp with time zone, timestamp with time zone) FROM PUBLIC;
REVOKE ALL ON FUNCTION lockctl_internal.confirm_slot_by_sql(bigint, integer, bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION lockctl.create_pool(text, bigint, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION lockctl.set_capacity(text, bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION lockctl.set_slots(text, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION lockctl.drop_pool(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION lockctl_internal.expire_holds(integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION lockctl_internal.purge_holds(interval, integer) FROM PUBLIC;

REVOKE ALL ON FUNCTION lockctl.reserve(text, bigint, text, interval, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION lockctl.confirm(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION lockctl.cancel(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION lockctl.extend(bigint, interval) FROM PUBLIC;
REVOKE ALL ON FUNCTION lockctl.available(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION lockctl.reserve(text, bigint, text, interval, text) TO PUBLIC;
GRANT EXECUTE ON FUNCTION lockctl.confirm(bigint) TO PUBLIC;
GRANT EXECUTE ON FUNCTION lockctl.cancel(bigint) TO PUBLIC;
GRANT EXECUTE ON FUNCTION lockctl.extend(bigint, interval) TO PUBLIC;
GRANT EXECUTE ON FUNCTION lockctl.available(text) TO PUBLIC;
GRANT SELECT ON lockctl.pool_status, lockctl.holds TO PUBLIC;
GRANT SELECT ON lockctl.hold_lifetime_histogram TO PUBLIC;
