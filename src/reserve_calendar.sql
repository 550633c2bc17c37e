
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
