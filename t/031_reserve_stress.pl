# Stress: 32 clients at once on one pool of a few thousand units, with
# reserve, confirm, cancel and expiry mixed, then every invariant checked;
# and a pure sell-out where exactly the capacity is sold and no one got
# NULL while a unit remained.
use strict;
use warnings FATAL => 'all';

use lib 't';
use LockctlNode;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = LockctlNode->new('reserve_stress', conf => qq{
max_connections = 60
fsync = off
});
$node->safe_psql('postgres', q{
SELECT lockctl.create_pool('mixed', 3000);
SELECT lockctl.create_pool('sellout', 3000);
CREATE TABLE attempts (pool text, ok boolean, quantity int, at timestamptz);
-- One client transaction.  act 1-5: confirm; 6-7: cancel; 8: keep the hold;
-- 9: a hold that expires almost at once; 10: the worker's pass
-- (expire_holds); 11: confirm someone else's short hold, racing the
-- expiries (refused with 55000 if its time is up).
CREATE FUNCTION stress_step(pool text, q int, act int) RETURNS void LANGUAGE plpgsql AS $$
DECLARE h bigint;
BEGIN
    IF act = 10 THEN
        PERFORM lockctl_internal.expire_holds(20);
        RETURN;
    ELSIF act = 11 THEN
        SELECT r.id INTO h FROM lockctl.holds r
         WHERE r.resource = pool AND r.status = 'held' AND r.holder = 'short'
         ORDER BY r.id DESC LIMIT 1;
        IF h IS NOT NULL THEN
            BEGIN
                PERFORM lockctl.confirm(h);
            EXCEPTION WHEN object_not_in_prerequisite_state THEN
                NULL;
            END;
        END IF;
        RETURN;
    END IF;
    h := lockctl.reserve(pool, q, CASE WHEN act = 9 THEN 'short' ELSE 'pgbench' END,
                         CASE WHEN act = 9 THEN interval '50 milliseconds' ELSE interval '1 hour' END);
    INSERT INTO attempts VALUES (pool, h IS NOT NULL, q, clock_timestamp());
    IF h IS NULL THEN
        RETURN;
    ELSIF act <= 5 THEN
        PERFORM lockctl.confirm(h);
    ELSIF act <= 7 THEN
        PERFORM lockctl.cancel(h);
    END IF;
END $$;
});

my $broken = q{
SELECT string_agg(what, '; ') FROM (
  SELECT 'slots do not sum to the capacity of ' || p.resource AS what FROM lockctl.pools p
   WHERE p.capacity <> (SELECT sum(s.capacity) FROM lockctl.pool_slots s WHERE s.pool_id = p.id)
  UNION ALL
  SELECT 'oversold slot ' || s.slot FROM lockctl.pool_slots s
   WHERE s.held + s.confirmed > s.capacity
  UNION ALL
  SELECT 'held/confirmed counters wrong in slot ' || s.slot FROM lockctl.pool_slots s
   WHERE s.held <> (SELECT coalesce(sum(r.quantity), 0) FROM lockctl.reservations r
                     WHERE r.pool_id = s.pool_id AND r.slot = s.slot AND r.status = 'held')
      OR s.confirmed <> (SELECT coalesce(sum(r.quantity), 0) FROM lockctl.reservations r
                          WHERE r.pool_id = s.pool_id AND r.slot = s.slot AND r.status = 'confirmed')
  UNION ALL
  SELECT 'hold counters wrong for ' || p.resource FROM lockctl.pool_status p
   WHERE p.holds_confirmed <> (SELECT count(*) FROM lockctl.holds h WHERE h.resource = p.resource AND h.status = 'confirmed')
      OR p.holds_cancelled <> (SELECT count(*) FROM lockctl.holds h WHERE h.resource = p.resource AND h.status = 'cancelled')
      OR p.holds_expired <> (SELECT count(*) FROM lockctl.holds h WHERE h.resource = p.resource AND h.status = 'expired')
      OR p.holds_taken <> (SELECT count(*) FROM lockctl.holds h WHERE h.resource = p.resource)
  UNION ALL
  SELECT 'hold both finished and live, or confirmed and expired: ' || id FROM lockctl.reservations
   WHERE (status = 'held') <> (finished IS NULL)
) b};

# The mix: quantities 1 to 3; 32 clients, 150 transactions each, which asks
# for about twice the capacity.
$node->pgbench(
	'--no-vacuum --client=32 --jobs=4 --transactions=165',
	0,
	[qr{processed: 5280/5280}],
	[qr{^$}],
	'32 clients reserve, confirm, cancel and expire on one pool',
	{ '031_mixed' => q{
\set q random(1, 3)
\set act random(1, 11)
SELECT stress_step('mixed', :q, :act);
} });

is($node->safe_psql('postgres', $broken), '', 'every invariant holds after the mix');
my ($cap, $held, $confirmed, $available) = split /\|/, $node->safe_psql('postgres',
	q{SELECT capacity, held, confirmed, available FROM lockctl.pool_status WHERE resource = 'mixed'});
is($held + $confirmed + $available, $cap, 'held + confirmed + available = capacity');
cmp_ok($confirmed, '>', 0, "units were confirmed ($confirmed)");

cmp_ok($node->safe_psql('postgres', q{SELECT holds_expired FROM lockctl.pool_status WHERE resource = 'mixed'}),
	'>', 0, 'holds were expired during the mix');
cmp_ok($node->safe_psql('postgres',
		q{SELECT count(*) FROM lockctl.holds WHERE resource = 'mixed' AND holder = 'short' AND status = 'confirmed'}),
	'>', 0, 'and short holds were confirmed before their expiry, while others expired them');
cmp_ok($node->safe_psql('postgres', q{SELECT count(*) FROM attempts WHERE pool = 'mixed' AND NOT ok}),
	'>', 0, 'the mix ran into the sell-out');

# Expire what is due and cancel what is held: every unit that is not
# confirmed is free again, can be taken in one hold that spans slots, and
# not one more.
$node->safe_psql('postgres', q{
SELECT lockctl_internal.expire_holds(100000);
SELECT lockctl.cancel(id) FROM lockctl.holds WHERE resource = 'mixed' AND status = 'held';
});
$available = $node->safe_psql('postgres', q{SELECT lockctl.available('mixed')});
is($available, $cap - $confirmed, "every unconfirmed unit is free again ($available)");
isnt($node->safe_psql('postgres', qq{SELECT lockctl.reserve('mixed', $available)}), '',
	'all the free units can be taken at once');
is($node->safe_psql('postgres', q{SELECT lockctl.reserve('mixed', 1) IS NULL}), 't',
	'and then the pool is sold out');
is($node->safe_psql('postgres', $broken), '', 'every invariant still holds');

# The sell-out: one unit at a time, confirmed or kept, no unit ever comes
# back.  3840 attempts on 3000 units: exactly 3000 sold, and every NULL was
# answered after the last unit had been taken.
$node->pgbench(
	'--no-vacuum --client=32 --jobs=4 --transactions=120',
	0,
	[qr{processed: 3840/3840}],
	[qr{^$}],
	'32 clients sell out a pool of 3000 units',
	{ '031_sellout' => q{
\set r random(1, 8)
\set act CASE WHEN :r <= 5 THEN :r ELSE 8 END
SELECT stress_step('sellout', 1, :act);
} });

is($node->safe_psql('postgres',
		q{SELECT count(*) FILTER (WHERE ok) || '/' || count(*) FILTER (WHERE NOT ok) FROM attempts WHERE pool = 'sellout'}),
	'3000/840', 'exactly the capacity was sold, the rest got NULL');
is($node->safe_psql('postgres',
		q{SELECT held + confirmed || '/' || available FROM lockctl.pool_status WHERE resource = 'sellout'}),
	'3000/0', 'the pool says so too');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM attempts a
	 WHERE a.pool = 'sellout' AND NOT a.ok
	   AND a.at < (SELECT max(created) FROM lockctl.holds WHERE resource = 'sellout')}),
	'0', 'no NULL was answered while a unit remained');
is($node->safe_psql('postgres', $broken), '', 'every invariant holds after the sell-out');

$node->stop;
done_testing();
