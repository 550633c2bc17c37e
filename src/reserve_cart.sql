
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
    SET enable_seqscan = off
    SET enable_bitmapscan = off
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
    SET enable_seqscan = off
    SET enable_bitmapscan = off
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
    SET enable_seqscan = off
    SET enable_bitmapscan = off
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
