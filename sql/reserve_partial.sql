-- Partial confirm: confirm(id, quantity) confirms part of a live hold and
-- gives the rest back at once; only for the role that took the hold (and
-- roles with its privileges).
\set VERBOSITY terse
\set SHOW_CONTEXT never

CREATE FUNCTION pg_temp.e(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE r text;
BEGIN
    EXECUTE stmt INTO r;
    RETURN coalesce(nullif(r, ''), 'ok');
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || regexp_replace(regexp_replace(SQLERRM, '\d{4,}', 'N', 'g'),
                                              'hold \d+', 'hold N', 'g');
END $$;

SELECT lockctl.create_pool('seats', 10);
SELECT lockctl.reserve('seats', 5, 'ann', '1 hour') AS h1 \gset
SELECT lockctl.confirm(:h1, 3) AS confirmed_3;
SELECT quantity, status FROM lockctl.holds WHERE id = :h1;
SELECT held, confirmed, available, holds_confirmed FROM lockctl.pool_status WHERE resource = 'seats';
-- A retry with the same quantity is safe; another quantity is an error.
SELECT lockctl.confirm(:h1, 3) AS again;
SELECT lockctl.confirm(:h1) AS whole_again;
SELECT pg_temp.e(format('SELECT lockctl.confirm(%s, 2)', :h1));
-- All of it is the same as confirm(id).
SELECT lockctl.reserve('seats', 2, 'bob', '1 hour') AS h2 \gset
SELECT lockctl.confirm(:h2, 2);
SELECT held, confirmed, available FROM lockctl.pool_status WHERE resource = 'seats';
-- More than the hold has, and bad input: nothing changes.
SELECT lockctl.reserve('seats', 2, 'cid', '1 hour') AS h3 \gset
SELECT pg_temp.e(format('SELECT lockctl.confirm(%s, 3)', :h3));
SELECT pg_temp.e(format('SELECT lockctl.confirm(%s, 0)', :h3));
SELECT pg_temp.e(format('SELECT lockctl.confirm(%s, -1)', :h3));
SELECT pg_temp.e(format('SELECT lockctl.confirm(%s, NULL)', :h3));
SELECT pg_temp.e($$SELECT lockctl.confirm(NULL, 1)$$);
SELECT pg_temp.e($$SELECT lockctl.confirm(-5, 1)$$);
SELECT quantity, status FROM lockctl.holds WHERE id = :h3;
-- Cancelled or expired holds cannot be confirmed, in part or whole.
SELECT lockctl.cancel(:h3);
SELECT pg_temp.e(format('SELECT lockctl.confirm(%s, 1)', :h3));
SELECT lockctl.reserve('seats', 1, 'dee', '1 hour') AS h4 \gset
BEGIN;
UPDATE lockctl.reservations SET expires = now() - interval '1 second' WHERE id = :h4;
SELECT pg_temp.e(format('SELECT lockctl.confirm(%s, 1)', :h4));
ROLLBACK;

-- With a per-holder limit, the rest goes back to the holder's count too.
SELECT lockctl.set_max_per_holder('seats', 4);
SELECT lockctl.cancel(:h4);
SELECT lockctl.reserve('seats', 3, 'eve', '1 hour') AS h5 \gset
SELECT lockctl.confirm(:h5, 1);
SELECT units FROM lockctl.holder_units WHERE holder = 'eve';
SELECT lockctl.reserve('seats', 3, 'eve', '1 hour') IS NOT NULL AS three_more;

-- Another role: the hold does not exist for it; a member of the taking
-- role may confirm.
SET client_min_messages = warning;
CREATE ROLE regress_partial_web;
CREATE ROLE regress_partial_pay IN ROLE regress_partial_web;
CREATE ROLE regress_partial_other;
RESET client_min_messages;
SELECT lockctl.set_max_per_holder('seats', NULL);
SELECT lockctl.set_capacity('seats', 100);
SET ROLE regress_partial_web;
SELECT lockctl.reserve('seats', 4, 'w', '1 hour') AS w1 \gset
SET ROLE regress_partial_other;
SELECT pg_temp.e(format('SELECT lockctl.confirm(%s, 1)', :w1));
SET ROLE regress_partial_pay;
SELECT lockctl.confirm(:w1, 2) AS member_confirms;
RESET ROLE;
SELECT quantity, status, taken_by FROM lockctl.holds WHERE id = :w1;
SELECT held, confirmed, available FROM lockctl.pool_status WHERE resource = 'seats';
SELECT lockctl.drop_pool('seats');
DROP ROLE regress_partial_web, regress_partial_pay, regress_partial_other;
