-- Carts: several pools held as one, all or nothing; their errors and who
-- may act on them.  Every cart here has a long ttl (the temporary server
-- runs the expiry worker); carts are made due inside a transaction that
-- keeps them locked, so the worker cannot take them first.
\set VERBOSITY terse
\set SHOW_CONTEXT never

CREATE FUNCTION pg_temp.e(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE r text;
BEGIN
    EXECUTE stmt INTO r;
    RETURN coalesce(nullif(r, ''), 'ok');
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || regexp_replace(regexp_replace(SQLERRM, '\d{4,}', 'N', 'g'),
                                              '(cart|hold) \d+', '\1 N', 'g');
END $$;

-- The invariant over pools, holds and carts: each slot's held and
-- confirmed are the sums over the holds and cart items in it.
CREATE VIEW pg_temp.broken AS
SELECT p.resource, s.slot, s.held, s.confirmed
  FROM lockctl.pools p JOIN lockctl.pool_slots s ON s.pool_id = p.id
 WHERE s.held <> (SELECT coalesce(sum(r.quantity), 0) FROM lockctl.reservations r
                   WHERE r.pool_id = p.id AND r.slot = s.slot AND r.status = 'held')
                + (SELECT coalesce(sum(i.quantity), 0) FROM lockctl.cart_items i JOIN lockctl.carts c ON c.id = i.cart_id
                   WHERE i.pool_id = p.id AND i.slot = s.slot AND c.status = 'held')
    OR s.confirmed <> (SELECT coalesce(sum(r.quantity), 0) FROM lockctl.reservations r
                        WHERE r.pool_id = p.id AND r.slot = s.slot AND r.status = 'confirmed')
                     + (SELECT coalesce(sum(i.quantity), 0) FROM lockctl.cart_items i JOIN lockctl.carts c ON c.id = i.cart_id
                        WHERE i.pool_id = p.id AND i.slot = s.slot AND c.status = 'confirmed')
    OR s.held + s.confirmed > s.capacity;

-- Pools made in the order z, y, x: a cart takes them in this (id) order,
-- whatever the order of its items.
SELECT lockctl.create_pool('cart-z', 10), lockctl.create_pool('cart-y', 5),
       lockctl.create_pool('cart-x', 300);

-- A cart: one id, one expiry; items naming the same pool add up; a
-- quantity left out is 1.
SELECT lockctl.reserve_cart('[{"resource": "cart-y", "quantity": 2},
                              {"resource": "cart-z", "quantity": 3},
                              {"resource": "cart-y"}]', 'alice', '1 hour', 'order-1') AS c1 \gset
SELECT resource, quantity, holder, status, expires - created AS ttl, idempotency_key
  FROM lockctl.cart_holds WHERE id = :c1 ORDER BY resource;
SELECT resource, held, available, holds_taken FROM lockctl.pool_status
 WHERE resource LIKE 'cart-%' ORDER BY resource;
-- A cart id is never a hold id.
SELECT pg_temp.e(format('SELECT lockctl.confirm(%s)', :c1));

-- The same key is the same cart, whatever the order of the items; another
-- cart under the same key is an error.
SELECT lockctl.reserve_cart('[{"resource": "cart-z", "quantity": 3},
                              {"resource": "cart-y", "quantity": 3}]', idempotency_key => 'order-1') = :c1 AS same_cart;
SELECT pg_temp.e($$SELECT lockctl.reserve_cart('[{"resource": "cart-z", "quantity": 3}]', idempotency_key => 'order-1')$$);
SELECT pg_temp.e($$SELECT lockctl.reserve_cart('[{"resource": "cart-z", "quantity": 3}, {"resource": "cart-y", "quantity": 4}]', idempotency_key => 'order-1')$$);

-- All or nothing: cart-y has 2 free, the cart asks for 3 of it: NULL,
-- nothing held anywhere, and a NOTICE names the pool and the item.
SELECT lockctl.reserve_cart('[{"resource": "cart-x", "quantity": 100},
                              {"resource": "cart-z", "quantity": 1},
                              {"resource": "cart-y", "quantity": 3}]') IS NULL AS not_reserved;
SELECT resource, held, available, holds_taken FROM lockctl.pool_status
 WHERE resource LIKE 'cart-%' ORDER BY resource;
-- Two items on one pool that are each served alone but not together.
SELECT lockctl.reserve_cart('[{"resource": "cart-y", "quantity": 1}, {"resource": "cart-x"},
                              {"resource": "cart-y", "quantity": 2}]') IS NULL AS not_reserved;
-- A cart larger than any one slot of a pool gathers units from several.
SELECT lockctl.reserve_cart('[{"resource": "cart-x", "quantity": 250}, {"resource": "cart-z", "quantity": 7}]') AS c2 \gset
SELECT resource, held, available FROM lockctl.pool_status WHERE resource LIKE 'cart-%' ORDER BY resource;
SELECT lockctl.reserve_cart('[{"resource": "cart-z"}]') IS NULL AS sold_out;

-- confirm_cart, cancel_cart, extend_cart.
SELECT lockctl.confirm_cart(:c1) AS confirmed, lockctl.confirm_cart(:c1) AS again;
SELECT lockctl.extend_cart(:c2, '2 hours') - clock_timestamp() BETWEEN '1 hour 59 min' AND '2 hours' AS extended;
SELECT DISTINCT expires - clock_timestamp() BETWEEN '1 hour 59 min' AND '2 hours' AS stored
  FROM lockctl.cart_holds WHERE id = :c2;
SELECT lockctl.cancel_cart(:c2) AS cancelled, lockctl.cancel_cart(:c2) AS again;
SELECT pg_temp.e(format('SELECT lockctl.confirm_cart(%s)', :c2));
SELECT pg_temp.e(format('SELECT lockctl.extend_cart(%s, %L)', :c2, '1 hour'));
SELECT pg_temp.e(format('SELECT lockctl.cancel_cart(%s)', :c1));
SELECT pg_temp.e(format('SELECT lockctl.extend_cart(%s, %L)', :c1, '1 hour'));
SELECT id = :c1 AS c1, resource, status FROM lockctl.cart_holds WHERE id IN (:c1, :c2) ORDER BY id, resource;
SELECT resource, held, confirmed, available, holds_taken, holds_confirmed, holds_cancelled
  FROM lockctl.pool_status WHERE resource LIKE 'cart-%' ORDER BY resource;

-- A cart whose time is up is neither confirmable nor extendable, even
-- before the worker gets to it; the worker's batch expires it whole.
SELECT lockctl.reserve_cart('[{"resource": "cart-x", "quantity": 5}, {"resource": "cart-y", "quantity": 1}]') AS d1 \gset
SELECT lockctl.reserve_cart('[{"resource": "cart-x", "quantity": 5}]') AS d2 \gset
BEGIN;
UPDATE lockctl.carts SET expires = now() - interval '1 second' WHERE id IN (:d1, :d2);
SELECT pg_temp.e(format('SELECT lockctl.confirm_cart(%s)', :d1));
SELECT pg_temp.e(format('SELECT lockctl.extend_cart(%s, %L)', :d1, '1 hour'));
SELECT lockctl_internal.expire_carts(1) AS first_batch;
SELECT lockctl_internal.expire_holds(100) AS second_batch;
SELECT lockctl_internal.expire_holds(100) AS nothing_left;
SELECT id = :d1 AS d1, resource, status FROM lockctl.cart_holds WHERE id IN (:d1, :d2) ORDER BY id, resource;
SELECT lockctl.cancel_cart(:d1) AS cancel_expired;
COMMIT;
SELECT resource, held, confirmed, available, holds_expired
  FROM lockctl.pool_status WHERE resource LIKE 'cart-%' ORDER BY resource;

-- The purge takes finished carts with their items, never confirmed ones.
BEGIN;
UPDATE lockctl.carts SET finished = now() - interval '2 days' WHERE status <> 'held';
SELECT lockctl_internal.purge_holds('3 days', 100) AS none_old_enough;
SELECT lockctl_internal.purge_carts('1 day', 1) AS first_batch;
SELECT lockctl_internal.purge_holds('1 day', 100) AS the_rest;
SELECT status, count(*) FROM lockctl.carts GROUP BY 1 ORDER BY 1;
SELECT count(*) AS orphan_items FROM lockctl.cart_items i
 WHERE NOT EXISTS (SELECT FROM lockctl.carts c WHERE c.id = i.cart_id);
COMMIT;

-- Everything is transactional.
BEGIN;
SELECT lockctl.reserve_cart('[{"resource": "cart-x", "quantity": 10}]') IS NOT NULL AS reserved;
SELECT lockctl.available('cart-x');
ROLLBACK;
SELECT lockctl.available('cart-x');

-- A cart and single reserves on its pools in one transaction.
BEGIN;
SELECT lockctl.reserve('cart-y', 1) IS NOT NULL AS single;
SELECT lockctl.reserve_cart('[{"resource": "cart-y", "quantity": 1}, {"resource": "cart-x", "quantity": 1}]') IS NOT NULL AS cart;
SELECT lockctl.reserve('cart-x', 1) IS NOT NULL AS single;
ROLLBACK;

-- Bad input: a clear error, nothing changes.
SELECT pg_temp.e($$SELECT lockctl.reserve_cart(NULL)$$);
SELECT pg_temp.e($$SELECT lockctl.reserve_cart('{"resource": "cart-x"}')$$);
SELECT pg_temp.e($$SELECT lockctl.reserve_cart('[]')$$);
SELECT pg_temp.e($$SELECT lockctl.reserve_cart('[1]')$$);
SELECT pg_temp.e($$SELECT lockctl.reserve_cart('[{"resource": "cart-x", "qty": 1}]')$$);
SELECT pg_temp.e($$SELECT lockctl.reserve_cart('[{"quantity": 1}]')$$);
SELECT pg_temp.e($$SELECT lockctl.reserve_cart('[{"resource": 5}]')$$);
SELECT pg_temp.e($$SELECT lockctl.reserve_cart('[{"resource": ""}]')$$);
SELECT pg_temp.e(format('SELECT lockctl.reserve_cart(%L)', jsonb_build_array(jsonb_build_object('resource', repeat('x', 201)))));
SELECT pg_temp.e($$SELECT lockctl.reserve_cart('[{"resource": "cart-x"}, {"resource": "nope"}]')$$);
SELECT pg_temp.e($$SELECT lockctl.reserve_cart('[{"resource": "cart-x", "quantity": "2"}]')$$);
SELECT pg_temp.e($$SELECT lockctl.reserve_cart('[{"resource": "cart-x", "quantity": 0}]')$$);
SELECT pg_temp.e($$SELECT lockctl.reserve_cart('[{"resource": "cart-x", "quantity": -1}]')$$);
SELECT pg_temp.e($$SELECT lockctl.reserve_cart('[{"resource": "cart-x", "quantity": 1.5}]')$$);
SELECT pg_temp.e($$SELECT lockctl.reserve_cart('[{"resource": "cart-x", "quantity": 1e300}]')$$);
SELECT pg_temp.e($$SELECT lockctl.reserve_cart('[{"resource": "cart-x", "quantity": 600000000000000}, {"resource": "cart-x", "quantity": 600000000000000}]')$$);
SELECT pg_temp.e(format('SELECT lockctl.reserve_cart(%L)',
                        (SELECT jsonb_agg(jsonb_build_object('resource', 'cart-x')) FROM generate_series(1, 101))));
SELECT pg_temp.e($$SELECT lockctl.reserve_cart('[{"resource": "cart-x"}]', '')$$);
SELECT pg_temp.e($$SELECT lockctl.reserve_cart('[{"resource": "cart-x"}]', repeat('h', 201))$$);
SELECT pg_temp.e($$SELECT lockctl.reserve_cart('[{"resource": "cart-x"}]', NULL, NULL)$$);
SELECT pg_temp.e($$SELECT lockctl.reserve_cart('[{"resource": "cart-x"}]', NULL, '0')$$);
SELECT pg_temp.e($$SELECT lockctl.reserve_cart('[{"resource": "cart-x"}]', NULL, '366 days')$$);
SELECT pg_temp.e($$SELECT lockctl.reserve_cart('[{"resource": "cart-x"}]', NULL, '1 hour', '')$$);
SELECT pg_temp.e($$SELECT lockctl.reserve_cart('[{"resource": "cart-x"}]', NULL, '1 hour', repeat('k', 201))$$);
SELECT pg_temp.e($$SELECT lockctl.confirm_cart(NULL)$$);
SELECT pg_temp.e($$SELECT lockctl.cancel_cart(NULL)$$);
SELECT pg_temp.e($$SELECT lockctl.extend_cart(NULL, '1 hour')$$);
SELECT pg_temp.e($$SELECT lockctl.extend_cart(1, NULL)$$);
SELECT pg_temp.e($$SELECT lockctl.extend_cart(1, '-1 hour')$$);
SELECT pg_temp.e($$SELECT lockctl.confirm_cart(-1)$$);
SELECT pg_temp.e($$SELECT lockctl.cancel_cart(999999999)$$);
SELECT pg_temp.e($$SELECT lockctl_internal.expire_carts(0)$$);
SELECT pg_temp.e($$SELECT lockctl_internal.purge_carts('-1 s', 1)$$);
SELECT resource, held, confirmed, available FROM lockctl.pool_status WHERE resource LIKE 'cart-%' ORDER BY resource;

-- Who may act on a cart: the role that took it, and roles with its
-- privileges.  To any other role it does not exist: the same error as a
-- cart that never did, and not in the view.  Its idempotency keys are its
-- own.
SET client_min_messages = warning;
CREATE ROLE regress_cart_web;
CREATE ROLE regress_cart_pay IN ROLE regress_cart_web;
CREATE ROLE regress_cart_other;
RESET client_min_messages;
SET ROLE regress_cart_web;
SELECT lockctl.reserve_cart('[{"resource": "cart-x", "quantity": 2}]', 'w', '1 hour', 'web-1') AS w1 \gset
SELECT lockctl.reserve_cart('[{"resource": "cart-x", "quantity": 2}]', 'w', '1 hour', 'web-2') AS w2 \gset
SELECT count(*) AS web_sees FROM lockctl.cart_holds;
SET ROLE regress_cart_other;
SELECT count(*) AS other_sees FROM lockctl.cart_holds;
SELECT pg_temp.e(format('SELECT lockctl.confirm_cart(%s)', :w1));
SELECT pg_temp.e(format('SELECT lockctl.cancel_cart(%s)', :w1));
SELECT pg_temp.e(format('SELECT lockctl.extend_cart(%s, %L)', :w1, '1 hour'));
-- The same key under another role is another cart.
SELECT lockctl.reserve_cart('[{"resource": "cart-x", "quantity": 2}]', 'o', '1 hour', 'web-1') <> :w1 AS own_cart;
SELECT pg_temp.e($$SELECT lockctl_internal.expire_carts(1)$$);
SELECT pg_temp.e($$SELECT * FROM lockctl.carts$$);
SET ROLE regress_cart_pay;
SELECT lockctl.confirm_cart(:w1) AS member_confirms;
SELECT lockctl.cancel_cart(:w2) AS member_cancels;
RESET ROLE;
SELECT holder, taken_by, status FROM lockctl.cart_holds WHERE taken_by <> current_user ORDER BY id;
-- Cart ids are era-tagged, as hold ids: one of another era is explained.
SELECT (:w1 >> 48) = (SELECT era FROM lockctl.token_state()) AS cart_id_of_this_era;
DO $$
DECLARE d text;
BEGIN
    PERFORM lockctl.confirm_cart((((SELECT era FROM lockctl.token_state()) + 1)::bigint << 48) + 1);
EXCEPTION WHEN undefined_object THEN
    GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
    RAISE NOTICE '%', regexp_replace(d, '\d+', 'N', 'g');
END $$;
-- pg_read_all_stats sees every cart, but not another role's holder or
-- key; seeing is not acting.
SET client_min_messages = warning;
CREATE ROLE regress_cart_stats IN ROLE pg_read_all_stats;
RESET client_min_messages;
SET ROLE regress_cart_stats;
SELECT holder, idempotency_key, taken_by, status FROM lockctl.cart_holds
 WHERE taken_by IN ('regress_cart_web', 'regress_cart_other') ORDER BY id;
SELECT pg_temp.e(format('SELECT lockctl.cancel_cart(%s)', :w2));
-- Each item of a cart counts as a live hold in the role's caps;
-- regress_cart_other has one live cart of one item.
RESET ROLE;
SELECT lockctl.create_pool('cart-caps-a', 10), lockctl.create_pool('cart-caps-b', 10);
SET lockctl.max_holds_per_role = 2;
SET ROLE regress_cart_other;
SELECT pg_temp.e($$SELECT lockctl.reserve_cart('[{"resource": "cart-caps-a"}, {"resource": "cart-caps-b"}]', 'o', '1 hour')$$);
SELECT pg_temp.e($$SELECT lockctl.reserve_cart('[{"resource": "cart-caps-a"}]', 'o', '1 hour') IS NOT NULL$$);
SELECT pg_temp.e($$SELECT lockctl.reserve('cart-caps-b', 1, 'o', '1 hour')$$);
RESET ROLE;
RESET lockctl.max_holds_per_role;
SELECT resource, held FROM lockctl.pool_status WHERE resource LIKE 'cart-caps-%' ORDER BY resource;
SELECT lockctl.drop_pool('cart-caps-a'), lockctl.drop_pool('cart-caps-b');

-- The items' check and merge in C (lockctl_internal.cart_plain_items, what
-- reserve_cart calls first) against cart_items, which it stands in for:
-- the same arrays for a plain cart (merged by pool, in pool id order);
-- every output NULL for anything else, so that cart_items decides (and
-- raises the item's error).
CREATE FUNCTION pg_temp.plain(items jsonb, max_items integer DEFAULT 100) RETURNS text
LANGUAGE sql AS $$
SELECT CASE WHEN num_nulls(p.pools, p.nslots, p.names, p.quantities) = 4 THEN 'not plain'
            WHEN num_nulls(p.pools, p.nslots, p.names, p.quantities) > 0 THEN 'some outputs null'
            ELSE format('%s %s %s', p.names, p.quantities, p.nslots) END
  FROM lockctl_internal.cart_plain_items(items, max_items, lockctl_internal.max_units()) AS p
$$;
SELECT i.items, pg_temp.plain(i.items),
       (SELECT ROW(array_agg(c.pool_id ORDER BY c.pool_id), array_agg(c.nslots ORDER BY c.pool_id),
                   array_agg(c.resource ORDER BY c.pool_id), array_agg(c.quantity ORDER BY c.pool_id))
          FROM lockctl_internal.cart_items(i.items) AS c)
       = (SELECT ROW(p.pools, p.nslots, p.names, p.quantities)
            FROM lockctl_internal.cart_plain_items(i.items, 100, lockctl_internal.max_units()) AS p) AS same
  FROM (VALUES ('[{"resource": "cart-x"}]'::jsonb),
               ('[{"resource": "cart-x", "quantity": 2}, {"resource": "cart-z"},
                  {"resource": "cart-x", "quantity": 3.0}, {"resource": "cart-y", "quantity": 1e1}]'),
               ('[{"quantity": 1000000000000000, "resource": "cart-y"}]'),
               ('[{"resource": "cart-y", "quantity": 999999999999999}, {"resource": "cart-y"}]')) AS i(items);
SELECT left(i.items::text, 60) AS items, pg_temp.plain(i.items),
       pg_temp.e(format('SELECT count(*) FROM lockctl_internal.cart_items(%L)', i.items)) AS cart_items
  FROM (VALUES (NULL::jsonb), ('5'), ('"cart-x"'), ('{"resource": "cart-x"}'), ('[]'), ('[1]'),
               ('[[{"resource": "cart-x"}]]'),
               ('[{"resource": "cart-x", "qty": 1}]'), ('[{"quantity": 1}]'),
               ('[{"resource": 5}]'), ('[{"resource": null}]'), ('[{"resource": ""}]'),
               (jsonb_build_array(jsonb_build_object('resource', repeat('r', 1001)))),
               ('[{"resource": "cart-x", "quantity": "1"}]'), ('[{"resource": "cart-x", "quantity": null}]'),
               ('[{"resource": "cart-x", "quantity": 1.5}]'), ('[{"resource": "cart-x", "quantity": 0}]'),
               ('[{"resource": "cart-x", "quantity": -1}]'),
               ('[{"resource": "cart-x", "quantity": 1000000000000001}]'),
               ('[{"resource": "cart-x", "quantity": 1e100}]'),
               ('[{"resource": "cart-x"}, {"resource": "no-such-pool"}]'),
               ('[{"resource": "cart-y", "quantity": 1000000000000000}, {"resource": "cart-y"}]')) AS i(items);
-- The bound on the number of items is the caller's.
SELECT pg_temp.plain('[{"resource": "cart-x"}, {"resource": "cart-y"}]', 2) AS two_of_2,
       pg_temp.plain('[{"resource": "cart-x"}, {"resource": "cart-y"}, {"resource": "cart-z"}]', 2) AS three_of_2;
-- Under REPEATABLE READ the pools are not looked up in C (the snapshot's
-- rules are the executor's): not plain, and reserve_cart gets its merge
-- from cart_items.
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT pg_temp.plain('[{"resource": "cart-x"}]') AS under_repeatable_read;
SELECT lockctl.cancel_cart(lockctl.reserve_cart('[{"resource": "cart-x"}, {"resource": "cart-z", "quantity": 2}, {"resource": "cart-x"}]', 'rr', '1 hour')) IS NOT NULL AS cart_made_and_cancelled;
COMMIT;

SELECT * FROM pg_temp.broken;
SELECT lockctl.drop_pool('cart-x'), lockctl.drop_pool('cart-y'), lockctl.drop_pool('cart-z');
DELETE FROM lockctl.cart_items;
DELETE FROM lockctl.carts;
DROP ROLE regress_cart_web, regress_cart_pay, regress_cart_other, regress_cart_stats;
