-- Reservations: pools, holds, their errors and their privileges.
-- Every hold here has a long ttl (the temporary server runs the expiry
-- worker); holds are made due inside a transaction that keeps them locked,
-- so the worker cannot take them first.
\set VERBOSITY terse
\set SHOW_CONTEXT never

-- e(statement): run it, and show its SQLSTATE and message if it fails.  The
-- statement runs in a subtransaction, so a failure changes nothing.
CREATE FUNCTION pg_temp.e(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE r text;
BEGIN
    EXECUTE stmt INTO r;
    RETURN coalesce(nullif(r, ''), 'ok');
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

-- Every invariant, for every pool: slots sum to the capacity, nothing is
-- oversold, and the counters are the sums over the holds.
CREATE VIEW pg_temp.broken AS
SELECT p.resource, 'slot capacities do not sum to the capacity' AS what
  FROM lockctl.pools p
 WHERE p.capacity <> (SELECT sum(s.capacity) FROM lockctl.pool_slots s WHERE s.pool_id = p.id)
UNION ALL
SELECT p.resource, 'oversold'
  FROM lockctl.pool_status p WHERE p.held + p.confirmed > p.capacity OR p.available < 0
UNION ALL
SELECT p.resource, 'held or confirmed is not the sum over holds of slot ' || s.slot
  FROM lockctl.pools p JOIN lockctl.pool_slots s ON s.pool_id = p.id
 WHERE s.held <> (SELECT coalesce(sum(r.quantity), 0) FROM lockctl.reservations r
                   WHERE r.pool_id = p.id AND r.slot = s.slot AND r.status = 'held')
    OR s.confirmed <> (SELECT coalesce(sum(r.quantity), 0) FROM lockctl.reservations r
                        WHERE r.pool_id = p.id AND r.slot = s.slot AND r.status = 'confirmed')
    OR s.holds_confirmed <> (SELECT count(*) FROM lockctl.reservations r
                              WHERE r.pool_id = p.id AND r.slot = s.slot AND r.status = 'confirmed')
UNION ALL
SELECT 'hold ' || r.id, 'hold in no slot'
  FROM lockctl.reservations r
 WHERE NOT EXISTS (SELECT FROM lockctl.pool_slots s WHERE s.pool_id = r.pool_id AND s.slot = r.slot);

-- The objects and how they are marked for pg_dump.
SELECT c.relname, c.relkind
  FROM pg_depend d JOIN pg_class c ON c.oid = d.objid
 WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'lockctl')
   AND d.classid = 'pg_class'::regclass AND c.relkind IN ('r', 'S', 'v')
   AND c.relname IN ('pools', 'pool_slots', 'reservations', 'pool_id_seq', 'hold_id_seq',
                     'pool_status', 'holds')
 ORDER BY 1;
SELECT unnest(extconfig)::regclass AS dumped FROM pg_extension WHERE extname = 'lockctl' ORDER BY 1;
SELECT indexrelid::regclass AS index, pg_get_expr(indpred, indrelid) AS predicate
  FROM pg_index WHERE indrelid = 'lockctl.reservations'::regclass ORDER BY 1;

-- create_pool
SELECT lockctl.create_pool('seats', 10);
SELECT lockctl.create_pool('stock', 1000);
SELECT lockctl.create_pool('hall', 200, 4);
SELECT lockctl.create_pool('empty', 0);
SELECT resource, capacity, held, confirmed, available, slots, auto_slots,
       holds_taken, holds_confirmed, holds_cancelled, holds_expired
  FROM lockctl.pool_status ORDER BY resource;
SELECT p.resource, s.slot, s.capacity FROM lockctl.pool_slots s JOIN lockctl.pools p ON p.id = s.pool_id
 WHERE p.resource IN ('seats', 'hall') ORDER BY 1, 2;
-- bad input
SELECT pg_temp.e($$SELECT lockctl.create_pool(NULL, 1)$$);
SELECT pg_temp.e($$SELECT lockctl.create_pool('', 1)$$);
SELECT pg_temp.e($$SELECT lockctl.create_pool(repeat('x', 201), 1)$$);
SELECT pg_temp.e($$SELECT lockctl.create_pool(repeat('x', 200), 1)$$);
SELECT pg_temp.e($$SELECT lockctl.create_pool('p', NULL)$$);
SELECT pg_temp.e($$SELECT lockctl.create_pool('p', -1)$$);
SELECT pg_temp.e($$SELECT lockctl.create_pool('p', 1000000000000001)$$);
SELECT pg_temp.e($$SELECT lockctl.create_pool('p', 10, 0)$$);
SELECT pg_temp.e($$SELECT lockctl.create_pool('p', 10, 1025)$$);
SELECT pg_temp.e($$SELECT lockctl.create_pool('seats', 5)$$);
SELECT pg_temp.e($$SELECT lockctl.drop_pool(repeat('x', 200))$$);
SELECT count(*) AS pools FROM lockctl.pools;

-- reserve and available
SELECT lockctl.reserve('seats', 3, 'alice') AS h1 \gset
SELECT lockctl.reserve('seats') AS h2 \gset
SELECT lockctl.available('seats');
SELECT lockctl.reserve('seats', 7) IS NULL AS sold_out;
SELECT lockctl.reserve('seats', 6) IS NOT NULL AS last_six;
SELECT lockctl.available('seats');
SELECT lockctl.reserve('seats') IS NULL AS sold_out;
SELECT lockctl.reserve('empty') IS NULL AS empty_pool;
SELECT lockctl.reserve('seats', 1000000) IS NULL AS more_than_capacity;
SELECT resource, quantity, holder, status, finished IS NULL AS live,
       expires - created AS ttl, idempotency_key
  FROM lockctl.holds WHERE resource = 'seats' ORDER BY id;
-- bad input
SELECT pg_temp.e($$SELECT lockctl.reserve(NULL)$$);
SELECT pg_temp.e($$SELECT lockctl.reserve('')$$);
SELECT pg_temp.e($$SELECT lockctl.reserve(repeat('x', 201))$$);
SELECT pg_temp.e($$SELECT lockctl.reserve('nope')$$);
SELECT pg_temp.e($$SELECT lockctl.reserve('stock', NULL)$$);
SELECT pg_temp.e($$SELECT lockctl.reserve('stock', 0)$$);
SELECT pg_temp.e($$SELECT lockctl.reserve('stock', -5)$$);
SELECT pg_temp.e($$SELECT lockctl.reserve('stock', 1000000000000001)$$);
SELECT pg_temp.e($$SELECT lockctl.reserve('stock', 1, repeat('h', 201))$$);
SELECT pg_temp.e($$SELECT lockctl.reserve('stock', 1, NULL, NULL)$$);
SELECT pg_temp.e($$SELECT lockctl.reserve('stock', 1, NULL, '-1 s')$$);
SELECT pg_temp.e($$SELECT lockctl.reserve('stock', 1, NULL, '0')$$);
SELECT pg_temp.e($$SELECT lockctl.reserve('stock', 1, NULL, '366 days')$$);
SELECT pg_temp.e($$SELECT lockctl.reserve('stock', 1, NULL, '1 hour', '')$$);
-- a holder is NULL or a name like the others: not empty, at most 200 bytes
SELECT pg_temp.e($$SELECT lockctl.reserve('stock', 1, '')$$);
SELECT pg_temp.e($$SELECT lockctl.reserve('stock', 1, repeat('h', 201))$$);
SELECT pg_temp.e($$SELECT lockctl.reserve('stock', 1, NULL, '1 hour', repeat('k', 201))$$);
SELECT pg_temp.e($$SELECT lockctl.available(NULL)$$);
SELECT pg_temp.e($$SELECT lockctl.available('nope')$$);
SELECT available, holds_taken FROM lockctl.pool_status WHERE resource = 'stock';

-- A reserve in a transaction that rolls back leaves no trace.
BEGIN;
SELECT lockctl.reserve('stock', 10) IS NOT NULL AS reserved;
SELECT lockctl.available('stock');
ROLLBACK;
SELECT available, holds_taken FROM lockctl.pool_status WHERE resource = 'stock';
SELECT count(*) FROM lockctl.holds WHERE resource = 'stock';

-- Idempotency: the same key on the same pool is the same hold.
SELECT lockctl.reserve('stock', 2, 'bob', '1 hour', 'order-1') AS k1 \gset
SELECT lockctl.reserve('stock', 2, 'bob', '1 hour', 'order-1') = :k1 AS same_hold;
SELECT lockctl.reserve('stock', 2, idempotency_key => 'order-1') = :k1 AS same_hold;
SELECT pg_temp.e($$SELECT lockctl.reserve('stock', 3, idempotency_key => 'order-1')$$);
SELECT lockctl.reserve('hall', 2, idempotency_key => 'order-1') <> :k1 AS other_pool_other_hold;
SELECT lockctl.confirm(:k1);
SELECT lockctl.reserve('stock', 2, idempotency_key => 'order-1') = :k1 AS still_same_hold;
SELECT available, held, confirmed, holds_taken FROM lockctl.pool_status WHERE resource = 'stock';

-- confirm, cancel and extend
SELECT lockctl.reserve('stock', 5, ttl => '1 hour') AS c1 \gset
SELECT lockctl.reserve('stock', 5, ttl => '1 hour') AS c2 \gset
SELECT lockctl.reserve('stock', 5, ttl => '1 hour') AS c3 \gset
SELECT lockctl.confirm(:c1) AS confirmed, lockctl.confirm(:c1) AS again;
SELECT lockctl.cancel(:c2) AS cancelled, lockctl.cancel(:c2) AS again;
SELECT lockctl.extend(:c3, '2 hours') - clock_timestamp() BETWEEN '1 hour 59 min' AND '2 hours' AS extended;
SELECT expires - clock_timestamp() BETWEEN '1 hour 59 min' AND '2 hours' AS stored
  FROM lockctl.holds WHERE id = :c3;
SELECT pg_temp.e(format('SELECT lockctl.confirm(%s)', :c2));
SELECT pg_temp.e(format('SELECT lockctl.extend(%s, %L)', :c2, '1 hour'));
SELECT pg_temp.e(format('SELECT lockctl.cancel(%s)', :c1));
SELECT pg_temp.e(format('SELECT lockctl.extend(%s, %L)', :c1, '1 hour'));
SELECT pg_temp.e(format('SELECT lockctl.extend(%s, NULL)', :c3));
SELECT pg_temp.e(format('SELECT lockctl.extend(%s, %L)', :c3, '-1 hour'));
SELECT pg_temp.e($$SELECT lockctl.confirm(NULL)$$);
SELECT pg_temp.e($$SELECT lockctl.cancel(NULL)$$);
SELECT pg_temp.e($$SELECT lockctl.extend(NULL, '1 hour')$$);
SELECT pg_temp.e($$SELECT lockctl.confirm(999999999)$$);
SELECT pg_temp.e($$SELECT lockctl.cancel(-1)$$);
SELECT pg_temp.e($$SELECT lockctl.extend(999999999, '1 hour')$$);
SELECT id = :c1 AS c1, status FROM lockctl.holds WHERE id IN (:c1, :c2, :c3) ORDER BY id;
SELECT available, held, confirmed, holds_taken, holds_confirmed, holds_cancelled
  FROM lockctl.pool_status WHERE resource = 'stock';

-- A hold whose time is up is never confirmable nor extendable, even before
-- the worker gets to it; it can still be cancelled.  Making it due inside
-- this transaction keeps it locked from the worker.
SELECT lockctl.reserve('stock', 4, ttl => '1 hour') AS d1 \gset
SELECT lockctl.reserve('stock', 4, ttl => '1 hour') AS d2 \gset
SELECT lockctl.reserve('stock', 4, ttl => '1 hour') AS d3 \gset
BEGIN;
UPDATE lockctl.reservations SET expires = now() - interval '1 second' WHERE id IN (:d1, :d2, :d3);
SELECT pg_temp.e(format('SELECT lockctl.confirm(%s)', :d1));
SELECT pg_temp.e(format('SELECT lockctl.extend(%s, %L)', :d1, '1 hour'));
SELECT lockctl.cancel(:d3);
SELECT lockctl_internal.expire_holds(1) AS expired_first_batch;
SELECT lockctl_internal.expire_holds(100) AS expired_second_batch;
SELECT lockctl_internal.expire_holds(100) AS nothing_left;
SELECT id = :d1 AS d1, status, finished IS NOT NULL AS finished FROM lockctl.holds WHERE id IN (:d1, :d2, :d3) ORDER BY id;
SELECT pg_temp.e(format('SELECT lockctl.confirm(%s)', :d1));
SELECT pg_temp.e(format('SELECT lockctl.extend(%s, %L)', :d2, '1 hour'));
SELECT lockctl.cancel(:d2) AS cancel_expired;
COMMIT;
SELECT available, held, confirmed, holds_taken, holds_confirmed, holds_cancelled, holds_expired
  FROM lockctl.pool_status WHERE resource = 'stock';
SELECT pg_temp.e($$SELECT lockctl_internal.expire_holds(NULL)$$);
SELECT pg_temp.e($$SELECT lockctl_internal.expire_holds(0)$$);
SELECT pg_temp.e($$SELECT lockctl_internal.expire_holds(1000001)$$);

-- purge_holds: finished holds older than the retention, never confirmed ones.
BEGIN;
UPDATE lockctl.reservations SET finished = now() - interval '2 days'
 WHERE status <> 'held' AND pool_id = (SELECT id FROM lockctl.pools WHERE resource = 'stock');
SELECT status, count(*) FROM lockctl.holds WHERE resource = 'stock' GROUP BY 1 ORDER BY 1;
SELECT lockctl_internal.purge_holds('3 days', 100) AS none_old_enough;
SELECT lockctl_internal.purge_holds('1 day', 1) AS first_batch;
SELECT lockctl_internal.purge_holds('1 day', 100) AS second_batch;
SELECT status, count(*) FROM lockctl.holds WHERE resource = 'stock' GROUP BY 1 ORDER BY 1;
COMMIT;
SELECT pg_temp.e($$SELECT lockctl_internal.purge_holds(NULL, 1)$$);
SELECT pg_temp.e($$SELECT lockctl_internal.purge_holds('-1 s', 1)$$);
SELECT pg_temp.e($$SELECT lockctl_internal.purge_holds('1 day', NULL)$$);
SELECT pg_temp.e($$SELECT lockctl_internal.purge_holds('1 day', 0)$$);
-- The counters of finished holds outlive the holds.
SELECT available, held, confirmed, holds_taken, holds_confirmed, holds_cancelled, holds_expired
  FROM lockctl.pool_status WHERE resource = 'stock';

-- Slots: a hold bigger than any one slot gathers units from several, and
-- the last units of a pool are all sold, wherever they are.
SELECT count(*) AS slots, sum(s.capacity - s.held - s.confirmed) AS free,
       max(s.capacity - s.held - s.confirmed) AS most_in_one_slot
  FROM lockctl.pool_slots s JOIN lockctl.pools p ON p.id = s.pool_id
 WHERE p.resource = 'hall';
SELECT lockctl.reserve('hall', 120) AS hall1 \gset
SELECT :hall1 IS NOT NULL AS spans_slots;
SELECT lockctl.available('hall');
SELECT lockctl.reserve('hall', 79) IS NULL AS too_many;
SELECT count(lockctl.reserve('hall')) AS singles FROM generate_series(1, 80);
SELECT lockctl.available('hall'), lockctl.reserve('hall') IS NULL AS sold_out;
SELECT count(DISTINCT slot) > 1 AS holds_in_several_slots FROM lockctl.reservations
 WHERE pool_id = (SELECT id FROM lockctl.pools WHERE resource = 'hall');

-- set_capacity: never below what is held and confirmed (55000).
SELECT pg_temp.e($$SELECT lockctl.set_capacity('hall', 199)$$);
SELECT lockctl.set_capacity('hall', 300);
SELECT capacity, held, available, slots FROM lockctl.pool_status WHERE resource = 'hall';
SELECT lockctl.set_capacity('hall', 200);
SELECT capacity, held, available FROM lockctl.pool_status WHERE resource = 'hall';
SELECT lockctl.set_capacity('stock', 5000);
SELECT capacity, slots, auto_slots FROM lockctl.pool_status WHERE resource = 'stock';
SELECT lockctl.set_capacity('stock', 100);
SELECT capacity, slots, auto_slots, available FROM lockctl.pool_status WHERE resource = 'stock';
SELECT pg_temp.e($$SELECT lockctl.set_capacity(NULL, 1)$$);
SELECT pg_temp.e($$SELECT lockctl.set_capacity('nope', 1)$$);
SELECT pg_temp.e($$SELECT lockctl.set_capacity('stock', NULL)$$);
SELECT pg_temp.e($$SELECT lockctl.set_capacity('stock', -1)$$);

-- set_slots: fewer slots retire the rest (their holds stay where they are);
-- more slots, or the automatic count again.
SELECT lockctl.set_slots('hall', 2);
SELECT slots, auto_slots, available FROM lockctl.pool_status WHERE resource = 'hall';
SELECT lockctl.set_slots('hall', 8);
SELECT slots, auto_slots, available FROM lockctl.pool_status WHERE resource = 'hall';
SELECT lockctl.set_slots('hall', NULL);
SELECT slots, auto_slots, available FROM lockctl.pool_status WHERE resource = 'hall';
SELECT pg_temp.e($$SELECT lockctl.set_slots('hall', 0)$$);
SELECT pg_temp.e($$SELECT lockctl.set_slots('nope', 2)$$);
SELECT * FROM pg_temp.broken;

-- Privileges: anyone may reserve, confirm, cancel, extend and read the
-- views; nobody but a superuser (or who is granted it) manages pools; only
-- the worker (a superuser) expires and purges; nobody writes the tables.
CREATE ROLE regress_lockctl_app;
CREATE ROLE regress_lockctl_admin;
SET ROLE regress_lockctl_app;
SELECT lockctl.reserve('stock', 1, 'app') AS a1 \gset
SELECT lockctl.extend(:a1, '10 minutes') IS NOT NULL AS extended;
SELECT lockctl.confirm(:a1);
SELECT lockctl.available('stock') >= 0 AS can_read;
SELECT count(*) > 0 AS can_read_views FROM lockctl.pool_status;
SELECT count(*) > 0 AS can_read_views FROM lockctl.holds;
-- it sees its own holds only, each marked with the role that took it
SELECT DISTINCT taken_by FROM lockctl.holds;
SELECT pg_temp.e($$SELECT lockctl.create_pool('mine', 10)$$);
SELECT pg_temp.e($$SELECT lockctl.set_capacity('stock', 1000000)$$);
SELECT pg_temp.e($$SELECT lockctl.set_slots('stock', 1)$$);
SELECT pg_temp.e($$SELECT lockctl.drop_pool('stock')$$);
SELECT pg_temp.e($$SELECT lockctl_internal.expire_holds(10)$$);
SELECT pg_temp.e($$SELECT lockctl_internal.purge_holds('0', 10)$$);
SELECT pg_temp.e($$SELECT lockctl_internal.rebalance(1, 0, 0)$$);
SELECT pg_temp.e($$SELECT count(*) FROM lockctl.reservations$$);
SELECT pg_temp.e($$UPDATE lockctl.pool_slots SET capacity = capacity + 1000$$);
SELECT pg_temp.e($$INSERT INTO lockctl.pools (resource, capacity, slots) VALUES ('x', 1, 1)$$);
SELECT pg_temp.e($$UPDATE lockctl.reservations SET status = 'confirmed'$$);
RESET ROLE;
GRANT EXECUTE ON FUNCTION lockctl.create_pool(text, bigint, integer),
                          lockctl.set_capacity(text, bigint),
                          lockctl.drop_pool(text) TO regress_lockctl_admin;
SET ROLE regress_lockctl_admin;
SELECT lockctl.create_pool('admin_pool', 10);
SELECT lockctl.set_capacity('admin_pool', 20);
SELECT lockctl.drop_pool('admin_pool');
SELECT pg_temp.e($$SELECT lockctl.set_slots('stock', 1)$$);
RESET ROLE;
REVOKE EXECUTE ON FUNCTION lockctl.create_pool(text, bigint, integer),
                           lockctl.set_capacity(text, bigint),
                           lockctl.drop_pool(text) FROM regress_lockctl_admin;
DROP ROLE regress_lockctl_app;
DROP ROLE regress_lockctl_admin;

-- drop_pool takes the holds with it.
SELECT lockctl.drop_pool('hall');
SELECT count(*) AS holds_left FROM lockctl.reservations r
 WHERE NOT EXISTS (SELECT FROM lockctl.pools p WHERE p.id = r.pool_id);
SELECT pg_temp.e($$SELECT lockctl.drop_pool('hall')$$);
SELECT pg_temp.e($$SELECT lockctl.drop_pool(NULL)$$);
SELECT pg_temp.e(format('SELECT lockctl.confirm(%s)', :hall1));
SELECT resource FROM lockctl.pool_status ORDER BY 1;
SELECT * FROM pg_temp.broken;

-- The internal helpers, called by hand (a superuser can call anything),
-- cannot break the invariants either: rebalance works out the free units
-- itself from locked rows and only moves them; reshape_pool goes through it.
SELECT lockctl.create_pool('direct', 100, 4);
SELECT id AS direct FROM lockctl.pools WHERE resource = 'direct' \gset
SELECT lockctl.reserve('direct', 3, 'd', '1 hour') IS NOT NULL AS reserved;
-- the old signature, which took the spare units on trust, is gone
SELECT pg_temp.e(format('SELECT lockctl_internal.rebalance(%s, 1, 0, 0, 1000)', :direct));
-- 97 free units: 24 and 1 left over, with 40 set aside in slot 6 % 4 = 2
SELECT lockctl_internal.rebalance(:direct, 6, 40) AS target;
SELECT s.slot, s.capacity - s.held - s.confirmed AS free
  FROM lockctl.pool_slots s WHERE s.pool_id = :direct ORDER BY s.slot;
-- more than is free: NULL, and nothing moves
SELECT lockctl_internal.rebalance(:direct, 0, 98) IS NULL AS not_enough;
SELECT pg_temp.e(format('SELECT lockctl_internal.rebalance(%s, -1, 0)', :direct));
SELECT pg_temp.e(format('SELECT lockctl_internal.rebalance(%s, 0, -1)', :direct));
SELECT pg_temp.e($$SELECT lockctl_internal.rebalance(NULL, 0, 0)$$);
SELECT pg_temp.e($$SELECT lockctl_internal.rebalance(-1, 0, 0)$$);
SELECT pg_temp.e(format($$SELECT lockctl_internal.reshape_pool('x', %s, 'direct', 2, 1, false)$$, :direct));
SELECT pg_temp.e(format($$SELECT lockctl_internal.reshape_pool('x', %s, 'direct', 100, 0, false)$$, :direct));
SELECT pg_temp.e(format($$SELECT lockctl_internal.reshape_pool('x', %s, 'direct', NULL, 1, false)$$, :direct));
SELECT pg_temp.e(format($$SELECT lockctl_internal.reshape_pool('x', %s, 'direct', 50, 2, false)$$, :direct));
SELECT capacity, held, available, slots FROM lockctl.pool_status WHERE resource = 'direct';
SELECT pg_temp.e($$SELECT lockctl_internal.check_resource(NULL, NULL)$$);
SELECT pg_temp.e($$SELECT lockctl_internal.check_resource('x', '')$$);
SELECT * FROM pg_temp.broken;

-- The tables refuse by themselves what would break the accounting, even
-- to a superuser writing them directly (and nothing changes).
SELECT pg_temp.e(format('UPDATE lockctl.pool_slots SET held = capacity - confirmed + 1 WHERE pool_id = %s AND slot = 0', :direct));
SELECT pg_temp.e(format('UPDATE lockctl.pool_slots SET held = -1 WHERE pool_id = %s AND slot = 0', :direct));
SELECT pg_temp.e(format('UPDATE lockctl.pool_slots SET confirmed = -1 WHERE pool_id = %s AND slot = 0', :direct));
SELECT pg_temp.e(format('UPDATE lockctl.pool_slots SET capacity = -1 WHERE pool_id = %s AND slot = 0', :direct));
SELECT pg_temp.e(format($$UPDATE lockctl.reservations SET status = 'bogus' WHERE pool_id = %s$$, :direct));
SELECT pg_temp.e(format($$UPDATE lockctl.reservations SET status = 'confirmed' WHERE pool_id = %s$$, :direct));
SELECT pg_temp.e(format($$UPDATE lockctl.reservations SET finished = now() WHERE pool_id = %s$$, :direct));
SELECT pg_temp.e(format($$UPDATE lockctl.reservations SET quantity = 0 WHERE pool_id = %s$$, :direct));
SELECT status, count(*) FROM lockctl.holds WHERE resource = 'direct' GROUP BY status;
SELECT pg_typeof(status) FROM lockctl.holds LIMIT 1;
SELECT * FROM pg_temp.broken;

-- Clean up, so that other tests start from nothing.
SELECT lockctl.drop_pool(resource) FROM lockctl.pools ORDER BY resource;
-- drop_pool leaves no slot row behind (nothing but it ties them to pools).
SELECT count(*) AS orphan_slots FROM lockctl.pool_slots s
 WHERE NOT EXISTS (SELECT FROM lockctl.pools p WHERE p.id = s.pool_id);
