
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
