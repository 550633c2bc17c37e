-- Calendars: time-range holds that never overlap beyond capacity; their
-- life cycle through confirm, cancel, extend and the worker's batches;
-- free gaps; every error; who may act.  Holds have long ttls (the
-- temporary server runs the expiry worker); holds are made due inside a
-- transaction that keeps them locked, so the worker cannot take them first.
\set VERBOSITY terse
\set SHOW_CONTEXT never

CREATE FUNCTION pg_temp.e(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE r text;
BEGIN
    EXECUTE stmt INTO r;
    RETURN coalesce(nullif(r, ''), 'ok');
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || regexp_replace(regexp_replace(SQLERRM, '\d{6,}', 'N', 'g'),
                                              '(hold) \d+', '\1 N', 'g');
END $$;

-- The invariant: at no instant do more live holds of a calendar cover it
-- than its capacity.  Rows here are violations.
CREATE VIEW pg_temp.overbooked AS
SELECT c.resource, lower(r.during) AS at, count(*) AS live
  FROM lockctl.calendars c
  JOIN lockctl.range_reservations r ON r.calendar_id = c.id
  JOIN lockctl.range_reservations o ON o.calendar_id = c.id AND o.during @> lower(r.during)
 WHERE r.status IN ('held', 'confirmed') AND o.status IN ('held', 'confirmed')
 GROUP BY c.resource, c.capacity, r.id, r.during
HAVING count(*) > c.capacity;

SELECT lockctl.create_calendar('room-12');
SELECT lockctl.create_calendar('rooms-3', 3);
SELECT resource, capacity, held, confirmed FROM lockctl.calendar_status ORDER BY resource;

-- Capacity 1: an overlapping range is not taken (NULL, not an error);
-- ranges that only meet ('[)': the end is not part of the range) are.
SELECT lockctl.reserve_range('room-12', '[2030-06-01 14:00+00, 2030-06-01 15:00+00)', 'alice', '1 hour') AS a1 \gset
SELECT lockctl.reserve_range('room-12', '[2030-06-01 14:30+00, 2030-06-01 15:30+00)', 'bob', '1 hour') IS NULL AS overlap_refused;
SELECT lockctl.reserve_range('room-12', '[2030-06-01 13:00+00, 2030-06-01 16:00+00)', 'bob', '1 hour') IS NULL AS cover_refused;
SELECT lockctl.reserve_range('room-12', '[2030-06-01 14:10+00, 2030-06-01 14:20+00)', 'bob', '1 hour') IS NULL AS inside_refused;
SELECT lockctl.reserve_range('room-12', '[2030-06-01 15:00+00, 2030-06-01 16:00+00)', 'bob', '1 hour', 'order-b') AS b1 \gset
SELECT lockctl.reserve_range('room-12', '[2030-06-01 13:00+00, 2030-06-01 14:00+00)', 'carol', '1 hour') AS c1 \gset
SELECT :b1 <> :a1 AND :c1 <> :b1 AS distinct_ids;

-- Idempotency: the same key and range give the same hold, another range
-- is 22023; keys are per calendar.
SELECT lockctl.reserve_range('room-12', '[2030-06-01 15:00+00, 2030-06-01 16:00+00)', 'bob', '1 hour', 'order-b') = :b1 AS same_hold;
SELECT pg_temp.e($$SELECT lockctl.reserve_range('room-12', '[2030-06-01 15:00+00, 2030-06-01 17:00+00)', 'bob', '1 hour', 'order-b')$$);
SELECT lockctl.reserve_range('rooms-3', '[2030-06-01 15:00+00, 2030-06-01 17:00+00)', 'bob', '1 hour', 'order-b') <> :b1 AS other_calendar_other_hold;

-- The free gaps of a window: on capacity 1, between the holds.
SELECT * FROM lockctl.available_ranges('room-12', '[2030-06-01 12:00+00, 2030-06-01 18:00+00)');

-- confirm, cancel and extend are lockctl's own, for range holds too.
SELECT lockctl.confirm(:a1) AS confirmed, lockctl.confirm(:a1) AS again;
SELECT lockctl.extend(:b1, '2 hours') > now() + interval '1 hour' AS extended;
SELECT lockctl.cancel(:c1) AS cancelled, lockctl.cancel(:c1) AS again;
SELECT pg_temp.e(format('SELECT lockctl.confirm(%s)', :c1));
SELECT pg_temp.e(format('SELECT lockctl.extend(%s, %L)', :c1, '1 hour'));
SELECT pg_temp.e(format('SELECT lockctl.cancel(%s)', :a1));
SELECT pg_temp.e(format('SELECT lockctl.extend(%s, %L)', :a1, '1 hour'));
-- Partial confirm: a range hold is one unit.
SELECT pg_temp.e(format('SELECT lockctl.confirm(%s, 2)', :b1));
SELECT pg_temp.e(format('SELECT lockctl.confirm(%s, 2)', :a1));
SELECT pg_temp.e(format('SELECT lockctl.confirm(%s, 1)', :a1));
-- A cancelled range is free again; a confirmed one never.
SELECT lockctl.reserve_range('room-12', '[2030-06-01 13:00+00, 2030-06-01 14:00+00)', 'dave', '1 hour') IS NOT NULL AS freed;
SELECT lockctl.reserve_range('room-12', '[2030-06-01 14:59+00, 2030-06-01 15:00+00)', 'dave', '1 hour') IS NULL AS confirmed_stays;
SELECT * FROM lockctl.available_ranges('room-12', '[2030-06-01 12:00+00, 2030-06-01 18:00+00)');
SELECT during, holder, status, idempotency_key FROM lockctl.calendar_holds WHERE resource = 'room-12' ORDER BY during, status;

-- Capacity 3: at most three live holds cover any instant.
SELECT lockctl.reserve_range('rooms-3', '[2030-06-01 10:00+00, 2030-06-01 12:00+00)', NULL, '1 hour') IS NOT NULL AS r1,
       lockctl.reserve_range('rooms-3', '[2030-06-01 11:00+00, 2030-06-01 13:00+00)', NULL, '1 hour') IS NOT NULL AS r2,
       lockctl.reserve_range('rooms-3', '[2030-06-01 11:30+00, 2030-06-01 11:45+00)', NULL, '1 hour') IS NOT NULL AS r3;
SELECT lockctl.reserve_range('rooms-3', '[2030-06-01 11:40+00, 2030-06-01 11:50+00)', NULL, '1 hour') IS NULL AS fourth_refused,
       lockctl.reserve_range('rooms-3', '[2030-06-01 11:45+00, 2030-06-01 11:50+00)', NULL, '1 hour') IS NOT NULL AS after_one_ends,
       lockctl.reserve_range('rooms-3', '[2030-06-01 12:00+00, 2030-06-01 14:00+00)', NULL, '1 hour') IS NOT NULL AS third_after_noon;
-- Where 15:00-17:00 (order-b) is: two free from 13:00 to 14:00, and so on.
SELECT * FROM lockctl.available_ranges('rooms-3', '[2030-06-01 09:00+00, 2030-06-01 18:00+00)');
SELECT resource, capacity, held, confirmed FROM lockctl.calendar_status ORDER BY resource;
SELECT * FROM pg_temp.overbooked;

-- The worker's batches: a due range hold expires (even before that, it
-- can be neither confirmed nor extended), its range is free again, and it
-- is purged after the retention.
SELECT lockctl.reserve_range('room-12', '[2030-06-02 09:00+00, 2030-06-02 10:00+00)', 'erin', '1 hour') AS d1 \gset
SELECT lockctl.reserve_range('room-12', '[2030-06-02 10:00+00, 2030-06-02 11:00+00)', 'fred', '1 hour') AS d2 \gset
BEGIN;
UPDATE lockctl.range_reservations SET expires = now() - interval '1 second' WHERE id IN (:d1, :d2);
SELECT pg_temp.e(format('SELECT lockctl.confirm(%s)', :d1));
SELECT pg_temp.e(format('SELECT lockctl.extend(%s, %L)', :d1, '1 hour'));
-- Until the worker passes, a due hold still holds its range.
SELECT lockctl.reserve_range('room-12', '[2030-06-02 09:30+00, 2030-06-02 09:45+00)') IS NULL AS still_held;
SELECT lockctl_internal.expire_due_ranges(1) = ARRAY[:d1]::bigint[] AS first_batch;
SELECT lockctl_internal.expire_holds(100) >= 1 AS second_batch;
SELECT count(*) AS left_due FROM lockctl.range_reservations WHERE status = 'held' AND expires <= now();
SELECT pg_temp.e(format('SELECT lockctl.confirm(%s)', :d1));
SELECT lockctl.cancel(:d2) AS cancel_expired;
COMMIT;
SELECT lockctl.reserve_range('room-12', '[2030-06-02 09:30+00, 2030-06-02 09:45+00)') IS NOT NULL AS free_again;
SELECT status, finished IS NOT NULL AS finished FROM lockctl.calendar_holds WHERE id IN (:d1, :d2) ORDER BY id;
BEGIN;
UPDATE lockctl.range_reservations SET finished = now() - interval '2 days' WHERE id IN (:d1, :d2, :c1);
SELECT lockctl_internal.purge_ranges('1 day', 100) AS purged;
SELECT count(*) AS kept FROM lockctl.range_reservations WHERE id IN (:a1, :d1, :d2, :c1);
ROLLBACK;

-- Bad input: each with its own error, nothing taken.
SELECT pg_temp.e($$SELECT lockctl.reserve_range('room-12', NULL)$$);
SELECT pg_temp.e($$SELECT lockctl.reserve_range('room-12', 'empty')$$);
SELECT pg_temp.e($$SELECT lockctl.reserve_range('room-12', '[2030-06-03 10:00+00, 2030-06-03 10:00+00)')$$);
SELECT pg_temp.e($$SELECT lockctl.reserve_range('room-12', tstzrange('2030-06-03 11:00+00', '2030-06-03 10:00+00'))$$);
SELECT pg_temp.e($$SELECT lockctl.reserve_range('room-12', '[2030-06-03 10:00+00,)')$$);
SELECT pg_temp.e($$SELECT lockctl.reserve_range('room-12', '(,2030-06-03 10:00+00)')$$);
SELECT pg_temp.e($$SELECT lockctl.reserve_range('room-12', '[-infinity, 2030-06-03 10:00+00)')$$);
SELECT pg_temp.e($$SELECT lockctl.reserve_range('room-12', '[2030-06-03 10:00+00, infinity)')$$);
SELECT pg_temp.e($$SELECT lockctl.reserve_range('room-12', '[2030-06-03 10:00+00, 2030-06-03 11:00+00]')$$);
SELECT pg_temp.e($$SELECT lockctl.reserve_range('room-12', '(2030-06-03 10:00+00, 2030-06-03 11:00+00)')$$);
SELECT pg_temp.e($$SELECT lockctl.reserve_range('room-12', 'not a range')$$);
SELECT pg_temp.e($$SELECT lockctl.reserve_range(NULL, '[2030-06-03 10:00+00, 2030-06-03 11:00+00)')$$);
SELECT pg_temp.e($$SELECT lockctl.reserve_range('', '[2030-06-03 10:00+00, 2030-06-03 11:00+00)')$$);
SELECT pg_temp.e(format('SELECT lockctl.reserve_range(%L, %L)', repeat('x', 201), '[2030-06-03 10:00+00, 2030-06-03 11:00+00)'));
SELECT pg_temp.e($$SELECT lockctl.reserve_range('room-12', '[2030-06-03 10:00+00, 2030-06-03 11:00+00)', '')$$);
SELECT pg_temp.e(format('SELECT lockctl.reserve_range(%L, %L, %L)', 'room-12', '[2030-06-03 10:00+00, 2030-06-03 11:00+00)', repeat('h', 201)));
SELECT pg_temp.e($$SELECT lockctl.reserve_range('room-12', '[2030-06-03 10:00+00, 2030-06-03 11:00+00)', 'x', NULL)$$);
SELECT pg_temp.e($$SELECT lockctl.reserve_range('room-12', '[2030-06-03 10:00+00, 2030-06-03 11:00+00)', 'x', '0 s')$$);
SELECT pg_temp.e($$SELECT lockctl.reserve_range('room-12', '[2030-06-03 10:00+00, 2030-06-03 11:00+00)', 'x', '-1 hour')$$);
SELECT pg_temp.e($$SELECT lockctl.reserve_range('room-12', '[2030-06-03 10:00+00, 2030-06-03 11:00+00)', 'x', '400 days')$$);
SELECT pg_temp.e($$SELECT lockctl.reserve_range('room-12', '[2030-06-03 10:00+00, 2030-06-03 11:00+00)', 'x', '1 hour', '')$$);
SELECT pg_temp.e(format('SELECT lockctl.reserve_range(%L, %L, %L, %L, %L)', 'room-12', '[2030-06-03 10:00+00, 2030-06-03 11:00+00)', 'x', '1 hour', repeat('k', 201)));
-- Missing calendars, and pools and calendars mistaken for each other.
SELECT lockctl.create_pool('seats-cal', 10);
SELECT pg_temp.e($$SELECT lockctl.reserve_range('no-such-calendar', '[2030-06-03 10:00+00, 2030-06-03 11:00+00)')$$);
SELECT pg_temp.e($$SELECT lockctl.reserve_range('seats-cal', '[2030-06-03 10:00+00, 2030-06-03 11:00+00)')$$);
SELECT pg_temp.e($$SELECT lockctl.reserve('room-12')$$);
SELECT pg_temp.e($$SELECT lockctl.reserve('no-such-pool')$$);
SELECT pg_temp.e($$SELECT lockctl.available_ranges('seats-cal', '[2030-06-03 10:00+00, 2030-06-03 11:00+00)')$$);
SELECT pg_temp.e($$SELECT lockctl.available_ranges('no-such-calendar', '[2030-06-03 10:00+00, 2030-06-03 11:00+00)')$$);
SELECT pg_temp.e($$SELECT lockctl.available_ranges('room-12', NULL)$$);
SELECT pg_temp.e($$SELECT lockctl.available_ranges('room-12', '[2030-06-03 10:00+00,)')$$);
SELECT pg_temp.e($$SELECT lockctl.available_ranges(NULL, '[2030-06-03 10:00+00, 2030-06-03 11:00+00)')$$);
SELECT pg_temp.e($$SELECT lockctl.create_calendar('seats-cal')$$);
SELECT pg_temp.e($$SELECT lockctl.create_calendar('room-12', 2)$$);
SELECT pg_temp.e($$SELECT lockctl.create_calendar('c-zero', 0)$$);
SELECT pg_temp.e($$SELECT lockctl.create_calendar('c-neg', -1)$$);
SELECT pg_temp.e($$SELECT lockctl.create_calendar('c-huge', 100001)$$);
SELECT pg_temp.e($$SELECT lockctl.create_calendar('c-null', NULL)$$);
SELECT pg_temp.e($$SELECT lockctl.create_calendar(NULL)$$);
SELECT pg_temp.e($$SELECT lockctl.create_calendar('')$$);
SELECT pg_temp.e($$SELECT lockctl.drop_calendar('no-such-calendar')$$);
SELECT pg_temp.e($$SELECT lockctl.drop_calendar('seats-cal')$$);
SELECT pg_temp.e($$SELECT lockctl.drop_calendar(NULL)$$);
SELECT lockctl.drop_pool('seats-cal');
SELECT * FROM pg_temp.overbooked;

-- Roles: a range hold is its role's, as any hold.  Another role sees
-- nothing and may do nothing, with the error of a hold that does not
-- exist; a role with the taker's privileges may.  Keys are per role.
CREATE ROLE regress_cal_web;
CREATE ROLE regress_cal_pay IN ROLE regress_cal_web;
CREATE ROLE regress_cal_other;
CREATE ROLE regress_cal_stats IN ROLE pg_read_all_stats;
SET ROLE regress_cal_web;
SELECT lockctl.reserve_range('room-12', '[2030-06-04 10:00+00, 2030-06-04 11:00+00)', 'web-customer', '1 hour', 'web-key') AS w1 \gset
SELECT lockctl.reserve_range('room-12', '[2030-06-04 11:00+00, 2030-06-04 12:00+00)', 'web-customer', '1 hour') AS w2 \gset
SELECT pg_temp.e($$SELECT lockctl.create_calendar('web-cal')$$);
SELECT pg_temp.e($$SELECT lockctl.drop_calendar('room-12')$$);
SELECT pg_temp.e($$SELECT * FROM lockctl.range_reservations$$);
SET ROLE regress_cal_other;
SELECT count(*) AS sees FROM lockctl.calendar_holds WHERE id IN (:w1, :w2);
SELECT pg_temp.e(format('SELECT lockctl.confirm(%s)', :w1));
SELECT pg_temp.e(format('SELECT lockctl.cancel(%s)', :w1));
SELECT pg_temp.e(format('SELECT lockctl.extend(%s, %L)', :w1, '1 hour'));
SELECT pg_temp.e(format('SELECT lockctl.confirm(%s, 1)', :w1));
SELECT pg_temp.e(format('SELECT lockctl.confirm(%s)', 9999999));
-- The same key from another role is another key (and the range is taken).
SELECT lockctl.reserve_range('room-12', '[2030-06-04 10:00+00, 2030-06-04 11:00+00)', 'x', '1 hour', 'web-key') IS NULL AS taken_range;
SELECT * FROM lockctl.available_ranges('room-12', '[2030-06-04 09:00+00, 2030-06-04 13:00+00)');
SET ROLE regress_cal_stats;
SELECT during, holder, taken_by, status, idempotency_key FROM lockctl.calendar_holds WHERE id IN (:w1, :w2) ORDER BY id;
SET ROLE regress_cal_pay;
SELECT lockctl.confirm(:w1) AS pay_confirms, lockctl.cancel(:w2) AS pay_cancels;
SELECT during, holder, taken_by, status, idempotency_key FROM lockctl.calendar_holds WHERE id IN (:w1, :w2) ORDER BY id;
RESET ROLE;
-- The role caps count range holds.
SELECT lockctl.create_pool('cal-cap', 10);
SET lockctl.max_holds_per_role = 1;
SET ROLE regress_cal_web;
SELECT lockctl.reserve_range('room-12', '[2030-06-05 10:00+00, 2030-06-05 11:00+00)', NULL, '1 hour') IS NOT NULL AS first;
SELECT pg_temp.e($$SELECT lockctl.reserve_range('room-12', '[2030-06-05 11:00+00, 2030-06-05 12:00+00)', NULL, '1 hour')$$);
SELECT pg_temp.e($$SELECT lockctl.reserve('cal-cap')$$);
RESET ROLE;
RESET lockctl.max_holds_per_role;
SELECT lockctl.drop_pool('cal-cap');

-- range_reservations_state_check holds for rows written around the
-- functions too: a range '[)', not empty, finite at both ends; finished set
-- exactly when the hold is over.  (Its range part is one C function.)
SELECT r AS during, pg_temp.e(format($$INSERT INTO lockctl.range_reservations (calendar_id, during, lane, created, expires)
                                     VALUES (%s, %L, 0, now(), now())$$, c.id, r)) AS result
  FROM lockctl.calendars AS c,
       unnest(ARRAY['[2031-01-01 10:00+00, 2031-01-01 10:00+00)', '[2031-01-01 10:00+00, 2031-01-01 11:00+00]',
                    '(2031-01-01 10:00+00, 2031-01-01 11:00+00)', '[2031-01-01 10:00+00,)',
                    '(, 2031-01-01 11:00+00)', '[-infinity, 2031-01-01 11:00+00)',
                    '[2031-01-01 10:00+00, infinity)']) WITH ORDINALITY AS u (r, n)
 WHERE c.resource = 'room-12' ORDER BY u.n;
SELECT s AS status, f IS NOT NULL AS finished, pg_temp.e(format($$INSERT INTO lockctl.range_reservations (calendar_id, during, lane, status, finished, created, expires)
                                                   VALUES (%s, '[2031-01-01 10:00+00, 2031-01-01 11:00+00)', 0, %L, %L, now(), now())$$, c.id, s, f)) AS result
  FROM lockctl.calendars AS c,
       (VALUES ('held', now()), ('confirmed', NULL), ('cancelled', NULL), ('expired', NULL)) AS v (s, f)
 WHERE c.resource = 'room-12';
SELECT pg_temp.e(format($$INSERT INTO lockctl.range_reservations (calendar_id, during, lane, created, expires)
                          VALUES (%s, '[2031-01-01 10:00+00, 2031-01-01 11:00+00)', 0, now(), now()) RETURNING 'inserted'$$, c.id))
       AS well_formed
  FROM lockctl.calendars AS c WHERE c.resource = 'room-12';

-- Dropping a calendar drops its holds; the pool's and calendar's name is free.
SELECT lockctl.drop_calendar('room-12');
SELECT lockctl.drop_calendar('rooms-3');
SELECT count(*) AS holds_left FROM lockctl.range_reservations;
SELECT pg_temp.e(format('SELECT lockctl.confirm(%s)', :b1));
SELECT lockctl.create_pool('room-12', 1);
SELECT lockctl.drop_pool('room-12');
DROP ROLE regress_cal_web, regress_cal_pay, regress_cal_other, regress_cal_stats;

-- reserve_range keeps the OIDs of lockctl.range_reservations and
-- lockctl.hold_id_seq in the session, and the indexes of the table;
-- DROP EXTENSION and CREATE EXTENSION make them anew, under new OIDs,
-- which this session's next call finds.
DROP VIEW pg_temp.overbooked;
SELECT lockctl.create_calendar('room-again');
SELECT lockctl.reserve_range('room-again', '[2031-02-01 10:00+00, 2031-02-01 11:00+00)') IS NOT NULL AS taken;
DROP EXTENSION lockctl;
CREATE EXTENSION lockctl;
SELECT lockctl.create_calendar('room-again');
SELECT lockctl.reserve_range('room-again', '[2031-02-01 10:00+00, 2031-02-01 11:00+00)') IS NOT NULL AS taken_again;
SELECT lockctl.reserve_range('room-again', '[2031-02-01 10:30+00, 2031-02-01 11:30+00)') IS NULL AS overlap_refused;
SELECT count(*) AS holds FROM lockctl.range_reservations;
SELECT lockctl.drop_calendar('room-again');
