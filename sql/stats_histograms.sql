--
-- Latency histograms: lockctl.lease_wait_histogram (lease waits, from
-- shared memory, per server) and lockctl.hold_lifetime_histogram (how long
-- the kept finished holds lasted, over what lockctl.holds shows the
-- caller).  Other tests of the run wait for leases too, so the lease
-- checks compare counts before and after.  A wait ended by another
-- session's release, a cancel and a termination are in
-- t/021_lease_wait.pl, one ended by the holder's expiry in
-- specs/lease_wait_histogram.spec; the exporter's view of both in
-- monitoring/test_exporter.py.
--
SET client_min_messages = warning;
CREATE ROLE regress_hist_alice;
CREATE ROLE regress_hist_bob;
CREATE ROLE regress_hist_carol IN ROLE pg_read_all_stats;

-- The shapes: every outcome (status) with the same ascending bounds, the
-- last +Infinity.
SELECT outcome, count(*) AS buckets, min(le) AS first_le,
       max(le) FILTER (WHERE le <> 'Infinity') AS last_finite_le,
       max(le) AS last_le
  FROM lockctl.lease_wait_histogram GROUP BY outcome ORDER BY outcome;
SELECT string_agg(le::text, ' ' ORDER BY le) AS lease_wait_bounds
  FROM lockctl.lease_wait_histogram WHERE outcome = 'granted';
SELECT status, count(*) AS buckets, string_agg(le::text, ' ' ORDER BY le) AS bounds
  FROM lockctl.hold_lifetime_histogram GROUP BY status ORDER BY status;
SELECT attname, format_type(atttypid, atttypmod)
  FROM pg_attribute
 WHERE attrelid IN ('lockctl.lease_wait_histogram'::regclass, 'lockctl.hold_lifetime_histogram'::regclass)
   AND attnum > 0
 ORDER BY attrelid::regclass::text, attnum;
-- Both are readable by every role.
SELECT c.oid::regclass AS view, has_table_privilege('public', c.oid, 'SELECT') AS public_select
  FROM pg_class c
 WHERE c.oid IN ('lockctl.lease_wait_histogram'::regclass, 'lockctl.hold_lifetime_histogram'::regclass)
 ORDER BY c.relname;

-- Lease waits.  An acquire that does not wait is not counted; one that
-- runs out of wait is a timed-out wait; one that waits for an expiry and
-- gets the lease is a granted one; one cancelled (statement_timeout) is a
-- cancelled one.
CREATE TEMP TABLE before AS SELECT * FROM lockctl.lease_wait_histogram;
SELECT lockctl.acquire('hist-a', 'holder', '150 ms') > 0 AS held;
SELECT lockctl.acquire('hist-a', 'other', '1 s') AS no_wait;
SELECT lockctl.acquire('hist-a', 'other', '1 s', '20 ms') AS timed_out;
SELECT lockctl.acquire('hist-a', 'other', '10 s', '10 s') > 0 AS granted_after_expiry;
SET statement_timeout = '100ms';
SELECT lockctl.acquire('hist-a', 'third', '1 s', '10 s');
RESET statement_timeout;
SELECT a.outcome, a.le, a.waits - b.waits AS new_waits
  FROM lockctl.lease_wait_histogram a JOIN before b USING (outcome, le)
 WHERE a.le IN (0.005, 'Infinity')
 ORDER BY a.outcome, a.le;
-- The sums grew by at least what was waited: 20 ms, about 150 ms, 100 ms.
SELECT a.outcome, a.sum_seconds - b.sum_seconds >= w AS sum_grew
  FROM lockctl.lease_wait_histogram a JOIN before b USING (outcome, le)
  JOIN (VALUES ('timed_out', 0.02), ('granted', 0.1), ('cancelled', 0.09)) AS x (outcome, w) USING (outcome)
 WHERE a.le = 'Infinity'
 ORDER BY 1;
-- Cumulative: never less than the bucket before, the same sum on every row.
SELECT count(*) AS out_of_order
  FROM (SELECT outcome, waits, lag(waits) OVER (PARTITION BY outcome ORDER BY le) AS prev,
               sum_seconds, first_value(sum_seconds) OVER (PARTITION BY outcome) AS first_sum
          FROM lockctl.lease_wait_histogram) AS h
 WHERE waits < prev OR sum_seconds <> first_sum;
-- Every wait that ended is in it once: the +Inf counts add up to
-- lease_stats' waits less those still waiting (none here).
SELECT (SELECT waits - waiting FROM lockctl.lease_stats)
       = (SELECT sum(waits) FROM lockctl.lease_wait_histogram WHERE le = 'Infinity') AS adds_up;
SELECT lockctl.force_release('hist-a');

-- Hold lifetimes: alice's holds, one confirmed at once, one confirmed two
-- minutes after it was taken (created moved back), one cancelled.
SELECT lockctl.create_pool('hist-pool', 10);
SET ROLE regress_hist_alice;
CREATE TEMP TABLE h AS
    SELECT lockctl.reserve('hist-pool', 1, 'a', '10 min') AS quick,
           lockctl.reserve('hist-pool', 1, 'b', '10 min') AS slow,
           lockctl.reserve('hist-pool', 1, 'c', '10 min') AS dropped,
           lockctl.reserve('hist-pool', 1, 'd', '10 min') AS live;
SELECT lockctl.confirm(quick), lockctl.confirm(slow), lockctl.cancel(dropped) FROM h;
RESET ROLE;
UPDATE lockctl.reservations r SET created = r.finished - interval '2 min'
  FROM h WHERE r.id = h.slow;
SET ROLE regress_hist_alice;
-- Alice sees her own three finished holds; the live one is not in it.
SELECT status, le, holds, round(sum_seconds) AS sum_seconds
  FROM lockctl.hold_lifetime_histogram
 WHERE le IN (1, 60, 300, 'Infinity')
 ORDER BY status, le;
-- Bob, another role, sees none of them.
SET ROLE regress_hist_bob;
SELECT sum(holds) FILTER (WHERE le = 'Infinity') AS bob_sees FROM lockctl.hold_lifetime_histogram;
-- Carol (pg_read_all_stats) sees every hold, as the superuser does.
RESET ROLE;
CREATE TEMP TABLE all_holds AS SELECT * FROM lockctl.hold_lifetime_histogram;
GRANT SELECT ON all_holds TO regress_hist_carol;
SET ROLE regress_hist_carol;
SELECT count(*) AS rows, count(*) FILTER (WHERE c.holds = a.holds AND c.sum_seconds = a.sum_seconds) AS same,
       max(c.holds) FILTER (WHERE c.le = 'Infinity') >= 2 AS sees_holds
  FROM lockctl.hold_lifetime_histogram c JOIN all_holds a USING (status, le);
RESET ROLE;
SELECT count(*) AS out_of_order
  FROM (SELECT holds, lag(holds) OVER (PARTITION BY status ORDER BY le) AS prev
          FROM lockctl.hold_lifetime_histogram) AS h
 WHERE holds < prev;

SELECT lockctl.drop_pool('hist-pool');
DROP TABLE h, all_holds, before;
DROP ROLE regress_hist_alice, regress_hist_bob, regress_hist_carol;
