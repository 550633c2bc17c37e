# PREPARE TRANSACTION (two-phase commit) after lockctl's calls.
#
# reserve: honoured, across a crash.  A hold is rows of ordinary tables, so
# PostgreSQL keeps a prepared reserve like any prepared write: nothing of
# it is seen until COMMIT PREPARED, which makes the hold (with its
# idempotency key) exactly as if it had committed then; ROLLBACK PREPARED
# leaves nothing.  Meanwhile the expiry worker goes on (the slot the
# prepared transaction holds locked is skipped, t/045).
#
# fence: refused (0A000).  A fence keeps the lease from passing to anyone
# until the fencing transaction ends; a prepared transaction would keep the
# fence lock across a restart, but not the lease's state, so the promise
# could not be kept.
use strict;
use warnings FATAL => 'all';

use lib 't';
use LockctlNode;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = LockctlNode->new('prepared', worker => 1,
	conf => "max_prepared_transactions = 5\n");
LockctlNode::wait_for_worker($node, 'postgres');
$node->safe_psql('postgres', q{
CREATE ROLE web;
SELECT lockctl.create_pool('seats', 10, 1);
SELECT lockctl.create_pool('other', 10);
});

sub sql { return $node->safe_psql('postgres', $_[0]); }

# held, confirmed and available of seats, and whether every slot's counters
# are the sums over its holds
sub seats
{
	return sql(q{
SELECT p.held || ' ' || p.confirmed || ' ' || p.available || ' ' ||
       (SELECT bool_and(s.held = coalesce(h.held, 0) AND s.confirmed = coalesce(h.confirmed, 0))
          FROM lockctl.pool_slots AS s
          LEFT JOIN (SELECT r.pool_id, r.slot,
                            sum(r.quantity) FILTER (WHERE r.status = 'held') AS held,
                            sum(r.quantity) FILTER (WHERE r.status = 'confirmed') AS confirmed
                       FROM lockctl.reservations AS r GROUP BY 1, 2) AS h USING (pool_id, slot))
  FROM lockctl.pool_status AS p WHERE p.resource = 'seats'});
}

# --- reserve, PREPARE, crash, COMMIT PREPARED ------------------------------

sql(q{SET ROLE web; BEGIN;
SELECT lockctl.reserve('seats', 3, 'prepared', '1 hour', 'order-1');
PREPARE TRANSACTION 'pay-1'});
is(seats(), '0 0 10 true', 'a prepared hold is not seen before it commits');
my $due = sql("SELECT lockctl.reserve('other', 1, 'due', '1 second')");

$node->stop('immediate');
$node->start;
is(sql('SELECT gid FROM pg_prepared_xacts'), 'pay-1',
	'the prepared transaction survives a crash');
LockctlNode::wait_for_worker($node, 'postgres');
ok($node->poll_query_until('postgres',
		"SELECT status = 'expired' FROM lockctl.reservations WHERE id = $due"),
	'the worker expires other holds while it is prepared');

sql("COMMIT PREPARED 'pay-1'");
my $hold = sql("SELECT id FROM lockctl.holds WHERE holder = 'prepared'");
is(sql("SELECT status || ' ' || quantity || ' ' || taken_by || ' ' || idempotency_key FROM lockctl.holds WHERE id = $hold"),
	'held 3 web order-1', 'COMMIT PREPARED makes the hold, with its role and key');
is(seats(), '3 0 7 true', 'its units are held, the counters add up');
is(sql("SET ROLE web; SELECT lockctl.reserve('seats', 3, 'prepared', '1 hour', 'order-1')"),
	$hold, 'its idempotency key replays it');
is(sql("SET ROLE web; SELECT lockctl.confirm($hold)"), 't', 'it is confirmed');
is(seats(), '0 3 7 true', 'and its units are confirmed');

# --- reserve, PREPARE, restart, ROLLBACK PREPARED --------------------------

sql(q{BEGIN;
SELECT lockctl.reserve('seats', 2, 'gone', '1 hour');
PREPARE TRANSACTION 'pay-2'});
$node->restart;
sql("ROLLBACK PREPARED 'pay-2'");
is(sql("SELECT count(*) FROM lockctl.holds WHERE holder = 'gone'"), '0',
	'ROLLBACK PREPARED leaves no hold');
is(seats(), '0 3 7 true', 'and takes no unit');
is(sql("SELECT holds_taken FROM lockctl.pool_status WHERE resource = 'seats'"), '1',
	'nor counts one');

# --- a prepared hold whose time runs out before COMMIT PREPARED ------------

sql(q{BEGIN;
SELECT lockctl.reserve('seats', 1, 'late', '1 millisecond');
PREPARE TRANSACTION 'pay-3'});
sql("COMMIT PREPARED 'pay-3'");
my $late = sql("SELECT id FROM lockctl.holds WHERE holder = 'late'");
ok($node->poll_query_until('postgres',
		"SELECT status = 'expired' FROM lockctl.reservations WHERE id = $late"),
	'a hold whose time ran out while prepared is expired once committed');
is(seats(), '0 3 7 true', 'and its unit is back');

# --- fence, PREPARE: refused -----------------------------------------------

my $tok = sql("SELECT lockctl.acquire('job', 'w', '1 hour')");
my ($ret, $out, $err) = $node->psql('postgres', qq{\\set VERBOSITY verbose
BEGIN;
SELECT lockctl.fence('job', $tok);
PREPARE TRANSACTION 'fenced'});
like($err, qr/ERROR:  0A000: cannot PREPARE a transaction that has called lockctl\.fence\(\)/,
	'PREPARE TRANSACTION after fence is refused with 0A000');
is(sql('SELECT count(*) FROM pg_prepared_xacts'), '0', 'nothing is prepared');
is(sql("SELECT lockctl.release('job', $tok)"), 't', 'the holder releases the lease');
isnt(sql("SELECT lockctl.acquire('job', 'next', '1 hour')"), '',
	'and the next owner gets it at once: no fence lock was left behind');
# A transaction that did not fence may still be prepared.
sql(q{BEGIN; SELECT lockctl.reserve('other', 1, 'ok'); PREPARE TRANSACTION 'no-fence'});
sql("COMMIT PREPARED 'no-fence'");
is(sql("SELECT count(*) FROM lockctl.holds WHERE holder = 'ok'"), '1',
	'a transaction that did not fence is prepared and committed');

# The same for a holder of a counted lease and a shared holder, which fence
# their own locks.
foreach my $kind (['counted', "lockctl.acquire('pool', 'w', '1 hour', permits => 2)"],
				  ['shared', "lockctl.acquire_shared('doc', 'w', '1 hour')"])
{
	my ($name, $acquire) = @$kind;
	my $res = $name eq 'counted' ? 'pool' : 'doc';
	my $htok = sql("SELECT $acquire");
	($ret, $out, $err) = $node->psql('postgres', qq{\\set VERBOSITY verbose
BEGIN;
SELECT lockctl.fence('$res', $htok);
PREPARE TRANSACTION 'fenced-$name'});
	like($err, qr/ERROR:  0A000: cannot PREPARE a transaction that has called lockctl\.fence\(\)/,
		"PREPARE TRANSACTION after a $name holder's fence is refused with 0A000");
	is(sql('SELECT count(*) FROM pg_prepared_xacts'), '0', 'nothing is prepared');
	is(sql("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objsubid IN (19523, 19524)"),
		'0', "no fence lock of the $name holder is left behind");
	is(sql("SELECT lockctl.release('$res', $htok)"), 't', "the $name holder releases");
}

$node->stop;
done_testing();
