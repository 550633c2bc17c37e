
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
