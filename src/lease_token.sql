
-- ---------------------------------------------------------------------------
-- Fencing tokens and ids across every way a cluster moves
-- (src/lease_token.c, src/lease_mark.c, docs/fencing.md)
--
-- Each database keeps a high-water mark of the tokens and hold ids issued
-- in it: a value at least as high as every one of them, written (and
-- flushed) before the first of a new range is handed out.  Two sequences,
-- because sequence writes are WAL-logged, not undone by a rollback, and
-- carried by standbys, base backups, point-in-time recovery, pg_upgrade
-- and pg_dump alike.  Only lockctl's C code writes them.
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
