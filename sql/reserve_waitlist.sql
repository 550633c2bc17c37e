-- Waitlists: a FIFO queue per pool; units that come back (cancel, expiry,
-- a larger capacity, a cancelled cart, the rest of a partial confirm) go
-- to the head as an offer hold in the same transaction, with NOTIFY
-- lockctl_offer; an offer not confirmed in time goes to the next.
\set VERBOSITY terse
\set SHOW_CONTEXT never

CREATE FUNCTION pg_temp.e(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE r text;
BEGIN
    EXECUTE stmt INTO r;
    RETURN coalesce(nullif(r, ''), 'ok');
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || regexp_replace(regexp_replace(SQLERRM, '\d{4,}', 'N', 'g'),
                                              '(entry|hold) \d+', '\1 N', 'g');
END $$;
-- The queue as its members see it, ids replaced by the order of arrival.
CREATE VIEW pg_temp.queue AS
SELECT w.holder, w.quantity, w.status, w.position, h.status AS offer, h.quantity AS offered
  FROM lockctl.waitlist w LEFT JOIN lockctl.holds h ON h.id = w.offer_hold_id
 WHERE w.resource = 'show'
 ORDER BY w.id;

SELECT lockctl.create_pool('show', 3);
SELECT lockctl.reserve('show', 2, 'x', '1 hour') AS x \gset
SELECT lockctl.reserve('show', 1, 'y', '1 hour') AS y \gset
-- Sold out: three join the queue (ann wants 2).
SELECT lockctl.wait_for('show', 2, 'ann', '1 hour', 'ann-1') AS ann \gset
SELECT lockctl.wait_for('show', 1, 'bob', '1 hour') AS bob \gset
SELECT lockctl.wait_for('show', 1, 'cid', '1 hour') AS cid \gset
SELECT lockctl.wait_for('show', 2, 'ann', '1 hour', 'ann-1') = :ann AS same_entry;
SELECT pg_temp.e($$SELECT lockctl.wait_for('show', 3, 'ann', '1 hour', 'ann-1')$$);
SELECT * FROM pg_temp.queue;
-- New slot rows of a pool with a queue serve it too.
SELECT lockctl.set_slots('show', 3);
SELECT count(*) FILTER (WHERE s.waitlist) AS flagged, count(*) AS slots
  FROM lockctl.pool_slots s JOIN lockctl.pools p ON p.id = s.pool_id WHERE p.resource = 'show';
SELECT lockctl.set_slots('show', NULL);

-- y cancels: 1 unit back, but the head (ann) wants 2: FIFO, nobody is
-- skipped, and the unit stays free.
SELECT lockctl.cancel(:y);
SELECT * FROM pg_temp.queue;
SELECT available FROM lockctl.pool_status WHERE resource = 'show';
-- x cancels: 3 free; ann gets her 2 as an offer and bob his 1, in the
-- cancelling transaction; nothing is left for a walk-in.
SELECT lockctl.cancel(:x);
SELECT * FROM pg_temp.queue;
SELECT held, available FROM lockctl.pool_status WHERE resource = 'show';
SELECT lockctl.reserve('show', 1, 'walk-in') IS NULL AS walk_in_gets_nothing;

-- ann confirms her offer; bob's offer expires and goes to cid.
SELECT offer_hold_id AS ann_hold FROM lockctl.waitlist WHERE id = :ann \gset
SELECT offer_hold_id AS bob_hold FROM lockctl.waitlist WHERE id = :bob \gset
SELECT lockctl.confirm(:ann_hold);
BEGIN;
UPDATE lockctl.reservations SET expires = now() - interval '1 second' WHERE id = :bob_hold;
SELECT lockctl_internal.expire_holds(100) AS expired;
SELECT * FROM pg_temp.queue;
COMMIT;

-- Leaving the queue; a larger capacity serves it.
SELECT lockctl.wait_for('show', 1, 'dee', '1 hour') AS dee \gset
SELECT lockctl.wait_for('show', 1, 'eve', '1 hour') AS eve \gset
SELECT lockctl.leave_waitlist(:dee) AS left, lockctl.leave_waitlist(:dee) AS again;
SELECT lockctl.set_capacity('show', 4);
SELECT * FROM pg_temp.queue;
-- An offered entry cannot leave (its hold can be cancelled).
SELECT lockctl.leave_waitlist(:eve) AS offered_cannot_leave;

-- Free units and nobody ahead: the offer at once.
SELECT lockctl.set_capacity('show', 5);
SELECT lockctl.wait_for('show', 1, 'fay', '1 hour') AS fay \gset
SELECT status, offer_hold_id IS NOT NULL AS has_offer FROM lockctl.waitlist WHERE id = :fay;

-- A cancelled offer goes to the next in line.
SELECT lockctl.wait_for('show', 1, 'gus', '1 hour') AS gus \gset
SELECT offer_hold_id AS eve_hold FROM lockctl.waitlist WHERE id = :eve \gset
SELECT lockctl.cancel(:eve_hold);
SELECT status FROM lockctl.waitlist WHERE id = :gus;
SELECT held, confirmed, available FROM lockctl.pool_status WHERE resource = 'show';

-- A cancelled cart and the rest of a partial confirm serve the queue too.
SELECT lockctl.create_pool('encore', 3);
SELECT lockctl.reserve('encore', 2, 'z', '1 hour') AS z \gset
SELECT lockctl.reserve_cart('[{"resource": "encore"}]', 'k', '1 hour') AS k \gset
SELECT lockctl.wait_for('encore', 1, 'p1', '1 hour') AS p1 \gset
SELECT lockctl.wait_for('encore', 1, 'p2', '1 hour') AS p2 \gset
SELECT lockctl.cancel_cart(:k);
SELECT holder, status, position FROM lockctl.waitlist WHERE resource = 'encore' ORDER BY id;
SELECT lockctl.confirm(:z, 1);
SELECT holder, status, position FROM lockctl.waitlist WHERE resource = 'encore' ORDER BY id;
SELECT held, confirmed, available FROM lockctl.pool_status WHERE resource = 'encore';
SELECT lockctl.drop_pool('encore');

-- Bad input.
SELECT pg_temp.e($$SELECT lockctl.wait_for(NULL)$$);
SELECT pg_temp.e($$SELECT lockctl.wait_for('nope')$$);
SELECT pg_temp.e($$SELECT lockctl.wait_for('show', 0)$$);
SELECT pg_temp.e($$SELECT lockctl.wait_for('show', NULL)$$);
SELECT pg_temp.e($$SELECT lockctl.wait_for('show', 1, '')$$);
SELECT pg_temp.e($$SELECT lockctl.wait_for('show', 1, repeat('h', 201))$$);
SELECT pg_temp.e($$SELECT lockctl.wait_for('show', 1, NULL, NULL)$$);
SELECT pg_temp.e($$SELECT lockctl.wait_for('show', 1, NULL, '0')$$);
SELECT pg_temp.e($$SELECT lockctl.wait_for('show', 1, NULL, '1 hour', '')$$);
SELECT pg_temp.e($$SELECT lockctl.leave_waitlist(NULL)$$);
SELECT pg_temp.e($$SELECT lockctl.leave_waitlist(-1)$$);
SELECT pg_temp.e($$SELECT lockctl_internal.serve_waitlist(1, NULL, 'bogus')$$);

-- Another role: its entries are its own; the offer belongs to the role
-- that waited, whoever's transaction made it.
SET client_min_messages = warning;
CREATE ROLE regress_wait_web;
CREATE ROLE regress_wait_other;
RESET client_min_messages;
SELECT lockctl.set_capacity('show', (SELECT held + confirmed FROM lockctl.pool_status WHERE resource = 'show'));
SET ROLE regress_wait_web;
SELECT lockctl.wait_for('show', 1, 'web', '1 hour') AS w1 \gset
SET ROLE regress_wait_other;
SELECT count(*) AS other_sees FROM lockctl.waitlist;
SELECT pg_temp.e(format('SELECT lockctl.leave_waitlist(%s)', :w1));
RESET ROLE;
SELECT lockctl.set_capacity('show', (SELECT capacity + 1 FROM lockctl.pool_status WHERE resource = 'show'));
SELECT h.taken_by, h.status FROM lockctl.waitlist w JOIN lockctl.holds h ON h.id = w.offer_hold_id WHERE w.id = :w1;
-- Entry ids are era-tagged, as hold ids.
SELECT (:w1 >> 48) = (SELECT era FROM lockctl.token_state()) AS entry_id_of_this_era;
-- pg_read_all_stats sees every entry, without another role's holder or
-- key; seeing is not acting.
SET client_min_messages = warning;
CREATE ROLE regress_wait_stats IN ROLE pg_read_all_stats;
RESET client_min_messages;
SET ROLE regress_wait_web;
SELECT lockctl.wait_for('show', 1, 'web-2', '1 hour', 'web-key') AS w2 \gset
SET ROLE regress_wait_stats;
SELECT holder, idempotency_key, taken_by, status, position FROM lockctl.waitlist WHERE id = :w2;
SELECT pg_temp.e(format('SELECT lockctl.leave_waitlist(%s)', :w2));
-- A waiting entry counts as a live hold in the role's cap
-- (lockctl.max_holds_per_role); regress_wait_web has one live offer
-- hold and one waiting entry.
RESET ROLE;
SET lockctl.max_holds_per_role = 2;
SET ROLE regress_wait_web;
SELECT pg_temp.e($$SELECT lockctl.wait_for('show', 1, 'web-3', '1 hour')$$);
SELECT lockctl.leave_waitlist(:w2) AS web_leaves;
SELECT pg_temp.e($$SELECT lockctl.wait_for('show', 1, 'web-3', '1 hour') IS NOT NULL$$);
RESET ROLE;
RESET lockctl.max_holds_per_role;

-- Purge and drop.
BEGIN;
UPDATE lockctl.waitlist_entries SET finished = now() - interval '2 days' WHERE status <> 'waiting';
SELECT lockctl_internal.purge_waitlist('1 day', 100) > 0 AS purged;
SELECT count(*) AS finished_left FROM lockctl.waitlist_entries WHERE status <> 'waiting';
ROLLBACK;
SELECT lockctl.drop_pool('show');
SELECT count(*) AS entries_left FROM lockctl.waitlist_entries;
DROP ROLE regress_wait_web, regress_wait_other, regress_wait_stats;
