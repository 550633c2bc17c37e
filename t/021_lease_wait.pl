# Waiting for a lease: a waiter sleeps (no polling) and is woken by the
# release or by the holder's expiry, waiters are served in arrival order,
# and a waiter that is cancelled, times out or is terminated leaves nothing
# behind.
use strict;
use warnings FATAL => 'all';

use lib 't';
use LockctlNode;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = LockctlNode->new('lease_wait');
LockctlNode::create_got($node);

# Start a waiter in the background: its acquire's result lands in "got".
sub start_waiter
{
	my ($who, $resource, $wait, %opt) = @_;
	my $ttl = $opt{ttl} // '1 min';
	return LockctlNode::start_waiter($node, $who,
		"lockctl.acquire('$resource', '$who', '$ttl', '$wait')", set => $opt{set});
}

sub waiters { return LockctlNode::waiters($node, @_); }
sub wait_for_waiters { return LockctlNode::wait_for_waiters($node, @_); }

# The waits of an outcome in lockctl.lease_wait_histogram: their count
# (the +Inf bucket), and the count no longer than 1 ms.
sub histogram
{
	my ($outcome) = @_;
	return $node->safe_psql('postgres', qq{
		SELECT max(waits) FILTER (WHERE le = 'Infinity') || ' ' || max(waits) FILTER (WHERE le = 0.001)
		  FROM lockctl.lease_wait_histogram WHERE outcome = '$outcome'});
}

# A waiter woken by the release.  The holder's lease and the wait last an
# hour, so only the release can end the wait before poll_query_until gives
# up: a release that did not wake the waiter fails here.
my $t_hold = $node->safe_psql('postgres',
	"SELECT lockctl.acquire('r1', 'holder', '1 hour')");
is(histogram('granted'), '0 0', 'no wait in the histogram yet');
my $w = start_waiter('w-release', 'r1', '1 hour');
wait_for_waiters('r1', 1);
# From PostgreSQL 17 on, an extension can name its wait events; before,
# they are all "Extension".
my $pg17 = $node->safe_psql('postgres', 'SHOW server_version_num') >= 170000;
is($node->safe_psql('postgres',
		"SELECT wait_event_type || '/' || wait_event FROM pg_stat_activity WHERE application_name = 'w-release'"),
	$pg17 ? 'Extension/LockctlLeaseWait' : 'Extension/Extension',
	'the waiter sleeps on a wait event, it does not spin');
is($node->safe_psql('postgres', "SELECT waiters FROM lockctl.leases WHERE resource = 'r1'"),
	'1', 'the view counts the waiter');
$node->safe_psql('postgres', "SELECT lockctl.release('r1', $t_hold)");
$node->poll_query_until('postgres', "SELECT count(*) = 1 FROM got WHERE who = 'w-release'")
  or die 'waiter was not woken by the release';
my $t_w = $node->safe_psql('postgres', "SELECT token FROM got WHERE who = 'w-release'");
ok($t_w > $t_hold, 'the woken waiter gets a higher token');
is($node->safe_psql('postgres', "SELECT owner FROM lockctl.lease('r1')"),
	'w-release', 'and holds the lease');
is(waiters('r1'), '0', 'no waiter left on r1');
# The waiter was queued before the first look at lockctl.lease_waiters and
# woken after the release: more than a millisecond.
is(histogram('granted'), '1 0', 'the wait is in the histogram, as granted, above 1 ms');
$w->quit;

# The next in line follows the lease of the one before it: w-a takes over a
# one-hour lease with a short lease of its own and never releases it; w-b
# gets the lease when w-a's runs out, not at the hour it first saw.
my $t_long = $node->safe_psql('postgres',
	"SELECT lockctl.acquire('chain', 'holder', '1 hour')");
my $wa = start_waiter('w-a', 'chain', '5 min', ttl => '300 ms');
wait_for_waiters('chain', 1);
my $wb = start_waiter('w-b', 'chain', '5 min');
wait_for_waiters('chain', 2);
# w-a is granted at or after the release, and w-b at or after w-a's lease
# ran out, 300 ms later.  (Compared with the release time, which comes
# before w-a's grant, not with when w-a's row was written, which a loaded
# machine can delay.)
my $t_rel = $node->safe_psql('postgres', 'SELECT clock_timestamp()');
$node->safe_psql('postgres', "SELECT lockctl.release('chain', $t_long)");
$node->poll_query_until('postgres', "SELECT count(*) = 1 FROM got WHERE who = 'w-b'")
  or die 'the second waiter did not get the lease when the first one\'s expired';
is($node->safe_psql('postgres',
		"SELECT at >= '$t_rel'::timestamptz + interval '300 ms' FROM got WHERE who = 'w-b'"),
	't', 'the second waiter got it when the first waiter\'s short lease expired');
$wa->quit;
$wb->quit;

# A waiter woken by the holder's expiry, not before it.
$node->safe_psql('postgres', "SELECT lockctl.acquire('r2', 'holder', '1.5 s')");
my $expires = $node->safe_psql('postgres',
	"SELECT expires_at FROM lockctl.lease('r2')");
$w = start_waiter('w-expiry', 'r2', '5 min');
$node->poll_query_until('postgres', "SELECT count(*) = 1 FROM got WHERE who = 'w-expiry'")
  or die 'waiter was not woken by the expiry';
is($node->safe_psql('postgres',
		"SELECT at >= '$expires'::timestamptz - interval '20 ms' FROM got WHERE who = 'w-expiry'"),
	't', 'the waiter got the lease only once it expired');
is($node->safe_psql('postgres', "SELECT owner FROM lockctl.lease('r2')"),
	'w-expiry', 'the waiter holds the expired lease');
$w->quit;

# A wait that runs out returns NULL and leaves the queue.
$node->safe_psql('postgres', "SELECT lockctl.acquire('r3', 'holder', '1 hour')");
$w = start_waiter('w-timeout', 'r3', '300 ms');
$node->poll_query_until('postgres', "SELECT count(*) = 1 FROM got WHERE who = 'w-timeout'")
  or die 'wait did not run out';
is($node->safe_psql('postgres', "SELECT token IS NULL FROM got WHERE who = 'w-timeout'"),
	't', 'a wait that runs out returns NULL');
is(waiters('r3'), '0', 'and leaves no waiter behind');
$w->quit;

# Arrival order: three waiters queue one after the other; each release hands
# the lease to the next in line.  Leases and waits of an hour: each grant is
# the work of a release's wake-up, not of an expiry or a deadline.
my $t_fifo = $node->safe_psql('postgres',
	"SELECT lockctl.acquire('fifo', 'holder', '1 hour')");
my @ws;
for my $i (1 .. 3)
{
	push @ws, start_waiter("fifo-$i", 'fifo', '1 hour', ttl => '1 hour');
	wait_for_waiters('fifo', $i);
}
is($node->safe_psql('postgres',
		"SELECT string_agg(owner, ',' ORDER BY queue_position) FROM lockctl.lease_waiters WHERE resource = 'fifo'"),
	'fifo-1,fifo-2,fifo-3', 'lease_waiters lists the line in order');
# A newcomer that does not wait does not jump the line once the lease is free.
my $prev = $t_fifo;
for my $i (1 .. 3)
{
	$node->safe_psql('postgres', "SELECT lockctl.release('fifo', $prev)");
	$node->poll_query_until('postgres',
		"SELECT count(*) = $i FROM got WHERE who LIKE 'fifo-%'")
	  or die "no grant after release $i";
	$prev = $node->safe_psql('postgres',
		"SELECT token FROM got WHERE who = 'fifo-$i'");
	ok($prev, "fifo-$i got the lease after release $i");
}
is($node->safe_psql('postgres',
		"SELECT string_agg(who, ',' ORDER BY n) FROM got WHERE who LIKE 'fifo-%'"),
	'fifo-1,fifo-2,fifo-3', 'waiters were served in arrival order');
is($node->safe_psql('postgres',
		"SELECT bool_and(token > $t_fifo) AND count(DISTINCT token) = 3 FROM got WHERE who LIKE 'fifo-%'"),
	't', 'each got its own, higher token');
$_->quit for @ws;

# A fenced transaction holds off a waiter past the lease's expiry, and its
# commit hands the lease to the waiter.  The fencing session connects
# first: on a loaded machine, starting psql took longer than the lease.
my $fencer = $node->background_psql('postgres');
my $t_f = $node->safe_psql('postgres',
	"SELECT lockctl.acquire('r5', 'holder', '500 ms')");
$fencer->query_safe("BEGIN; SELECT lockctl.fence('r5', $t_f);");
$w = start_waiter('w-fenced', 'r5', '5 min');
wait_for_waiters('r5', 1);
$node->poll_query_until('postgres', "SELECT count(*) = 0 FROM lockctl.lease('r5')")
  or die 'lease r5 never expired';
# expired, yet the waiter is still waiting: the fence holds the lease
$node->poll_query_until('postgres',
	"SELECT clock_timestamp() > (SELECT waiting_since FROM lockctl.lease_waiters WHERE resource = 'r5') + interval '1 s'")
  or die 'clock did not move';
is(waiters('r5'), '1', 'an expired but fenced lease is not granted to the waiter');
is($node->safe_psql('postgres', "SELECT count(*) FROM got WHERE who = 'w-fenced'"),
	'0', 'the waiter has nothing yet');
$fencer->query_safe('COMMIT');
$node->poll_query_until('postgres', "SELECT count(*) = 1 FROM got WHERE who = 'w-fenced'")
  or die 'the end of the fencing transaction did not wake the waiter';
ok($node->safe_psql('postgres', "SELECT token FROM got WHERE who = 'w-fenced'") > $t_f,
	'the waiter got the lease, with a higher token, once the fencing transaction ended');
$fencer->quit;
$w->quit;

# Query cancel, statement_timeout and termination end a wait and leave
# nothing behind; the histogram counts them as cancelled waits.
my ($cancelled_before) = split / /, histogram('cancelled');
$node->safe_psql('postgres', "SELECT lockctl.acquire('r4', 'holder', '1 hour')");
$w = start_waiter('w-cancel', 'r4', '5 min');
wait_for_waiters('r4', 1);
$node->safe_psql('postgres',
	"SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'w-cancel'");
wait_for_waiters('r4', 0);
$w->query_until(qr/^after\n/m, "\\echo after\n");
like($w->{stderr}, qr/canceling statement due to user request/, 'cancel ends the wait with an error');
$w->{stderr} = '';
is($w->query_safe("SELECT 1"), '1', 'the cancelled session is usable');
$w->quit;

$w = start_waiter('w-stmt-timeout', 'r4', '5 min', set => "SET statement_timeout = '300ms';");
$node->poll_query_until('postgres',
	"SELECT count(*) = 0 FROM pg_stat_activity WHERE application_name = 'w-stmt-timeout' AND state = 'active'")
  or die 'statement_timeout did not end the wait';
$w->query_until(qr/^after\n/m, "\\echo after\n");
like($w->{stderr}, qr/canceling statement due to statement timeout/, 'statement_timeout ends the wait');
is(waiters('r4'), '0', 'no waiter left after statement_timeout');
$w->quit;

$w = start_waiter('w-terminate', 'r4', '5 min');
wait_for_waiters('r4', 1);
$node->safe_psql('postgres',
	"SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity WHERE application_name = 'w-terminate'");
wait_for_waiters('r4', 0);
pass('a terminated waiter leaves the line');
# psql itself has exited with its connection; just reap it
eval { $w->quit; };

# The holder's lease is untouched by all that, and a release with no one
# waiting frees the slot.
is($node->safe_psql('postgres', "SELECT owner || ' ' || waiters FROM lockctl.lease('r4')"),
	'holder 0', 'the lease itself is untouched');
is($node->safe_psql('postgres', "SELECT waiting FROM lockctl.lease_stats"),
	'0', 'nobody is counted as waiting');
my ($cancelled_after) = split / /, histogram('cancelled');
is($cancelled_after - $cancelled_before, 3,
	'cancel, statement_timeout and termination are three cancelled waits in the histogram');

$node->stop;
done_testing();
