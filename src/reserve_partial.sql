
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
    SET enable_seqscan = off
    SET enable_bitmapscan = off
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
