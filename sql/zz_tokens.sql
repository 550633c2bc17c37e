-- Fencing tokens' state, the database's high-water mark, raise_token_floor
-- and era-tagged hold ids (src/lease_token.c, src/lease_mark.c).  What
-- happens across promotions, clones, pg_upgrade and restores is in
-- t/06x_fencing_*.pl.  Numbers that depend on how often the temporary
-- server started are never shown; they are compared.  Named zz_ to run
-- last: it moves the server to a new era, which the other tests' hold ids
-- would show.
\set VERBOSITY terse
\set SHOW_CONTEXT never

-- e(statement): its result, or its SQLSTATE, message and detail, with long
-- numbers (tokens, ids) shown as N.
CREATE FUNCTION pg_temp.e(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE r text; det text;
BEGIN
    EXECUTE stmt INTO r;
    RETURN coalesce(nullif(r, ''), 'ok');
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS det = PG_EXCEPTION_DETAIL;
    RETURN regexp_replace(SQLSTATE || ': ' || SQLERRM || coalesce(' | ' || nullif(det, ''), ''),
                          '\d{6,}', 'N', 'g');
END $$;

-- A fresh primary on timeline 1, not made by pg_upgrade: era 1.
SELECT timeline, era, from_pg_upgrade FROM lockctl.token_state();

-- A grant is at or above the announced next token, and carries the era and
-- epoch; afterwards the database's mark is this server's and covers it.
SELECT next_token AS before_grant FROM lockctl.token_state() \gset
SELECT lockctl.acquire('lt-a', 'o', '1 hour') AS a \gset
SELECT :a >= :before_grant AS at_or_above_next,
       :a >> 48 = era AS era_bits, (:a >> 28) & 1048575 = epoch AS epoch_bits,
       mark_current, mark >> 48 = era AS mark_era, (mark >> 28) & 1048575 >= epoch AS mark_covers,
       mark & 268435455 = timeline AS mark_timeline
  FROM lockctl.token_state();
SELECT last_value = (SELECT system_identifier FROM pg_control_system()) AS mark_sysid
  FROM lockctl.token_mark_sysid;

-- raise_token_floor: every later token is above the one given, live leases
-- of the same era stay live, and the mark moves along.
SELECT lockctl.raise_token_floor(:a + (20::bigint << 28)) AS floor \gset
SELECT :floor > :a + (20::bigint << 28) AS floor_above,
       (:floor >> 28) & 1048575 = ((:a >> 28) & 1048575) + 21 AS next_epoch;
SELECT lockctl.acquire('lt-b', 'o', '1 hour') AS b \gset
SELECT :b >= :floor AS grant_above_floor;
-- counted and shared holders take their tokens from the same sequence
SELECT lockctl.acquire_shared('lt-s', 'o', '1 hour') AS s \gset
SELECT lockctl.acquire('lt-n', 'o', '1 hour', permits => 2) AS n \gset
SELECT :s > :b AND :n > :s AS holder_tokens_rise;
SELECT count(*) AS still_live FROM lockctl.lease('lt-a');
SELECT mark_current FROM lockctl.token_state();
-- A floor below the current one changes nothing but the mark.
SELECT lockctl.raise_token_floor(0) = next_token AS no_move FROM lockctl.token_state();
SELECT pg_temp.e($$SELECT lockctl.raise_token_floor(NULL)$$);
SELECT pg_temp.e($$SELECT lockctl.raise_token_floor(-1)$$);

-- A mark that is not this line's and lies above it (a database brought
-- over from another cluster) raises every later token above it: a new
-- session (the mark is checked once per session) finds it.
SELECT era AS era_before FROM lockctl.token_state() \gset
SELECT setval('lockctl.token_mark', ((:era_before + 2)::bigint << 48) | (7::bigint << 28) | 1) > 0 AS set_mark,
       setval('lockctl.token_mark_sysid', 12345) > 0 AS set_sysid;
\c
\set VERBOSITY terse
\set SHOW_CONTEXT never
-- e(statement): its result, or its SQLSTATE, message and detail, with long
-- numbers (tokens, ids) shown as N.
CREATE FUNCTION pg_temp.e(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE r text; det text;
BEGIN
    EXECUTE stmt INTO r;
    RETURN coalesce(nullif(r, ''), 'ok');
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS det = PG_EXCEPTION_DETAIL;
    RETURN regexp_replace(SQLSTATE || ': ' || SQLERRM || coalesce(' | ' || nullif(det, ''), ''),
                          '\d{6,}', 'N', 'g');
END $$;
-- a read-only transaction takes no lease (25006, as the roles' rules say),
-- and writes no mark
BEGIN READ ONLY;
SELECT pg_temp.e($$SELECT lockctl.acquire('lt-c', 'o', '1 hour')$$) AS read_only;
COMMIT;
SELECT lockctl.acquire('lt-c', 'o', '1 hour') AS c \gset
SELECT :c >> 48 = :era_before + 2 AS era_raised, (:c >> 28) & 1048575 = 8 AS epoch_above_mark,
       era = :era_before + 2 AS server_era, mark_current
  FROM lockctl.token_state();
SELECT last_value = (SELECT system_identifier FROM pg_control_system()) AS mark_sysid_ours
  FROM lockctl.token_mark_sysid;
-- leases of the era left behind are no longer live
SELECT count(*) AS old_era_leases FROM lockctl.leases WHERE resource IN ('lt-a', 'lt-b');
SELECT pg_temp.e(format('SELECT lockctl.renew(%L, %s)', 'lt-a', :a)) AS renew_old_era;
SELECT pg_temp.e(format('SELECT lockctl.fence(%L, %s)', 'lt-b', :b)) AS fence_old_era;
SELECT pg_temp.e(format('SELECT lockctl.acquire(%L, %L) > %s', 'lt-b', 'o', :b)) AS same_owner_new_token;
-- and so are counted and shared holders: not shown, not renewed or fenced,
-- a new token for the same owner, and no longer in an exclusive grant's way
SELECT count(*) AS old_era_holders FROM lockctl.leases WHERE resource IN ('lt-s', 'lt-n');
SELECT pg_temp.e(format('SELECT lockctl.renew(%L, %s)', 'lt-s', :s)) AS renew_old_era_shared;
SELECT pg_temp.e(format('SELECT lockctl.fence(%L, %s)', 'lt-n', :n)) AS fence_old_era_counted;
SELECT pg_temp.e(format('SELECT lockctl.acquire(%L, %L, permits => 2) > %s', 'lt-n', 'o', :n)) AS counted_same_owner_new_token;
SELECT pg_temp.e(format('SELECT lockctl.acquire(%L, %L) > %s', 'lt-s', 'o', :s)) AS exclusive_over_old_shared;

-- Hold ids carry the era; a missing hold of another era says why.
SELECT lockctl.create_pool('lt-pool', 5);
SELECT lockctl.reserve('lt-pool', 1, 'h') >> 48 = era AS hold_id_era FROM lockctl.token_state();
SELECT pg_temp.e(format('SELECT lockctl.confirm(%s)', (1::bigint << 48) | 1));
SELECT pg_temp.e('SELECT lockctl.confirm(123456789)');
SELECT lockctl.drop_pool('lt-pool');

-- era_nextval: internal, and bounded to 48 bits of sequence.
CREATE TEMP SEQUENCE lt_seq;
SELECT lockctl_internal.era_nextval('lt_seq') >> 48 = era AS era_tagged,
       lockctl_internal.era_nextval('lt_seq') & 281474976710655 AS seq_value
  FROM lockctl.token_state();
SELECT setval('lt_seq', 281474976710655);
SELECT pg_temp.e($$SELECT lockctl_internal.era_nextval('lt_seq')$$);
SELECT lockctl_internal.era_nextval(NULL) IS NULL AS strict;

-- The sequences are dumped with the database, and nobody else writes them.
SELECT c::regclass AS dumped FROM pg_extension, unnest(extconfig) AS c
 WHERE extname = 'lockctl' AND c::regclass::text LIKE 'lockctl.token_mark%' ORDER BY 1::text;
CREATE ROLE regress_lockctl_lt;
SET ROLE regress_lockctl_lt;
SELECT pg_temp.e($$SELECT lockctl.raise_token_floor(1)$$) AS raise_floor;
SELECT pg_temp.e($$SELECT lockctl_internal.era_nextval('lockctl.hold_id_seq')$$) AS era_nextval;
SELECT pg_temp.e($$SELECT setval('lockctl.token_mark', 1)$$) AS setval_mark;
SELECT era IS NOT NULL AS token_state_for_all FROM lockctl.token_state();
RESET ROLE;
DROP ROLE regress_lockctl_lt;
SELECT lockctl.release('lt-c', :c);

-- The mark is written before the grant and stays written when the
-- transaction that wrote it rolls back (sequences are not transactional).
SELECT setval('lockctl.token_mark', -1) AS unmarked;
\c
BEGIN;
SELECT lockctl.acquire('lt-d', 'o', '1 hour') IS NOT NULL AS granted;
ROLLBACK;
SELECT mark_current, mark > 0 AS marked FROM lockctl.token_state();
