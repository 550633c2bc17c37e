# The expiry worker comes back after it is terminated, the launcher after
# it is terminated, and both after a crash restart; holds and pool counters
# are intact and consistent after the crash.
use strict;
use warnings FATAL => 'all';

use lib 't';
use LockctlNode;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = LockctlNode->new('restart', worker => 1);
$node->safe_psql('postgres', "SELECT lockctl.create_pool('seats', 20)");

sub worker_pid
{
	return $node->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE backend_type = 'lockctl expiry worker' AND datname = 'postgres'");
}

sub launcher_pid
{
	return $node->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE backend_type = 'lockctl launcher'");
}

# Take a 1 s hold and wait until the worker expires it.
sub expires
{
	return LockctlNode::hold_expires($node, 'postgres', 'seats');
}

ok(expires(), 'the worker expires holds');
my $pid = worker_pid();
my $expired = $node->safe_psql('postgres',
	"SELECT holds_expired FROM lockctl.workers WHERE datname = 'postgres'");

# pg_terminate_backend on the worker: it comes back and carries on.
$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
$node->poll_query_until('postgres',
	"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'lockctl expiry worker' AND datname = 'postgres' AND pid <> $pid")
  or die 'the worker did not come back';
pass('a terminated worker is started again');
ok(expires(), 'and carries on expiring holds');
is($node->safe_psql('postgres',
		"SELECT holds_expired > $expired FROM lockctl.workers WHERE datname = 'postgres'"),
	't', 'its counters survive the restart of the process');

# pg_terminate_backend on the launcher: it comes back, adopts the running
# worker instead of starting a second one.
my $launcher = launcher_pid();
$pid = worker_pid();
$node->safe_psql('postgres', "SELECT pg_terminate_backend($launcher)");
$node->poll_query_until('postgres',
	"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'lockctl launcher' AND pid <> $launcher")
  or die 'the launcher did not come back';
pass('a terminated launcher is started again');
ok(expires(), 'holds still expire');
is(worker_pid(), $pid, 'the running worker was kept, not started twice');

# The new launcher still manages the adopted worker: terminate it again.
$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
$node->poll_query_until('postgres',
	"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'lockctl expiry worker' AND datname = 'postgres' AND pid <> $pid")
  or die 'the adopted worker did not come back';
pass('an adopted worker is restarted by the new launcher too');

# A crash restart: the holds and the counters are intact and consistent.
$node->safe_psql('postgres', q{
SELECT lockctl.reserve('seats', 2, 'long', '1 hour');
SELECT lockctl.confirm(lockctl.reserve('seats', 3, 'paid', '1 hour'));
});
my $short = $node->safe_psql('postgres',
	"SELECT lockctl.reserve('seats', 4, 'short', '2 seconds')");
is($node->safe_psql('postgres', "SELECT lockctl.available('seats')"),
	'11', 'before the crash: 2 held, 3 confirmed, 4 held briefly');
$node->stop('immediate');
$node->start;
is($node->safe_psql('postgres',
		"SELECT string_agg(holder || ':' || status, ',' ORDER BY holder) FROM lockctl.reservations WHERE holder IN ('long', 'paid')"),
	'long:held,paid:confirmed', 'the holds survived the crash');
$node->poll_query_until('postgres',
	"SELECT status = 'expired' FROM lockctl.reservations WHERE id = $short")
  or die 'the worker did not resume after the crash';
pass('the worker resumes after the crash and expires the due hold');
is($node->safe_psql('postgres', "SELECT lockctl.available('seats')"),
	'15', 'after the crash: its units are back, the others still taken');
is($node->safe_psql('postgres', q{
SELECT (SELECT coalesce(sum(quantity), 0) FROM lockctl.reservations
         WHERE status IN ('held', 'confirmed'))
       + lockctl.available('seats')}),
	'20', 'held + confirmed + available = capacity');
is($node->safe_psql('postgres', q{
SELECT p.held = coalesce(sum(r.quantity) FILTER (WHERE r.status = 'held'), 0)
   AND p.confirmed = coalesce(sum(r.quantity) FILTER (WHERE r.status = 'confirmed'), 0)
   AND p.holds_expired = count(*) FILTER (WHERE r.status = 'expired')
   AND p.holds_taken = count(*)
  FROM lockctl.pool_status AS p
  JOIN lockctl.pools AS pl ON pl.resource = p.resource
  JOIN lockctl.reservations AS r ON r.pool_id = pl.id
 WHERE p.resource = 'seats'
 GROUP BY p.held, p.confirmed, p.holds_expired, p.holds_taken}),
	't', 'the pool counters equal the sums over its holds');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'lockctl launcher'"),
	'1', 'one launcher after the crash');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM lockctl.workers WHERE datname = 'postgres' AND state = 'running'"),
	'1', 'one worker after the crash');

$node->stop;
done_testing();
