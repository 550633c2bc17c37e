# Sets of leases (acquire_all), the waits isolationtester cannot see (they
# sleep on a latch): two sets in opposite orders queue behind a holder and
# are served first come first served without deadlock; a set is woken
# when the last of its resources becomes free, and not granted in part
# before; single acquires neither jump ahead of a waiting set nor starve
# it; a cancelled or terminated set waiter leaves every line; and many
# clients taking overlapping sets in random orders never deadlock and never
# see part of a set held.
use strict;
use warnings FATAL => 'all';

use lib 't';
use LockctlNode;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = LockctlNode->new('lease_all');
$node->safe_psql('postgres', q{
	CREATE TABLE got (n serial, who text, tokens bigint[],
	                  at timestamptz DEFAULT clock_timestamp());
});

sub sql { return $node->safe_psql('postgres', $_[0]); }

# A session waiting in acquire_all (or, with single => 1, in acquire) in
# the background; what it gets lands in "got".
sub start_waiter
{
	my ($who, $resources, %opt) = @_;
	my $s = $node->background_psql('postgres', on_error_stop => 0);
	my $call = $opt{single}
	  ? "ARRAY[lockctl.acquire('$resources', '$who', '1 hour', '1 hour')]"
	  : "lockctl.acquire_all('$resources', '$who', '1 hour', '1 hour')";
	$s->query_safe("SET application_name = '$who'");
	$s->query_until(qr/^started\n/m, qq{
\\echo started
INSERT INTO got (who, tokens) SELECT '$who', $call;
});
	return $s;
}

sub wait_for
{
	my ($query, $what) = @_;
	$node->poll_query_until('postgres', $query)
	  or die "timed out waiting for $what";
}

# A waiter that a release must wake: granted, promptly after $since
# (LockctlNode::granted_promptly says why the bound).  A set that timed
# out gets NULL, a single waiter ARRAY[NULL]: its first token tells both.
sub now { return LockctlNode::server_now($node); }

sub granted_promptly
{
	my ($who, $since, $what) = @_;
	is(LockctlNode::granted_promptly($node, $who, $since, 'tokens[1] IS NOT NULL'),
		't', $what);
}

sub line
{
	my ($resource) = @_;
	return sql("SELECT string_agg(owner || CASE WHEN set_id IS NULL THEN '' ELSE '*' END, ',' ORDER BY queue_position) FROM lockctl.lease_waiters WHERE resource = '$resource'");
}

sub holders
{
	my ($like) = @_;
	return sql("SELECT string_agg(resource || '=' || owner, ',' ORDER BY resource) FROM lockctl.leases WHERE resource LIKE '$like'");
}

# Two sets in opposite orders behind one holder of x.
my $hx = sql("SELECT lockctl.acquire('o-x', 'holder', '1 hour')");
my $s1 = start_waiter('s1', '{o-x,o-y}');
wait_for("SELECT count(*) = 2 FROM lockctl.lease_waiters WHERE owner = 's1'", 's1 in line');
my $s2 = start_waiter('s2', '{o-y,o-x}');
wait_for("SELECT count(*) = 2 FROM lockctl.lease_waiters WHERE owner = 's2'", 's2 in line');
is(line('o-x') . ' ' . line('o-y'), 's1*,s2* s1*,s2*',
	'both sets wait in both lines, s1 first in each (a set marked *)');
is(holders('o-%'), 'o-x=holder', 'y is free, but no set holds part of itself');
is(sql("SELECT lockctl.acquire('o-y', 'walk-in', '1 hour') IS NULL"), 't',
	'a single acquire of y does not jump ahead of the waiting sets');
is(sql("SELECT count(DISTINCT set_id) FROM lockctl.lease_waiters WHERE resource LIKE 'o-%'"),
	'2', 'lease_waiters shows two sets');
my $since = now();
sql("SELECT lockctl.release('o-x', $hx)");
granted_promptly('s1', $since, 's1 is woken by the release of x');
is(holders('o-%'), 'o-x=s1,o-y=s1', 's1 gets both at once when x is released');
is(line('o-x') . ' ' . line('o-y'), 's2* s2*', 's2 still waits in both lines');
my $t1 = sql("SELECT tokens FROM got WHERE who = 's1'");
$since = now();
is(sql("SELECT lockctl.release_all('{o-x,o-y}', '$t1')"), '{t,t}', 's1 releases its set');
granted_promptly('s2', $since, 's2 is woken by the release of the set');
is(holders('o-%'), 'o-x=s2,o-y=s2', 's2 gets both');
is(sql("SELECT tokens[1] > ('$t1'::bigint[])[2] AND tokens[2] > ('$t1'::bigint[])[1] FROM got WHERE who = 's2'"),
	't', "s2's tokens are later than s1's");
$s1->quit;
$s2->quit;
my $t2 = sql("SELECT tokens FROM got WHERE who = 's2'");
sql("SELECT lockctl.release_all('{o-y,o-x}', '$t2')");

# A set behind two holders: woken when the last member frees, not granted
# in part before.
my $ha = sql("SELECT lockctl.acquire('w-a', 'ha', '1 hour')");
my $hb = sql("SELECT lockctl.acquire('w-b', 'hb', '1 hour')");
my $s3 = start_waiter('s3', '{w-a,w-b}');
wait_for("SELECT count(*) = 2 FROM lockctl.lease_waiters WHERE owner = 's3'", 's3 in line');
sql("SELECT lockctl.release('w-a', $ha)");
# The set looks at a (it is first in a's line) and goes back to sleep.
is(sql("SELECT count(*) FROM got WHERE who = 's3'"), '0', 'one member free: still waiting');
is(holders('w-%'), 'w-b=hb', 'and a is not held by the set');
is(sql("SELECT lockctl.acquire('w-a', 'walk-in', '1 hour') IS NULL"), 't',
	'a walk-in does not take a, which the set is first in line for');
$since = now();
sql("SELECT lockctl.release('w-b', $hb)");
granted_promptly('s3', $since, 's3 is woken by the release of its last member');
is(holders('w-%'), 'w-a=s3,w-b=s3', 'the last member freed: the set gets both');
$s3->quit;
sql("SELECT lockctl.release_all('{w-a,w-b}', tokens) FROM got WHERE who = 's3'");

# Not starved: a set queued before single waiters gets the resource first.
my $hn = sql("SELECT lockctl.acquire('n-a', 'holder', '1 hour')");
my $s4 = start_waiter('s4', '{n-a,n-b}');
wait_for("SELECT count(*) = 2 FROM lockctl.lease_waiters WHERE owner = 's4'", 's4 in line');
my $w1 = start_waiter('single1', 'n-a', single => 1);
my $w2 = start_waiter('single2', 'n-b', single => 1);
wait_for("SELECT count(*) = 2 FROM lockctl.lease_waiters WHERE owner LIKE 'single%'", 'singles in line');
is(line('n-a') . ' ' . line('n-b'), 's4*,single1 s4*,single2', 'the singles queue behind the set');
$since = now();
sql("SELECT lockctl.release('n-a', $hn)");
granted_promptly('s4', $since, 's4 is woken by the release of a');
is(holders('n-%'), 'n-a=s4,n-b=s4', 'the set is served first');
$since = now();
sql("SELECT lockctl.release_all('{n-a,n-b}', tokens) FROM got WHERE who = 's4'");
granted_promptly($_, $since,
	"then $_, on its resource, woken by the release of the set")
  for ('single1', 'single2');
$_->quit for ($s4, $w1, $w2);
sql("SELECT lockctl.release(resource, token) FROM lockctl.leases WHERE resource LIKE 'n-%'");

# Cancelled and terminated set waiters leave every line at once.
my $hc = sql("SELECT lockctl.acquire('c-a', 'holder', '1 hour')");
for my $how ('cancel', 'terminate')
{
	my $s = start_waiter("s-$how", '{c-b,c-a,c-c}');
	wait_for("SELECT count(*) = 3 FROM lockctl.lease_waiters WHERE owner = 's-$how'", "s-$how in line");
	my $extra = $how eq 'terminate' ? ', 10000' : '';
	sql("SELECT pg_${how}_backend(pid$extra) FROM pg_stat_activity WHERE application_name = 's-$how'");
	wait_for("SELECT count(*) = 0 FROM lockctl.lease_waiters", "s-$how out of line");
	is(holders('c-%'), 'c-a=holder', "$how: nothing of the set was taken");
	# a terminated psql has exited with its connection: just reap it
	eval { $s->quit; };
}
is(sql("SELECT waiting FROM lockctl.lease_stats"), '0', 'nobody is counted as waiting');
sql("SELECT lockctl.release('c-a', $hc)");
is(sql("SELECT count(*) FROM lockctl.leases WHERE resource LIKE 'c-%'"), '0',
	'no entry is left behind');

# Many clients: sets of 3 of 6 resources in random orders, and single
# acquires, all waiting.  No call times out (no deadlock), and no client
# ever sees a set in part: every set in lockctl.leases has its 3 leases.
$node->safe_psql('postgres', q{
	CREATE TABLE seen (set_id bigint, n int);
	CREATE TABLE outcomes (kind text, ok boolean);
});
my $sets = $node->basedir . '/sets.sql';
PostgreSQL::Test::Utils::append_to_file($sets, q{
INSERT INTO outcomes SELECT 'set', lockctl.acquire_all(s.r, 'c' || :client_id, '10 s', '30 s') IS NOT NULL
  FROM (SELECT array_agg(r ORDER BY random()) AS r
          FROM (SELECT 'h' || i AS r FROM generate_series(1, 6) i ORDER BY random() LIMIT 3) t) s;
INSERT INTO seen SELECT set_id, count(*) FROM lockctl.leases WHERE set_id IS NOT NULL GROUP BY set_id;
SELECT lockctl.release_all(array_agg(resource), array_agg(token)) FROM lockctl.leases WHERE owner = 'c' || :client_id;
});
my $single = $node->basedir . '/single.sql';
PostgreSQL::Test::Utils::append_to_file($single, q{
\set r random(1, 6)
INSERT INTO outcomes SELECT 'single', lockctl.acquire('h' || :r, 's' || :client_id, '10 s', '30 s') IS NOT NULL;
SELECT lockctl.release(resource, token) FROM lockctl.leases WHERE owner = 's' || :client_id;
});
my $before = sql("SELECT set_grants FROM lockctl.lease_stats");
$node->command_ok(
	[ 'pgbench', '-n', '-c', '8', '-j', '4', '-t', '60',
	  '-f', "$sets\@3", '-f', "$single\@1",
	  '-p', $node->port, '-h', $node->host, 'postgres' ],
	'8 clients take overlapping sets in random orders, and single leases');
is(sql("SELECT count(*), bool_and(ok) FROM outcomes"), '480|t',
	'every call was granted within its wait: no deadlock');
is(sql("SELECT count(*) > 0, bool_and(n = 3) FROM seen"), 't|t',
	'every set seen in lockctl.leases had all its 3 leases');
is(sql("SELECT set_grants - $before = (SELECT count(*) FROM outcomes WHERE kind = 'set') FROM lockctl.lease_stats"),
	't', 'lease_stats counts every set granted');
is(sql("SELECT count(*) FROM lockctl.leases WHERE resource LIKE 'h_'"), '0',
	'every lease was released');
is(sql('SELECT waiting FROM lockctl.lease_stats'), '0', 'nobody waits');

$node->stop;
done_testing();
