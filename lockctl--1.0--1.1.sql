-- lockctl 1.0 -> 1.1: ALTER EXTENSION lockctl UPDATE TO '1.1'
--
-- Every change that 1.1 makes to installed objects is made here as well as
-- in src/*.sql (which build lockctl--1.1.sql), so that an updated database
-- ends with the same catalog as a fresh install; t/ checks that.

\echo Use "ALTER EXTENSION lockctl UPDATE TO '1.1'" to load this file. \quit

-- ---------------------------------------------------------------------------
-- Fencing tokens and hold ids across every way a cluster moves (issue 22):
-- the high-water mark of each database, token_state, raise_token_floor,
-- era-tagged hold ids.  As in src/lease_token.sql and src/reserve.sql.
-- ---------------------------------------------------------------------------

-- era << 48 | epoch << 28 | timeline; never set: nothing issued yet;
-- -1: tokens of lockctl 1.0, never marked (set by the 1.0 -> 1.1 update).
CREATE SEQUENCE lockctl.token_mark MINVALUE -1 START WITH -1 NO CYCLE;
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
CREATE FUNCTION lockctl.era_nextval(seq pg_catalog.regclass)
    RETURNS bigint
    LANGUAGE c VOLATILE STRICT
    AS 'MODULE_PATHNAME', 'lockctl_era_nextval';
COMMENT ON FUNCTION lockctl.era_nextval(pg_catalog.regclass) IS
    'lockctl: nextval(seq) tagged with the era of the server, so that no id is handed out twice across a failover';

GRANT EXECUTE ON FUNCTION lockctl.token_state() TO PUBLIC;
REVOKE ALL ON FUNCTION lockctl.raise_token_floor(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION lockctl.era_nextval(pg_catalog.regclass) FROM PUBLIC;

-- The tokens this database saw under lockctl 1.0 were never marked: -1 says
-- so (in a cluster made by pg_upgrade, grants wait for raise_token_floor).
SELECT pg_catalog.setval('lockctl.token_mark', -1, true);

-- Hold ids from now on carry the era (ids of 1.0 are below every one of them).
ALTER TABLE lockctl.reservations
    ALTER COLUMN id SET DEFAULT lockctl.era_nextval('lockctl.hold_id_seq'::pg_catalog.regclass);

-- A missing hold of another era says it was lost in a failover or restore.
CREATE OR REPLACE FUNCTION lockctl.hold_state(action text, id bigint, ok_status text[]) RETURNS text
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
      FROM lockctl.reservations AS r WHERE r.id = id;
    IF NOT FOUND THEN
        -- Ids carry the era of the server that took them (lockctl.era_nextval):
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
            DETAIL = 'It was never taken, or its pool was dropped, or it finished and was purged.';
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
